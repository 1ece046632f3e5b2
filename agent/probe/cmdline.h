/* cmdline — the kernel command line as tokens with values, never substrings.
 *
 * Contract: a command line (from /proc/cmdline, /etc/kernel/cmdline or a
 * GRUB variable) is split the way the kernel splits it: tokens are separated
 * by unquoted whitespace (space, tab, newline, CR, VT, FF); a double quote
 * toggles quoting and is itself dropped, so `key="x y"` and `"key=x y"` both
 * give key "key" and value "x y". The key is everything before the first '='
 * of the token, the value everything after it (NULL when there is no '=').
 * Questions are asked of whole tokens: "xintel_iommu=on" is never
 * "intel_iommu", and "intel_iommu=on,sm_on" has the options "on" and "sm_on".
 *
 * Ownership: a kargs_t owns every key and value; kargs_free releases them and
 * leaves an empty, reusable list. Allocation failure aborts (see buf.h). */
#ifndef PCIFLEET_CMDLINE_H
#define PCIFLEET_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *key;
    char *value; /* NULL when the token has no '=' */
} karg_t;

typedef struct {
    karg_t *v;
    size_t n, cap;
} kargs_t;

#define KARGS_INIT {NULL, 0, 0}

/* Appends the tokens of buf[0..len) to *out. Never fails on content: a token
 * that is only quotes ("") is dropped, an unterminated quote runs to the end
 * of the input (as in the kernel). NUL bytes act as separators; the function
 * then still parses everything and returns -EINVAL so callers can tell the
 * input was not text. Otherwise returns 0. */
int kargs_parse(const char *buf, size_t len, kargs_t *out);
void kargs_free(kargs_t *a);

/* The last token whose key is exactly key (the kernel honours the last
 * occurrence), or NULL. */
const karg_t *kargs_find_last(const kargs_t *a, const char *key);

/* True when arg has a value whose comma-separated options include opt exactly:
 * "on,sm_on" has "on" and "sm_on" but not "sm". False for NULL arg or value. */
bool karg_has_option(const karg_t *arg, const char *opt);

/* Appends a copy of key/value (value may be NULL). */
void kargs_add(kargs_t *a, const char *key, const char *value);
/* Removes every token whose key is exactly key; returns how many went. */
size_t kargs_remove(kargs_t *a, const char *key);

/* Space-joined tokens, in order; the caller frees (never NULL, "" when empty).
 * A value holding whitespace is written key="value"; a key holding whitespace
 * makes the whole token quoted. A '"' inside a key or value cannot be written
 * on a kernel command line and is left out. kargs_parse of the result gives
 * back the same tokens. */
char *kargs_to_string(const kargs_t *a);

#endif
