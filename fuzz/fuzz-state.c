/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The policy ledger (plugin/policy/pop3ext-state.c): a user's
   retrieved.log, retrieved.offset, held.log and first-login are files
   anyone with access to the home can damage. The first input byte picks
   what is done with the rest: its lines through the two line parsers, or
   the whole of it written as each of the files, then read back through
   the readers the plugin and the sweep use. A damaged file must give an
   error or skipped lines, never a crash. */

#include "fuzz-common.h"
#include "write-full.h"
#include "unlink-directory.h"
#include "pop3ext-state.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

static const char *fuzz_dir;
static struct event *fuzz_event;

/* the scratch dir goes when the fuzzer exits normally (a crash leaves it
   for a look) */
static void fuzz_remove_dir(void)
{
	const char *error;

	(void)unlink_directory(fuzz_dir, UNLINK_DIRECTORY_FLAG_RMDIR, &error);
}

int LLVMFuzzerInitialize(int *argc ATTR_UNUSED, char ***argv ATTR_UNUSED)
{
	char tmpl[] = "/tmp/pop3ext-fuzz-state.XXXXXX";

	fuzz_init();
	if (mkdtemp(tmpl) == NULL)
		i_fatal("mkdtemp() failed: %m");
	fuzz_dir = i_strdup(tmpl);
	atexit(fuzz_remove_dir);
	fuzz_event = event_create(NULL);
	return 0;
}

static void fuzz_write(const char *name, const void *data, size_t size)
{
	const char *path = t_strconcat(fuzz_dir, "/", name, NULL);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd == -1)
		i_fatal("open(%s) failed: %m", path);
	if (write_full(fd, data, size) < 0)
		i_fatal("write(%s) failed: %m", path);
	i_close_fd(&fd);
}

static void fuzz_remove(const char *name)
{
	i_unlink_if_exists(t_strconcat(fuzz_dir, "/", name, NULL));
}

static void fuzz_parsers(const uint8_t *data, size_t size, pool_t pool)
{
	const char *const *line;
	struct pop3ext_retrieval r;
	struct pop3ext_held h;

	for (line = fuzz_lines(data, size); *line != NULL; line++) {
		if (pop3ext_state_parse_retrieval(*line, pool, &r) == 0)
			fuzz_check(r.guid != NULL);
		if (pop3ext_state_parse_held(*line, pool, &h) == 0) {
			fuzz_check(h.mailbox != NULL);
			fuzz_check(h.reason != NULL);
		}
	}
}

static void fuzz_readers(const uint8_t *data, size_t size, pool_t pool,
			 bool with_offset)
{
	struct pop3ext_state *state;
	struct pop3ext_first_login rec;
	ARRAY_TYPE(pop3ext_retrieval) retrievals;
	ARRAY_TYPE(pop3ext_held) held;
	const char *error;
	uoff_t offset;
	int ret;

	fuzz_write("retrieved.log", data, size);
	fuzz_write("held.log", data, size);
	fuzz_write("first-login", data, size);
	if (with_offset)
		fuzz_write("retrieved.offset", data, size < 24 ? size : 24);
	else
		fuzz_remove("retrieved.offset");

	state = pop3ext_state_init(fuzz_dir, fuzz_event);
	p_array_init(&retrievals, pool, 16);
	offset = (uoff_t)-1;
	error = NULL;
	ret = pop3ext_state_read_retrievals(state, pool, &offset, 0,
					    &retrievals, &error);
	fuzz_check(ret == 0 || error != NULL);
	if (ret == 0 && !with_offset)
		fuzz_check(offset <= size);
	/* from the start, a few at a time, as the sweep does */
	offset = 0;
	while (ret == 0) {
		uoff_t prev = offset;

		array_clear(&retrievals);
		ret = pop3ext_state_read_retrievals(state, pool, &offset, 3,
						    &retrievals, &error);
		if (ret < 0 || array_count(&retrievals) == 0)
			break;
		fuzz_check(offset > prev);
	}
	p_array_init(&held, pool, 16);
	ret = pop3ext_state_read_held(state, pool, &held, &error);
	fuzz_check(ret == 0 || error != NULL);
	ret = pop3ext_state_read_first_login(state, &rec, &error);
	fuzz_check(ret >= -1 && ret <= 1);
	pop3ext_state_deinit(&state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	T_BEGIN {
		pool_t pool = pool_alloconly_create("fuzz state", 1024);

		switch (data[0] % 3) {
		case 0:
			fuzz_parsers(data + 1, size - 1, pool);
			break;
		case 1:
			fuzz_readers(data + 1, size - 1, pool, FALSE);
			break;
		default:
			fuzz_readers(data + 1, size - 1, pool, TRUE);
			break;
		}
		pool_unref(&pool);
	} T_END;
	return 0;
}
