#include "jtext.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void jtext_string(buf_t *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(out, n + 2);
    buf_putc(out, '"');
    size_t run = 0; /* start of a run of bytes copied as they are */
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t l = c >= 0x80 ? utf8_len(p + i, n - i) : 0;
        if (l > 0) {
            i += l;
            continue;
        }
        buf_append(out, p + run, i - run);
        switch (c) {
        case '"': buf_puts(out, "\\\""); break;
        case '\\': buf_puts(out, "\\\\"); break;
        case '\n': buf_puts(out, "\\n"); break;
        case '\t': buf_puts(out, "\\t"); break;
        case '\r': buf_puts(out, "\\r"); break;
        default:
            if (c < 0x20 || c == 0x7f)
                buf_printf(out, "\\u%04x", c);
            else
                buf_puts(out, "\\ufffd");
        }
        i++;
        run = i;
    }
    buf_append(out, p + run, n - run);
    buf_putc(out, '"');
}

void jtext_array(buf_t *out, char *const *v, size_t n)
{
    buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(out, ',');
        const char *s = v[i] ? v[i] : "";
        jtext_string(out, s, strlen(s));
    }
    buf_putc(out, ']');
}

static void skip_ws(const char *t, size_t len, size_t *i)
{
    while (*i < len && (t[*i] == ' ' || t[*i] == '\t' || t[*i] == '\n' || t[*i] == '\r'))
        (*i)++;
}

static int hex4(const char *t, size_t len, size_t i, unsigned *v)
{
    if (i + 4 > len)
        return -1;
    *v = 0;
    for (size_t k = 0; k < 4; k++) {
        char c = t[i + k];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        *v = (*v << 4) | d;
    }
    return 0;
}

static void put_utf8(buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_append(b, u, n);
}

/* Decodes the JSON string starting at t[*i] == '"' into b. */
static int read_string(const char *t, size_t len, size_t *i, buf_t *b)
{
    (*i)++;
    while (*i < len) {
        char c = t[*i];
        if (c == '"') {
            (*i)++;
            return 0;
        }
        if ((unsigned char)c < 0x20)
            return -1;
        if (c != '\\') {
            buf_putc(b, c);
            (*i)++;
            continue;
        }
        if (*i + 1 >= len)
            return -1;
        char e = t[*i + 1];
        *i += 2;
        switch (e) {
        case '"': buf_putc(b, '"'); break;
        case '\\': buf_putc(b, '\\'); break;
        case '/': buf_putc(b, '/'); break;
        case 'b': buf_putc(b, '\b'); break;
        case 'f': buf_putc(b, '\f'); break;
        case 'n': buf_putc(b, '\n'); break;
        case 'r': buf_putc(b, '\r'); break;
        case 't': buf_putc(b, '\t'); break;
        case 'u': {
            unsigned cp;
            if (hex4(t, len, *i, &cp) < 0)
                return -1;
            *i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (*i + 6 <= len && t[*i] == '\\' && t[*i + 1] == 'u' && hex4(t, len, *i + 2, &lo) == 0 &&
                    lo >= 0xdc00 && lo <= 0xdfff) {
                    *i += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    cp = 0xfffd;
                }
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                cp = 0xfffd;
            }
            put_utf8(b, cp);
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

int jtext_array_items(const char *text, size_t len, strv_t *out)
{
    if (!text)
        return -1;
    size_t i = 0;
    skip_ws(text, len, &i);
    if (i >= len || text[i] != '[')
        return -1;
    i++;
    strv_t items = STRV_INIT;
    buf_t item = BUF_INIT;
    skip_ws(text, len, &i);
    if (i < len && text[i] == ']') {
        i++;
    } else {
        for (;;) {
            skip_ws(text, len, &i);
            if (i >= len || text[i] != '"')
                goto bad;
            buf_reset(&item);
            if (read_string(text, len, &i, &item) < 0)
                goto bad;
            strv_addn(&items, item.p, item.len);
            skip_ws(text, len, &i);
            if (i < len && text[i] == ',') {
                i++;
                continue;
            }
            if (i < len && text[i] == ']') {
                i++;
                break;
            }
            goto bad;
        }
    }
    skip_ws(text, len, &i);
    if (i != len)
        goto bad;
    for (size_t k = 0; k < items.n; k++) {
        strv_take(out, items.v[k]);
        items.v[k] = NULL;
    }
    int n = (int)items.n;
    strv_free(&items);
    buf_free(&item);
    return n;
bad:
    strv_free(&items);
    buf_free(&item);
    return -1;
}
