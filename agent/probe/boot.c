#include "boot.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * /etc/default/grub: a small POSIX shell reader.
 *
 * It does what `. /etc/default/grub` does to variables and nothing else: no
 * command runs, conditionals are not evaluated, command substitutions stay
 * literal text. Values are capped (a kernel command line is at most a few
 * KiB) so that `A=$A$A` repeated cannot grow without bound, and only the
 * first SH_VARS_MAX variable names are remembered for $VAR expansion.
 * ------------------------------------------------------------------------ */

#define SH_VALUE_MAX 16384
#define SH_VARS_MAX 256

enum { SH_LINUX = 0, SH_LINUX_DEFAULT = 1 };
static const char *const sh_fixed[] = {"GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"};

typedef struct {
    char *name;
    char *value; /* NULL while unset */
} shvar_t;

typedef struct {
    shvar_t *v;
    size_t n, cap;
} shvars_t;

typedef struct {
    char *name;
    char *value;
} shassign_t;

typedef struct {
    const char *p;
    size_t len, pos;
    shvars_t *vars;
    unsigned assigned; /* bit SH_LINUX / SH_LINUX_DEFAULT: assigned in this file */
    char *err;         /* first problem, a sentence */
    bool stop;         /* the rest of the file is unreadable (open quote) */
    size_t toolong_at; /* position of the first value that was cut, or SIZE_MAX */
    size_t no_brace_from; /* no '}' at or after this position (SIZE_MAX: unknown) */
    shassign_t *pend;  /* assignments of the statement being read */
    size_t npend, cappend;
} shp_t;

static void shvars_init(shvars_t *s)
{
    memset(s, 0, sizeof(*s));
    s->cap = 8;
    s->v = xcalloc(s->cap, sizeof(*s->v));
    for (size_t i = 0; i < 2; i++)
        s->v[s->n++].name = xstrdup(sh_fixed[i]);
}

static void shvars_free(shvars_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].value);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static shvar_t *shvars_get(shvars_t *s, const char *name, size_t nlen, bool create)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i].name) == nlen && memcmp(s->v[i].name, name, nlen) == 0)
            return &s->v[i];
    if (!create || s->n >= SH_VARS_MAX)
        return NULL;
    if (s->n == s->cap) {
        s->cap *= 2;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n].name = xstrndup(name, nlen);
    s->v[s->n].value = NULL;
    return &s->v[s->n++];
}

static size_t sh_line_of(const shp_t *ps, size_t pos)
{
    size_t line = 1;
    for (size_t i = 0; i < pos && i < ps->len; i++)
        if (ps->p[i] == '\n')
            line++;
    return line;
}

static void sh_put(shp_t *ps, buf_t *out, const char *s, size_t n)
{
    if (out->len + n > SH_VALUE_MAX) {
        if (ps->toolong_at == SIZE_MAX)
            ps->toolong_at = ps->pos;
        n = out->len < SH_VALUE_MAX ? SH_VALUE_MAX - out->len : 0;
    }
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\0') /* a C string cannot hold NUL; the caller reports it */
            buf_putc(out, s[i]);
}

static bool sh_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool sh_name_char(char c)
{
    return sh_name_start(c) || (c >= '0' && c <= '9');
}

/* The value of name as the statement being read sees it: its own earlier
 * assignments first, then the variables. NULL when unset. */
static const char *sh_lookup(const shp_t *ps, const char *name, size_t nlen)
{
    for (size_t i = ps->npend; i-- > 0;)
        if (strlen(ps->pend[i].name) == nlen && memcmp(ps->pend[i].name, name, nlen) == 0)
            return ps->pend[i].value;
    shvar_t *v = shvars_get(ps->vars, name, nlen, false);
    return v ? v->value : NULL;
}

static void sh_unterminated(shp_t *ps, size_t open, const char *kind, const char *aname,
                            size_t anlen)
{
    if (!ps->err) {
        if (aname)
            ps->err = xasprintf("line %zu: unterminated %s quote in the value of %.*s; that "
                                "assignment is not applied and a shell would refuse the file",
                                sh_line_of(ps, open), kind, (int)anlen, aname);
        else
            ps->err = xasprintf("line %zu: unterminated %s quote; a shell would refuse the file",
                                sh_line_of(ps, open), kind);
    }
    ps->stop = true;
}

/* Copies a `…` or $(…) command substitution literally; it is not run. */
static void sh_copy_subst(shp_t *ps, buf_t *out)
{
    size_t start = ps->pos;
    if (ps->p[ps->pos] == '`') {
        const char *q = memchr(ps->p + ps->pos + 1, '`', ps->len - ps->pos - 1);
        ps->pos = q ? (size_t)(q - ps->p) + 1 : ps->len;
    } else { /* "$(" */
        int depth = 0;
        ps->pos += 1;
        for (; ps->pos < ps->len; ps->pos++) {
            if (ps->p[ps->pos] == '(')
                depth++;
            else if (ps->p[ps->pos] == ')' && --depth == 0) {
                ps->pos++;
                break;
            }
        }
    }
    sh_put(ps, out, ps->p + start, ps->pos - start);
}

