#include "sqlguard.h"

#include "buf.h"
#include "strv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define SQLGUARD_MAX_SQL 100000
#define SQLGUARD_DEFAULT_MS 2000
#define SQLGUARD_DEFAULT_ROWS 10000
#define SQLGUARD_DEFAULT_BYTES (32u * 1024 * 1024)
/* The progress handler runs every this many virtual machine steps. */
#define SQLGUARD_PROGRESS_STEPS 1000

typedef struct {
    strv_t views;       /* the database's v_* views */
    strv_t *deps;       /* by the index in views: the tables each view reads */
    strv_t tables;      /* the database's base tables */
    strv_t via_view;    /* base tables some column of which was read inside a view */
    char *refusal;
    bool weak;          /* refusal names the schema table a DDL statement writes: a
                           later, more telling refusal replaces it */
    const char *learning; /* while learning a view's dependencies: its name */
    int64_t deadline_ms;
    bool timed_out;
} guard_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Records msg (taking it) unless a refusal is already recorded. A weak
 * refusal (the write to the schema table a DDL statement starts with) lets
 * compilation go on, so the DDL action itself can be named; the statement
 * is refused after compiling all the same, and never runs. */
static int refuse(guard_t *g, bool weak, char *msg)
{
    if (!g->refusal || (g->weak && !weak)) {
        free(g->refusal);
        g->refusal = msg;
        g->weak = weak;
    } else {
        free(msg);
    }
    return weak ? SQLITE_OK : SQLITE_DENY;
}

static const char *action_name(int action)
{
    switch (action) {
    case SQLITE_CREATE_INDEX: return "CREATE INDEX";
    case SQLITE_CREATE_TABLE: return "CREATE TABLE";
    case SQLITE_CREATE_TEMP_INDEX: return "CREATE TEMP INDEX";
    case SQLITE_CREATE_TEMP_TABLE: return "CREATE TEMP TABLE";
    case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TEMP TRIGGER";
    case SQLITE_CREATE_TEMP_VIEW: return "CREATE TEMP VIEW";
    case SQLITE_CREATE_TRIGGER: return "CREATE TRIGGER";
    case SQLITE_CREATE_VIEW: return "CREATE VIEW";
    case SQLITE_DELETE: return "DELETE";
    case SQLITE_DROP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_TABLE: return "DROP TABLE";
    case SQLITE_DROP_TEMP_INDEX: return "DROP TEMP INDEX";
    case SQLITE_DROP_TEMP_TABLE: return "DROP TEMP TABLE";
    case SQLITE_DROP_TEMP_TRIGGER: return "DROP TEMP TRIGGER";
    case SQLITE_DROP_TEMP_VIEW: return "DROP TEMP VIEW";
    case SQLITE_DROP_TRIGGER: return "DROP TRIGGER";
    case SQLITE_DROP_VIEW: return "DROP VIEW";
    case SQLITE_INSERT: return "INSERT";
    case SQLITE_TRANSACTION: return "BEGIN/COMMIT/ROLLBACK";
    case SQLITE_UPDATE: return "UPDATE";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_REINDEX: return "REINDEX";
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
    case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
    case SQLITE_SAVEPOINT: return "SAVEPOINT";
    default: return "a write";
    }
}

static ssize_t index_of(const strv_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return (ssize_t)i;
    return -1;
}

static int check_read(guard_t *g, const char *table, const char *column, const char *dbname, const char *inner)
{
    if (!table)
        return refuse(g, false, xstrdup("refused: pcifleet sql cannot read that"));
    if (dbname && strcmp(dbname, "main") != 0)
        return refuse(g, false, xasprintf("refused: pcifleet sql reads the fleet database only, not '%s'", dbname));
    if (strcmp(table, "json_each") == 0 || strcmp(table, "json_tree") == 0)
        return SQLITE_OK;
    if (strncmp(table, "pragma_", 7) == 0)
        return refuse(g, false, xasprintf("refused: pcifleet sql does not run PRAGMA (%s)", table));
    if (dbname && (strcmp(table, "sqlite_master") == 0 || strcmp(table, "sqlite_schema") == 0))
        return SQLITE_OK;
    if (index_of(&g->views, table) >= 0)
        return SQLITE_OK;
    if (index_of(&g->tables, table) < 0)
        return SQLITE_OK; /* not a stored table: a CTE or subquery of the statement */
    /* A base table, read inside a view: allowed when that view really reads
     * it (a CTE named like a view does not make its table readable). */
    ssize_t v = inner ? index_of(&g->views, inner) : -1;
    if (v >= 0 && index_of(&g->deps[v], table) >= 0) {
        strv_add_unique(&g->via_view, table);
        return SQLITE_OK;
    }
    /* "table used, no column read": SQLite says so for the tables under a
     * flattened view too (count(*) over a view); allowed for a table some
     * view in this statement reads. It reveals no column of the table. */
    if (column && !*column && index_of(&g->via_view, table) >= 0)
        return SQLITE_OK;
    return refuse(g, false,
                  xasprintf("refused: pcifleet sql reads the v_* views, not the table '%s' (docs/db.md lists them)",
                            table));
}

