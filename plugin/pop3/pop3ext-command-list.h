#ifndef POP3EXT_COMMAND_LIST_H
#define POP3EXT_COMMAND_LIST_H

/* Longest command name accepted in a list or by registration. */
#define POP3EXT_COMMAND_NAME_MAX_LEN 32

/* Returns TRUE if name is 1..POP3EXT_COMMAND_NAME_MAX_LEN characters of
   A-Z, a-z, 0-9, '-' and '_'. */
bool pop3ext_command_name_is_valid(const char *name);

typedef bool pop3ext_command_known_func_t(const char *name, void *context);

/* Parses a list of POP3 command names separated by spaces, tabs or commas
   (commas let a passwd-file userdb field carry a list) into upper-cased
   names in names_r, allocated from the data stack; duplicates are dropped.
   Each name must be valid, no command that only exists before login
   (USER, PASS, APOP, AUTH, STLS, ...: pop3-login handles those), and known
   (known_func). Returns 0 on success, -1
   with *error_r naming the offending token otherwise; names_r then holds the
   names that did parse. */
int pop3ext_command_list_parse(const char *value,
			       pop3ext_command_known_func_t *known_func,
			       void *context, ARRAY_TYPE(const_string) *names_r,
			       const char **error_r);

#endif