/* At a '$': expands $NAME, ${NAME}, ${NAME:-word}, ${NAME-word}; special
 * parameters ($1, $@, …) are empty; anything else is a literal '$'. */
static void sh_dollar(shp_t *ps, buf_t *out)
{
    const char *p = ps->p;
    size_t pos = ps->pos;
    if (pos + 1 >= ps->len) {
        sh_put(ps, out, "$", 1);
        ps->pos++;
        return;
    }
    char n = p[pos + 1];
    if (n == '(') {
        sh_copy_subst(ps, out);
        return;
    }
    if (n == '{') {
        const char *close = pos + 2 >= ps->no_brace_from
                                ? NULL
                                : memchr(p + pos + 2, '}', ps->len - pos - 2);
        if (!close) {
            if (pos + 2 < ps->no_brace_from)
                ps->no_brace_from = pos + 2;
            sh_put(ps, out, "$", 1);
            ps->pos++;
            return;
        }
        const char *in = p + pos + 2;
        size_t inlen = (size_t)(close - in), nl = 0;
        while (nl < inlen && sh_name_char(in[nl]))
            nl++;
        const char *val = nl ? sh_lookup(ps, in, nl) : NULL;
        const char *rest = in + nl;
        size_t restlen = inlen - nl;
        bool colon = restlen >= 2 && rest[0] == ':' && rest[1] == '-';
        bool plain = restlen >= 1 && rest[0] == '-';
        if ((colon && (!val || !*val)) || (plain && !val)) {
            size_t skip = colon ? 2 : 1;
            sh_put(ps, out, rest + skip, restlen - skip);
        } else if (val) {
            sh_put(ps, out, val, strlen(val));
        }
        ps->pos = (size_t)(close - p) + 1;
        return;
    }
    if (sh_name_start(n)) {
        size_t s = pos + 1, e = s;
        while (e < ps->len && sh_name_char(p[e]))
            e++;
        const char *val = sh_lookup(ps, p + s, e - s);
        if (val)
            sh_put(ps, out, val, strlen(val));
        ps->pos = e;
        return;
    }
    if ((n >= '0' && n <= '9') || (n != '\0' && strchr("@*#?$!-", n))) {
        ps->pos += 2;
        return;
    }
    sh_put(ps, out, "$", 1);
    ps->pos++;
}

static bool sh_word_end(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';' || c == '&' || c == '|' ||
           c == '<' || c == '>' || c == '(' || c == ')';
}

/* Reads one word at ps->pos with quote removal and expansion into *out (which
 * is reset first). False when a quote is left open (ps->stop is then set). */
static bool sh_word(shp_t *ps, buf_t *out, const char *aname, size_t anlen)
{
    const char *p = ps->p;
    buf_reset(out);
    while (ps->pos < ps->len) {
        char c = p[ps->pos];
        if (sh_word_end(c))
            break;
        if (c == '\0') {
            ps->pos++;
            continue;
        }
        if (c == '\\') {
            if (ps->pos + 1 >= ps->len) {
                sh_put(ps, out, "\\", 1);
                ps->pos++;
            } else {
                if (p[ps->pos + 1] != '\n')
                    sh_put(ps, out, p + ps->pos + 1, 1);
                ps->pos += 2;
            }
            continue;
        }
        if (c == '\'') {
            size_t open = ps->pos;
            const char *q = memchr(p + open + 1, '\'', ps->len - open - 1);
            if (!q) {
                sh_unterminated(ps, open, "single", aname, anlen);
                return false;
            }
            sh_put(ps, out, p + open + 1, (size_t)(q - p) - open - 1);
            ps->pos = (size_t)(q - p) + 1;
            continue;
        }
        if (c == '"') {
            size_t open = ps->pos++;
            while (ps->pos < ps->len && p[ps->pos] != '"') {
                char d = p[ps->pos];
                if (d == '\\' && ps->pos + 1 < ps->len && p[ps->pos + 1] != '\0' &&
                    strchr("$`\"\\\n", p[ps->pos + 1])) {
                    if (p[ps->pos + 1] != '\n')
                        sh_put(ps, out, p + ps->pos + 1, 1);
                    ps->pos += 2;
                } else if (d == '$') {
                    sh_dollar(ps, out);
                } else if (d == '`') {
                    sh_copy_subst(ps, out);
                } else {
                    sh_put(ps, out, &d, 1);
                    ps->pos++;
                }
            }
            if (ps->pos >= ps->len) {
                sh_unterminated(ps, open, "double", aname, anlen);
                return false;
            }
            ps->pos++;
            continue;
        }
        if (c == '$') {
            sh_dollar(ps, out);
            continue;
        }
        if (c == '`') {
            sh_copy_subst(ps, out);
            continue;
        }
        sh_put(ps, out, &c, 1);
        ps->pos++;
    }
    return true;
}

