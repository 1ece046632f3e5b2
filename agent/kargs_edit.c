/* kargs_edit — kernel argument and module list editors (see kargs_edit.h).
 *
 * How: the file is scanned for the value spans that hold tokens (each GRUB
 * assignment's value, the command line file's line), each span is split into
 * tokens with their byte ranges, and the edit is a list of patches (replace
 * bytes [start, end) with text) applied to the original in one go, so every
 * byte outside a patch stays as it was. An edit runs in two passes: first
 * removals and replacements of conflicting tokens, then, on the result,
 * additions of what the final values still lack. The second pass re-reads
 * the final values the way boot.h does, so an addition is made only when the
 * kernel would otherwise not see it. */
#include "kargs_edit.h"

#include "boot.h"
#include "buf.h"
#include "cmdline.h"
#include "vfio.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t start, end;
    char *text; /* owned; "" deletes */
} patch_t;

typedef struct {
    patch_t *v;
    size_t n, cap;
} patches_t;

static void patch_add(patches_t *p, size_t start, size_t end, char *text)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
    }
    p->v[p->n++] = (patch_t){start, end, text};
}

static void patches_free(patches_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].text);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

/* Patches are added in file order and never overlap (the callers make sure). */
static char *patches_apply(const char *buf, size_t len, const patches_t *p, size_t *out_len)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    size_t at = 0;
    for (size_t i = 0; i < p->n; i++) {
        buf_append(&b, buf + at, p->v[i].start - at);
        buf_puts(&b, p->v[i].text);
        at = p->v[i].end;
    }
    buf_append(&b, buf + at, len - at);
    *out_len = b.len;
    return buf_steal(&b);
}

/* How the bytes of a span are read: a kernel command line as is, or the
 * inside of a shell "double" or 'single' quoted word, or an unquoted word. */
typedef enum { CTX_CMDLINE, CTX_DQ, CTX_SQ, CTX_NONE } ctx_t;

typedef struct {
    size_t start, end; /* bytes of the token in the file */
    char *key, *value; /* as the kernel sees it: quotes and escapes gone; value NULL without '=' */
    bool del, repl;
} tok_t;

typedef struct {
    tok_t *v;
    size_t n, cap;
} toks_t;

static void toks_free(toks_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].key);
        free(t->v[i].value);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits buf[vs, ve) into tokens. In a double-quoted or unquoted shell word
 * a backslash escapes the next byte and backslash-newline vanishes (shell
 * continuation); '"' (or '\"' inside double quotes) toggles the kernel's own
 * quoting, inside which blanks do not split. */
static void tokenize(const char *buf, size_t vs, size_t ve, ctx_t ctx, toks_t *out)
{
    size_t i = vs;
    bool esc = ctx == CTX_DQ || ctx == CTX_NONE;
    while (i < ve) {
        if (blank(buf[i])) {
            i++;
            continue;
        }
        if (esc && buf[i] == '\\' && i + 1 < ve && buf[i + 1] == '\n') {
            i += 2;
            continue;
        }
        size_t s = i;
        bool inq = false;
        buf_t t = BUF_INIT;
        buf_reset(&t);
        while (i < ve) {
            char c = buf[i];
            if (esc && c == '\\' && i + 1 < ve) {
                char nx = buf[i + 1];
                i += 2;
                if (nx == '\n')
                    continue;
                if (nx == '"' && ctx == CTX_DQ) {
                    inq = !inq;
                    continue;
                }
                buf_putc(&t, nx);
                continue;
            }
            if (c == '"' && ctx != CTX_DQ) {
                inq = !inq;
                i++;
                continue;
            }
            if (!inq && blank(c))
                break;
            buf_putc(&t, c);
            i++;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 8;
            out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
        }
        tok_t *k = &out->v[out->n++];
        memset(k, 0, sizeof(*k));
        k->start = s;
        k->end = i;
        char *eq = strchr(t.p, '=');
        if (eq) {
            k->key = xstrndup(t.p, (size_t)(eq - t.p));
            k->value = xstrdup(eq + 1);
        } else {
            k->key = xstrdup(t.p);
        }
        buf_free(&t);
    }
}

