/* udiff — unified diff (see udiff.h). An LCS table over the lines between
 * the common head and tail: boot config files are tens of lines, so the
 * quadratic table is small and the output is the minimal diff. */
#include "udiff.h"

#include "buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t n;     /* bytes without the newline */
    bool nl;      /* ends with '\n' */
} line_t;

static line_t *split(const char *s, size_t len, size_t *count)
{
    size_t cap = 16, n = 0;
    line_t *v = xmalloc(cap * sizeof(*v));
    for (size_t i = 0; i < len;) {
        const char *e = memchr(s + i, '\n', len - i);
        size_t end = e ? (size_t)(e - s) : len;
        if (n == cap)
            v = xrealloc(v, (cap *= 2) * sizeof(*v));
        v[n++] = (line_t){s + i, end - i, e != NULL};
        i = end + 1;
    }
    *count = n;
    return v;
}

static bool same(const line_t *a, const line_t *b)
{
    return a->n == b->n && a->nl == b->nl && memcmp(a->p, b->p, a->n) == 0;
}

/* One edit script entry: ' ' keep, '-' old only, '+' new only. */
typedef struct {
    char op;
    size_t ai, bi; /* line indexes in old/new (the one that applies) */
} ed_t;

static void emit(buf_t *b, char op, const line_t *l)
{
    buf_putc(b, op);
    buf_append(b, l->p, l->n);
    buf_putc(b, '\n');
    if (!l->nl)
        buf_puts(b, "\\ No newline at end of file\n");
}

char *udiff(const char *old_name, const char *old, size_t old_len, const char *new_name, const char *new_text,
            size_t new_len)
{
    if (old_len == new_len && (old_len == 0 || memcmp(old, new_text, old_len) == 0))
        return xstrdup("");
    size_t na, nb;
    line_t *a = split(old, old_len, &na), *b = split(new_text, new_len, &nb);
    size_t head = 0;
    while (head < na && head < nb && same(&a[head], &b[head]))
        head++;
    size_t tail = 0;
    while (tail < na - head && tail < nb - head && same(&a[na - 1 - tail], &b[nb - 1 - tail]))
        tail++;
    size_t ma = na - head - tail, mb = nb - head - tail;

    ed_t *ed = xmalloc((na + nb + 1) * sizeof(*ed));
    size_t ne = 0;
    for (size_t i = 0; i < head; i++)
        ed[ne++] = (ed_t){' ', i, i};
    if ((uint64_t)(ma + 1) * (mb + 1) <= UDIFF_MAX_CELLS) {
        /* L[i][j] = LCS length of a[head+i..] and b[head+j..]. */
        uint32_t *L = xcalloc((ma + 1) * (mb + 1), sizeof(uint32_t));
#define AT(i, j) L[(i) * (mb + 1) + (j)]
        for (size_t i = ma; i-- > 0;)
            for (size_t j = mb; j-- > 0;)
                AT(i, j) = same(&a[head + i], &b[head + j]) ? AT(i + 1, j + 1) + 1
                           : AT(i + 1, j) >= AT(i, j + 1) ? AT(i + 1, j)
                                                          : AT(i, j + 1);
        size_t i = 0, j = 0;
        while (i < ma || j < mb) {
            if (i < ma && j < mb && same(&a[head + i], &b[head + j])) {
                ed[ne++] = (ed_t){' ', head + i, head + j};
                i++, j++;
            } else if (i < ma && (j == mb || AT(i + 1, j) >= AT(i, j + 1))) {
                /* Removals before additions, as diff -u prints them. */
                ed[ne++] = (ed_t){'-', head + i, head + j};
                i++;
            } else {
                ed[ne++] = (ed_t){'+', head + i, head + j};
                j++;
            }
        }
#undef AT
        free(L);
    } else {
        for (size_t i = 0; i < ma; i++)
            ed[ne++] = (ed_t){'-', head + i, head};
        for (size_t j = 0; j < mb; j++)
            ed[ne++] = (ed_t){'+', head + ma, head + j};
    }
    for (size_t i = 0; i < tail; i++)
        ed[ne++] = (ed_t){' ', na - tail + i, nb - tail + i};

    buf_t out = BUF_INIT;
    buf_printf(&out, "--- %s\n+++ %s\n", old_name, new_name);
    const size_t ctx = 3;
    for (size_t k = 0; k < ne;) {
        if (ed[k].op == ' ') {
            k++;
            continue;
        }
        /* A hunk: from ctx lines before this change to ctx lines after the
         * last change that is within 2*ctx of the previous one. */
        size_t s = k >= ctx ? k - ctx : 0;
        while (s < k && ed[s].op != ' ')
            s++;
        size_t e = k, last = k;
        while (e < ne) {
            if (ed[e].op != ' ')
                last = e;
            else if (e - last > 2 * ctx)
                break;
            e++;
        }
        e = last + 1 + ctx < ne ? last + 1 + ctx : ne;
        size_t a0 = 0, an = 0, b0 = 0, bn = 0;
        bool fa = false, fb = false;
        for (size_t x = s; x < e; x++) {
            if (ed[x].op != '+') {
                if (!fa)
                    a0 = ed[x].ai, fa = true;
                an++;
            }
            if (ed[x].op != '-') {
                if (!fb)
                    b0 = ed[x].bi, fb = true;
                bn++;
            }
        }
        if (!fa)
            a0 = ed[s].ai; /* pure insertion: the line before which it goes */
        if (!fb)
            b0 = ed[s].bi;
        /* Unified diff numbers are 1-based; an empty side names the line before. */
        buf_printf(&out, "@@ -%zu,%zu +%zu,%zu @@\n", an ? a0 + 1 : a0, an, bn ? b0 + 1 : b0, bn);
        for (size_t x = s; x < e; x++)
            emit(&out, ed[x].op, ed[x].op == '+' ? &b[ed[x].bi] : &a[ed[x].ai]);
        k = e;
    }
    free(ed);
    free(a);
    free(b);
    return buf_steal(&out);
}
