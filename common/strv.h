/* strv — a growable list of owned C strings.
 *
 * Contract: every string in the list is owned by it (strv_add copies);
 * strv_free releases them all and leaves an empty, reusable list. */
#ifndef PCIFLEET_STRV_H
#define PCIFLEET_STRV_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char **v;
    size_t n;
    size_t cap;
} strv_t;

#define STRV_INIT {NULL, 0, 0}

void strv_add(strv_t *l, const char *s);
void strv_addn(strv_t *l, const char *s, size_t n);
/* Takes ownership of s (which must come from malloc). */
void strv_take(strv_t *l, char *s);
bool strv_contains(const strv_t *l, const char *s);
/* Adds s unless already present; returns true when added. */
bool strv_add_unique(strv_t *l, const char *s);
void strv_sort(strv_t *l);
void strv_free(strv_t *l);
/* The entries joined by sep, as a new string (caller frees; "" when empty). */
char *strv_join(const strv_t *l, const char *sep);

#endif
