#include "json.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct json {
    buf_t out;
    int indent;
    int depth;
    bool first[JSON_MAX_DEPTH]; /* no element written yet at this level */
};

json_t *json_new(int indent)
{
    json_t *j = xcalloc(1, sizeof(*j));
    j->indent = indent;
    j->first[0] = true;
    buf_reset(&j->out);
    return j;
}

void json_destroy(json_t **j)
{
    if (!j || !*j)
        return;
    buf_free(&(*j)->out);
    free(*j);
    *j = NULL;
}

static void newline(json_t *j)
{
    if (!j->indent)
        return;
    buf_putc(&j->out, '\n');
    for (int i = 0; i < j->depth * j->indent; i++)
        buf_putc(&j->out, ' ');
}

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

static void put_string(buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
            i++;
        } else if (c == '\n') {
            buf_puts(b, "\\n");
            i++;
        } else if (c == '\t') {
            buf_puts(b, "\\t");
            i++;
        } else if (c == '\r') {
            buf_puts(b, "\\r");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                buf_puts(b, "\\ufffd");
                i++;
            } else {
                buf_append(b, p + i, l);
                i += l;
            }
        }
    }
    buf_putc(b, '"');
}

/* Separator, indentation and key before any value. */
static void begin_value(json_t *j, const char *key)
{
    if (!j->first[j->depth])
        buf_putc(&j->out, ',');
    if (j->depth > 0)
        newline(j);
    j->first[j->depth] = false;
    if (key) {
        put_string(&j->out, key, strlen(key));
        buf_puts(&j->out, j->indent ? ": " : ":");
    }
}

static void open_level(json_t *j, const char *key, char c)
{
    begin_value(j, key);
    buf_putc(&j->out, c);
    if (j->depth + 1 >= JSON_MAX_DEPTH) {
        fputs("json: nesting too deep\n", stderr);
        abort();
    }
    j->depth++;
    j->first[j->depth] = true;
}

static void close_level(json_t *j, char c)
{
    bool empty = j->first[j->depth];
    j->depth--;
    if (!empty)
        newline(j);
    buf_putc(&j->out, c);
}

void json_obj_open(json_t *j, const char *key) { open_level(j, key, '{'); }
void json_obj_close(json_t *j) { close_level(j, '}'); }
void json_arr_open(json_t *j, const char *key) { open_level(j, key, '['); }
void json_arr_close(json_t *j) { close_level(j, ']'); }

void json_strn(json_t *j, const char *key, const char *val, size_t n)
{
    begin_value(j, key);
    if (val)
        put_string(&j->out, val, n);
    else
        buf_puts(&j->out, "null");
}

void json_str(json_t *j, const char *key, const char *val)
{
    json_strn(j, key, val, val ? strlen(val) : 0);
}

void json_int(json_t *j, const char *key, long long val)
{
    begin_value(j, key);
    buf_printf(&j->out, "%lld", val);
}

void json_bool(json_t *j, const char *key, bool val)
{
    begin_value(j, key);
    buf_puts(&j->out, val ? "true" : "false");
}

void json_null(json_t *j, const char *key)
{
    begin_value(j, key);
    buf_puts(&j->out, "null");
}

void json_tribool(json_t *j, const char *key, int val)
{
    if (val < 0)
        json_null(j, key);
    else
        json_bool(j, key, val != 0);
}

void json_int_or_null(json_t *j, const char *key, long long val)
{
    if (val < 0)
        json_null(j, key);
    else
        json_int(j, key, val);
}

const char *json_text(const json_t *j, size_t *len)
{
    if (len)
        *len = j->out.len;
    return j->out.p;
}
