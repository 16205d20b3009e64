/* The public header must compile with nothing included before it. */
#include "pop3ext-auth-site.h"

int main(void)
{
	struct pop3ext_auth_site_module module = {
		.magic = POP3EXT_AUTH_SITE_MAGIC,
		.abi_version = POP3EXT_AUTH_SITE_ABI_VERSION,
	};

	return module.login == 0 && module.abi_version > 0 ? 0 : 1;
}