/* ---- token semantics ---- */

static bool has_opt(const char *value, const char *opt)
{
    if (!value)
        return false;
    size_t n = strlen(opt);
    for (const char *p = value;;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncmp(p, opt, n) == 0)
            return true;
        if (!c)
            return false;
        p = c + 1;
    }
}

/* Every option of want is among those of have. */
static bool all_opts(const char *have, const char *want)
{
    for (const char *p = want;;) {
        const char *c = strchr(p, ',');
        char *o = c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p);
        bool ok = has_opt(have, o);
        free(o);
        if (!ok)
            return false;
        if (!c)
            return true;
        p = c + 1;
    }
}

static bool satisfies(const char *key, const char *value, const karg_t *a)
{
    if (strcmp(key, a->key) != 0)
        return false;
    if (!a->value)
        return value == NULL;
    return value && all_opts(value, a->value);
}

/* on/off, X/noX. */
static char *opposite(const char *o)
{
    if (strcmp(o, "on") == 0)
        return xstrdup("off");
    if (strcmp(o, "off") == 0)
        return xstrdup("on");
    if (strncmp(o, "no", 2) == 0 && o[2])
        return xstrdup(o + 2);
    return xasprintf("no%s", o);
}

static bool conflicts(const char *key, const char *value, const karg_t *a)
{
    if (strcmp(key, a->key) != 0 || !a->value || satisfies(key, value, a))
        return false;
    if (has_opt(value, "off") && !has_opt(a->value, "off"))
        return true;
    bool hit = false;
    for (const char *p = a->value; !hit;) {
        const char *c = strchr(p, ',');
        char *o = c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p);
        char *op = opposite(o);
        hit = has_opt(value, op);
        free(op);
        free(o);
        if (!c)
            break;
        p = c + 1;
    }
    return hit;
}

static bool remove_matches(const char *key, const char *value, const karg_t *r)
{
    if (strcmp(key, r->key) != 0)
        return false;
    return !r->value || (value && strcmp(value, r->value) == 0);
}

/* The change's tokens parsed, after checking each is plain. */
typedef struct {
    kargs_t add, remove;
} parsed_change_t;

static bool plain_token(const char *t)
{
    if (!t || !*t || *t == '=')
        return false;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++)
        if (*p < 0x21 || *p == 0x7f || strchr("\"'$`\\;#", *p))
            return false;
    return true;
}

static int change_parse(const kargs_change_t *ch, parsed_change_t *pc, char **err)
{
    memset(pc, 0, sizeof(*pc));
    for (int pass = 0; pass < 2; pass++) {
        size_t n = pass ? ch->n_remove : ch->n_add;
        const char *const *v = pass ? ch->remove : ch->add;
        for (size_t i = 0; i < n; i++) {
            if (!plain_token(v[i])) {
                *err = xasprintf("'%.60s' is not a plain kernel argument (no blanks, quotes, $, `, \\, ; or #; "
                                 "not empty, not starting with '=')",
                                 v[i] ? v[i] : "");
                kargs_free(&pc->add);
                kargs_free(&pc->remove);
                return -EINVAL;
            }
            kargs_parse(v[i], strlen(v[i]), pass ? &pc->remove : &pc->add);
        }
    }
    return 0;
}

static void change_free(parsed_change_t *pc)
{
    kargs_free(&pc->add);
    kargs_free(&pc->remove);
}

static bool present_in(const kargs_t *final, const karg_t *a)
{
    for (size_t i = 0; i < final->n; i++)
        if (satisfies(final->v[i].key, final->v[i].value, a))
            return true;
    return false;
}

/* Pass 1 over the tokens of every span: marks removals and conflicts;
 * final = the values the kernel gets now, to know whether an add is
 * already satisfied (then conflicts are only removed). */