/* Length of NAME when the text at ps->pos is NAME= or NAME+= (*append set
 * for the latter), else 0. */
static size_t sh_assignment_at(const shp_t *ps, bool *append)
{
    const char *p = ps->p + ps->pos;
    size_t avail = ps->len - ps->pos, n = 0;
    if (!avail || !sh_name_start(p[0]))
        return 0;
    while (n < avail && sh_name_char(p[n]))
        n++;
    if (n < avail && p[n] == '=') {
        *append = false;
        return n;
    }
    if (n + 1 < avail && p[n] == '+' && p[n + 1] == '=') {
        *append = true;
        return n;
    }
    return 0;
}

static void sh_pend_clear(shp_t *ps)
{
    for (size_t i = 0; i < ps->npend; i++) {
        free(ps->pend[i].name);
        free(ps->pend[i].value);
    }
    ps->npend = 0;
}

static void sh_pend_push(shp_t *ps, const char *name, size_t nlen, bool append, buf_t *val)
{
    char *value;
    if (append) {
        const char *old = sh_lookup(ps, name, nlen);
        buf_t b = BUF_INIT;
        buf_reset(&b); /* an empty string even when nothing is appended */
        if (old)
            sh_put(ps, &b, old, strlen(old));
        sh_put(ps, &b, val->p, val->len);
        value = buf_steal(&b);
    } else {
        value = xstrndup(val->p, val->len);
    }
    if (ps->npend == ps->cappend) {
        ps->cappend = ps->cappend ? ps->cappend * 2 : 4;
        ps->pend = xrealloc(ps->pend, ps->cappend * sizeof(*ps->pend));
    }
    ps->pend[ps->npend].name = xstrndup(name, nlen);
    ps->pend[ps->npend].value = value;
    ps->npend++;
}

static void sh_pend_apply(shp_t *ps)
{
    for (size_t i = 0; i < ps->npend; i++) {
        shvar_t *v = shvars_get(ps->vars, ps->pend[i].name, strlen(ps->pend[i].name), true);
        if (!v)
            continue;
        free(v->value);
        v->value = ps->pend[i].value;
        ps->pend[i].value = NULL;
        for (unsigned k = 0; k < 2; k++)
            if (strcmp(ps->pend[i].name, sh_fixed[k]) == 0)
                ps->assigned |= 1u << k;
    }
    sh_pend_clear(ps);
}

