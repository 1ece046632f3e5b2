/* store — the fleet in SQLite; the controller is its single writer.
 *
 * Contract: store_open applies the numbered migrations in db/migrations
 * (compiled in; PRAGMA user_version records the last one), turns on WAL and
 * foreign keys, and refuses a database newer than this program. A node's
 * inventory is replaced in one transaction, so a reader never sees half a
 * node; an unchanged heartbeat writes nothing but last_seen (and online, when
 * it changes). Every state change worth telling an operator goes into the
 * event log (node online/offline, IOMMU verdict changed, device appeared or
 * vanished, VM started holding a device). Functions return 0 or a negative
 * errno-style code with *err set to a sentence (caller frees). */
#ifndef PCIFLEET_STORE_H
#define PCIFLEET_STORE_H

#include "pcifleet.pb-c.h"
#include "strv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

int store_open(const char *path, store_t **out, char **err);
void store_close(store_t **s);

/* Schema version this program writes (the number of the last migration). */
int store_schema_version(void);

/* Replaces everything known about node with inv, marks it online, sets
 * last_seen = now (unix seconds), stores the inventory hash (computed as the
 * agent does when inv->hash is empty), and logs events for what changed:
 * node-online (first inventory, or back from offline), node-rebooted (boot
 * id changed), and, compared with the previous inventory (none for the
 * first one), iommu-changed (verdict), device-appeared/-vanished, and
 * vm-holds-device (a running VM holds an address it did not hold while
 * running before). One transaction: on any error (an unknown verdict or
 * loader, a device listed twice, ...) nothing changes and *err says why. */
int store_ingest_inventory(store_t *s, const char *node, const Pcifleet__Inventory *inv, int64_t now,
                           char **err);

/* A heartbeat: last_seen = now, online = 1 (event when it was offline),
 * boot_id recorded. *known is false when the node has no stored inventory;
 * *hash_matches tells whether hash equals the stored inventory hash. */
int store_heartbeat(store_t *s, const char *node, const uint8_t *hash, size_t hash_len, const char *boot_id,
                    int64_t now, bool *known, bool *hash_matches, char **err);

/* Heartbeat batching. An unchanged heartbeat (node online, same boot id)
 * only moves last_seen in an in-memory table of the nodes (loaded from the
 * database on first use); store_flush writes the buffered last_seen values
 * in one transaction. store_heartbeat flushes by itself once the flush
 * interval (default 1000 ms, monotonic clock) has passed since the last
 * flush; store_mark_offline, store_close and query_run flush first, so
 * offline marking and every query see current data. A heartbeat that
 * changes something (node was offline or unknown, new boot id) is written
 * at once with its event. A crash loses at most one interval of last_seen
 * updates, nothing else. The store is the database's only writer: the
 * in-memory table trusts that nobody else changes the nodes table. */
int store_flush(store_t *s, char **err);
/* Group commit. Between store_batch_begin and store_batch_end every change
 * (inventories, heartbeats that change something, flushes, events) goes
 * into one transaction, begun by the first change; each change is still
 * all-or-nothing on its own (a savepoint), so a refused inventory leaves
 * the others of the batch intact, and a reader sees whole nodes only.
 * Nothing of the batch is durable, or visible to readers, before
 * store_batch_end returns 0: send acknowledgements after it. When it fails
 * (-EIO, *err set) the whole batch is rolled back and the in-memory node
 * table is dropped (read again from the database), so the senders must be
 * asked to send again. */
void store_batch_begin(store_t *s);
int store_batch_end(store_t *s, char **err);
/* 0 writes every heartbeat through (no buffering). */
void store_set_flush_interval(store_t *s, int ms);
/* A number that changes whenever anything stored changes other than the
 * last_seen times store_flush writes (it counts rows written, so a write
 * rolled back changes it too: it may change without a visible change, never
 * the other way). Query results that show no last_seen can be kept while
 * it stays the same (query.h). */
uint64_t store_content_version(store_t *s);
/* The replay floor (ingest.h): the highest envelope seq accepted from node,
 * 0 when none or the node is unknown. store_seq_accept raises it in the
 * in-memory node table (a node not stored yet is left alone); store_flush
 * writes it with last_seen, so a crash may lose one flush interval of it. */
int store_seq_floor(store_t *s, const char *node, uint64_t *floor, char **err);
void store_seq_accept(store_t *s, const char *node, uint64_t seq);
/* How many nodes have a last_seen waiting for store_flush. */
size_t store_pending_heartbeats(const store_t *s);

/* Marks offline every online node whose last_seen < now - max_age; their
 * names are added to went_offline (may be NULL). */
int store_mark_offline(store_t *s, int64_t now, int64_t max_age, strv_t *went_offline, char **err);

/* Adds an event (kind, node may be NULL, detail) at now. */
int store_event(store_t *s, int64_t now, const char *kind, const char *node, const char *detail, char **err);

/* For queries (query.c) and tests: the read/write connection. */
struct sqlite3 *store_db(store_t *s);
const char *store_path(const store_t *s);

/* A second connection to the same file, opened read-only on first use and
 * owned by the store (closed by store_close): queries run on it, so nothing
 * a query does can write. Defensive mode, no ATTACH, values capped at
 * 16 MiB. NULL with *err set when the database is not a file (":memory:")
 * or cannot be opened. */
struct sqlite3 *store_reader(store_t *s, char **err);

#endif
