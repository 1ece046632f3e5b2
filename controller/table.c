#include "table.h"

#include "jtext.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int type;     /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
    int64_t i;
    double d;
    size_t off;   /* TEXT/BLOB: bytes in the arena (TEXT NUL-terminated) */
    size_t len;
} cell_t;

typedef struct {
    char *name;
    table_kind_t kind;
} col_t;

struct table {
    col_t *cols;
    size_t ncols;
    cell_t *cells; /* row-major */
    size_t nrows, cap_rows;
    buf_t arena;
    buf_t scratch; /* table_cell_text */
};

table_t *table_new(void)
{
    table_t *t = xcalloc(1, sizeof(*t));
    buf_reset(&t->arena);
    buf_reset(&t->scratch);
    return t;
}

static void table_clear(table_t *t)
{
    for (size_t c = 0; c < t->ncols; c++)
        free(t->cols[c].name);
    free(t->cols);
    free(t->cells);
    t->cols = NULL;
    t->cells = NULL;
    t->ncols = t->nrows = t->cap_rows = 0;
    buf_reset(&t->arena);
}

void table_destroy(table_t **tp)
{
    if (!tp || !*tp)
        return;
    table_t *t = *tp;
    table_clear(t);
    buf_free(&t->arena);
    buf_free(&t->scratch);
    free(t);
    *tp = NULL;
}

table_kind_t table_kind_for(const char *c)
{
    static const char *const bools[] = {"online", "management", "is_vf", "free", "isolated", "running",
                                        "migratable", "bridge", "acs", "iommu_enabled", "interrupt_remapping",
                                        "assignable_alone", "endpoint", "cpu_virtualization",
                                        "proxmox_boot_tool", "pcie", NULL};
    static const char *const times[] = {"last_seen", "first_seen", "time", "inventory_at", NULL};
    static const char *const lists[] = {"reasons", "devices", "blocked", "blockers", "slot_functions",
                                        "configured_in", "iommu_units", "configured_args", "vfio_required",
                                        "vfio_loaded", "vfio_configured", "vfio_missing", NULL};
    for (size_t i = 0; bools[i]; i++)
        if (strcmp(c, bools[i]) == 0)
            return TABLE_KIND_BOOL;
    for (size_t i = 0; times[i]; i++)
        if (strcmp(c, times[i]) == 0)
            return TABLE_KIND_TIME;
    for (size_t i = 0; lists[i]; i++)
        if (strcmp(c, lists[i]) == 0)
            return TABLE_KIND_LIST;
    return TABLE_KIND_AUTO;
}

static int set_err(char **err, const char *msg)
{
    if (err) {
        free(*err);
        *err = xasprintf("query failed: %s", msg);
    }
    return -EIO;
}

int table_fill(table_t *t, sqlite3_stmt *st, bool typed, size_t max_rows, size_t max_bytes, char **err)
{
    table_clear(t);
    t->ncols = (size_t)sqlite3_column_count(st);
    t->cols = xcalloc(t->ncols + 1, sizeof(*t->cols));
    for (size_t c = 0; c < t->ncols; c++) {
        const char *name = sqlite3_column_name(st, (int)c);
        t->cols[c].name = xstrdup(name ? name : "?");
        t->cols[c].kind = typed ? table_kind_for(t->cols[c].name) : TABLE_KIND_AUTO;
    }
    size_t bytes = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (max_rows && t->nrows >= max_rows) {
            sqlite3_reset(st);
            return -E2BIG;
        }
        if (t->nrows == t->cap_rows) {
            t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 64;
            t->cells = xrealloc(t->cells, t->cap_rows * (t->ncols ? t->ncols : 1) * sizeof(*t->cells));
        }
        cell_t *row = t->cells + t->nrows * t->ncols;
        for (size_t c = 0; c < t->ncols; c++) {
            cell_t *cell = &row[c];
            memset(cell, 0, sizeof(*cell));
            cell->type = sqlite3_column_type(st, (int)c);
            switch (cell->type) {
            case SQLITE_INTEGER:
                cell->i = sqlite3_column_int64(st, (int)c);
                bytes += 8;
                break;
            case SQLITE_FLOAT:
                cell->d = sqlite3_column_double(st, (int)c);
                bytes += 8;
                break;
            case SQLITE_TEXT:
            case SQLITE_BLOB: {
                const void *p = cell->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, (int)c)
                                                          : sqlite3_column_blob(st, (int)c);
                size_t n = (size_t)sqlite3_column_bytes(st, (int)c);
                cell->off = t->arena.len;
                cell->len = n;
                buf_append(&t->arena, p, n);
                buf_putc(&t->arena, '\0');
                bytes += n;
                break;
            }
            default:
                cell->type = SQLITE_NULL;
            }
        }
        t->nrows++;
        if (max_bytes && bytes > max_bytes) {
            sqlite3_reset(st);
            return -E2BIG;
        }
    }
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    int ext = sqlite3_extended_errcode(sqlite3_db_handle(st));
    if (rc == SQLITE_INTERRUPT || (ext & 0xff) == SQLITE_INTERRUPT) {
        sqlite3_reset(st);
        return -ETIMEDOUT;
    }
    set_err(err, sqlite3_errmsg(sqlite3_db_handle(st)));
    sqlite3_reset(st);
    return -EIO;
}