static void mark(toks_t *spans, size_t n_spans, const kargs_t *final, const parsed_change_t *pc)
{
    bool *replaced = xcalloc(pc->add.n + 1, sizeof(bool));
    for (size_t s = 0; s < n_spans; s++) {
        for (size_t i = 0; i < spans[s].n; i++) {
            tok_t *t = &spans[s].v[i];
            for (size_t r = 0; r < pc->remove.n && !t->del; r++)
                if (remove_matches(t->key, t->value, &pc->remove.v[r]))
                    t->del = true;
            for (size_t a = 0; a < pc->add.n && !t->del && !t->repl; a++) {
                if (!conflicts(t->key, t->value, &pc->add.v[a]))
                    continue;
                if (!replaced[a] && !present_in(final, &pc->add.v[a])) {
                    replaced[a] = true;
                    t->repl = true;
                    /* Remember which token replaces it: reuse value ownership. */
                    free(t->key);
                    t->key = xasprintf("%zu", a);
                } else {
                    t->del = true;
                }
            }
        }
    }
    free(replaced);
}

static char *token_text(const karg_t *a)
{
    return a->value ? xasprintf("%s=%s", a->key, a->value) : xstrdup(a->key);
}

/* Patches for one span's marks: runs of deleted tokens go with the blanks
 * before them (or, at the start, the blanks after), so the spacing left
 * looks as if they had never been there. */
static void span_patches(const toks_t *t, const parsed_change_t *pc, patches_t *out)
{
    for (size_t i = 0; i < t->n;) {
        if (t->v[i].repl) {
            size_t a = strtoul(t->v[i].key, NULL, 10);
            patch_add(out, t->v[i].start, t->v[i].end, token_text(&pc->add.v[a]));
            i++;
            continue;
        }
        if (!t->v[i].del) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < t->n && t->v[j + 1].del)
            j++;
        if (i > 0)
            patch_add(out, t->v[i - 1].end, t->v[j].end, xstrdup(""));
        else if (j + 1 < t->n)
            patch_add(out, t->v[0].start, t->v[j + 1].start, xstrdup(""));
        else
            patch_add(out, t->v[0].start, t->v[j].end, xstrdup(""));
        i = j + 1;
    }
}

/* The adds the final values (plus what is being added) still lack, as one
 * space-joined string, or NULL when none. */
static char *missing_adds(const kargs_t *final, const parsed_change_t *pc)
{
    kargs_t have = KARGS_INIT;
    for (size_t i = 0; i < final->n; i++)
        kargs_add(&have, final->v[i].key, final->v[i].value);
    buf_t b = BUF_INIT;
    for (size_t a = 0; a < pc->add.n; a++) {
        if (present_in(&have, &pc->add.v[a]))
            continue;
        char *t = token_text(&pc->add.v[a]);
        buf_printf(&b, "%s%s", b.len ? " " : "", t);
        free(t);
        kargs_add(&have, pc->add.v[a].key, pc->add.v[a].value);
    }
    kargs_free(&have);
    return b.len ? buf_steal(&b) : (buf_free(&b), NULL);
}

static bool uses_crlf(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    return nl && nl > buf && nl[-1] == '\r';
}

/* ---- GRUB ---- */

typedef struct {
    int var;          /* 0 GRUB_CMDLINE_LINUX, 1 GRUB_CMDLINE_LINUX_DEFAULT */
    size_t vs, ve;    /* value span (inside the quotes) */
    size_t ws, we;    /* the whole value word */
    ctx_t ctx;
} assign_t;

typedef struct {
    assign_t *v;
    size_t n, cap;
} assigns_t;

static const char *const GRUB_VARS[2] = {"GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT"};

/* The end of the shell word starting at i; counts its quoting. -EINVAL for
 * an unterminated quote. */
typedef struct {
    int dq, sq, other, plain;
} wordinfo_t;

