#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

/* Shared by the libFuzzer targets (fuzz/fuzz-*.c): libdovecot set up once,
   its log output dropped (a parser that rejects input logs it; thousands of
   lines a second would only slow the fuzzer down), and the input as
   strings. A panic or a failed assertion still aborts, which is a finding. */

#include "lib.h"
#include "array.h"
#include "str.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ATTR_FORMAT(2, 0)
fuzz_log_discard(const struct failure_context *ctx ATTR_UNUSED,
		 const char *format ATTR_UNUSED, va_list args ATTR_UNUSED)
{
}

static inline void fuzz_init(void)
{
	lib_init();
	i_set_error_handler(fuzz_log_discard);
	i_set_info_handler(fuzz_log_discard);
	i_set_debug_handler(fuzz_log_discard);
}

/* The input cut at its first NUL, on the data stack. */
static inline const char *fuzz_str(const uint8_t *data, size_t size)
{
	return t_strndup(data, size);
}

/* The input split into lines ('\n'; NULs end a line too), on the data
   stack. */
static inline const char *const *
fuzz_lines(const uint8_t *data, size_t size)
{
	ARRAY_TYPE(const_string) lines;
	size_t start = 0, i;

	t_array_init(&lines, 16);
	for (i = 0; i <= size; i++) {
		if (i == size || data[i] == '\n' || data[i] == '\0') {
			const char *line = t_strndup(data + start, i - start);
			array_push_back(&lines, &line);
			start = i + 1;
		}
	}
	array_append_zero(&lines);
	return array_front(&lines);
}

/* Fails the run (a finding) when a property of the output does not
   hold. */
#define fuzz_check(expr) \
	STMT_START { if (!(expr)) i_panic("fuzz check failed: %s", #expr); \
	} STMT_END

#endif