/* While learning: every table read inside the view being learnt. */
static int learn(void *p, int action, const char *a1, const char *a2, const char *a3, const char *a4)
{
    guard_t *g = p;
    (void)a2;
    (void)a3;
    if (action == SQLITE_READ && a1 && a4 && strcmp(a4, g->learning) == 0) {
        ssize_t v = index_of(&g->views, g->learning);
        strv_add_unique(&g->deps[v], a1);
    }
    return SQLITE_OK;
}

static int authorize(void *p, int action, const char *a1, const char *a2, const char *a3, const char *a4)
{
    guard_t *g = p;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        return check_read(g, a1, a2, a3, a4);
    case SQLITE_PRAGMA:
        return refuse(g, false, xasprintf("refused: pcifleet sql does not run PRAGMA (%s)", a1 ? a1 : "?"));
    case SQLITE_ATTACH:
        return refuse(g, false, xstrdup("refused: pcifleet sql cannot ATTACH databases"));
    case SQLITE_DETACH:
        return refuse(g, false, xstrdup("refused: pcifleet sql cannot DETACH databases"));
    default:
        /* Writes to SQLite's own tables (the schema, sqlite_stat1) come
         * first in DDL and ANALYZE: weak, so the statement itself is named. */
        return refuse(g, a1 && strncmp(a1, "sqlite_", 7) == 0,
                      xasprintf("refused: pcifleet sql is read-only (%s)", action_name(action)));
    }
}

static int progress(void *p)
{
    guard_t *g = p;
    if (mono_ms() >= g->deadline_ms) {
        g->timed_out = true;
        return 1;
    }
    return 0;
}

/* Skips whitespace, ';' and comments; true when nothing else is left. */
static bool only_trivia(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == ';') {
            i++;
        } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            i += 2;
            while (i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/'))
                i++;
            i = i < n ? i + 2 : n;
        } else {
            return false;
        }
    }
    return true;
}

static int set_err(char **err, int rc, char *msg)
{
    if (err) {
        free(*err);
        *err = msg;
    } else {
        free(msg);
    }
    return rc;
}