static int scan_word(const char *buf, size_t len, size_t i, size_t *end, wordinfo_t *wi)
{
    memset(wi, 0, sizeof(*wi));
    while (i < len) {
        char c = buf[i];
        if (blank(c) || c == ';' || c == '&' || c == '|' || c == '(' || c == ')')
            break;
        if (c == '\\') {
            i += i + 1 < len ? 2 : 1;
            wi->plain++;
            continue;
        }
        if (c == '"' || c == '`') {
            size_t j = i + 1;
            while (j < len && buf[j] != c)
                j += buf[j] == '\\' ? 2 : 1;
            if (j >= len)
                return -EINVAL;
            /* A command substitution inside double quotes: its words are
             * not kernel arguments, and editing them would change a script. */
            bool subst = false;
            for (size_t k = i + 1; c == '"' && k < j; k++)
                if (buf[k] == '`' || (buf[k] == '$' && k + 1 < j && buf[k + 1] == '('))
                    subst = true;
            if (c == '"' && !subst)
                wi->dq++;
            else
                wi->other++;
            i = j + 1;
            continue;
        }
        if (c == '\'') {
            const char *q = memchr(buf + i + 1, '\'', len - i - 1);
            if (!q)
                return -EINVAL;
            wi->sq++;
            i = (size_t)(q - buf) + 1;
            continue;
        }
        if (c == '$' && i + 1 < len && buf[i + 1] == '(') {
            int depth = 0;
            size_t j = i + 1;
            for (; j < len; j++) {
                if (buf[j] == '(')
                    depth++;
                else if (buf[j] == ')' && --depth == 0)
                    break;
            }
            if (j >= len)
                return -EINVAL;
            wi->other++;
            i = j + 1;
            continue;
        }
        wi->plain++;
        i++;
    }
    *end = i;
    return 0;
}

static bool reserved_word(const char *w, size_t n)
{
    static const char *const words[] = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strlen(words[i]) == n && strncmp(w, words[i], n) == 0)
            return true;
    return false;
}

static size_t line_of(const char *buf, size_t at)
{
    size_t l = 1;
    for (size_t i = 0; i < at; i++)
        l += buf[i] == '\n';
    return l;
}

static int grub_scan(const char *buf, size_t len, assigns_t *out, char **err)
{
    bool at_cmd = true;
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
            i++;
            continue;
        }
        if (c == '\\' && i + 1 < len && buf[i + 1] == '\n') {
            i += 2;
            continue;
        }
        if (c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')') {
            at_cmd = true;
            i++;
            continue;
        }
        if (c == '#') {
            while (i < len && buf[i] != '\n')
                i++;
            continue;
        }
        size_t ws = i;
        if (at_cmd && (isalpha((unsigned char)c) || c == '_')) {
            size_t j = i;
            while (j < len && (isalnum((unsigned char)buf[j]) || buf[j] == '_'))
                j++;
            size_t nl = j - i;
            if (nl == 6 && strncmp(buf + i, "export", 6) == 0 && j < len && (buf[j] == ' ' || buf[j] == '\t')) {
                i = j;
                continue;
            }
            size_t eq = j;
            if (eq < len && buf[eq] == '+')
                eq++;
            if (eq < len && buf[eq] == '=') {
                int var = -1;
                for (int v = 0; v < 2; v++)
                    if (strlen(GRUB_VARS[v]) == nl && strncmp(buf + i, GRUB_VARS[v], nl) == 0)
                        var = v;
                size_t vstart = eq + 1, vend;
                wordinfo_t wi;
                if (scan_word(buf, len, vstart, &vend, &wi) < 0) {
                    *err = xasprintf("line %zu: unterminated quote", line_of(buf, ws));
                    return -EINVAL;
                }
                if (var >= 0) {
                    assign_t a = {var, vstart, vend, vstart, vend, CTX_NONE};
                    int parts = wi.dq + wi.sq + wi.other + (wi.plain ? 1 : 0);
                    if (wi.other || parts > 1) {
                        *err = xasprintf("line %zu: %s is built from mixed quoting or command substitution; "
                                         "pcifleet edits only a single \"…\", '…' or unquoted value",
                                         line_of(buf, ws), GRUB_VARS[var]);
                        return -EINVAL;
                    }
                    if (wi.dq || wi.sq) {
                        a.ctx = wi.dq ? CTX_DQ : CTX_SQ;
                        a.vs = vstart + 1;
                        a.ve = vend - 1;
                    }
                    if (out->n == out->cap) {
                        out->cap = out->cap ? out->cap * 2 : 4;
                        out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
                    }
                    out->v[out->n++] = a;
                }
                i = vend;
                continue; /* still at a command's start: more assignments may follow */
            }
        }
        size_t we;
        wordinfo_t wi;
        if (scan_word(buf, len, ws, &we, &wi) < 0) {
            *err = xasprintf("line %zu: unterminated quote", line_of(buf, ws));
            return -EINVAL;
        }
        if (we == ws)
            we++; /* a lone byte scan_word stops at: move on */
        at_cmd = reserved_word(buf + ws, we - ws);
        i = we;
    }
    return 0;
}

