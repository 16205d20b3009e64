/* Copyright (c) 2026 dovecot-pop3ext authors, see the included COPYING file */

/* CAPA after login: Dovecot's own capability list, then what registered
   providers add or remove, then IMPLEMENTATION. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "pop3-capability.h"
#include "pop3ext-config.h"
#include "pop3ext-pop3-private.h"

#define POP3EXT_IMPLEMENTATION "IMPLEMENTATION dovecot-pop3ext "POP3EXT_VERSION

struct pop3ext_capa_provider {
	pop3ext_pop3_capa_func_t *func;
	void *context;
};

static ARRAY(struct pop3ext_capa_provider) pop3ext_capa_providers;

void pop3ext_pop3_capa_register(pop3ext_pop3_capa_func_t *func,
				void *context)
{
	struct pop3ext_capa_provider *provider;

	if (!array_is_created(&pop3ext_capa_providers))
		i_array_init(&pop3ext_capa_providers, 4);
	provider = array_append_space(&pop3ext_capa_providers);
	provider->func = func;
	provider->context = context;
}

void pop3ext_pop3_capa_unregister(pop3ext_pop3_capa_func_t *func,
				  void *context)
{
	const struct pop3ext_capa_provider *provider;

	if (!array_is_created(&pop3ext_capa_providers))
		i_panic("pop3ext_pop3: unregistering an unknown CAPA provider");
	array_foreach(&pop3ext_capa_providers, provider) {
		if (provider->func == func && provider->context == context) {
			array_delete(&pop3ext_capa_providers,
				     array_foreach_idx(&pop3ext_capa_providers,
						       provider), 1);
			return;
		}
	}
	i_panic("pop3ext_pop3: unregistering an unknown CAPA provider");
}

void pop3ext_pop3_capa_deinit(void)
{
	array_free(&pop3ext_capa_providers);
}

/* Returns TRUE if line's first word is keyword, ignoring case. */
static bool pop3ext_capa_line_is(const char *line, const char *keyword)
{
	size_t len = strlen(keyword);

	return strncasecmp(line, keyword, len) == 0 &&
		(line[len] == '\0' || line[len] == ' ');
}

void pop3ext_pop3_capa_add(struct pop3ext_pop3_capa *capa, const char *line)
{
	i_assert(strpbrk(line, "\r\n") == NULL && *line != '\0');
	array_push_back(&capa->lines, &line);
}

bool pop3ext_pop3_capa_remove(struct pop3ext_pop3_capa *capa,
			      const char *keyword)
{
	const char *const *lines;
	unsigned int i, count;
	bool removed = FALSE;

	lines = array_get(&capa->lines, &count);
	for (i = count; i > 0; i--) {
		if (pop3ext_capa_line_is(lines[i-1], keyword)) {
			array_delete(&capa->lines, i-1, 1);
			lines = array_get(&capa->lines, &count);
			removed = TRUE;
		}
	}
	return removed;
}

bool pop3ext_pop3_capa_has(const struct pop3ext_pop3_capa *capa,
			   const char *keyword)
{
	const char *line;

	array_foreach_elem(&capa->lines, line) {
		if (pop3ext_capa_line_is(line, keyword))
			return TRUE;
	}
	return FALSE;
}

int pop3ext_pop3_cmd_capa(struct client *client)
{
	struct pop3ext_pop3_capa capa;
	const struct pop3ext_capa_provider *provider;
	const char *line;
	string_t *reply;

	t_array_init(&capa.lines, 16);
	/* POP3_CAPABILITY_REPLY: CRLF-terminated lines */
	const char *const *stock = t_strsplit(POP3_CAPABILITY_REPLY, "\r\n");
	for (; *stock != NULL; stock++) {
		if (**stock != '\0')
			pop3ext_pop3_capa_add(&capa, *stock);
	}
	if (array_is_created(&pop3ext_capa_providers)) {
		array_foreach(&pop3ext_capa_providers, provider)
			provider->func(client, &capa, provider->context);
	}
	pop3ext_pop3_capa_remove(&capa, "IMPLEMENTATION");
	pop3ext_pop3_capa_add(&capa, POP3EXT_IMPLEMENTATION);

	/* one line-send like Dovecot's cmd_capa, so that output throttling
	   sees the same reply */
	reply = t_str_new(256);
	str_append(reply, "+OK\r\n");
	array_foreach_elem(&capa.lines, line) {
		str_append(reply, line);
		str_append(reply, "\r\n");
	}
	str_append_c(reply, '.');
	client_send_line(client, "%s", str_c(reply));
	return 1;
}