static bool sh_is(const buf_t *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

static void sh_parse(shp_t *ps)
{
    buf_t word = BUF_INIT;
    while (ps->pos < ps->len && !ps->stop) {
        bool cmd_seen = false, export_mode = false, unset_mode = false;
        sh_pend_clear(ps);
        for (;;) {
            while (ps->pos < ps->len) { /* blanks and line continuations */
                char c = ps->p[ps->pos];
                if (c == ' ' || c == '\t' || c == '\r' || c == '\0')
                    ps->pos++;
                else if (c == '\\' && ps->pos + 1 < ps->len && ps->p[ps->pos + 1] == '\n')
                    ps->pos += 2;
                else
                    break;
            }
            if (ps->pos >= ps->len)
                break;
            char c = ps->p[ps->pos];
            if (c == '#') {
                const char *nl = memchr(ps->p + ps->pos, '\n', ps->len - ps->pos);
                ps->pos = nl ? (size_t)(nl - ps->p) : ps->len;
                continue;
            }
            if (c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')') {
                ps->pos++;
                break;
            }
            if (c == '<' || c == '>') {
                ps->pos++;
                continue;
            }
            bool append = false;
            size_t nlen = cmd_seen || unset_mode ? 0 : sh_assignment_at(ps, &append);
            if (nlen) {
                const char *name = ps->p + ps->pos;
                ps->pos += nlen + (append ? 2 : 1);
                if (!sh_word(ps, &word, name, nlen))
                    goto out; /* open quote: nothing of this statement applies */
                sh_pend_push(ps, name, nlen, append, &word);
                continue;
            }
            if (!sh_word(ps, &word, NULL, 0))
                goto out;
            if (!cmd_seen && !export_mode && !unset_mode && ps->npend == 0) {
                if (sh_is(&word, "export") || sh_is(&word, "readonly") || sh_is(&word, "local") ||
                    sh_is(&word, "declare") || sh_is(&word, "typeset")) {
                    export_mode = true;
                    continue;
                }
                if (sh_is(&word, "unset")) {
                    unset_mode = true;
                    continue;
                }
                if (sh_is(&word, "if") || sh_is(&word, "then") || sh_is(&word, "else") ||
                    sh_is(&word, "elif") || sh_is(&word, "do") || sh_is(&word, "while") ||
                    sh_is(&word, "until") || sh_is(&word, "!") || sh_is(&word, "{"))
                    continue; /* a keyword: a command may still follow */
            }
            if (unset_mode) {
                shvar_t *v = word.len ? shvars_get(ps->vars, word.p, word.len, false) : NULL;
                if (v) {
                    free(v->value);
                    v->value = NULL;
                    for (unsigned k = 0; k < 2; k++)
                        if (strcmp(v->name, sh_fixed[k]) == 0)
                            ps->assigned |= 1u << k;
                }
                continue;
            }
            if (export_mode)
                continue; /* `export NAME`, options like -p */
            cmd_seen = true; /* NAME=value before a command only sets its environment */
        }
        if (!cmd_seen)
            sh_pend_apply(ps);
    }
out:
    sh_pend_clear(ps);
    free(ps->pend);
    ps->pend = NULL;
    ps->cappend = 0;
    buf_free(&word);
}

/* Reads one file into vars. Returns 0 or -EINVAL with *err set. */
static int grub_parse_into(const char *buf, size_t len, shvars_t *vars, unsigned *assigned,
                           char **err)
{
    shp_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.p = buf ? buf : "";
    ps.len = buf ? len : 0;
    ps.vars = vars;
    ps.toolong_at = SIZE_MAX;
    ps.no_brace_from = SIZE_MAX;
    sh_parse(&ps);
    if (!ps.err && ps.toolong_at != SIZE_MAX)
        ps.err = xasprintf("line %zu: a value longer than %d bytes was cut there",
                           sh_line_of(&ps, ps.toolong_at), SH_VALUE_MAX);
    if (!ps.err && ps.len) {
        const char *nul = memchr(ps.p, '\0', ps.len);
        if (nul)
            ps.err = xasprintf("line %zu: the file holds a NUL byte, so it is not a text file "
                               "a shell would read as written",
                               sh_line_of(&ps, (size_t)(nul - ps.p)));
    }
    if (assigned)
        *assigned = ps.assigned;
    if (err)
        *err = ps.err;
    else
        free(ps.err);
    return ps.err ? -EINVAL : 0;
}

int grub_defaults_parse(const char *buf, size_t len, char **linux_out, char **linux_default_out,
                        char **err)
{
    shvars_t vars;
    shvars_init(&vars);
    if (err)
        *err = NULL;
    int rc = grub_parse_into(buf, len, &vars, NULL, err);
    if (linux_out)
        *linux_out = vars.v[SH_LINUX].value ? xstrdup(vars.v[SH_LINUX].value) : NULL;
    if (linux_default_out)
        *linux_default_out =
            vars.v[SH_LINUX_DEFAULT].value ? xstrdup(vars.v[SH_LINUX_DEFAULT].value) : NULL;
    shvars_free(&vars);
    return rc;
}

/* ------------------------------------------------------------------------
 * /etc/kernel/cmdline
 * ------------------------------------------------------------------------ */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int kernel_cmdline_file_parse(const char *buf, size_t len, char **out, char **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    char *msg = NULL;
    size_t pos = 0, lineno = 0;
    if (!buf)
        len = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t s = pos, e = end;
        lineno++;
        pos = nl ? end + 1 : len;
        while (s < e && is_blank(buf[s]))
            s++;
        while (e > s && is_blank(buf[e - 1]))
            e--;
        if (s == e || buf[s] == '#')
            continue;
        if (!*out) {
            *out = xstrndup(buf + s, e - s);
            continue;
        }
        msg = xasprintf("line %zu holds more arguments after the command line on an earlier "
                        "line; only the first line is taken, and boot tools differ on the rest: "
                        "put all arguments on one line",
                        lineno);
        break;
    }
    if (!msg && buf && len && memchr(buf, '\0', len))
        msg = xstrdup("the file holds a NUL byte; the command line was cut there");
    if (!msg)
        return 0;
    if (err)
        *err = msg;
    else
        free(msg);
    return -EINVAL;
}

