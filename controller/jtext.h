/* jtext — JSON text pieces for the store and the query renderer.
 *
 * Contract: jtext_string writes one quoted JSON string (RFC 8259 escapes;
 * bytes that are not valid UTF-8 become U+FFFD, so the output is always valid
 * JSON whatever an agent sent). jtext_array writes a JSON array of strings.
 * jtext_array_items reads back such an array (any JSON array of strings)
 * and appends its items to out; it returns -1, adding nothing, when the text
 * is not an array of strings. */
#ifndef PCIFLEET_JTEXT_H
#define PCIFLEET_JTEXT_H

#include "buf.h"
#include "strv.h"

#include <stddef.h>

void jtext_string(buf_t *out, const char *s, size_t n);
void jtext_array(buf_t *out, char *const *v, size_t n);
/* Number of items, or -1 when text is not a JSON array of strings. */
int jtext_array_items(const char *text, size_t len, strv_t *out);

#endif