/* The final GRUB_CMDLINE_LINUX then _DEFAULT tokens, as boot.h reads them. */
static int grub_final(const char *buf, size_t len, kargs_t *out, char **err)
{
    char *lin = NULL, *def = NULL, *perr = NULL;
    int rc = grub_defaults_parse(buf, len, &lin, &def, &perr);
    if (rc < 0) {
        *err = perr;
        free(lin);
        free(def);
        return rc;
    }
    if (lin)
        kargs_parse(lin, strlen(lin), out);
    if (def)
        kargs_parse(def, strlen(def), out);
    free(lin);
    free(def);
    return 0;
}

static bool has_nul(const char *buf, size_t len, char **err)
{
    if (memchr(buf, '\0', len)) {
        *err = xstrdup("the file holds NUL bytes: it is not a text file, and pcifleet will not edit it");
        return true;
    }
    return false;
}

/* Adds `adds` to assignment a of the text. */
static int grub_append(const char *buf, size_t len, const assign_t *a, const char *adds, patches_t *p, char **err)
{
    toks_t t = {0};
    tokenize(buf, a->vs, a->ve, a->ctx, &t);
    size_t n = t.n;
    size_t at = n ? t.v[n - 1].end : a->vs;
    toks_free(&t);
    if (a->ctx == CTX_NONE && (n > 0 || strchr(adds, ' '))) {
        /* One unquoted word cannot hold a blank: give it double quotes. */
        if (memchr(buf + a->ws, '\\', a->we - a->ws) || memchr(buf + a->ws, '"', a->we - a->ws)) {
            *err = xasprintf("line %zu: the unquoted %s holds backslashes; pcifleet will not requote it",
                             line_of(buf, a->ws), GRUB_VARS[a->var]);
            return -EINVAL;
        }
        patch_add(p, a->ws, a->we,
                  xasprintf("\"%.*s%s%s\"", (int)(a->we - a->ws), buf + a->ws, n ? " " : "", adds));
        return 0;
    }
    (void)len;
    patch_add(p, at, at, xasprintf("%s%s", n ? " " : "", adds));
    return 0;
}

