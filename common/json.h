/* json — a streaming JSON writer.
 *
 * Contract: calls must nest properly (every *_open has its *_close). Inside an
 * object every value call needs a key; inside an array or at the top level the
 * key must be NULL. Strings are escaped per RFC 8259; bytes that are not valid
 * UTF-8 are written as U+FFFD so the output is always valid JSON, whatever the
 * host's files contained. A NULL string value is written as null. */
#ifndef PCIFLEET_JSON_H
#define PCIFLEET_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef struct json json_t;

/* indent 0 writes one compact line; otherwise that many spaces per level. */
json_t *json_new(int indent);
void json_destroy(json_t **j);

void json_obj_open(json_t *j, const char *key);
void json_obj_close(json_t *j);
void json_arr_open(json_t *j, const char *key);
void json_arr_close(json_t *j);
void json_str(json_t *j, const char *key, const char *val);
void json_strn(json_t *j, const char *key, const char *val, size_t n);
void json_int(json_t *j, const char *key, long long val);
void json_bool(json_t *j, const char *key, bool val);
void json_null(json_t *j, const char *key);
/* -1 is null, 0 false, anything else true: for facts that may be unknown. */
void json_tribool(json_t *j, const char *key, int val);
/* An integer, or null when val < 0 (for ids and counts that may be unknown). */
void json_int_or_null(json_t *j, const char *key, long long val);

/* The text so far (NUL-terminated, owned by j). */
const char *json_text(const json_t *j, size_t *len);

/* Appends s to out as a quoted, escaped JSON string. */
#endif