/* ------------------------------------------------------------------------
 * EFI load options
 * ------------------------------------------------------------------------ */

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void put_utf8(buf_t *b, uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f) {
        buf_putc(b, '?'); /* control characters would only confuse a report */
    } else if (cp < 0x80) {
        buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        buf_putc(b, (char)(0xc0 | (cp >> 6)));
        buf_putc(b, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        buf_putc(b, (char)(0xe0 | (cp >> 12)));
        buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_putc(b, (char)(0x80 | (cp & 0x3f)));
    } else {
        buf_putc(b, (char)(0xf0 | (cp >> 18)));
        buf_putc(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
        buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_putc(b, (char)(0x80 | (cp & 0x3f)));
    }
}

/* Decodes UTF-16LE units from p (n units, stops at a NUL unit) into b. */
static void utf16le_to_utf8(buf_t *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = le16(p + 2 * i);
        if (u == 0)
            break;
        if (u >= 0xd800 && u <= 0xdbff && i + 1 < n) {
            uint32_t lo = le16(p + 2 * (i + 1));
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                put_utf8(b, 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
                i++;
                continue;
            }
        }
        if (u >= 0xd800 && u <= 0xdfff)
            u = 0xfffd;
        put_utf8(b, u);
    }
}

int efi_load_option_parse(const uint8_t *buf, size_t len, efi_load_option_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len < 6)
        return -EINVAL;
    uint32_t attrs = le32(buf);
    size_t fpl = le16(buf + 4);
    size_t off = 6, units = 0;
    for (;; units++) {
        if (off + 2 * units + 2 > len)
            return -EINVAL; /* description without its NUL */
        if (le16(buf + off + 2 * units) == 0)
            break;
    }
    size_t dp = off + 2 * units + 2;
    if (fpl > len - dp)
        return -EINVAL;
    buf_t desc = BUF_INIT, path = BUF_INIT;
    buf_reserve(&desc, 0);
    desc.p[0] = '\0';
    utf16le_to_utf8(&desc, buf + off, units);
    bool in_path = false, path_started = false, done = false;
    size_t o = 0;
    while (!done && o + 4 <= fpl) {
        const uint8_t *node = buf + dp + o;
        uint8_t type = node[0], sub = node[1];
        size_t nlen = le16(node + 2);
        if (nlen < 4 || nlen > fpl - o) {
            buf_free(&desc);
            buf_free(&path);
            return -EINVAL;
        }
        if (type == 0x7f && sub == 0xff) {
            done = true;
        } else if (type == 4 && sub == 4) {
            /* Consecutive file path nodes make one path. */
            if (!path_started) {
                buf_reserve(&path, 0);
                path.p[0] = '\0';
                path_started = in_path = true;
            }
            if (in_path)
                utf16le_to_utf8(&path, node + 4, (nlen - 4) / 2);
        } else {
            in_path = false;
        }
        o += nlen;
    }
    out->attributes = attrs;
    out->description = buf_steal(&desc);
    out->file_path = path_started ? buf_steal(&path) : NULL;
    return 0;
}

void efi_load_option_free(efi_load_option_t *o)
{
    if (!o)
        return;
    free(o->description);
    free(o->file_path);
    memset(o, 0, sizeof(*o));
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool contains_ci(const char *s, const char *needle)
{
    size_t m = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, m) == 0)
            return true;
    return false;
}

boot_loader_t efi_path_loader(const char *path)
{
    if (!path)
        return BOOT_UNKNOWN;
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '\\' || *p == '/')
            base = p + 1;
    if (contains_ci(base, "systemd-boot"))
        return BOOT_SYSTEMD_BOOT;
    if ((has_prefix_ci(base, "grub") || has_prefix_ci(base, "shim")) && has_suffix_ci(base, ".efi"))
        return BOOT_GRUB;
    return BOOT_UNKNOWN;
}

/* ------------------------------------------------------------------------
 * The probe
 * ------------------------------------------------------------------------ */

#define EFI_GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c"
#define EFIVARS "/sys/firmware/efi/efivars"
#define EFIVAR_MAX (64u * 1024)

static const char *const esp_dirs[] = {"boot/efi", "efi", "boot"};

static void record_read_error(errs_t *errs, const char *rel, int rc, size_t max)
{
    char *where = xasprintf("/%s", rel[0] == '/' ? rel + 1 : rel);
    if (rc == -EFBIG)
        errs_add(errs, where, "is larger than %zu bytes; treated as damaged and not read", max);
    else if (rc == -EINVAL)
        errs_add(errs, where, "is not a regular file and was not read");
    else
        errs_add(errs, where, "could not be read: %s", strerror(-rc));
    free(where);
}

/* Reads rel when it exists; absent files are not errors. Returns 0 with *out
 * set, -ENOENT when absent, another negative errno (recorded) otherwise. */
static int read_optional(const root_t *root, const char *rel, size_t max, char **out, size_t *len,
                         errs_t *errs)
{
    int rc = root_read(root, rel, max, out, len);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return -ENOENT;
    if (rc < 0)
        record_read_error(errs, rel, rc, max);
    return rc;
}

