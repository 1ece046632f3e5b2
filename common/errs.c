#include "errs.h"

#include "buf.h"

#include <stdarg.h>
#include <stdlib.h>

void errs_add(errs_t *e, const char *where, const char *fmt, ...)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e->v[e->n].where = xstrdup(where ? where : "");
    e->v[e->n].what = buf_steal(&b);
    e->n++;
}

void errs_free(errs_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].where);
        free(e->v[i].what);
    }
    free(e->v);
    e->v = NULL;
    e->n = e->cap = 0;
}
