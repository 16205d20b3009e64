/* The public header must compile with nothing included before it. */
#include "pop3ext-pop3.h"

int main(void)
{
	struct pop3ext_pop3_command cmd = { .ret = 0 };

	return cmd.ret + (POP3EXT_POP3_API_VERSION > 0 ? 0 : 1);
}
