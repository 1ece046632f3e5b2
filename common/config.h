/* config — the programs' config files: "key = value" lines.
 *
 * Contract: '#' starts a comment line; blank lines are ignored; keys are the
 * long option names without "--" (e.g. "controller-key = /etc/pcifleet/controller.key");
 * values may be double-quoted. An unknown key, a line without '=', or a key
 * given twice is an error naming the file and line: a config file is never
 * half-understood. Command-line options override the file. */
#ifndef PCIFLEET_CONFIG_H
#define PCIFLEET_CONFIG_H

#include "strv.h"

#include <stddef.h>

typedef struct {
    strv_t keys;
    strv_t values; /* same index as keys */
} config_t;

#define CONFIG_INIT {STRV_INIT, STRV_INIT}

/* known: NULL-terminated list of accepted keys (NULL: any key). where names
 * the file in errors. Returns 0 with the file's entries appended to *out (in
 * file order), or -EINVAL with *err set (caller frees) and *out untouched.
 * config_load reads a regular file of at most 1 MiB; it returns a negative
 * errno with *err set when the file cannot be read. */
int config_parse(const char *buf, size_t len, const char *where, const char *const *known, config_t *out,
                 char **err);
int config_load(const char *path, const char *const *known, config_t *out, char **err);
const char *config_get(const config_t *c, const char *key);
void config_free(config_t *c);

#endif
