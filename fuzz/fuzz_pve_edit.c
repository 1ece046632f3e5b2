/* Fuzzes pve_edit_set / pve_edit_delete / pve_edit_has_key (agent/pve_edit.c)
 * on any bytes as a VM config, and checks their promises: everything from
 * the first section line on comes out byte for byte; after a set the live
 * section has exactly one line of the key, holding the value, and every
 * other live line is still there in order; a delete leaves no live line of
 * the key and drops nothing else; deleting what a set added gives back the
 * input whenever the key was not there before. */
#include "pve_edit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Live-section lines other than key's, concatenated. */
static void others(const char *buf, size_t len, const char *key, buf_t *out)
{
    size_t live = pve_edit_live_end(buf, len), kl = strlen(key);
    for (size_t pos = 0; pos < live;) {
        const char *nl = memchr(buf + pos, '\n', live - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : live - pos;
        bool is_key = n > kl && memcmp(buf + pos, key, kl) == 0 && buf[pos + kl] == ':';
        if (!is_key) {
            buf_append(out, buf + pos, n);
            if (!nl)
                buf_putc(out, '\n'); /* a set may add the missing newline */
        }
        pos += n;
    }
}

static size_t count_key(const char *buf, size_t len, const char *key, const char *line)
{
    size_t live = pve_edit_live_end(buf, len), kl = strlen(key), c = 0;
    for (size_t pos = 0; pos < live;) {
        const char *nl = memchr(buf + pos, '\n', live - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : live - pos;
        if (n > kl && memcmp(buf + pos, key, kl) == 0 && buf[pos + kl] == ':') {
            c++;
            if (line && (n != strlen(line) || memcmp(buf + pos, line, n) != 0))
                abort();
        }
        pos += n;
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    static const char *const keys[] = {"hostpci0", "hostpci1", "memory", "zzz"};
    size_t live = pve_edit_live_end(in, size);
    if (live > size || (live < size && in[live] != '['))
        abort();
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const char *key = keys[k];
        bool had = pve_edit_has_key(in, size, NULL, key);
        (void)pve_edit_has_key(in, size, "PENDING", key);

        buf_t set = BUF_INIT, del = BUF_INIT, back = BUF_INIT, a = BUF_INIT, b = BUF_INIT;
        if (pve_edit_set(in, size, key, "0000:01:00.0,pcie=1", &set) != 0)
            abort();
        size_t slive = pve_edit_live_end(set.p, set.len);
        /* the sections after the live part are untouched */
        if (set.len - slive != size - live || memcmp(set.p + slive, in + live, size - live) != 0)
            abort();
        char line[64];
        snprintf(line, sizeof(line), "%s: 0000:01:00.0,pcie=1\n", key);
        if (count_key(set.p, set.len, key, line) != 1 || !pve_edit_has_key(set.p, set.len, NULL, key))
            abort();
        /* other live lines unchanged, in order (a truncated last line may
         * have gained its newline) */
        buf_reset(&a);
        buf_reset(&b);
        others(in, size, key, &a);
        others(set.p, set.len, key, &b);
        if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
            abort();

        int dropped = pve_edit_delete(in, size, key, &del);
        if (dropped < 0 || (dropped > 0) != had || count_key(del.p, del.len, key, NULL) != 0)
            abort();
        if (del.len > size)
            abort();
        if (dropped == 0 && (del.len != size || memcmp(del.p, in, size) != 0))
            abort();

        /* set then delete restores the input when the key was new and the
         * input's live part ended with a newline */
        if (!had && (live == 0 || in[live - 1] == '\n')) {
            if (pve_edit_delete(set.p, set.len, key, &back) != 1)
                abort();
            if (back.len != size || memcmp(back.p, in, size) != 0)
                abort();
        }
        buf_free(&set);
        buf_free(&del);
        buf_free(&back);
        buf_free(&a);
        buf_free(&b);
    }
    return 0;
}
