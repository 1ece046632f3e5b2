#include "strv.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

void strv_take(strv_t *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = s;
}

void strv_add(strv_t *l, const char *s)
{
    strv_take(l, xstrdup(s));
}

void strv_addn(strv_t *l, const char *s, size_t n)
{
    strv_take(l, xstrndup(s, n));
}

bool strv_contains(const strv_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

bool strv_add_unique(strv_t *l, const char *s)
{
    if (strv_contains(l, s))
        return false;
    strv_add(l, s);
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort(strv_t *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

void strv_free(strv_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

char *strv_join(const strv_t *l, const char *sep)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            buf_puts(&b, sep);
        buf_puts(&b, l->v[i]);
    }
    return buf_steal(&b);
}