static int grub_edit_once(const char *buf, size_t len, const char *variable, const kargs_change_t *ch, char **out,
                          size_t *out_len, bool *changed, char **err)
{
    *out = NULL;
    *out_len = 0;
    *changed = false;
    *err = NULL;
    int target = 1;
    if (variable && *variable) {
        if (strcmp(variable, GRUB_VARS[0]) == 0)
            target = 0;
        else if (strcmp(variable, GRUB_VARS[1]) != 0) {
            *err = xasprintf("'%.60s' is not GRUB_CMDLINE_LINUX_DEFAULT or GRUB_CMDLINE_LINUX", variable);
            return -EINVAL;
        }
    }
    if (has_nul(buf, len, err))
        return -EINVAL;
    parsed_change_t pc;
    int rc = change_parse(ch, &pc, err);
    if (rc < 0)
        return rc;

    /* Pass 1: removals and replacements in every assignment. */
    assigns_t as = {0};
    kargs_t final = KARGS_INIT;
    char *t1 = NULL, *t2 = NULL;
    size_t l1 = 0, l2 = 0;
    patches_t p = {0};
    if ((rc = grub_scan(buf, len, &as, err)) < 0 || (rc = grub_final(buf, len, &final, err)) < 0)
        goto out;
    toks_t *spans = xcalloc(as.n + 1, sizeof(toks_t));
    for (size_t i = 0; i < as.n; i++)
        tokenize(buf, as.v[i].vs, as.v[i].ve, as.v[i].ctx, &spans[i]);
    mark(spans, as.n, &final, &pc);
    for (size_t i = 0; i < as.n; i++) {
        span_patches(&spans[i], &pc, &p);
        toks_free(&spans[i]);
    }
    free(spans);
    t1 = patches_apply(buf, len, &p, &l1);
    patches_free(&p);

    /* Pass 2: what the final values still lack goes into the last
     * assignment of the target variable (or a new line). */
    as.n = 0;
    kargs_free(&final);
    if ((rc = grub_scan(t1, l1, &as, err)) < 0 || (rc = grub_final(t1, l1, &final, err)) < 0)
        goto out;
    char *adds = missing_adds(&final, &pc);
    if (adds) {
        const assign_t *last = NULL;
        for (size_t i = 0; i < as.n; i++)
            if (as.v[i].var == target)
                last = &as.v[i];
        if (last) {
            rc = grub_append(t1, l1, last, adds, &p, err);
        } else {
            const char *nl = uses_crlf(t1, l1) ? "\r\n" : "\n";
            patch_add(&p, l1, l1,
                      xasprintf("%s%s=\"%s\"%s", l1 && t1[l1 - 1] != '\n' ? nl : "", GRUB_VARS[target], adds, nl));
        }
        free(adds);
        if (rc < 0)
            goto out;
    }
    t2 = patches_apply(t1, l1, &p, &l2);
    *changed = l2 != len || memcmp(t2, buf, len) != 0;
    *out = t2;
    *out_len = l2;
    t2 = NULL;
out:
    patches_free(&p);
    free(t1);
    free(t2);
    free(as.v);
    kargs_free(&final);
    change_free(&pc);
    return rc;
}

/* The edit, then proof that it holds: the final values the probe reads
 * have every token added and none removed, and editing the result again
 * changes nothing. Shell this editor and grub_defaults_parse read
 * differently (pathological quoting) fails the proof and is refused, so a
 * node can never loop through edits and reboots. */
int kargs_edit_grub(const char *buf, size_t len, const char *variable, const kargs_change_t *ch, char **out,
                    size_t *out_len, bool *changed, char **err)
{
    int rc = grub_edit_once(buf, len, variable, ch, out, out_len, changed, err);
    if (rc < 0 || !*changed)
        return rc;
    char *again = NULL, *e2 = NULL;
    size_t l2;
    bool ch2 = false;
    int rc2 = grub_edit_once(*out, *out_len, variable, ch, &again, &l2, &ch2, &e2);
    kargs_t final = KARGS_INIT;
    bool ok = rc2 == 0 && !ch2 && grub_final(*out, *out_len, &final, &e2) == 0;
    parsed_change_t pc;
    if (ok && change_parse(ch, &pc, &e2) == 0) {
        for (size_t a = 0; a < pc.add.n && ok; a++)
            ok = present_in(&final, &pc.add.v[a]);
        for (size_t r = 0; r < pc.remove.n && ok; r++)
            for (size_t i = 0; i < final.n && ok; i++)
                ok = !remove_matches(final.v[i].key, final.v[i].value, &pc.remove.v[r]);
        change_free(&pc);
    }
    kargs_free(&final);
    free(again);
    free(e2);
    if (!ok) {
        free(*out);
        *out = NULL;
        *out_len = 0;
        *changed = false;
        *err = xstrdup("the file's shell quoting is too unusual to edit safely (the edited file would not read back "
                       "as intended); edit the kernel command line by hand");
        return -EINVAL;
    }
    return 0;
}

/* ---- /etc/kernel/cmdline ---- */

/* The command line's span: the first line neither blank nor a comment. */
static bool cmdline_span(const char *buf, size_t len, size_t *s, size_t *e)
{
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t j = i;
        while (j < end && blank(buf[j]))
            j++;
        if (j < end && buf[j] != '#') {
            size_t k = end;
            while (k > j && blank(buf[k - 1]))
                k--;
            *s = j;
            *e = k;
            return true;
        }
        i = end + 1;
    }
    return false;
}

