/* store — the fleet in SQLite (see store.h for the contract, docs/db.md for
 * the schema).
 *
 * Layout of this file: opening and migrations; the statement cache; the
 * heartbeat cache (an in-memory table of every node seen, so an unchanged
 * heartbeat is a lookup and a buffered last_seen); inventory ingest (read
 * what was stored, replace the node's rows, log what changed — one
 * transaction); offline marking and events; the read-only query connection. */
#include "store.h"

#include "buf.h"
#include "db_migrations.h"
#include "jtext.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 'pcif': PRAGMA application_id of a pcifleet database. */
#define STORE_APP_ID 0x70636966
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_DEFAULT_FLUSH_MS 1000

/* ---- the statement cache ---- */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_NODE_GET,
    ST_NODE_NEW,
    ST_NODE_UPSERT,
    ST_NODE_BEAT,
    ST_NODE_LAST_SEEN,
    ST_NODE_MARK_OFFLINE,
    ST_OLD_VERDICT,
    ST_OLD_DEVICES,
    ST_OLD_HOLDS,
    ST_DEL_PASSTHROUGH,
    ST_DEL_VMS,
    ST_DEL_GROUPS,
    ST_DEL_NICS,
    ST_DEL_DEVICES,
    ST_DEL_ERRORS,
    ST_DEL_MAPPINGS,
    ST_DEL_CLUSTERS,
    ST_DEL_IOMMU,
    ST_INS_IOMMU,
    ST_INS_DEVICE,
    ST_INS_GROUP,
    ST_INS_NIC,
    ST_INS_VM,
    ST_INS_PASSTHROUGH,
    ST_INS_ERROR,
    ST_INS_MAPPING,
    ST_INS_CLUSTER,
    ST_INS_EVENT,
    ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT part",
    [ST_RELEASE] = "RELEASE part",
    [ST_ROLLBACK_TO] = "ROLLBACK TO part",
    [ST_NODE_GET] = "SELECT online, last_seen, boot_id, inventory_hash, last_seq FROM nodes WHERE name = ?1",
    [ST_NODE_NEW] = "INSERT INTO nodes (name, online, first_seen, last_seen, boot_id) VALUES (?1, 1, ?2, ?2, ?3)",
    [ST_NODE_UPSERT] =
        "INSERT INTO nodes (name, online, first_seen, last_seen, boot_id, agent_version, kernel, cpu_vendor,"
        " cpu_model, cpu_virtualization, inventory_hash, inventory_at, device_count, nic_count, vm_count,"
        " error_count) VALUES (?1, 1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?2, ?10, ?11, ?12, ?13)"
        " ON CONFLICT (name) DO UPDATE SET online = 1, last_seen = max(last_seen, excluded.last_seen),"
        " boot_id = coalesce(excluded.boot_id, boot_id), agent_version = excluded.agent_version,"
        " kernel = excluded.kernel, cpu_vendor = excluded.cpu_vendor, cpu_model = excluded.cpu_model,"
        " cpu_virtualization = excluded.cpu_virtualization, inventory_hash = excluded.inventory_hash,"
        " inventory_at = excluded.inventory_at, device_count = excluded.device_count,"
        " nic_count = excluded.nic_count, vm_count = excluded.vm_count, error_count = excluded.error_count",
    [ST_NODE_BEAT] = "UPDATE nodes SET online = 1, last_seen = max(last_seen, ?2), boot_id = coalesce(?3, boot_id)"
                     " WHERE name = ?1",
    [ST_NODE_LAST_SEEN] =
        "UPDATE nodes SET last_seen = max(last_seen, ?2), last_seq = max(last_seq, ?3) WHERE name = ?1",
    [ST_NODE_MARK_OFFLINE] = "UPDATE nodes SET online = 0 WHERE online = 1 AND last_seen < ?1 RETURNING name, last_seen",
    [ST_OLD_VERDICT] = "SELECT verdict FROM iommu WHERE node = ?1",
    [ST_OLD_DEVICES] = "SELECT address, vendor_id, device_id, device_name FROM devices WHERE node = ?1 ORDER BY address",
    [ST_OLD_HOLDS] = "SELECT p.source, p.vm_id, p.address FROM vm_passthrough p JOIN vms v"
                     " ON v.node = p.node AND v.source = p.source AND v.vm_id = p.vm_id"
                     " WHERE p.node = ?1 AND v.running = 1 AND p.address IS NOT NULL",
    [ST_DEL_PASSTHROUGH] = "DELETE FROM vm_passthrough WHERE node = ?1",
    [ST_DEL_VMS] = "DELETE FROM vms WHERE node = ?1",
    [ST_DEL_GROUPS] = "DELETE FROM iommu_groups WHERE node = ?1",
    [ST_DEL_NICS] = "DELETE FROM nics WHERE node = ?1",
    [ST_DEL_DEVICES] = "DELETE FROM devices WHERE node = ?1",
    [ST_DEL_ERRORS] = "DELETE FROM scan_errors WHERE node = ?1",
    [ST_DEL_MAPPINGS] = "DELETE FROM mappings WHERE node = ?1",
    [ST_DEL_CLUSTERS] = "DELETE FROM clusters WHERE node = ?1",
    [ST_DEL_IOMMU] = "DELETE FROM iommu WHERE node = ?1",
    [ST_INS_IOMMU] = "INSERT INTO iommu (node, firmware, enabled, units, group_count, default_domain,"
                     " interrupt_remapping, cmdline, verdict, reasons, loader, cmdline_file, configured_args,"
                     " refresh_command, proxmox_boot_tool, vfio_required, vfio_loaded, vfio_configured,"
                     " vfio_missing) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                     " ?16, ?17, ?18, ?19)",
    [ST_INS_DEVICE] = "INSERT INTO devices (node, address, class_code, class_name, vendor_id, device_id,"
                      " subsystem_vendor_id, subsystem_device_id, revision, vendor_name, device_name, driver,"
                      " iommu_group, numa_node, bridge, has_acs, acs_cap, acs_ctl, sriov_total, sriov_num, physfn,"
                      " link_speed, link_width, assignable_alone, slot_functions, blockers) VALUES (?1, ?2, ?3,"
                      " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,"
                      " ?23, ?24, ?25, ?26)",
    [ST_INS_GROUP] = "INSERT INTO iommu_groups (node, group_id, type, isolated) VALUES (?1, ?2, ?3, ?4)",
    [ST_INS_NIC] = "INSERT INTO nics (node, address, ifname, mac, speed_mbps, operstate, management, management_via,"
                   " is_vf, driver, vendor_id, device_id, vendor_name, device_name, iommu_group, numa_node,"
                   " assignable_alone, configured_in) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                   " ?13, ?14, ?15, ?16, ?17, ?18)",
    [ST_INS_VM] = "INSERT INTO vms (node, source, vm_id, name, machine, running, migratable, reasons)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_INS_PASSTHROUGH] = "INSERT INTO vm_passthrough (node, source, vm_id, hostpci, pos, address, mapping, pcie,"
                           " raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_INS_ERROR] = "INSERT INTO scan_errors (node, seq, location, message) VALUES (?1, ?2, ?3, ?4)",
    [ST_INS_MAPPING] = "INSERT INTO mappings (node, name, pos, address) VALUES (?1, ?2, ?3, ?4)",
    [ST_INS_CLUSTER] = "INSERT OR IGNORE INTO clusters (node, cluster, member) VALUES (?1, ?2, ?3)",
    [ST_INS_EVENT] = "INSERT INTO events (time, kind, node, detail) VALUES (?1, ?2, ?3, ?4)",
};

enum { MULTI_DEVICES, MULTI_GROUPS };

/* ---- the heartbeat cache ---- */

