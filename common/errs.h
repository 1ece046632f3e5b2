/* errs — the list of things a scan could not read, and why.
 *
 * Contract: probes never abort on bad input; they record one entry per
 * problem here (where: a root-relative path or a subsystem name; what: a
 * sentence) and carry on with what they could read. The list owns its strings. */
#ifndef PCIFLEET_ERRS_H
#define PCIFLEET_ERRS_H

#include <stddef.h>

typedef struct {
    char *where;
    char *what;
} err_entry_t;

typedef struct {
    err_entry_t *v;
    size_t n;
    size_t cap;
} errs_t;

#define ERRS_INIT {NULL, 0, 0}

void errs_add(errs_t *e, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void errs_free(errs_t *e);

#endif