/* A GRUB or shim binary in DIR/EFI/<vendor>/ (FAT is case-blind, a fixture
 * tree is not: both spellings are tried). Returns "/DIR/EFI/VENDOR/FILE". */
static char *esp_grub_binary(const root_t *root, const char *dir)
{
    static const char *const efi_names[] = {"EFI", "efi"};
    for (size_t e = 0; e < 2; e++) {
        char *efi = xasprintf("%s/%s", dir, efi_names[e]);
        strv_t vendors = STRV_INIT;
        root_list(root, efi, &vendors);
        for (size_t v = 0; v < vendors.n; v++) {
            char *vd = xasprintf("%s/%s", efi, vendors.v[v]);
            strv_t files = STRV_INIT;
            root_list(root, vd, &files);
            for (size_t f = 0; f < files.n; f++) {
                if (efi_path_loader(files.v[f]) == BOOT_GRUB) {
                    char *found = xasprintf("/%s/%s", vd, files.v[f]);
                    strv_free(&files);
                    free(vd);
                    strv_free(&vendors);
                    free(efi);
                    return found;
                }
            }
            strv_free(&files);
            free(vd);
        }
        strv_free(&vendors);
        free(efi);
    }
    return NULL;
}

/* The file path of the entry the firmware booted, from BootCurrent and
 * Boot####. NULL (with evidence or errs) when it cannot be told. */
static char *efi_booted_path(const root_t *root, boot_info_t *out, errs_t *errs)
{
    const char *cur_rel = EFIVARS "/BootCurrent-" EFI_GLOBAL_GUID;
    char *data = NULL;
    size_t len = 0;
    if (read_optional(root, cur_rel, EFIVAR_MAX, &data, &len, errs) < 0)
        return NULL;
    if (len < 6) {
        errs_add(errs, cur_rel, "holds %zu bytes; an EFI variable with a 16-bit boot number "
                                "needs at least 6", len);
        free(data);
        return NULL;
    }
    unsigned num = le16((const uint8_t *)data + 4);
    free(data);
    char *opt_rel = xasprintf(EFIVARS "/Boot%04X-" EFI_GLOBAL_GUID, num);
    char *result = NULL;
    int rc = read_optional(root, opt_rel, EFIVAR_MAX, &data, &len, errs);
    if (rc == -ENOENT) {
        strv_take(&out->evidence,
                  xasprintf("BootCurrent names Boot%04X, but that EFI variable is missing.", num));
    } else if (rc == 0) {
        efi_load_option_t opt;
        if (len < 4 || efi_load_option_parse((const uint8_t *)data + 4, len - 4, &opt) < 0) {
            errs_add(errs, opt_rel, "is not a valid EFI load option (truncated or malformed "
                                    "device path)");
        } else {
            if (opt.file_path) {
                strv_take(&out->evidence,
                          xasprintf("The firmware booted Boot%04X \"%s\", which starts %s "
                                    "(EFI variables BootCurrent and Boot%04X).",
                                    num, opt.description, opt.file_path, num));
                result = opt.file_path;
                opt.file_path = NULL;
            } else {
                strv_take(&out->evidence,
                          xasprintf("The firmware booted Boot%04X \"%s\", which names no file "
                                    "(EFI variables BootCurrent and Boot%04X).",
                                    num, opt.description, num));
            }
            efi_load_option_free(&opt);
        }
        free(data);
    }
    free(opt_rel);
    return result;
}

/* 1 when the SecureBoot variable says enabled, 0 disabled, -1 unknown. */
static int efi_secure_boot(const root_t *root, errs_t *errs)
{
    char *data = NULL;
    size_t len = 0;
    if (read_optional(root, EFIVARS "/SecureBoot-" EFI_GLOBAL_GUID, EFIVAR_MAX, &data, &len,
                      errs) < 0)
        return -1;
    int v = len >= 5 ? (((const uint8_t *)data)[4] == 1) : -1;
    free(data);
    return v;
}

/* Reads etc/default/grub and then etc/default/grub.d/ *.cfg the way
 * update-grub sources them. */
