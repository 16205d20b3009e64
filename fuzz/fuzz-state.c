/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* The policy ledger (plugin/policy/pop3ext-state.c): ~/.pop3ext/ledger.db
   and the older versions' logs it imports (retrieved.log,
   retrieved.offset, held.log, first-login) are files anyone with access
   to the home can damage. The first input byte picks what is done with
   the rest: its lines through the two old line parsers; the whole of it
   written as each of the old files, imported into a new ledger; or
   written as the ledger itself. Everything is then read back through the
   readers the plugin and the sweep use. A damaged file must give an
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

/* every input starts from an empty ~/.pop3ext */
static void fuzz_reset_dir(void)
{
	const char *error;

	if (unlink_directory(fuzz_dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_fatal("%s", error);
	if (mkdir(fuzz_dir, 0700) < 0)
		i_fatal("mkdir(%s) failed: %m", fuzz_dir);
}

/* everything read back the way the plugin and the sweep read it */
static void fuzz_read_back(struct pop3ext_state *state, pool_t pool)
{
	struct pop3ext_first_login rec;
	ARRAY_TYPE(pop3ext_retrieval) retrievals;
	ARRAY_TYPE(pop3ext_held) held;
	const char *error = NULL;
	int64_t after_id = 0;
	int ret;

	p_array_init(&retrievals, pool, 16);
	ret = pop3ext_state_read_retrievals(state, pool, &after_id, 0,
					    &retrievals, &error);
	fuzz_check(ret == 0 || error != NULL);
	/* from the start, a few at a time, as the sweep does */
	after_id = 0;
	while (ret == 0) {
		int64_t prev = after_id;

		array_clear(&retrievals);
		ret = pop3ext_state_read_retrievals(state, pool, &after_id, 3,
						    &retrievals, &error);
		if (ret < 0 || array_count(&retrievals) == 0)
			break;
		fuzz_check(after_id > prev);
	}
	p_array_init(&held, pool, 16);
	ret = pop3ext_state_read_held(state, pool, &held, &error);
	fuzz_check(ret == 0 || error != NULL);
	ret = pop3ext_state_read_first_login(state, &rec, &error);
	fuzz_check(ret >= -1 && ret <= 1);
}

/* older versions' logs, imported into a new ledger at its first open */
static void fuzz_import(const uint8_t *data, size_t size, pool_t pool,
			bool with_offset)
{
	struct pop3ext_state *state;

	fuzz_reset_dir();
	fuzz_write("retrieved.log", data, size);
	fuzz_write("held.log", data, size);
	fuzz_write("first-login", data, size);
	if (with_offset)
		fuzz_write("retrieved.offset", data, size < 24 ? size : 24);
	state = pop3ext_state_init(fuzz_dir, NULL, fuzz_event);
	fuzz_read_back(state, pool);
	pop3ext_state_deinit(&state);
}

/* the input as the ledger file itself: not a database, a damaged one */
static void fuzz_damaged_ledger(const uint8_t *data, size_t size,
				pool_t pool)
{
	struct pop3ext_state *state;

	fuzz_reset_dir();
	fuzz_write("ledger.db", data, size);
	state = pop3ext_state_init(fuzz_dir, NULL, fuzz_event);
	fuzz_read_back(state, pool);
	pop3ext_state_deinit(&state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	T_BEGIN {
		pool_t pool = pool_alloconly_create("fuzz state", 1024);

		switch (data[0] % 4) {
		case 0:
			fuzz_parsers(data + 1, size - 1, pool);
			break;
		case 1:
			fuzz_import(data + 1, size - 1, pool, FALSE);
			break;
		case 2:
			fuzz_import(data + 1, size - 1, pool, TRUE);
			break;
		default:
			fuzz_damaged_ledger(data + 1, size - 1, pool);
			break;
		}
		pool_unref(&pool);
	} T_END;
	return 0;
}
