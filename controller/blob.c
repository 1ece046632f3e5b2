/* blob — see blob.h. */
#include "blob.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

struct blob {
    atomic_size_t refs;
    size_t len;
    const char *p; /* data, or the memfd's read-only mapping */
    int fd;        /* the memfd, or -1 */
    char name[48];
    char data[]; /* a plain blob's len bytes and a NUL */
};

blob_t *blob_new(const void *data, size_t len)
{
    blob_t *b = xmalloc(sizeof *b + len + 1);
    atomic_init(&b->refs, 1);
    b->len = len;
    b->fd = -1;
    b->name[0] = '\0';
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->p = b->data;
    return b;
}

/* The name must never come back for another answer, not even from a later
 * controller that got the same pid and fd number: a counter for this
 * process, and random bits for the process. */
static void shared_name(char *out, size_t n)
{
    static atomic_uint_fast64_t counter;
    static uint64_t salt;
    if (!salt && getrandom(&salt, sizeof salt, GRND_NONBLOCK) != (ssize_t)sizeof salt)
        salt = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&salt;
    unsigned long long k = (unsigned long long)atomic_fetch_add(&counter, 1) + 1;
    snprintf(out, n, "pcifleet-answer-%016llx-%llu", (unsigned long long)salt, k);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

blob_t *blob_new_shared(const void *data, size_t len)
{
    blob_t *b = xmalloc(sizeof *b);
    atomic_init(&b->refs, 1);
    b->len = len;
    shared_name(b->name, sizeof b->name);
    b->fd = memfd_create(b->name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (b->fd < 0)
        goto fail;
    /* the NUL goes into the file too: the mapping then ends in it even when
     * len is a whole number of pages */
    if ((len && write_all(b->fd, data, len) < 0) || write_all(b->fd, "", 1) < 0)
        goto fail;
    if (fcntl(b->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        goto fail;
    void *m = mmap(NULL, len + 1, PROT_READ, MAP_SHARED, b->fd, 0);
    if (m == MAP_FAILED)
        goto fail;
    b->p = m;
    return b;
fail:
    if (b->fd >= 0)
        close(b->fd);
    free(b);
    return NULL;
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
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->fd >= 0) {
        munmap((void *)b->p, b->len + 1);
        close(b->fd);
    }
    free(b);
}

const char *blob_data(const blob_t *b) { return b->p; }
size_t blob_len(const blob_t *b) { return b->len; }
int blob_fd(const blob_t *b) { return b->fd; }
const char *blob_name(const blob_t *b) { return b->name; }
