/* pve_edit — live-section edits of a Proxmox VM config (see pve_edit.h).
 *
 * Works line by line over (buf, len) with memchr; a line is its bytes up to
 * and including its '\n' (the last one may lack it). */
#include "pve_edit.h"

#include <errno.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t n;       /* bytes including the newline, if any */
    bool newline;   /* ends with '\n' */
} line_t;

/* The line starting at pos (pos < len). */
static line_t line_at(const char *buf, size_t len, size_t pos)
{
    line_t l;
    l.p = buf + pos;
    const char *nl = memchr(l.p, '\n', len - pos);
    l.newline = nl != NULL;
    l.n = nl ? (size_t)(nl - l.p) + 1 : len - pos;
    return l;
}

size_t pve_edit_live_end(const char *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        line_t l = line_at(buf, len, pos);
        if (l.p[0] == '[')
            return pos;
        pos += l.n;
    }
    return len;
}

bool pve_edit_valid_key(const char *key)
{
    if (!key || key[0] < 'a' || key[0] > 'z')
        return false;
    size_t n = 0;
    for (const char *c = key; *c; c++, n++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return false;
    return n <= 64;
}

static bool line_is_key(const line_t *l, const char *key, size_t kl)
{
    return l->n > kl && memcmp(l->p, key, kl) == 0 && l->p[kl] == ':';
}

/* The key of a "key: value" line (a valid key followed by ':'), as a length
 * into l->p; 0 for comments, blank lines and anything else. */
static size_t line_key_len(const line_t *l)
{
    size_t i = 0;
    if (l->n == 0 || l->p[0] < 'a' || l->p[0] > 'z')
        return 0;
    while (i < l->n && ((l->p[i] >= 'a' && l->p[i] <= 'z') || (l->p[i] >= '0' && l->p[i] <= '9') ||
                        l->p[i] == '_' || l->p[i] == '-'))
        i++;
    return i < l->n && l->p[i] == ':' ? i : 0;
}

static bool line_blank(const line_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->p[i] != ' ' && l->p[i] != '\t' && l->p[i] != '\n' && l->p[i] != '\r')
            return false;
    return true;
}

/* key (kl bytes) against a line's key (lkl bytes), in strcmp order. */
static int key_cmp(const char *key, size_t kl, const char *lk, size_t lkl)
{
    size_t m = kl < lkl ? kl : lkl;
    int c = memcmp(key, lk, m);
    if (c)
        return c;
    return (kl > lkl) - (kl < lkl);
}

static void put_entry(buf_t *out, const char *key, const char *value)
{
    buf_printf(out, "%s: %s\n", key, value);
}

int pve_edit_set(const char *buf, size_t len, const char *key, const char *value, buf_t *out)
{
    if (!pve_edit_valid_key(key) || !value || !*value || strpbrk(value, "\n\r"))
        return -EINVAL;
    size_t kl = strlen(key);
    size_t live = pve_edit_live_end(buf, len);

    /* Decide where the line goes: at the key's first line, else before the
     * first key that sorts after it, else after the last non-blank line. */
    size_t at = (size_t)-1;   /* replace the line starting here */
    size_t before = (size_t)-1; /* insert before the line starting here */
    size_t after_end = 0;     /* end of the last non-blank live line */
    bool after_newline = true;
    for (size_t pos = 0; pos < live;) {
        line_t l = line_at(buf, live, pos);
        if (line_is_key(&l, key, kl)) {
            at = pos;
            break;
        }
        size_t lkl = line_key_len(&l);
        if (lkl && before == (size_t)-1 && key_cmp(key, kl, l.p, lkl) < 0)
            before = pos;
        if (!line_blank(&l)) {
            after_end = pos + l.n;
            after_newline = l.newline;
        }
        pos += l.n;
    }

    buf_reserve(out, len + kl + strlen(value) + 4);
    if (at != (size_t)-1) {
        buf_append(out, buf, at);
        put_entry(out, key, value);
        for (size_t pos = at; pos < live;) {
            line_t l = line_at(buf, live, pos);
            if (!line_is_key(&l, key, kl)) /* later duplicates of the key go */
                buf_append(out, l.p, l.n);
            pos += l.n;
        }
    } else if (before != (size_t)-1) {
        buf_append(out, buf, before);
        put_entry(out, key, value);
        buf_append(out, buf + before, live - before);
    } else {
        buf_append(out, buf, after_end);
        if (!after_newline)
            buf_putc(out, '\n'); /* the last line lacked its newline (truncated file) */
        put_entry(out, key, value);
        buf_append(out, buf + after_end, live - after_end);
    }
    buf_append(out, buf + live, len - live);
    return 0;
}

int pve_edit_delete(const char *buf, size_t len, const char *key, buf_t *out)
{
    if (!pve_edit_valid_key(key))
        return -EINVAL;
    size_t kl = strlen(key);
    size_t live = pve_edit_live_end(buf, len);
    int dropped = 0;
    buf_reserve(out, len + 1);
    for (size_t pos = 0; pos < live;) {
        line_t l = line_at(buf, live, pos);
        if (line_is_key(&l, key, kl))
            dropped++;
        else
            buf_append(out, l.p, l.n);
        pos += l.n;
    }
    buf_append(out, buf + live, len - live);
    return dropped;
}

bool pve_edit_has_key(const char *buf, size_t len, const char *section, const char *key)
{
    if (!pve_edit_valid_key(key))
        return false;
    size_t kl = strlen(key), sl = section ? strlen(section) : 0;
    bool in = section == NULL;
    for (size_t pos = 0; pos < len;) {
        line_t l = line_at(buf, len, pos);
        pos += l.n;
        if (l.p[0] == '[') {
            if (!section)
                return false;
            /* "[NAME]" followed only by whitespace */
            size_t e = l.n;
            while (e > 0 && (l.p[e - 1] == '\n' || l.p[e - 1] == '\r' || l.p[e - 1] == ' ' || l.p[e - 1] == '\t'))
                e--;
            in = e == sl + 2 && memcmp(l.p + 1, section, sl) == 0 && l.p[sl + 1] == ']';
            continue;
        }
        if (in && line_is_key(&l, key, kl))
            return true;
    }
    return false;
}