typedef struct {
    char *name;
    uint32_t h;
    bool online;
    bool has_inventory;
    bool pending;       /* last_seen newer than the database's */
    uint8_t *hash;      /* stored inventory hash (NULL: none) */
    size_t hash_len;
    char *boot_id;      /* NULL: unknown */
    int64_t last_seen;  /* newest known, flushed or not */
    uint64_t last_seq;  /* replay floor, flushed with last_seen */
} hb_node_t;

struct store {
    sqlite3 *db;
    sqlite3 *ro;
    char *path;
    sqlite3_stmt *st[ST__COUNT];
    sqlite3_stmt *multi[2]; /* MULTI_DEVICES, MULTI_GROUPS: several rows per INSERT */
    hb_node_t **tab; /* open addressing, cap a power of two */
    size_t tab_cap, tab_n;
    hb_node_t **pending;
    size_t n_pending, pending_cap;
    int flush_ms;
    int64_t flush_rows; /* rows store_flush updated: last_seen only */
    /* WAL checkpoints run on their own thread and connection, so the
     * writer never stops to copy pages into the database and fsync */
    pthread_t ck_thread;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    bool ck_running, ck_stop;
    sqlite3 *ck_db;
    bool batch;        /* inside store_batch_begin/_end */
    bool batch_open;   /* the batch's transaction has begun */
    bool batch_lost;   /* SQLite rolled the batch's transaction back itself */
    int64_t last_flush_ms;
    buf_t jb; /* scratch: JSON arrays being bound */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static hb_node_t *cache_find(store_t *s, const char *name)
{
    if (!s->tab_cap)
        return NULL;
    uint32_t h = name_hash(name);
    for (size_t i = h & (s->tab_cap - 1);; i = (i + 1) & (s->tab_cap - 1)) {
        hb_node_t *e = s->tab[i];
        if (!e)
            return NULL;
        if (e->h == h && strcmp(e->name, name) == 0)
            return e;
    }
}

static void cache_insert_slot(hb_node_t **tab, size_t cap, hb_node_t *e)
{
    size_t i = e->h & (cap - 1);
    while (tab[i])
        i = (i + 1) & (cap - 1);
    tab[i] = e;
}

static hb_node_t *cache_add(store_t *s, const char *name)
{
    if ((s->tab_n + 1) * 10 > s->tab_cap * 7) {
        size_t cap = s->tab_cap ? s->tab_cap * 2 : 64;
        hb_node_t **tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < s->tab_cap; i++)
            if (s->tab[i])
                cache_insert_slot(tab, cap, s->tab[i]);
        free(s->tab);
        s->tab = tab;
        s->tab_cap = cap;
    }
    hb_node_t *e = xcalloc(1, sizeof(*e));
    e->name = xstrdup(name);
    e->h = name_hash(name);
    cache_insert_slot(s->tab, s->tab_cap, e);
    s->tab_n++;
    return e;
}

static void cache_set_hash(hb_node_t *e, const void *hash, size_t len)
{
    free(e->hash);
    e->hash = NULL;
    e->hash_len = 0;
    if (hash && len) {
        e->hash = xmalloc(len);
        memcpy(e->hash, hash, len);
        e->hash_len = len;
    }
}

static void cache_set_boot_id(hb_node_t *e, const char *boot_id)
{
    if (!boot_id || (e->boot_id && strcmp(e->boot_id, boot_id) == 0))
        return;
    free(e->boot_id);
    e->boot_id = xstrdup(boot_id);
}

static void cache_free(store_t *s)
{
    for (size_t i = 0; i < s->tab_cap; i++) {
        hb_node_t *e = s->tab[i];
        if (!e)
            continue;
        free(e->name);
        free(e->hash);
        free(e->boot_id);
        free(e);
    }
    free(s->tab);
    free(s->pending);
    s->tab = s->pending = NULL;
    s->tab_cap = s->tab_n = s->n_pending = s->pending_cap = 0;
}

static void pending_add(store_t *s, hb_node_t *e)
{
    if (e->pending)
        return;
    if (s->n_pending == s->pending_cap) {
        s->pending_cap = s->pending_cap ? s->pending_cap * 2 : 64;
        s->pending = xrealloc(s->pending, s->pending_cap * sizeof(*s->pending));
    }
    s->pending[s->n_pending++] = e;
    e->pending = true;
}

/* ---- small helpers ---- */

static int fail(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **err, int rc, const char *fmt, ...)
{
    if (err) {
        buf_t b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        free(*err);
        *err = buf_steal(&b);
    }
    return rc;
}

