/* config — "key = value" files (see config.h).
 *
 * Grammar, line by line (lines end with "\n"; a "\r" before it is ignored;
 * a UTF-8 byte order mark at the very start is skipped):
 *   blank line | '#' comment | key WS* '=' WS* value
 * key: [a-z0-9_-]+ (a long option name without "--"), surrounded by optional
 * spaces or tabs. value: the rest of the line with surrounding spaces
 * removed, or a double-quoted string ("..." with \" and \\ as the only
 * escapes) followed by nothing but spaces. '#' inside a value is part of
 * it: only whole lines are comments. An empty unquoted value is refused
 * (write "" to mean empty). NUL bytes are refused. */
#include "config.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config file is a few lines; anything larger is not one. */
#define CONFIG_MAX_SIZE (1024u * 1024)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool known_key(const char *const *known, const char *key)
{
    if (!known)
        return true;
    for (size_t i = 0; known[i]; i++)
        if (strcmp(known[i], key) == 0)
            return true;
    return false;
}

static char *known_list(const char *const *known)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    for (size_t i = 0; known && known[i]; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", known[i]);
    return buf_steal(&b);
}

/* Shows a piece of the file in a message: printable ASCII kept, the rest as
 * \xHH, cut after 40 characters. */
static char *excerpt(const char *s, size_t n)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    size_t shown = n > 40 ? 40 : n;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            buf_putc(&b, (char)c);
        else
            buf_printf(&b, "\\x%02x", c);
    }
    if (shown < n)
        buf_puts(&b, "...");
    return buf_steal(&b);
}

/* Parses a double-quoted value starting at p[0] == '"'. */
static int parse_quoted(const char *p, size_t n, char **out, const char **why)
{
    buf_t v = BUF_INIT;
    buf_puts(&v, "");
    size_t i = 1;
    for (; i < n; i++) {
        char c = p[i];
        if (c == '"')
            break;
        if (c == '\\') {
            if (i + 1 < n && (p[i + 1] == '"' || p[i + 1] == '\\')) {
                buf_putc(&v, p[++i]);
                continue;
            }
            buf_free(&v);
            *why = "has a backslash that is not \\\" or \\\\ inside quotes";
            return -EINVAL;
        }
        buf_putc(&v, c);
    }
    if (i >= n) {
        buf_free(&v);
        *why = "has a quote that is not closed on the same line";
        return -EINVAL;
    }
    for (i++; i < n; i++) {
        if (!is_space(p[i])) {
            buf_free(&v);
            *why = "has text after the closing quote";
            return -EINVAL;
        }
    }
    *out = buf_steal(&v);
    return 0;
}

int config_parse(const char *buf, size_t len, const char *where, const char *const *known, config_t *out,
                 char **err)
{
    *err = NULL;
    if (!where)
        where = "config";
    config_t c = CONFIG_INIT;
    size_t pos = 0, lineno = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    while (pos < len) {
        lineno++;
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);

        if (memchr(line, '\0', n)) {
            *err = xasprintf("%s:%zu: holds a NUL byte; a config file is text", where, lineno);
            goto fail;
        }
        size_t a = 0;
        while (a < n && is_space(line[a]))
            a++;
        if (a == n || line[a] == '#')
            continue;
        const char *eq = memchr(line + a, '=', n - a);
        if (!eq) {
            char *ex = excerpt(line + a, n - a);
            *err = xasprintf("%s:%zu: expected \"key = value\" but found no '=' in \"%s\"", where, lineno, ex);
            free(ex);
            goto fail;
        }
        size_t k0 = a, k1 = (size_t)(eq - line);
        while (k1 > k0 && is_space(line[k1 - 1]))
            k1--;
        if (k1 == k0) {
            *err = xasprintf("%s:%zu: has no key before '='", where, lineno);
            goto fail;
        }
        for (size_t i = k0; i < k1; i++) {
            if (!is_key_char(line[i])) {
                char *ex = excerpt(line + k0, k1 - k0);
                *err = xasprintf("%s:%zu: \"%s\" is not a key: keys are option names like controller-key", where,
                                 lineno, ex);
                free(ex);
                goto fail;
            }
        }
        char *key = xstrndup(line + k0, k1 - k0);
        if (!known_key(known, key)) {
            char *list = known_list(known);
            *err = xasprintf("%s:%zu: unknown key '%s' (known keys: %s)", where, lineno, key, list);
            free(list);
            free(key);
            goto fail;
        }
        for (size_t i = 0; i < c.keys.n; i++) {
            if (strcmp(c.keys.v[i], key) == 0) {
                *err = xasprintf("%s:%zu: '%s' is set twice; a key may appear once", where, lineno, key);
                free(key);
                goto fail;
            }
        }
        size_t v0 = (size_t)(eq - line) + 1, v1 = n;
        while (v0 < v1 && is_space(line[v0]))
            v0++;
        while (v1 > v0 && is_space(line[v1 - 1]))
            v1--;
        char *value = NULL;
        if (v0 < v1 && line[v0] == '"') {
            const char *why = NULL;
            if (parse_quoted(line + v0, v1 - v0, &value, &why) < 0) {
                *err = xasprintf("%s:%zu: the value of '%s' %s", where, lineno, key, why);
                free(key);
                goto fail;
            }
        } else if (v0 == v1) {
            *err = xasprintf("%s:%zu: '%s' has no value (write \"\" for an empty one)", where, lineno, key);
            free(key);
            goto fail;
        } else {
            value = xstrndup(line + v0, v1 - v0);
        }
        strv_take(&c.keys, key);
        strv_take(&c.values, value);
    }
    for (size_t i = 0; i < c.keys.n; i++) {
        strv_take(&out->keys, c.keys.v[i]);
        strv_take(&out->values, c.values.v[i]);
    }
    free(c.keys.v);
    free(c.values.v);
    return 0;

fail:
    config_free(&c);
    return -EINVAL;
}

int config_load(const char *path, const char *const *known, config_t *out, char **err)
{
    *err = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        *err = xasprintf("cannot open config file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        *err = xasprintf("cannot read config file %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        *err = xasprintf("config file %s is not a regular file", path);
        return -EINVAL;
    }
    if ((unsigned long long)st.st_size > CONFIG_MAX_SIZE) {
        close(fd);
        *err = xasprintf("config file %s is %lld bytes; a config file is at most %u bytes", path,
                         (long long)st.st_size, CONFIG_MAX_SIZE);
        return -EFBIG;
    }
    buf_t b = BUF_INIT;
    buf_reserve(&b, (size_t)st.st_size + 1);
    for (;;) {
        if (b.len > CONFIG_MAX_SIZE) {
            close(fd);
            buf_free(&b);
            *err = xasprintf("config file %s grew past %u bytes while being read", path, CONFIG_MAX_SIZE);
            return -EFBIG;
        }
        char chunk[4096];
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            buf_free(&b);
            *err = xasprintf("cannot read config file %s: %s", path, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        buf_append(&b, chunk, (size_t)r);
    }
    close(fd);
    int rc = config_parse(b.p ? b.p : "", b.len, path, known, out, err);
    buf_free(&b);
    return rc;
}

const char *config_get(const config_t *c, const char *key)
{
    if (!c || !key)
        return NULL;
    for (size_t i = 0; i < c->keys.n; i++)
        if (strcmp(c->keys.v[i], key) == 0)
            return c->values.v[i];
    return NULL;
}

void config_free(config_t *c)
{
    if (!c)
        return;
    strv_free(&c->keys);
    strv_free(&c->values);
}