static void read_grub_defaults(const root_t *root, boot_info_t *out, errs_t *errs,
                               bool *have_file)
{
    shvars_t vars;
    shvars_init(&vars);
    char *data = NULL, *err = NULL;
    size_t len = 0;
    *have_file = false;
    int rc = read_optional(root, "etc/default/grub", ROOT_READ_MAX, &data, &len, errs);
    if (rc != -ENOENT)
        *have_file = true;
    if (rc == 0) {
        if (grub_parse_into(data, len, &vars, NULL, &err) < 0) {
            errs_add(errs, "/etc/default/grub", "%s", err);
            free(err);
        }
        free(data);
    } else if (rc != -ENOENT) {
        strv_add(&out->evidence, "/etc/default/grub exists but could not be read.");
    }
    strv_t names = STRV_INIT;
    root_list(root, "etc/default/grub.d", &names);
    for (size_t i = 0; i < names.n; i++) {
        size_t nl = strlen(names.v[i]);
        if (nl < 5 || strcmp(names.v[i] + nl - 4, ".cfg") != 0)
            continue; /* the shell glob is *.cfg, case-sensitive */
        char *rel = xasprintf("/etc/default/grub.d/%s", names.v[i]);
        if (root_is_dir(root, rel) ||
            read_optional(root, rel, ROOT_READ_MAX, &data, &len, errs) < 0) {
            free(rel);
            continue;
        }
        unsigned assigned = 0;
        if (grub_parse_into(data, len, &vars, &assigned, &err) < 0) {
            errs_add(errs, rel, "%s", err);
            free(err);
        }
        free(data);
        if (assigned) {
            strv_take(&out->evidence,
                      xasprintf("%s sets %s after /etc/default/grub (update-grub reads it "
                                "later), so it decides %s.",
                                rel,
                                assigned == 3   ? "GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT"
                                : assigned == 1 ? "GRUB_CMDLINE_LINUX"
                                                : "GRUB_CMDLINE_LINUX_DEFAULT",
                                assigned == 3 ? "their values" : "its value"));
            strv_take(&out->grub_dropins, rel);
        } else {
            free(rel);
        }
    }
    strv_free(&names);
    if (vars.v[SH_LINUX].value)
        out->grub_linux = xstrdup(vars.v[SH_LINUX].value);
    if (vars.v[SH_LINUX_DEFAULT].value)
        out->grub_linux_default = xstrdup(vars.v[SH_LINUX_DEFAULT].value);
    shvars_free(&vars);
}

static void read_kernel_cmdline(const root_t *root, boot_info_t *out, errs_t *errs)
{
    char *data = NULL, *line = NULL, *err = NULL;
    size_t len = 0;
    int rc = read_optional(root, "etc/kernel/cmdline", ROOT_READ_MAX, &data, &len, errs);
    if (rc == -ENOENT) {
        strv_add(&out->evidence, "/etc/kernel/cmdline is missing, so the boot entries get no "
                                 "configured command line from it.");
        return;
    }
    if (rc < 0)
        return;
    if (kernel_cmdline_file_parse(data, len, &line, &err) < 0) {
        errs_add(errs, "/etc/kernel/cmdline", "%s", err);
        free(err);
    }
    if (line)
        kargs_parse(line, strlen(line), &out->configured_args);
    else
        strv_add(&out->evidence, "/etc/kernel/cmdline holds no command line.");
    free(line);
    free(data);
}

static void set_loader(boot_info_t *out, boot_loader_t l)
{
    out->loader = l;
    out->loader_name = l == BOOT_GRUB ? "grub" : l == BOOT_SYSTEMD_BOOT ? "systemd-boot" : "unknown";
}

