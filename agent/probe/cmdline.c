#include "cmdline.h"

#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The kernel's isspace(): the C locale's whitespace set. */
static bool is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void kargs_take(kargs_t *a, char *key, char *value)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n].key = key;
    a->v[a->n].value = value;
    a->n++;
}

int kargs_parse(const char *buf, size_t len, kargs_t *out)
{
    int rc = 0;
    size_t i = 0;
    buf_t key = BUF_INIT, val = BUF_INIT;
    while (i < len) {
        if (buf[i] == '\0') {
            rc = -EINVAL;
            i++;
            continue;
        }
        if (is_sep(buf[i])) {
            i++;
            continue;
        }
        buf_reset(&key);
        buf_reset(&val);
        bool in_quote = false, seen_eq = false;
        for (; i < len; i++) {
            char c = buf[i];
            if (c == '\0')
                break; /* counted as garbage by the outer loop */
            if (c == '"') {
                in_quote = !in_quote;
                continue;
            }
            if (!in_quote && is_sep(c))
                break;
            if (!seen_eq && c == '=') {
                seen_eq = true;
                continue;
            }
            buf_putc(seen_eq ? &val : &key, c);
        }
        if (key.len == 0 && !seen_eq)
            continue; /* only quotes: nothing the kernel would see */
        kargs_take(out, xstrndup(key.p, key.len), seen_eq ? xstrndup(val.p, val.len) : NULL);
    }
    buf_free(&key);
    buf_free(&val);
    return rc;
}

void kargs_free(kargs_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].key);
        free(a->v[i].value);
    }
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

const karg_t *kargs_find_last(const kargs_t *a, const char *key)
{
    if (!a || !key)
        return NULL;
    for (size_t i = a->n; i-- > 0;)
        if (strcmp(a->v[i].key, key) == 0)
            return &a->v[i];
    return NULL;
}

bool karg_has_option(const karg_t *arg, const char *opt)
{
    if (!arg || !arg->value || !opt)
        return false;
    size_t olen = strlen(opt);
    const char *p = arg->value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == olen && memcmp(p, opt, n) == 0)
            return true;
        if (!comma)
            return false;
        p = comma + 1;
    }
}

void kargs_add(kargs_t *a, const char *key, const char *value)
{
    kargs_take(a, xstrdup(key ? key : ""), value ? xstrdup(value) : NULL);
}

size_t kargs_remove(kargs_t *a, const char *key)
{
    size_t w = 0, removed = 0;
    for (size_t r = 0; r < a->n; r++) {
        if (strcmp(a->v[r].key, key) == 0) {
            free(a->v[r].key);
            free(a->v[r].value);
            removed++;
            continue;
        }
        a->v[w++] = a->v[r];
    }
    a->n = w;
    return removed;
}

static bool has_sep(const char *s)
{
    for (; *s; s++)
        if (is_sep(*s))
            return true;
    return false;
}

static void put_unquoted(buf_t *b, const char *s)
{
    for (; *s; s++)
        if (*s != '"')
            buf_putc(b, *s);
}

char *kargs_to_string(const kargs_t *a)
{
    buf_t b = BUF_INIT;
    buf_reserve(&b, 0);
    b.p[0] = '\0';
    for (size_t i = 0; a && i < a->n; i++) {
        const karg_t *k = &a->v[i];
        if (b.len)
            buf_putc(&b, ' ');
        bool quote_all = has_sep(k->key) || (!*k->key && !k->value);
        bool quote_val = !quote_all && k->value && has_sep(k->value);
        if (quote_all)
            buf_putc(&b, '"');
        put_unquoted(&b, k->key);
        if (k->value) {
            buf_putc(&b, '=');
            if (quote_val)
                buf_putc(&b, '"');
            put_unquoted(&b, k->value);
            if (quote_val)
                buf_putc(&b, '"');
        }
        if (quote_all)
            buf_putc(&b, '"');
    }
    return buf_steal(&b);
}
