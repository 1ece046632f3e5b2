/* query — the fleet queries an operator runs through `pcifleet`, answered by
 * the controller from the stable views (v_nodes, v_devices, v_nics, v_groups,
 * v_vms; docs/db.md).
 *
 * Contract: query_run parses argv (the CLI's words after its global options:
 * "nodes", "nics --free --model 8086:15f3", "groups NODE", "vms
 * --non-migratable", "show NODE", "sql SELECT ...") and writes either a
 * table for people or JSON for scripts into out — the same rows either way.
 * Returns the CLI exit status: 0 done, 1 refused or failed (*err says why),
 * 2 bad usage (*err says what). `sql` runs on a separate read-only
 * connection with a time limit; a write, ATTACH, PRAGMA, or a runaway query
 * is refused with a clear message. */
#ifndef PCIFLEET_QUERY_H
#define PCIFLEET_QUERY_H

#include "blob.h"
#include "buf.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* Answers kept for repeated queries: the nics, groups and vms commands show
 * nothing that changes with heartbeats alone, so their output is kept and
 * given again while store_content_version (store.h) has not moved. A
 * handful of entries, the oldest replaced first; answers over
 * QUERY_CACHE_MAX_BYTES are not kept. */
typedef struct query_cache query_cache_t;
#define QUERY_CACHE_ENTRIES 8
#define QUERY_CACHE_MAX_BYTES (32u * 1024 * 1024)
query_cache_t *query_cache_new(void);
void query_cache_destroy(query_cache_t **c);
/* Lookups and hits since creation (for `pcifleet status`). */
void query_cache_stats(const query_cache_t *c, uint64_t *lookups, uint64_t *hits);

typedef struct {
    int sql_time_limit_ms;  /* default 2000 */
    size_t sql_max_rows;    /* default 10000 */
    query_cache_t *cache;   /* NULL: every query runs */
} query_opts_t;

int query_run(store_t *s, const query_opts_t *opts, int argc, char **argv, bool json, buf_t *out,
              char **err);
/* The same, but when the answer is a kept one (or was just kept), *kept is
 * set to a reference to it (blob_unref when done) and out gets nothing: a
 * caller that only sends the answer needs no copy of megabytes. *kept is
 * NULL when the answer is in out as with query_run. */
int query_run_kept(store_t *s, const query_opts_t *opts, int argc, char **argv, bool json, buf_t *out,
                   blob_t **kept, char **err);

#endif