int boot_probe(const root_t *root, boot_info_t *out, errs_t *errs)
{
    memset(out, 0, sizeof(*out));
    set_loader(out, BOOT_UNKNOWN);
    if (!root || !errs)
        return -EINVAL;

    /* What is on disk. */
    out->uefi = root_is_dir(root, "sys/firmware/efi");
    out->proxmox_boot_tool = root_exists(root, "etc/kernel/proxmox-boot-uuids");
    const char *loader_conf = NULL, *grub_cfg = NULL;
    char *esp_grub = NULL;
    for (size_t i = 0; i < sizeof(esp_dirs) / sizeof(esp_dirs[0]); i++) {
        char *rel = xasprintf("%s/loader/loader.conf", esp_dirs[i]);
        if (!loader_conf && root_exists(root, rel))
            loader_conf = esp_dirs[i];
        free(rel);
        if (!esp_grub)
            esp_grub = esp_grub_binary(root, esp_dirs[i]);
    }
    if (root_exists(root, "boot/grub/grub.cfg"))
        grub_cfg = "/boot/grub/grub.cfg";
    else if (root_exists(root, "boot/grub2/grub.cfg"))
        grub_cfg = "/boot/grub2/grub.cfg";
    bool have_grub_defaults = false;
    read_grub_defaults(root, out, errs, &have_grub_defaults);

    if (out->uefi)
        strv_add(&out->evidence, "The node booted via UEFI (/sys/firmware/efi exists).");
    else if (root_is_dir(root, "sys/firmware"))
        strv_add(&out->evidence, "The node booted via legacy BIOS (/sys/firmware/efi is missing).");
    if (out->proxmox_boot_tool)
        strv_add(&out->evidence, "/etc/kernel/proxmox-boot-uuids exists: proxmox-boot-tool keeps "
                                 "the kernels and boot configuration on the ESPs it lists.");
    if (loader_conf)
        strv_take(&out->evidence,
                  xasprintf("/%s/loader/loader.conf exists: an ESP holds a systemd-boot "
                            "configuration.", loader_conf));
    if (esp_grub)
        strv_take(&out->evidence, xasprintf("%s exists: an ESP holds a GRUB or shim binary.",
                                            esp_grub));
    if (have_grub_defaults)
        strv_add(&out->evidence, "/etc/default/grub exists.");
    if (grub_cfg)
        strv_take(&out->evidence, xasprintf("%s exists: GRUB has generated a menu.", grub_cfg));

    /* Decide, strongest sign first. */
    boot_loader_t l = BOOT_UNKNOWN;
    if (out->uefi && root_is_dir(root, EFIVARS)) {
        out->efi_boot_path = efi_booted_path(root, out, errs);
        l = efi_path_loader(out->efi_boot_path);
        if (l != BOOT_UNKNOWN)
            strv_take(&out->evidence,
                      xasprintf("Decided by the EFI boot entry: %s is %s.", out->efi_boot_path,
                                l == BOOT_GRUB ? "GRUB (or shim loading GRUB)" : "systemd-boot"));
    }
    if (l == BOOT_UNKNOWN && loader_conf) {
        l = BOOT_SYSTEMD_BOOT;
        strv_add(&out->evidence, "Decided by the systemd-boot configuration on the ESP.");
    }
    if (l == BOOT_UNKNOWN && out->proxmox_boot_tool && out->uefi && !esp_grub) {
        int sb = efi_secure_boot(root, errs);
        if (sb == 1) {
            l = BOOT_GRUB;
            strv_add(&out->evidence, "Decided by proxmox-boot-tool with Secure Boot enabled: "
                                     "Proxmox boots signed GRUB (via shim) then, not systemd-boot.");
        } else {
            l = BOOT_SYSTEMD_BOOT;
            strv_add(&out->evidence, "Decided by proxmox-boot-tool on a UEFI boot with no GRUB "
                                     "binary on a mounted ESP: Proxmox uses systemd-boot there.");
        }
    }
    if (l == BOOT_UNKNOWN && (have_grub_defaults || grub_cfg)) {
        l = BOOT_GRUB;
        strv_add(&out->evidence, have_grub_defaults
                                     ? "Decided by /etc/default/grub."
                                     : "Decided by the GRUB menu; /etc/default/grub is missing "
                                       "and would have to be created.");
    }
    if (l == BOOT_UNKNOWN && out->proxmox_boot_tool && !out->uefi) {
        l = BOOT_GRUB;
        strv_add(&out->evidence, "Decided by proxmox-boot-tool on a legacy BIOS boot: it "
                                 "installs GRUB there.");
    }
    set_loader(out, l);

    if (l == BOOT_GRUB) {
        out->cmdline_file = "/etc/default/grub";
        if (out->proxmox_boot_tool)
            out->refresh_command = "proxmox-boot-tool refresh";
        else if (grub_cfg && strcmp(grub_cfg, "/boot/grub2/grub.cfg") == 0)
            out->refresh_command = "grub2-mkconfig -o /boot/grub2/grub.cfg";
        else
            out->refresh_command = "update-grub";
        if (out->grub_linux)
            kargs_parse(out->grub_linux, strlen(out->grub_linux), &out->configured_args);
        if (out->grub_linux_default)
            kargs_parse(out->grub_linux_default, strlen(out->grub_linux_default),
                        &out->configured_args);
    } else if (l == BOOT_SYSTEMD_BOOT) {
        out->cmdline_file = "/etc/kernel/cmdline";
        out->refresh_command =
            out->proxmox_boot_tool ? "proxmox-boot-tool refresh" : "kernel-install add-all";
        read_kernel_cmdline(root, out, errs);
        if (have_grub_defaults)
            strv_add(&out->evidence, "/etc/default/grub is not used by this boot: edits there "
                                     "have no effect.");
    } else {
        strv_add(&out->evidence, "No boot loader sign was found: no EFI boot entry, ESP "
                                 "configuration, proxmox-boot-tool list or GRUB files.");
    }
    free(esp_grub);
    return 0;
}

void boot_info_free(boot_info_t *b)
{
    if (!b)
        return;
    free(b->grub_linux);
    free(b->grub_linux_default);
    free(b->efi_boot_path);
    kargs_free(&b->configured_args);
    strv_free(&b->evidence);
    strv_free(&b->grub_dropins);
    memset(b, 0, sizeof(*b));
}
