/* blob — see blob.h. */
#include "blob.h"

#include "buf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct blob {
    atomic_size_t refs;
    size_t len;
    char data[]; /* len bytes and a NUL */
};

blob_t *blob_new(const void *data, size_t len)
{
    blob_t *b = xmalloc(sizeof *b + len + 1);
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    return b;
}

blob_t *blob_ref(blob_t *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void blob_unref(blob_t **bp)
{
    if (!bp || !*bp)
        return;
    blob_t *b = *bp;
    *bp = NULL;
    /* release: this holder's reads happen before the free; acquire on the
     * last one so the free sees every other holder's */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

const char *blob_data(const blob_t *b) { return b->data; }
size_t blob_len(const blob_t *b) { return b->len; }