static int db_fail(store_t *s, char **err, const char *what)
{
    return fail(err, -EIO, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* A cached statement, reset and with no bindings; NULL (and *err) if it
 * cannot be prepared. */
static sqlite3_stmt *stmt(store_t *s, int id, char **err)
{
    if (!s->st[id] &&
        sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL) != SQLITE_OK) {
        fail(err, -EIO, "cannot prepare a store statement: %s", sqlite3_errmsg(s->db));
        return NULL;
    }
    return s->st[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a cached statement that returns no rows. */
static int stmt_exec(store_t *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    stmt_done(st);
    (void)s;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

static int run(store_t *s, int id, char **err, const char *what)
{
    sqlite3_stmt *st = stmt(s, id, err);
    if (!st)
        return -EIO;
    if (sqlite3_step(st) != SQLITE_DONE) {
        int rc = db_fail(s, err, what);
        stmt_done(st);
        return rc;
    }
    stmt_done(st);
    return 0;
}

/* Outside a batch each change is its own transaction. Inside one, the
 * first change begins the batch's transaction and each change is a
 * savepoint in it, so a refused inventory is undone alone and the batch
 * commits once (store.h: store_batch_begin). */
static int tx_begin(store_t *s, char **err)
{
    if (!s->batch)
        return run(s, ST_BEGIN, err, "cannot start a transaction");
    if (s->batch_open && sqlite3_get_autocommit(s->db)) {
        /* an I/O error or a full disk ended the whole transaction */
        s->batch_lost = true;
        s->batch_open = false;
    }
    if (!s->batch_open) {
        if (run(s, ST_BEGIN, err, "cannot start a transaction") < 0)
            return -EIO;
        s->batch_open = true;
    }
    return run(s, ST_SAVEPOINT, err, "cannot start a transaction");
}
static int tx_commit(store_t *s, char **err)
{
    return run(s, s->batch ? ST_RELEASE : ST_COMMIT, err, "cannot commit");
}
static void tx_rollback(store_t *s)
{
    if (sqlite3_get_autocommit(s->db)) {
        if (s->batch_open)
            s->batch_lost = true, s->batch_open = false;
        return;
    }
    if (!s->batch) {
        run(s, ST_ROLLBACK, NULL, "rollback");
        return;
    }
    if (run(s, ST_ROLLBACK_TO, NULL, "rollback") == 0)
        run(s, ST_RELEASE, NULL, "rollback");
}

/* proto3 leaves unset strings empty; the store keeps unknown as NULL. */
static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_tri(sqlite3_stmt *st, int i, Pcifleet__Tri t)
{
    if (t == PCIFLEET__TRI__TRI_TRUE)
        sqlite3_bind_int(st, i, 1);
    else if (t == PCIFLEET__TRI__TRI_FALSE)
        sqlite3_bind_int(st, i, 0);
    else
        sqlite3_bind_null(st, i);
}

static void bind_json_array(store_t *s, sqlite3_stmt *st, int i, char *const *v, size_t n)
{
    buf_reset(&s->jb);
    jtext_array(&s->jb, v, n);
    sqlite3_bind_text(st, i, s->jb.p, (int)s->jb.len, SQLITE_TRANSIENT);
}

static const char *str_or_empty(const char *v) { return v ? v : ""; }

static int insert_event(store_t *s, int64_t now, const char *kind, const char *node, const char *detail,
                        char **err)
{
    sqlite3_stmt *st = stmt(s, ST_INS_EVENT, err);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (node)
        sqlite3_bind_text(st, 3, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, detail ? detail : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        int rc = db_fail(s, err, "cannot log an event");
        stmt_done(st);
        return rc;
    }
    stmt_done(st);
    return 0;
}

static int insert_eventf(store_t *s, int64_t now, const char *kind, const char *node, char **err,
                         const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int insert_eventf(store_t *s, int64_t now, const char *kind, const char *node, char **err,
                         const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    int rc = insert_event(s, now, kind, node, b.p, err);
    buf_free(&b);
    return rc;
}

/* ---- opening and migrations ---- */

static int exec_sql(sqlite3 *db, const char *sql, char **err, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail(err, -EIO, "%s: %s", what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *val, char **err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return fail(err, -EIO, "%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *val = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = fail(err, -EIO, "%s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

int store_schema_version(void) { return DB_MIGRATION_COUNT; }

static int migrate(store_t *s, char **err)
{
    for (;;) {
        if (exec_sql(s->db, "BEGIN IMMEDIATE", err, "cannot lock the database for migrations") < 0)
            return -EIO;
        int64_t version = 0, app_id = 0, objects = 0;
        int rc = pragma_int(s->db, "PRAGMA user_version", &version, err);
        if (rc == 0)
            rc = pragma_int(s->db, "PRAGMA application_id", &app_id, err);
        if (rc == 0)
            rc = pragma_int(s->db, "SELECT count(*) FROM sqlite_schema", &objects, err);
        if (rc < 0)
            goto out;
        if (app_id != 0 && app_id != STORE_APP_ID) {
            rc = fail(err, -EINVAL, "%s is not a pcifleet database (application_id %" PRId64 ")", s->path,
                      app_id);
            goto out;
        }
        if (version == 0 && app_id == 0 && objects > 0) {
            rc = fail(err, -EINVAL, "%s holds tables but is not a pcifleet database; refusing to change it",
                      s->path);
            goto out;
        }
        if (version > DB_MIGRATION_COUNT) {
            rc = fail(err, -ENOTSUP,
                      "%s has schema version %" PRId64 ", newer than this program knows (%d); "
                      "run a newer pcifleetd or restore a backup",
                      s->path, version, DB_MIGRATION_COUNT);
            goto out;
        }
        if (version == DB_MIGRATION_COUNT) {
            rc = exec_sql(s->db, "COMMIT", err, "cannot commit");
            if (rc < 0)
                goto out;
            return 0;
        }
        char what[64];
        snprintf(what, sizeof(what), "migration %04" PRId64 " failed", version + 1);
        rc = exec_sql(s->db, db_migrations[version], err, what);
        if (rc == 0) {
            char sql[96];
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64 "; PRAGMA application_id = %d",
                     version + 1, STORE_APP_ID);
            rc = exec_sql(s->db, sql, err, what);
        }
        if (rc == 0)
            rc = exec_sql(s->db, "COMMIT", err, what);
        if (rc < 0)
            goto out;
        continue;
    out:
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
}

/* ---- the checkpointer ---- */

#define CHECKPOINT_EVERY_MS 250

static void *checkpointer(void *arg)
{
    store_t *s = arg;
    pthread_mutex_lock(&s->ck_mu);
    while (!s->ck_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CHECKPOINT_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &until);
        if (s->ck_stop)
            break;
        pthread_mutex_unlock(&s->ck_mu);
        /* PASSIVE: copies what no reader still needs, never waits for the
         * writer or a reader */
        sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_lock(&s->ck_mu);
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

/* Starts the checkpointer for a database in a file; without one (or if it
 * cannot start) the writer checkpoints by itself, as SQLite does. */
static void checkpointer_start(store_t *s)
{
    if (strcmp(s->path, ":memory:") == 0 || strncmp(s->path, "file:", 5) == 0)
        return;
    if (sqlite3_open_v2(s->path, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return;
    }
    pthread_mutex_init(&s->ck_mu, NULL);
    pthread_cond_init(&s->ck_cv, NULL);
    if (pthread_create(&s->ck_thread, NULL, checkpointer, s) != 0) {
        pthread_mutex_destroy(&s->ck_mu);
        pthread_cond_destroy(&s->ck_cv);
        sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return;
    }
    s->ck_running = true;
    /* the writer checkpoints only as a backstop, should the WAL outgrow
     * what the checkpointer keeps up with (400 MB of pages) */
    exec_sql(s->db, "PRAGMA wal_autocheckpoint = 100000", NULL, "");
}

static void checkpointer_stop(store_t *s)
{
    if (!s->ck_running)
        return;
    pthread_mutex_lock(&s->ck_mu);
    s->ck_stop = true;
    pthread_cond_signal(&s->ck_cv);
    pthread_mutex_unlock(&s->ck_mu);
    pthread_join(s->ck_thread, NULL);
    pthread_mutex_destroy(&s->ck_mu);
    pthread_cond_destroy(&s->ck_cv);
    sqlite3_close(s->ck_db);
    s->ck_db = NULL;
    s->ck_running = false;
}

int store_open(const char *path, store_t **out, char **err)
{
    /* SQLite's memory statistics take a global mutex around every
     * allocation; nothing here reads them. Only possible before SQLite is
     * initialized; later calls are refused harmlessly. */
    static bool configured;
    if (!configured) {
        configured = true;
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }

    *out = NULL;
    if (!path || !*path)
        return fail(err, -EINVAL, "no database file given");
    store_t *s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(path);
    s->flush_ms = STORE_DEFAULT_FLUSH_MS;
    s->last_flush_ms = mono_ms();
    buf_reset(&s->jb);
    int rc;
    /* NOMUTEX: a store is used by one thread at a time (see store.h). */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = fail(err, -EIO, "cannot open database %s: %s", path,
                  s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    /* The first read finds out whether the file is a database at all. */
    char *jm = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        jm = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (!jm) {
        rc = fail(err, -EIO, "cannot use database %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    bool wal_ok = strcmp(jm, "wal") == 0 || strcmp(jm, "memory") == 0;
    free(jm);
    if (!wal_ok) {
        rc = fail(err, -EIO, "cannot switch %s to WAL journaling", path);
        goto fail;
    }
    rc = exec_sql(s->db,
                  "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
                  " PRAGMA wal_autocheckpoint = 4000",
                  err, "cannot set up the database connection");
    if (rc < 0)
        goto fail;
    int64_t fk = 0;
    rc = pragma_int(s->db, "PRAGMA foreign_keys", &fk, err);
    if (rc < 0)
        goto fail;
    if (fk != 1) {
        rc = fail(err, -ENOTSUP, "this SQLite cannot enforce foreign keys");
        goto fail;
    }
    rc = migrate(s, err);
    if (rc < 0)
        goto fail;
    checkpointer_start(s);
    *out = s;
    return 0;
fail:
    store_close(&s);
    return rc;
}

void store_close(store_t **sp)
{
    if (!sp || !*sp)
        return;
    store_t *s = *sp;
    if (s->db && s->n_pending)
        store_flush(s, NULL);
    checkpointer_stop(s);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    for (int i = 0; i < 2; i++)
        sqlite3_finalize(s->multi[i]);
    if (s->ro)
        sqlite3_close(s->ro);
    if (s->db)
        sqlite3_close(s->db);
    cache_free(s);
    buf_free(&s->jb);
    free(s->path);
    free(s);
    *sp = NULL;
}

struct sqlite3 *store_db(store_t *s) { return s->db; }
const char *store_path(const store_t *s) { return s->path; }

void store_set_flush_interval(store_t *s, int ms) { s->flush_ms = ms < 0 ? 0 : ms; }

void store_batch_begin(store_t *s)
{
    s->batch = true;
    s->batch_open = s->batch_lost = false;
}

int store_batch_end(store_t *s, char **err)
{
    int rc = 0;
    if (s->batch_open && sqlite3_get_autocommit(s->db))
        s->batch_lost = true;
    else if (s->batch_open && run(s, ST_COMMIT, err, "cannot commit") < 0)
        rc = -EIO;
    if (rc == 0 && s->batch_lost)
        rc = fail(err, -EIO, "the database rolled back a batch of changes after an error");
    if (rc < 0) {
        if (!sqlite3_get_autocommit(s->db))
            run(s, ST_ROLLBACK, NULL, "rollback");
        /* the node table in memory may hold what was rolled back: forget
         * it; it is read again from the database on use */
        cache_free(s);
    }
    s->batch = s->batch_open = s->batch_lost = false;
    return rc;
}

sqlite3 *store_reader(store_t *s, char **err)
{
    if (s->ro)
        return s->ro;
    if (strcmp(s->path, ":memory:") == 0 || strncmp(s->path, "file:", 5) == 0) {
        fail(err, -ENOTSUP, "queries need the database in a file, not %s", s->path);
        return NULL;
    }
    sqlite3 *ro = NULL;
    if (sqlite3_open_v2(s->path, &ro, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        fail(err, -EIO, "cannot open %s read-only: %s", s->path, ro ? sqlite3_errmsg(ro) : "out of memory");
        sqlite3_close(ro);
        return NULL;
    }
    sqlite3_extended_result_codes(ro, 1);
    sqlite3_busy_timeout(ro, STORE_BUSY_TIMEOUT_MS);
    sqlite3_db_config(ro, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(ro, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    sqlite3_limit(ro, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_limit(ro, SQLITE_LIMIT_LENGTH, 16 * 1024 * 1024);
    sqlite3_limit(ro, SQLITE_LIMIT_SQL_LENGTH, 100 * 1000);
    /* The table-valued JSON functions register themselves on first use with
     * a write to the (in-memory) schema; doing that now keeps the sql
     * guard's authorizer from ever seeing it. */
    char *msg = NULL;
    if (sqlite3_exec(ro,
                     "PRAGMA cache_size = -32768; SELECT * FROM json_each('[]'); SELECT * FROM json_tree('[]');"
                     " SELECT count(*) FROM sqlite_schema",
                     NULL, NULL, &msg) != SQLITE_OK) {
        fail(err, -EIO, "cannot read %s: %s", s->path, msg ? msg : sqlite3_errmsg(ro));
        sqlite3_free(msg);
        sqlite3_close(ro);
        return NULL;
    }
    s->ro = ro;
    return ro;
}

/* ---- heartbeats ---- */

/* Finds node in the cache, loading it from the database on first use;
 * *e is NULL when the database has no such node. */
static int cache_get(store_t *s, const char *node, hb_node_t **e, char **err)
{
    *e = cache_find(s, node);
    if (*e)
        return 0;
    sqlite3_stmt *st = stmt(s, ST_NODE_GET, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        hb_node_t *n = cache_add(s, node);
        n->online = sqlite3_column_int(st, 0) != 0;
        n->last_seen = sqlite3_column_int64(st, 1);
        cache_set_boot_id(n, (const char *)sqlite3_column_text(st, 2));
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            n->has_inventory = true;
            cache_set_hash(n, sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
        }
        int64_t seq = sqlite3_column_int64(st, 4);
        n->last_seq = seq > 0 ? (uint64_t)seq : 0;
        *e = n;
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = db_fail(s, err, "cannot read node");
    }
    stmt_done(st);
    return rc;
}

int store_flush(store_t *s, char **err)
{
    s->last_flush_ms = mono_ms();
    if (!s->n_pending)
        return 0;
    bool own_tx = sqlite3_get_autocommit(s->db) != 0;
    if (own_tx && tx_begin(s, err) < 0)
        return -EIO;
    sqlite3_stmt *st = stmt(s, ST_NODE_LAST_SEEN, err);
    if (!st)
        goto fail;
    for (size_t i = 0; i < s->n_pending; i++) {
        hb_node_t *e = s->pending[i];
        sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, e->last_seen);
        sqlite3_bind_int64(st, 3, e->last_seq <= (uint64_t)INT64_MAX ? (int64_t)e->last_seq : INT64_MAX);
        if (stmt_exec(s, st) < 0) {
            db_fail(s, err, "cannot record heartbeats");
            goto fail;
        }
        s->flush_rows += sqlite3_changes64(s->db);
    }
    if (own_tx && tx_commit(s, err) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_pending; i++)
        s->pending[i]->pending = false;
    s->n_pending = 0;
    return 0;
fail:
    if (own_tx)
        tx_rollback(s);
    return -EIO;
}

size_t store_pending_heartbeats(const store_t *s) { return s->n_pending; }

int store_seq_floor(store_t *s, const char *node, uint64_t *floor, char **err)
{
    *floor = 0;
    hb_node_t *e;
    int rc = cache_get(s, node, &e, err);
    if (rc < 0)
        return rc;
    if (e)
        *floor = e->last_seq;
    return 0;
}

void store_seq_accept(store_t *s, const char *node, uint64_t seq)
{
    /* After the handler: the node's row exists by now unless it refused. */
    hb_node_t *e = cache_find(s, node);
    if (!e || seq <= e->last_seq)
        return;
    e->last_seq = seq;
    pending_add(s, e);
}

uint64_t store_content_version(store_t *s)
{
    /* every row this connection wrote, minus the last_seen updates */
    return (uint64_t)(sqlite3_total_changes64(s->db) - s->flush_rows);
}

int store_heartbeat(store_t *s, const char *node, const uint8_t *hash, size_t hash_len, const char *boot_id,
                    int64_t now, bool *known, bool *hash_matches, char **err)
{
    bool k = false, m = false;
    if (known)
        *known = false;
    if (hash_matches)
        *hash_matches = false;
    if (!node || !*node)
        return fail(err, -EINVAL, "a heartbeat needs a node name");
    const char *bid = boot_id && *boot_id ? boot_id : NULL;
    hb_node_t *e;
    int rc = cache_get(s, node, &e, err);
    if (rc < 0)
        return rc;

    if (!e) { /* never seen: the node exists from now on, without inventory */
        if (tx_begin(s, err) < 0)
            return -EIO;
        sqlite3_stmt *st = stmt(s, ST_NODE_NEW, err);
        if (!st)
            goto fail;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        bind_opt_text(st, 3, bid);
        if (stmt_exec(s, st) < 0) {
            db_fail(s, err, "cannot record node");
            goto fail;
        }
        if (insert_event(s, now, "node-online", node, "first heartbeat; no inventory yet", err) < 0 ||
            tx_commit(s, err) < 0)
            goto fail;
        e = cache_add(s, node);
        e->online = true;
        e->last_seen = now;
        cache_set_boot_id(e, bid);
        return 0;
    }

    k = e->has_inventory;
    m = k && hash && hash_len == e->hash_len && memcmp(hash, e->hash, hash_len) == 0;
    if (known)
        *known = k;
    if (hash_matches)
        *hash_matches = m;

    bool rebooted = bid && e->boot_id && strcmp(bid, e->boot_id) != 0;
    if (!e->online || (bid && !e->boot_id) || rebooted) {
        /* A state change: written now, with its events. */
        if (tx_begin(s, err) < 0)
            return -EIO;
        sqlite3_stmt *st = stmt(s, ST_NODE_BEAT, err);
        if (!st)
            goto fail;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now);
        bind_opt_text(st, 3, bid);
        if (stmt_exec(s, st) < 0) {
            db_fail(s, err, "cannot record heartbeat");
            goto fail;
        }
        if (!e->online && insert_eventf(s, now, "node-online", node, err, "heartbeat after %" PRId64 " s of silence",
                                        now > e->last_seen ? now - e->last_seen : 0) < 0)
            goto fail;
        if (rebooted && insert_eventf(s, now, "node-rebooted", node, err, "boot id %s -> %s", e->boot_id, bid) < 0)
            goto fail;
        if (tx_commit(s, err) < 0)
            goto fail;
        e->online = true;
        if (now > e->last_seen)
            e->last_seen = now;
        cache_set_boot_id(e, bid);
        return 0;
    }

    /* Unchanged: only last_seen moves, buffered until the next flush. */
    if (now > e->last_seen) {
        e->last_seen = now;
        pending_add(s, e);
    }
    if (s->n_pending && (s->flush_ms == 0 || mono_ms() - s->last_flush_ms >= s->flush_ms))
        return store_flush(s, err);
    return 0;
fail:
    tx_rollback(s);
    return -EIO;
}

/* ---- offline marking and events ---- */

int store_mark_offline(store_t *s, int64_t now, int64_t max_age, strv_t *went_offline, char **err)
{
    if (store_flush(s, err) < 0)
        return -EIO;
    strv_t names = STRV_INIT;
    int64_t *seen = NULL;
    size_t seen_cap = 0;
    if (tx_begin(s, err) < 0)
        return -EIO;
    sqlite3_stmt *st = stmt(s, ST_NODE_MARK_OFFLINE, err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, now - max_age);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (names.n == seen_cap) {
            seen_cap = seen_cap ? seen_cap * 2 : 16;
            seen = xrealloc(seen, seen_cap * sizeof(*seen));
        }
        seen[names.n] = sqlite3_column_int64(st, 1);
        strv_add(&names, (const char *)sqlite3_column_text(st, 0));
    }
    if (rc != SQLITE_DONE) {
        db_fail(s, err, "cannot mark nodes offline");
        stmt_done(st);
        goto fail;
    }
    stmt_done(st);
    for (size_t i = 0; i < names.n; i++)
        if (insert_eventf(s, now, "node-offline", names.v[i], err, "no heartbeat for %" PRId64 " s",
                          now - seen[i]) < 0)
            goto fail;
    if (tx_commit(s, err) < 0)
        goto fail;
    for (size_t i = 0; i < names.n; i++) {
        hb_node_t *e = cache_find(s, names.v[i]);
        if (e)
            e->online = false;
        if (went_offline)
            strv_add(went_offline, names.v[i]);
    }
    strv_free(&names);
    free(seen);
    return 0;
fail:
    tx_rollback(s);
    strv_free(&names);
    free(seen);
    return -EIO;
}

static bool kind_ok(const char *kind)
{
    if (!kind || !*kind)
        return false;
    for (const char *p = kind; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

int store_event(store_t *s, int64_t now, const char *kind, const char *node, const char *detail, char **err)
{
    if (!kind_ok(kind))
        return fail(err, -EINVAL, "event kind '%s' is not lowercase words joined by '-'", str_or_empty(kind));
    return insert_event(s, now, kind, node && *node ? node : NULL, detail, err);
}

/* ---- ingest ---- */

static const char *const verdicts[] = {"ready", "needs-modules", "needs-reboot", "needs-kernel-args",
                                       "needs-firmware", "unsupported", NULL};
static const char *const loaders[] = {"grub", "systemd-boot", "unknown", NULL};

static bool in_list(const char *v, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(v, list[i]) == 0)
            return true;
    return false;
}

static int cmp_device_addr(const void *a, const void *b)
{
    const Pcifleet__Device *x = *(Pcifleet__Device *const *)a, *y = *(Pcifleet__Device *const *)b;
    return strcmp(str_or_empty(x->address), str_or_empty(y->address));
}

static int cmp_endpoint_addr(const void *a, const void *b)
{
    const Pcifleet__GroupEndpoint *x = *(Pcifleet__GroupEndpoint *const *)a;
    const Pcifleet__GroupEndpoint *y = *(Pcifleet__GroupEndpoint *const *)b;
    return strcmp(str_or_empty(x->address), str_or_empty(y->address));
}

static const Pcifleet__Device *find_device(Pcifleet__Device **sorted, size_t n, const char *addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(str_or_empty(sorted[mid]->address), addr);
        if (c == 0)
            return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const Pcifleet__GroupEndpoint *find_endpoint(Pcifleet__GroupEndpoint **sorted, size_t n, const char *addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(str_or_empty(sorted[mid]->address), addr);
        if (c == 0)
            return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* What was stored for a node before this ingest. */
typedef struct {
    bool exists, online, has_inventory;
    int64_t last_seen;
    char *boot_id;
    char *verdict;
    strv_t dev_addr;  /* sorted */
    strv_t dev_desc;  /* "8086:1533 I210 ..." by the same index */
    strv_t holds;     /* sorted "source\tvm_id\taddress" of running VMs */
} old_state_t;

static void old_state_free(old_state_t *o)
{
    free(o->boot_id);
    free(o->verdict);
    strv_free(&o->dev_addr);
    strv_free(&o->dev_desc);
    strv_free(&o->holds);
}

static int old_state_read(store_t *s, const char *node, old_state_t *o, char **err)
{
    sqlite3_stmt *st = stmt(s, ST_NODE_GET, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        o->exists = true;
        o->online = sqlite3_column_int(st, 0) != 0;
        o->last_seen = sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 2) != SQLITE_NULL)
            o->boot_id = xstrdup((const char *)sqlite3_column_text(st, 2));
        o->has_inventory = sqlite3_column_type(st, 3) != SQLITE_NULL;
    } else if (rc != SQLITE_DONE) {
        stmt_done(st);
        return db_fail(s, err, "cannot read node");
    }
    stmt_done(st);
    if (!o->has_inventory)
        return 0;

    st = stmt(s, ST_OLD_VERDICT, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        o->verdict = xstrdup((const char *)sqlite3_column_text(st, 0));
    stmt_done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, err, "cannot read the stored IOMMU state");

    st = stmt(s, ST_OLD_DEVICES, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        strv_add(&o->dev_addr, (const char *)sqlite3_column_text(st, 0));
        const char *name = (const char *)sqlite3_column_text(st, 3);
        strv_take(&o->dev_desc, xasprintf("%04x:%04x%s%s", (unsigned)sqlite3_column_int(st, 1),
                                          (unsigned)sqlite3_column_int(st, 2), name ? " " : "", name ? name : ""));
    }
    stmt_done(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, err, "cannot read the stored devices");

    st = stmt(s, ST_OLD_HOLDS, err);
    if (!st)
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        strv_take(&o->holds, xasprintf("%s\t%s\t%s", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
                                       sqlite3_column_text(st, 2)));
    stmt_done(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, err, "cannot read the stored passthrough entries");
    strv_sort(&o->holds);
    return 0;
}

static bool sorted_contains(const strv_t *l, const char *key)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid], key);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static char *device_desc(const Pcifleet__Device *d)
{
    const char *name = d->device_name && *d->device_name ? d->device_name : NULL;
    return xasprintf("%04x:%04x%s%s", d->vendor_id, d->device_id, name ? " " : "", name ? name : "");
}

/* Computes the inventory hash the way the agent does: SHA-256 over the
 * encoded inventory with the hash field empty. */
static void inventory_hash(const Pcifleet__Inventory *inv, uint8_t out[32])
{
    Pcifleet__Inventory copy = *inv;
    copy.hash.data = NULL;
    copy.hash.len = 0;
    size_t len = pcifleet__inventory__get_packed_size(&copy);
    uint8_t *p = xmalloc(len);
    pcifleet__inventory__pack(&copy, p);
    crypto_hash_sha256(out, p, len);
    free(p);
}

/* ---- multi-row inserts ---- */

#define MULTI_ROWS 16
#define DEVICE_COLS 26
#define GROUP_COLS 4

/* INSERT ... VALUES (?,...),... for MULTI_ROWS rows: the columns of
 * ST_INS_DEVICE / ST_INS_GROUP, row r's column c bound at r * cols + c. */
static sqlite3_stmt *stmt_multi(store_t *s, int which, char **err)
{
    if (s->multi[which])
        return s->multi[which];
    const char *one = stmt_sql[which == MULTI_DEVICES ? ST_INS_DEVICE : ST_INS_GROUP];
    int cols = which == MULTI_DEVICES ? DEVICE_COLS : GROUP_COLS;
    buf_t sql = BUF_INIT;
    buf_append(&sql, one, (size_t)(strstr(one, " VALUES ") - one));
    buf_puts(&sql, " VALUES ");
    for (int r = 0; r < MULTI_ROWS; r++) {
        buf_puts(&sql, r ? ", (" : "(");
        for (int c = 0; c < cols; c++)
            buf_puts(&sql, c ? ", ?" : "?");
        buf_putc(&sql, ')');
    }
    int rc = sqlite3_prepare_v3(s->db, sql.p, (int)sql.len, SQLITE_PREPARE_PERSISTENT, &s->multi[which], NULL);
    buf_free(&sql);
    if (rc != SQLITE_OK) {
        fail(err, -EIO, "cannot prepare a store statement: %s", sqlite3_errmsg(s->db));
        return NULL;
    }
    return s->multi[which];
}

/* Binds one device's columns (ST_INS_DEVICE's order) at off + 1 ... */
static void bind_device(store_t *s, sqlite3_stmt *st, int off, const char *node, const Pcifleet__Device *d,
                        Pcifleet__GroupEndpoint **ep_sorted, size_t n_ep)
{
    sqlite3_bind_text(st, off + 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, off + 2, str_or_empty(d->address), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, off + 3, d->class_code);
    bind_opt_text(st, off + 4, d->class_name);
    sqlite3_bind_int64(st, off + 5, d->vendor_id);
    sqlite3_bind_int64(st, off + 6, d->device_id);
    sqlite3_bind_int64(st, off + 7, d->subsystem_vendor_id);
    sqlite3_bind_int64(st, off + 8, d->subsystem_device_id);
    sqlite3_bind_int64(st, off + 9, d->revision);
    bind_opt_text(st, off + 10, d->vendor_name);
    bind_opt_text(st, off + 11, d->device_name);
    bind_opt_text(st, off + 12, d->driver);
    if (d->iommu_group >= 0)
        sqlite3_bind_int64(st, off + 13, d->iommu_group);
    if (d->numa_node >= 0)
        sqlite3_bind_int(st, off + 14, d->numa_node);
    sqlite3_bind_int(st, off + 15, d->bridge ? 1 : 0);
    sqlite3_bind_int(st, off + 16, d->has_acs ? 1 : 0);
    if (d->has_acs) {
        sqlite3_bind_int64(st, off + 17, d->acs_cap);
        sqlite3_bind_int64(st, off + 18, d->acs_ctl);
    }
    if (d->has_sriov) {
        sqlite3_bind_int64(st, off + 19, d->sriov_total);
        sqlite3_bind_int64(st, off + 20, d->sriov_num);
    }
    bind_opt_text(st, off + 21, d->physfn);
    bind_opt_text(st, off + 22, d->link_speed);
    if (d->link_width)
        sqlite3_bind_int64(st, off + 23, d->link_width);
    const Pcifleet__GroupEndpoint *ep =
        d->iommu_group >= 0 ? find_endpoint(ep_sorted, n_ep, str_or_empty(d->address)) : NULL;
    if (ep) {
        sqlite3_bind_int(st, off + 24, ep->assignable_alone ? 1 : 0);
        bind_json_array(s, st, off + 25, ep->slot_functions, ep->n_slot_functions);
        bind_json_array(s, st, off + 26, ep->blockers, ep->n_blockers);
    }
}

static void bind_group(sqlite3_stmt *st, int off, const char *node, const Pcifleet__Group *g)
{
    sqlite3_bind_text(st, off + 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, off + 2, g->id);
    bind_opt_text(st, off + 3, g->type);
    sqlite3_bind_int(st, off + 4, g->isolated ? 1 : 0);
}

static int ingest_rows(store_t *s, const char *node, const Pcifleet__Inventory *inv, bool had_inventory,
                       const uint8_t *hash, size_t hash_len, int64_t now, Pcifleet__Device **dev_sorted,
                       Pcifleet__GroupEndpoint **ep_sorted, size_t n_ep, char **err)
{
    static const int dels[] = {ST_DEL_PASSTHROUGH, ST_DEL_VMS,    ST_DEL_GROUPS, ST_DEL_NICS,
                               ST_DEL_DEVICES,     ST_DEL_ERRORS, ST_DEL_IOMMU, ST_DEL_MAPPINGS, ST_DEL_CLUSTERS};
    sqlite3_stmt *st;
    /* a node's rows come only with an inventory (which sets its hash in the
     * same transaction): without one there is nothing to remove */
    for (size_t i = 0; had_inventory && i < sizeof(dels) / sizeof(dels[0]); i++) {
        if (!(st = stmt(s, dels[i], err)))
            return -EIO;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        if (stmt_exec(s, st) < 0)
            return db_fail(s, err, "cannot remove the old inventory");
    }

    /* the node */
    if (!(st = stmt(s, ST_NODE_UPSERT, err)))
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    bind_opt_text(st, 3, inv->boot_id);
    bind_opt_text(st, 4, inv->agent_version);
    bind_opt_text(st, 5, inv->kernel_release);
    bind_opt_text(st, 6, inv->cpu_vendor);
    bind_opt_text(st, 7, inv->cpu_model);
    bind_tri(st, 8, inv->cpu_virtualization);
    sqlite3_bind_blob(st, 9, hash, (int)hash_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (int64_t)inv->n_devices);
    sqlite3_bind_int64(st, 11, (int64_t)inv->n_nics);
    sqlite3_bind_int64(st, 12, (int64_t)inv->n_vms);
    sqlite3_bind_int64(st, 13, (int64_t)inv->n_errors);
    if (stmt_exec(s, st) < 0)
        return db_fail(s, err, "cannot store the node");

    /* IOMMU, boot loader, vfio */
    const Pcifleet__Iommu *io = inv->iommu;
    const Pcifleet__Boot *bo = inv->boot;
    const Pcifleet__Vfio *vf = inv->vfio;
    if (!(st = stmt(s, ST_INS_IOMMU, err)))
        return -EIO;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    if (io) {
        bind_opt_text(st, 2, io->firmware);
        sqlite3_bind_int(st, 3, io->enabled ? 1 : 0);
        bind_json_array(s, st, 4, io->units, io->n_units);
        sqlite3_bind_int64(st, 5, io->groups);
        bind_opt_text(st, 6, io->default_domain);
        bind_tri(st, 7, io->interrupt_remapping);
        bind_opt_text(st, 8, io->cmdline);
        bind_opt_text(st, 9, io->verdict);
        bind_json_array(s, st, 10, io->reasons, io->n_reasons);
    } else {
        sqlite3_bind_text(st, 4, "[]", 2, SQLITE_STATIC);
        sqlite3_bind_text(st, 10, "[]", 2, SQLITE_STATIC);
    }
    if (bo) {
        bind_opt_text(st, 11, bo->loader);
        bind_opt_text(st, 12, bo->cmdline_file);
        bind_json_array(s, st, 13, bo->configured_args, bo->n_configured_args);
        bind_opt_text(st, 14, bo->refresh_command);
        sqlite3_bind_int(st, 15, bo->proxmox_boot_tool ? 1 : 0);
    } else {
        sqlite3_bind_text(st, 13, "[]", 2, SQLITE_STATIC);
    }
    if (vf) {
        bind_json_array(s, st, 16, vf->required, vf->n_required);
        bind_json_array(s, st, 17, vf->loaded, vf->n_loaded);
        bind_json_array(s, st, 18, vf->configured, vf->n_configured);
        bind_json_array(s, st, 19, vf->missing, vf->n_missing);
    } else {
        for (int i = 16; i <= 19; i++)
            sqlite3_bind_text(st, i, "[]", 2, SQLITE_STATIC);
    }
    if (stmt_exec(s, st) < 0)
        return db_fail(s, err, "cannot store the IOMMU state");

    /* devices, then groups (their members are the devices above): several
     * rows per INSERT, since SQLite's cost per statement (start, foreign
     * key checks, halt) is most of what a small row costs */
    size_t at = 0;
    while (at < inv->n_devices) {
        bool multi = inv->n_devices - at >= MULTI_ROWS;
        size_t rows = multi ? MULTI_ROWS : 1;
        if (!(st = multi ? stmt_multi(s, MULTI_DEVICES, err) : stmt(s, ST_INS_DEVICE, err)))
            return -EIO;
        for (size_t r = 0; r < rows; r++)
            bind_device(s, st, (int)(r * DEVICE_COLS), node, inv->devices[at + r], ep_sorted, n_ep);
        if (stmt_exec(s, st) < 0) {
            if (!multi)
                return fail(err, -EIO, "device %s: %s", str_or_empty(inv->devices[at]->address),
                            sqlite3_errmsg(s->db));
            /* the failed statement changed nothing: redo its rows one by
             * one to name the device that is wrong */
            for (size_t r = 0; r < rows; r++) {
                const Pcifleet__Device *d = inv->devices[at + r];
                if (!(st = stmt(s, ST_INS_DEVICE, err)))
                    return -EIO;
                bind_device(s, st, 0, node, d, ep_sorted, n_ep);
                if (stmt_exec(s, st) < 0)
                    return fail(err, -EIO, "device %s: %s", str_or_empty(d->address), sqlite3_errmsg(s->db));
            }
        }
        at += rows;
    }
    at = 0;
    while (at < inv->n_groups) {
        bool multi = inv->n_groups - at >= MULTI_ROWS;
        size_t rows = multi ? MULTI_ROWS : 1;
        if (!(st = multi ? stmt_multi(s, MULTI_GROUPS, err) : stmt(s, ST_INS_GROUP, err)))
            return -EIO;
        for (size_t r = 0; r < rows; r++)
            bind_group(st, (int)(r * GROUP_COLS), node, inv->groups[at + r]);
        if (stmt_exec(s, st) < 0) {
            if (!multi)
                return fail(err, -EIO, "group %" PRId64 ": %s", inv->groups[at]->id, sqlite3_errmsg(s->db));
            for (size_t r = 0; r < rows; r++) {
                const Pcifleet__Group *g = inv->groups[at + r];
                if (!(st = stmt(s, ST_INS_GROUP, err)))
                    return -EIO;
                bind_group(st, 0, node, g);
                if (stmt_exec(s, st) < 0)
                    return fail(err, -EIO, "group %" PRId64 ": %s", g->id, sqlite3_errmsg(s->db));
            }
        }
        at += rows;
    }

    /* NICs, with the device and isolation facts the queries need */
    if (!(st = stmt(s, ST_INS_NIC, err)))
        return -EIO;
    strv_t vmids = STRV_INIT;
    for (size_t i = 0; i < inv->n_nics; i++) {
        const Pcifleet__Nic *c = inv->nics[i];
        const char *addr = str_or_empty(c->address);
        const Pcifleet__Device *d = find_device(dev_sorted, inv->n_devices, addr);
        const Pcifleet__GroupEndpoint *ep = find_endpoint(ep_sorted, n_ep, addr);
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, addr, -1, SQLITE_STATIC);
        bind_opt_text(st, 3, c->ifname);
        bind_opt_text(st, 4, c->mac);
        if (c->speed_mbps >= 0)
            sqlite3_bind_int64(st, 5, c->speed_mbps);
        bind_opt_text(st, 6, c->operstate);
        sqlite3_bind_int(st, 7, c->management ? 1 : 0);
        bind_opt_text(st, 8, c->management_via);
        sqlite3_bind_int(st, 9, c->is_vf ? 1 : 0);
        bind_opt_text(st, 10, c->driver && *c->driver ? c->driver : d ? d->driver : NULL);
        if (d) {
            sqlite3_bind_int64(st, 11, d->vendor_id);
            sqlite3_bind_int64(st, 12, d->device_id);
            bind_opt_text(st, 13, d->vendor_name);
            bind_opt_text(st, 14, d->device_name);
            if (d->iommu_group >= 0)
                sqlite3_bind_int64(st, 15, d->iommu_group);
            if (d->numa_node >= 0)
                sqlite3_bind_int(st, 16, d->numa_node);
        }
        if (ep)
            sqlite3_bind_int(st, 17, ep->assignable_alone ? 1 : 0);
        for (size_t v = 0; v < inv->n_vms; v++) {
            const Pcifleet__Vm *vm = inv->vms[v];
            for (size_t h = 0; h < vm->n_hostpci; h++)
                for (size_t a = 0; a < vm->hostpci[h]->n_addresses; a++)
                    if (strcmp(str_or_empty(vm->hostpci[h]->addresses[a]), addr) == 0)
                        strv_add_unique(&vmids, str_or_empty(vm->id));
        }
        bind_json_array(s, st, 18, vmids.v, vmids.n);
        strv_free(&vmids);
        if (stmt_exec(s, st) < 0)
            return fail(err, -EIO, "NIC %s: %s", addr, sqlite3_errmsg(s->db));
    }

    /* VMs and their passthrough entries */
    sqlite3_stmt *pt = stmt(s, ST_INS_PASSTHROUGH, err);
    if (!pt || !(st = stmt(s, ST_INS_VM, err)))
        return -EIO;
    for (size_t i = 0; i < inv->n_vms; i++) {
        const Pcifleet__Vm *vm = inv->vms[i];
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, str_or_empty(vm->source), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, str_or_empty(vm->id), -1, SQLITE_STATIC);
        bind_opt_text(st, 4, vm->name);
        bind_opt_text(st, 5, vm->machine);
        bind_tri(st, 6, vm->running);
        sqlite3_bind_int(st, 7, vm->migratable ? 1 : 0);
        bind_json_array(s, st, 8, vm->reasons, vm->n_reasons);
        if (stmt_exec(s, st) < 0)
            return fail(err, -EIO, "VM %s %s: %s", str_or_empty(vm->source), str_or_empty(vm->id),
                        sqlite3_errmsg(s->db));
        for (size_t h = 0; h < vm->n_hostpci; h++) {
            const Pcifleet__HostPci *hp = vm->hostpci[h];
            size_t n = hp->n_addresses ? hp->n_addresses : 1;
            for (size_t a = 0; a < n; a++) {
                sqlite3_bind_text(pt, 1, node, -1, SQLITE_STATIC);
                sqlite3_bind_text(pt, 2, str_or_empty(vm->source), -1, SQLITE_STATIC);
                sqlite3_bind_text(pt, 3, str_or_empty(vm->id), -1, SQLITE_STATIC);
                sqlite3_bind_int64(pt, 4, hp->index);
                sqlite3_bind_int64(pt, 5, (int64_t)a);
                bind_opt_text(pt, 6, hp->n_addresses ? hp->addresses[a] : NULL);
                bind_opt_text(pt, 7, hp->mapping);
                sqlite3_bind_int(pt, 8, hp->pcie ? 1 : 0);
                bind_opt_text(pt, 9, hp->raw);
                if (stmt_exec(s, pt) < 0)
                    return fail(err, -EIO, "VM %s hostpci%u: %s", str_or_empty(vm->id), hp->index,
                                sqlite3_errmsg(s->db));
            }
        }
    }

    /* scan errors */
    if (!(st = stmt(s, ST_INS_ERROR, err)))
        return -EIO;
    for (size_t i = 0; i < inv->n_errors; i++) {
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        bind_opt_text(st, 3, inv->errors[i]->where);
        bind_opt_text(st, 4, inv->errors[i]->what);
        if (stmt_exec(s, st) < 0)
            return db_fail(s, err, "cannot store the scan errors");
    }

    /* resource mappings: what mapping=NAME resolves to on this node */
    if (!(st = stmt(s, ST_INS_MAPPING, err)))
        return -EIO;
    for (size_t i = 0; i < inv->n_mappings; i++) {
        const Pcifleet__PciMapping *m = inv->mappings[i];
        for (size_t k = 0; k < m->n_addresses; k++) {
            sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, str_or_empty(m->name), -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, (int64_t)k);
            sqlite3_bind_text(st, 4, str_or_empty(m->addresses[k]), -1, SQLITE_STATIC);
            if (stmt_exec(s, st) < 0)
                return fail(err, -EIO, "mapping %s: %s", str_or_empty(m->name), sqlite3_errmsg(s->db));
        }
    }

    /* the Proxmox cluster, for the rollouts' quorum */
    if (inv->cluster) {
        if (!(st = stmt(s, ST_INS_CLUSTER, err)))
            return -EIO;
        for (size_t k = 0; k < inv->cluster->n_members; k++) {
            sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, str_or_empty(inv->cluster->name), -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, str_or_empty(inv->cluster->members[k]), -1, SQLITE_STATIC);
            if (stmt_exec(s, st) < 0)
                return db_fail(s, err, "cannot store the cluster");
        }
    }
    return 0;
}

static int ingest_events(store_t *s, const char *node, const Pcifleet__Inventory *inv, const old_state_t *o,
                         Pcifleet__Device **dev_sorted, int64_t now, char **err)
{
    const char *bid = inv->boot_id && *inv->boot_id ? inv->boot_id : NULL;
    if (!o->exists) {
        if (insert_event(s, now, "node-online", node, "first inventory", err) < 0)
            return -EIO;
    } else if (!o->online) {
        if (insert_eventf(s, now, "node-online", node, err, "inventory after %" PRId64 " s of silence",
                          now > o->last_seen ? now - o->last_seen : 0) < 0)
            return -EIO;
    }
    if (bid && o->boot_id && strcmp(bid, o->boot_id) != 0 &&
        insert_eventf(s, now, "node-rebooted", node, err, "boot id %s -> %s", o->boot_id, bid) < 0)
        return -EIO;
    if (!o->has_inventory)
        return 0; /* nothing to compare with: the first inventory is the baseline */

    const char *verdict = inv->iommu && inv->iommu->verdict && *inv->iommu->verdict ? inv->iommu->verdict : NULL;
    if ((verdict == NULL) != (o->verdict == NULL) || (verdict && strcmp(verdict, o->verdict) != 0)) {
        if (insert_eventf(s, now, "iommu-changed", node, err, "verdict %s -> %s", o->verdict ? o->verdict : "none",
                          verdict ? verdict : "none") < 0)
            return -EIO;
    }

    /* devices: merge the two sorted address lists */
    size_t i = 0, j = 0;
    while (i < o->dev_addr.n || j < inv->n_devices) {
        int c;
        if (i == o->dev_addr.n)
            c = 1;
        else if (j == inv->n_devices)
            c = -1;
        else
            c = strcmp(o->dev_addr.v[i], str_or_empty(dev_sorted[j]->address));
        if (c < 0) {
            if (insert_eventf(s, now, "device-vanished", node, err, "%s %s", o->dev_addr.v[i], o->dev_desc.v[i]) < 0)
                return -EIO;
            i++;
        } else if (c > 0) {
            char *desc = device_desc(dev_sorted[j]);
            int rc = insert_eventf(s, now, "device-appeared", node, err, "%s %s",
                                   str_or_empty(dev_sorted[j]->address), desc);
            free(desc);
            if (rc < 0)
                return -EIO;
            j++;
        } else {
            i++;
            j++;
        }
    }

    /* running VMs holding a device they did not hold before */
    for (size_t v = 0; v < inv->n_vms; v++) {
        const Pcifleet__Vm *vm = inv->vms[v];
        if (vm->running != PCIFLEET__TRI__TRI_TRUE)
            continue;
        for (size_t h = 0; h < vm->n_hostpci; h++) {
            for (size_t a = 0; a < vm->hostpci[h]->n_addresses; a++) {
                const char *addr = str_or_empty(vm->hostpci[h]->addresses[a]);
                if (!*addr)
                    continue;
                char *key = xasprintf("%s\t%s\t%s", str_or_empty(vm->source), str_or_empty(vm->id), addr);
                bool held = sorted_contains(&o->holds, key);
                free(key);
                if (held)
                    continue;
                const char *name = vm->name && *vm->name ? vm->name : NULL;
                if (insert_eventf(s, now, "vm-holds-device", node, err, "%s VM %s%s%s%s holds %s",
                                  str_or_empty(vm->source), str_or_empty(vm->id), name ? " (" : "", name ? name : "",
                                  name ? ")" : "", addr) < 0)
                    return -EIO;
            }
        }
    }
    return 0;
}

int store_ingest_inventory(store_t *s, const char *node, const Pcifleet__Inventory *inv, int64_t now, char **err)
{
    if (!node || !*node)
        return fail(err, -EINVAL, "an inventory needs a node name");
    if (!inv)
        return fail(err, -EINVAL, "no inventory for node %s", node);
    if (inv->iommu && inv->iommu->verdict && *inv->iommu->verdict && !in_list(inv->iommu->verdict, verdicts))
        return fail(err, -EINVAL, "inventory of node %s refused: IOMMU verdict '%s' is not one this controller knows",
                    node, inv->iommu->verdict);
    if (inv->boot && inv->boot->loader && *inv->boot->loader && !in_list(inv->boot->loader, loaders))
        return fail(err, -EINVAL, "inventory of node %s refused: boot loader '%s' is not one this controller knows",
                    node, inv->boot->loader);

    uint8_t computed[32];
    const uint8_t *hash = inv->hash.data;
    size_t hash_len = inv->hash.len;
    if (!hash || !hash_len) {
        inventory_hash(inv, computed);
        hash = computed;
        hash_len = sizeof(computed);
    }

    /* Sorted views of the inventory for lookups and the device diff. */
    Pcifleet__Device **dev_sorted = xcalloc(inv->n_devices + 1, sizeof(*dev_sorted));
    if (inv->n_devices)
        memcpy(dev_sorted, inv->devices, inv->n_devices * sizeof(*dev_sorted));
    qsort(dev_sorted, inv->n_devices, sizeof(*dev_sorted), cmp_device_addr);
    size_t n_ep = 0;
    for (size_t i = 0; i < inv->n_groups; i++)
        n_ep += inv->groups[i]->n_endpoints;
    Pcifleet__GroupEndpoint **ep_sorted = xcalloc(n_ep + 1, sizeof(*ep_sorted));
    n_ep = 0;
    for (size_t i = 0; i < inv->n_groups; i++)
        for (size_t k = 0; k < inv->groups[i]->n_endpoints; k++)
            ep_sorted[n_ep++] = inv->groups[i]->endpoints[k];
    qsort(ep_sorted, n_ep, sizeof(*ep_sorted), cmp_endpoint_addr);

    old_state_t old = {0};
    char *why = NULL;
    int rc = tx_begin(s, &why);
    if (rc < 0)
        goto out;
    rc = old_state_read(s, node, &old, &why);
    if (rc == 0)
        rc = ingest_rows(s, node, inv, old.has_inventory, hash, hash_len, now, dev_sorted, ep_sorted, n_ep, &why);
    if (rc == 0)
        rc = ingest_events(s, node, inv, &old, dev_sorted, now, &why);
    if (rc == 0)
        rc = tx_commit(s, &why);
    if (rc < 0) {
        tx_rollback(s);
        goto out;
    }
    hb_node_t *e = cache_find(s, node);
    if (!e)
        e = cache_add(s, node);
    e->online = true;
    e->has_inventory = true;
    if (now > e->last_seen)
        e->last_seen = now;
    cache_set_hash(e, hash, hash_len);
    cache_set_boot_id(e, inv->boot_id && *inv->boot_id ? inv->boot_id : NULL);
out:
    if (rc < 0)
        fail(err, rc, "cannot store the inventory of node %s: %s", node, why ? why : "unknown error");
    free(why);
    old_state_free(&old);
    free(dev_sorted);
    free(ep_sorted);
    return rc;
}
