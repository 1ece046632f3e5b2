/* table — query results held in memory and written for people or scripts.
 *
 * Contract: table_fill steps a prepared statement to its end and keeps every
 * row (values copied, so the statement can be reset or finalized). The same
 * rows are then written as an aligned text table (header in capitals, two
 * spaces between columns, NULL as "-", control characters from agents'
 * strings shown as '?') or as JSON (an array of objects keyed by column
 * name, one object per line). With typed columns the column name decides how
 * a value is shown (table_kind_for): booleans as yes/no and true/false, times
 * (unix seconds) as UTC ISO 8601 in text and numbers in JSON, JSON-array
 * columns joined in text and as arrays in JSON. Untyped (operator SQL), each
 * value is written as SQLite typed it; a BLOB is written as hex. */
#ifndef PCIFLEET_TABLE_H
#define PCIFLEET_TABLE_H

#include "buf.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    TABLE_KIND_AUTO = 0,
    TABLE_KIND_BOOL,
    TABLE_KIND_TIME,
    TABLE_KIND_LIST, /* a JSON array of strings in a TEXT column */
} table_kind_t;

typedef struct table table_t;

table_t *table_new(void);
void table_destroy(table_t **t);

/* The kind a typed column of this name gets. */
table_kind_t table_kind_for(const char *column);

/* Returns 0; -E2BIG when the result has more than max_rows rows or holds
 * more than max_bytes bytes of values (0: no cap); -ETIMEDOUT when the
 * statement was interrupted (a progress handler); -EIO on any other error,
 * with *err set (caller frees). The statement is reset, not finalized. */
int table_fill(table_t *t, sqlite3_stmt *st, bool typed, size_t max_rows, size_t max_bytes, char **err);

size_t table_rows(const table_t *t);
size_t table_cols(const table_t *t);
const char *table_col_name(const table_t *t, size_t col);
/* The cell as text written to a text table ("-" for NULL). Owned by t,
 * valid until the next call. */
const char *table_cell_text(table_t *t, size_t row, size_t col);

void table_write_text(table_t *t, buf_t *out);
/* "[" rows "]" without a trailing newline; "[]" when empty. */
void table_write_json(table_t *t, buf_t *out);
/* One row as a JSON object. */
void table_write_json_row(table_t *t, size_t row, buf_t *out);
/* One row as "column  value" lines; list items one per line. */
void table_write_record(table_t *t, size_t row, buf_t *out);

#endif