static int load_names(sqlite3 *ro, const char *sql, strv_t *out, char **err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ro, sql, -1, &st, NULL) != SQLITE_OK)
        return set_err(err, -EIO, xasprintf("cannot read the schema: %s", sqlite3_errmsg(ro)));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        strv_add(out, (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return set_err(err, -EIO, xasprintf("cannot read the schema: %s", sqlite3_errmsg(ro)));
    return 0;
}

/* The views, the base tables, and which tables each view reads (learnt by
 * compiling SELECT * FROM the view under a recording authorizer). */
static int load_schema(sqlite3 *ro, guard_t *g, char **err)
{
    int rc = load_names(ro, "SELECT name FROM sqlite_schema WHERE type = 'view' AND name GLOB 'v_*'", &g->views,
                        err);
    if (rc == 0)
        rc = load_names(ro, "SELECT name FROM sqlite_schema WHERE type = 'table'", &g->tables, err);
    if (rc < 0)
        return rc;
    g->deps = xcalloc(g->views.n + 1, sizeof(*g->deps));
    sqlite3_set_authorizer(ro, learn, g);
    for (size_t i = 0; i < g->views.n && rc == 0; i++) {
        g->learning = g->views.v[i];
        char *sql = sqlite3_mprintf("SELECT * FROM \"%w\"", g->views.v[i]);
        sqlite3_stmt *st = NULL;
        if (!sql || sqlite3_prepare_v2(ro, sql, -1, &st, NULL) != SQLITE_OK)
            rc = set_err(err, -EIO, xasprintf("cannot read view %s: %s", g->views.v[i], sqlite3_errmsg(ro)));
        sqlite3_finalize(st);
        sqlite3_free(sql);
    }
    sqlite3_set_authorizer(ro, NULL, NULL);
    g->learning = NULL;
    return rc;
}

int sqlguard_run(sqlite3 *ro, const char *sql, size_t len, const sqlguard_limits_t *lim, table_t *out, char **err)
{
    int limit_ms = lim && lim->time_limit_ms > 0 ? lim->time_limit_ms : SQLGUARD_DEFAULT_MS;
    size_t max_rows = lim && lim->max_rows ? lim->max_rows : SQLGUARD_DEFAULT_ROWS;
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : SQLGUARD_DEFAULT_BYTES;

    if (!sql || only_trivia(sql, len))
        return set_err(err, -EINVAL, xstrdup("sql error: no SQL statement given"));
    if (len > SQLGUARD_MAX_SQL)
        return set_err(err, -EPERM, xasprintf("refused: the SQL text is longer than %d bytes", SQLGUARD_MAX_SQL));
    if (memchr(sql, '\0', len))
        return set_err(err, -EPERM, xstrdup("refused: the SQL text contains a NUL byte"));
    if (!sqlite3_db_readonly(ro, "main"))
        return set_err(err, -EIO, xstrdup("internal error: the sql connection is not read-only"));

    guard_t g = {0};
    int rc = load_schema(ro, &g, err);
    if (rc < 0)
        goto out;

    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    sqlite3_set_authorizer(ro, authorize, &g);
    int prc = sqlite3_prepare_v3(ro, sql, (int)len, 0, &st, &tail);
    if (prc != SQLITE_OK) {
        if (g.refusal) {
            rc = set_err(err, -EPERM, g.refusal);
            g.refusal = NULL;
        } else {
            rc = set_err(err, -EINVAL, xasprintf("sql error: %s", sqlite3_errmsg(ro)));
        }
        goto out_unset;
    }
    if (!st) {
        rc = set_err(err, -EINVAL, xstrdup("sql error: no SQL statement given"));
        goto out_unset;
    }
    if (g.refusal) {
        rc = set_err(err, -EPERM, g.refusal);
        g.refusal = NULL;
        goto out_stmt;
    }
    if (tail && !only_trivia(tail, len - (size_t)(tail - sql))) {
        rc = set_err(err, -EPERM, xstrdup("refused: pcifleet sql runs exactly one statement"));
        goto out_stmt;
    }
    if (!sqlite3_stmt_readonly(st)) {
        rc = set_err(err, -EPERM, xstrdup("refused: pcifleet sql is read-only"));
        goto out_stmt;
    }

    g.deadline_ms = mono_ms() + limit_ms;
    sqlite3_progress_handler(ro, SQLGUARD_PROGRESS_STEPS, progress, &g);
    char *why = NULL;
    rc = table_fill(out, st, false, max_rows, max_bytes, &why);
    sqlite3_progress_handler(ro, 0, NULL, NULL);
    if (rc == -ETIMEDOUT || g.timed_out)
        rc = set_err(err, -ETIMEDOUT, xasprintf("refused: query ran longer than %d ms", limit_ms));
    else if (rc == -E2BIG)
        rc = set_err(err, -E2BIG,
                     xasprintf("refused: the result has more than %zu rows or %zu MiB; add a LIMIT", max_rows,
                               max_bytes / (1024 * 1024)));
    else if (rc < 0 && g.refusal)
        rc = set_err(err, -EPERM, xstrdup(g.refusal));
    else if (rc < 0)
        rc = set_err(err, rc, why ? xstrdup(why) : xstrdup("query failed"));
    free(why);
out_stmt:
    sqlite3_finalize(st);
out_unset:
    sqlite3_set_authorizer(ro, NULL, NULL);
out:
    for (size_t i = 0; g.deps && i < g.views.n; i++)
        strv_free(&g.deps[i]);
    free(g.deps);
    strv_free(&g.views);
    strv_free(&g.tables);
    strv_free(&g.via_view);
    free(g.refusal);
    return rc;
}
