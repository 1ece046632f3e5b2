/* buf — a growable byte/string buffer.
 *
 * Contract: buf.p is always NUL-terminated once anything was appended (or after
 * buf_reset), so it can be used as a C string; buf.len excludes the NUL.
 * Allocation failure aborts the process: every caller would otherwise have to
 * handle OOM on each append, and our inputs are bounded by the readers' limits.
 * The caller owns the storage and releases it with buf_free() or takes it with
 * buf_steal(). */
#ifndef PCIFLEET_BUF_H
#define PCIFLEET_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void buf_reset(buf_t *b);
/* Hands the storage to the caller (never NULL) and leaves b empty. */
char *buf_steal(buf_t *b);
void buf_free(buf_t *b);

/* Small helpers every module needs; they abort on allocation failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies exactly n bytes of s (which must hold them; they may include NUL
 * bytes) and a terminating NUL: unlike strndup it does not stop early. */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
