/* sqlguard — runs one operator-supplied SELECT over the v_* views, safely.
 *
 * Contract: sqlguard_run takes the SQL as (buf, len) — any bytes — and either
 * fills out with the rows or refuses with one sentence in *err (caller
 * frees). It runs on ro, which must be a read-only connection (store_reader).
 * Refused, before anything runs: more than one statement, a statement that
 * is not read-only, and anything the authorizer denies — INSERT, UPDATE,
 * DELETE, CREATE, DROP, ALTER, transactions, ATTACH/DETACH, every PRAGMA, and
 * reading a base table instead of a v_* view (reads that happen inside one
 * of the database's v_* views, the JSON table functions and sqlite_schema
 * are allowed). While it runs: a progress handler stops it at
 * lim->time_limit_ms, and the result is capped at lim->max_rows rows and
 * lim->max_bytes bytes. The authorizer and progress handler are removed
 * before returning. Nothing here can change the database.
 *
 * Returns 0; -EPERM refused ("refused: ..."); -ETIMEDOUT over the time
 * limit; -E2BIG over a cap; -EINVAL not valid SQL or no statement at all
 * ("sql error: ..."); -EIO anything else. */
#ifndef PCIFLEET_SQLGUARD_H
#define PCIFLEET_SQLGUARD_H

#include "table.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct {
    int time_limit_ms;  /* <= 0: 2000 */
    size_t max_rows;    /* 0: 10000 */
    size_t max_bytes;   /* 0: 32 MiB */
} sqlguard_limits_t;

int sqlguard_run(sqlite3 *ro, const char *sql, size_t len, const sqlguard_limits_t *lim, table_t *out, char **err);

#endif