size_t table_rows(const table_t *t) { return t->nrows; }
size_t table_cols(const table_t *t) { return t->ncols; }
const char *table_col_name(const table_t *t, size_t col) { return col < t->ncols ? t->cols[col].name : NULL; }

static const cell_t *cell_at(const table_t *t, size_t row, size_t col) { return &t->cells[row * t->ncols + col]; }
static const char *cell_str(const table_t *t, const cell_t *c) { return t->arena.p + c->off; }

/* Appends s with control characters shown as '?': agents' strings reach
 * operators' terminals through here. */
static void put_clean(buf_t *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            buf_append(out, s + run, i - run);
            buf_putc(out, '?');
            run = i + 1;
        }
    }
    buf_append(out, s + run, n - run);
}

static void put_hex(buf_t *out, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(out, n * 2);
    for (size_t i = 0; i < n; i++) {
        buf_putc(out, hex[p[i] >> 4]);
        buf_putc(out, hex[p[i] & 15]);
    }
}

static void put_time(buf_t *out, int64_t v)
{
    time_t tt = (time_t)v;
    struct tm tm;
    char b[40];
    if (gmtime_r(&tt, &tm) && strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        buf_puts(out, b);
    else
        buf_printf(out, "%" PRId64, v);
}

static void put_double(buf_t *out, double d)
{
    buf_printf(out, "%.15g", d);
}

/* The text form of a cell; lists joined with sep. */
static void cell_to_text(const table_t *t, size_t row, size_t col, const char *sep, buf_t *out)
{
    const cell_t *c = cell_at(t, row, col);
    table_kind_t kind = t->cols[col].kind;
    switch (c->type) {
    case SQLITE_NULL:
        buf_putc(out, '-');
        return;
    case SQLITE_INTEGER:
        if (kind == TABLE_KIND_BOOL)
            buf_puts(out, c->i ? "yes" : "no");
        else if (kind == TABLE_KIND_TIME)
            put_time(out, c->i);
        else
            buf_printf(out, "%" PRId64, c->i);
        return;
    case SQLITE_FLOAT:
        put_double(out, c->d);
        return;
    case SQLITE_BLOB:
        put_hex(out, (const unsigned char *)cell_str(t, c), c->len);
        return;
    default:
        break;
    }
    const char *s = cell_str(t, c);
    if (kind == TABLE_KIND_LIST) {
        strv_t items = STRV_INIT;
        int n = jtext_array_items(s, c->len, &items);
        if (n == 0)
            buf_putc(out, '-');
        for (size_t i = 0; n > 0 && i < items.n; i++) {
            if (i)
                buf_puts(out, sep);
            put_clean(out, items.v[i], strlen(items.v[i]));
        }
        strv_free(&items);
        if (n >= 0)
            return;
    }
    if (c->len == 0)
        buf_putc(out, '-');
    else
        put_clean(out, s, c->len);
}

static const char *list_sep(const table_t *t, size_t col)
{
    return strcmp(t->cols[col].name, "reasons") == 0 ? "; " : ",";
}

const char *table_cell_text(table_t *t, size_t row, size_t col)
{
    if (row >= t->nrows || col >= t->ncols)
        return NULL;
    buf_reset(&t->scratch);
    cell_to_text(t, row, col, list_sep(t, col), &t->scratch);
    return t->scratch.p;
}

/* Terminal columns of UTF-8 text (code points; good enough for names). */
static size_t display_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            w++;
    return w;
}

static void pad(buf_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_putc(out, ' ');
}