int kargs_edit_cmdline_file(const char *buf, size_t len, const kargs_change_t *ch, char **out, size_t *out_len,
                            bool *changed, char **err)
{
    *out = NULL;
    *out_len = 0;
    *changed = false;
    *err = NULL;
    if (has_nul(buf, len, err))
        return -EINVAL;
    parsed_change_t pc;
    int rc = change_parse(ch, &pc, err);
    if (rc < 0)
        return rc;
    patches_t p = {0};
    size_t s = 0, e = 0, l1;
    char *t1;
    bool have = cmdline_span(buf, len, &s, &e);
    size_t quotes = 0;
    for (size_t i = s; have && i < e; i++)
        quotes += buf[i] == '"';
    if (quotes % 2) {
        /* The kernel would read everything after it as one value, what we
         * add included. */
        *err = xstrdup("the command line has an unterminated '\"'; fix it by hand");
        change_free(&pc);
        return -EINVAL;
    }
    if (have) {
        toks_t t = {0};
        kargs_t final = KARGS_INIT;
        kargs_parse(buf + s, e - s, &final);
        tokenize(buf, s, e, CTX_CMDLINE, &t);
        mark(&t, 1, &final, &pc);
        span_patches(&t, &pc, &p);
        toks_free(&t);
        kargs_free(&final);
    }
    t1 = patches_apply(buf, len, &p, &l1);
    patches_free(&p);

    kargs_t final = KARGS_INIT;
    have = cmdline_span(t1, l1, &s, &e);
    if (have)
        kargs_parse(t1 + s, e - s, &final);
    char *adds = missing_adds(&final, &pc);
    kargs_free(&final);
    if (adds) {
        if (have)
            patch_add(&p, e, e, xasprintf(" %s", adds));
        else
            patch_add(&p, l1, l1, xasprintf("%s%s\n", l1 && t1[l1 - 1] != '\n' ? "\n" : "", adds));
        free(adds);
    }
    *out = patches_apply(t1, l1, &p, out_len);
    *changed = *out_len != len || memcmp(*out, buf, len) != 0;
    patches_free(&p);
    free(t1);
    change_free(&pc);
    return 0;
}

/* ---- modules ---- */

int modules_conf_edit(const char *buf, size_t len, const char *const *modules, size_t n, const strv_t *already,
                      char **out, size_t *out_len, bool *changed, char **err)
{
    *out = NULL;
    *out_len = 0;
    *changed = false;
    *err = NULL;
    if (has_nul(buf, len, err))
        return -EINVAL;
    strv_t have = STRV_INIT;
    modules_list_parse(buf, len, &have);
    buf_t add = BUF_INIT;
    buf_reset(&add);
    const char *nl = uses_crlf(buf, len) ? "\r\n" : "\n";
    for (size_t i = 0; i < n; i++) {
        const char *m = modules[i] ? modules[i] : "";
        bool ok = *m != '\0';
        for (const char *q = m; *q && ok; q++)
            ok = isalnum((unsigned char)*q) || *q == '_' || *q == '-';
        if (!ok) {
            *err = xasprintf("'%.60s' is not a module name (letters, digits, '_' and '-')", m);
            strv_free(&have);
            buf_free(&add);
            return -EINVAL;
        }
        char *norm = xstrdup(m);
        for (char *q = norm; *q; q++)
            if (*q == '-')
                *q = '_';
        if (!strv_contains(&have, norm) && !(already && strv_contains(already, norm))) {
            buf_printf(&add, "%s%s", norm, nl);
            strv_add(&have, norm);
        }
        free(norm);
    }
    strv_free(&have);
    buf_t b = BUF_INIT;
    buf_reset(&b);
    buf_append(&b, buf, len);
    if (add.len) {
        if (len == 0)
            buf_printf(&b, "# vfio modules for PCIe passthrough, written by pcifleet-agent.%s"
                           "# Loaded at boot by systemd-modules-load; remove this file to undo.%s", nl, nl);
        else if (buf[len - 1] != '\n')
            buf_puts(&b, nl);
        buf_append(&b, add.p, add.len);
        *changed = true;
    }
    buf_free(&add);
    *out_len = b.len;
    *out = buf_steal(&b);
    return 0;
}