void table_write_text(table_t *t, buf_t *out)
{
    if (!t->ncols)
        return;
    /* Render every cell once; remember where each one is. */
    buf_t txt = BUF_INIT;
    buf_reset(&txt);
    size_t n = t->nrows * t->ncols;
    size_t *off = xcalloc(n + 1, sizeof(*off));
    size_t *len = xcalloc(n + 1, sizeof(*len));
    size_t *width = xcalloc(t->ncols, sizeof(*width));
    for (size_t c = 0; c < t->ncols; c++)
        width[c] = display_width(t->cols[c].name, strlen(t->cols[c].name));
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t k = r * t->ncols + c;
            off[k] = txt.len;
            cell_to_text(t, r, c, list_sep(t, c), &txt);
            len[k] = txt.len - off[k];
            size_t w = display_width(txt.p + off[k], len[k]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const char *name = t->cols[c].name;
        for (const char *p = name; *p; p++)
            buf_putc(out, (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p);
        if (c + 1 < t->ncols)
            pad(out, width[c] - display_width(name, strlen(name)) + 2);
    }
    buf_putc(out, '\n');
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t k = r * t->ncols + c;
            buf_append(out, txt.p + off[k], len[k]);
            if (c + 1 < t->ncols)
                pad(out, width[c] - display_width(txt.p + off[k], len[k]) + 2);
        }
        buf_putc(out, '\n');
    }
    free(off);
    free(len);
    free(width);
    buf_free(&txt);
}

static void json_value(table_t *t, size_t row, size_t col, buf_t *out)
{
    const cell_t *c = cell_at(t, row, col);
    table_kind_t kind = t->cols[col].kind;
    switch (c->type) {
    case SQLITE_NULL:
        buf_puts(out, "null");
        return;
    case SQLITE_INTEGER:
        if (kind == TABLE_KIND_BOOL)
            buf_puts(out, c->i ? "true" : "false");
        else
            buf_printf(out, "%" PRId64, c->i);
        return;
    case SQLITE_FLOAT:
        if (isfinite(c->d))
            buf_printf(out, "%.17g", c->d);
        else
            buf_puts(out, "null");
        return;
    case SQLITE_BLOB:
        buf_putc(out, '"');
        put_hex(out, (const unsigned char *)cell_str(t, c), c->len);
        buf_putc(out, '"');
        return;
    default:
        break;
    }
    const char *s = cell_str(t, c);
    if (kind == TABLE_KIND_LIST) {
        /* Written by the store as JSON; re-encoded item by item so the
         * output is valid JSON whatever the database holds. */
        if (c->len == 2 && s[0] == '[' && s[1] == ']') {
            buf_puts(out, "[]");
            return;
        }
        strv_t items = STRV_INIT;
        if (jtext_array_items(s, c->len, &items) >= 0) {
            jtext_array(out, items.v, items.n);
            strv_free(&items);
            return;
        }
        strv_free(&items);
    }
    jtext_string(out, s, c->len);
}

void table_write_json_row(table_t *t, size_t row, buf_t *out)
{
    buf_putc(out, '{');
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            buf_putc(out, ',');
        jtext_string(out, t->cols[c].name, strlen(t->cols[c].name));
        buf_putc(out, ':');
        json_value(t, row, c, out);
    }
    buf_putc(out, '}');
}

void table_write_json(table_t *t, buf_t *out)
{
    if (!t->nrows) {
        buf_puts(out, "[]");
        return;
    }
    buf_putc(out, '[');
    for (size_t r = 0; r < t->nrows; r++) {
        buf_puts(out, r ? ",\n" : "\n");
        table_write_json_row(t, r, out);
    }
    buf_puts(out, "\n]");
}

void table_write_record(table_t *t, size_t row, buf_t *out)
{
    if (row >= t->nrows)
        return;
    size_t w = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        size_t l = strlen(t->cols[c].name);
        if (l > w)
            w = l;
    }
    buf_t v = BUF_INIT;
    buf_reset(&v);
    for (size_t c = 0; c < t->ncols; c++) {
        buf_reset(&v);
        /* list items one per line, aligned under the first */
        cell_to_text(t, row, c, "\n", &v);
        buf_puts(out, t->cols[c].name);
        pad(out, w - strlen(t->cols[c].name) + 2);
        const char *p = v.p;
        for (;;) {
            const char *nl = strchr(p, '\n');
            size_t l = nl ? (size_t)(nl - p) : strlen(p);
            buf_append(out, p, l);
            buf_putc(out, '\n');
            if (!nl)
                break;
            p = nl + 1;
            pad(out, w + 2);
        }
    }
    buf_free(&v);
}
