/* Tests for controller/store.c: migrations, atomic inventory replacement,
 * heartbeats (and their batching), offline marking and the event log. Each
 * test says what it proves. Inventories are built by hand (inv_builder.h). */
#include "testutil.h"

#include "buf.h"
#include "inv_builder.h"
#include "store.h"
#include "strv.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1700000000

typedef struct {
    char *dir;
    char *path;
    store_t *s;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    f->path = xasprintf("%s/fleet.db", f->dir);
    char *err = NULL;
    int rc = store_open(f->path, &f->s, &err);
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err);
    free(err);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    store_close(&f->s);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* The first column of the first row of sql as an integer (-1: no row). */
static int64_t q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Every row of sql, columns joined by '|', rows by '\n' (caller frees). */
static char *q_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    buf_t b = BUF_INIT;
    buf_reset(&b);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            if (c)
                buf_putc(&b, '|');
            const char *v = (const char *)sqlite3_column_text(st, c);
            buf_puts(&b, v ? v : "NULL");
        }
        buf_putc(&b, '\n');
    }
    sqlite3_finalize(st);
    return buf_steal(&b);
}

static void assert_rows(sqlite3 *db, const char *sql, const char *want)
{
    char *got = q_rows(db, sql);
    if (strcmp(got, want) != 0)
        fail_msg("%s\n--- got ---\n%s--- want ---\n%s", sql, got, want);
    free(got);
}

static void ingest_ok(store_t *s, const char *node, ib_t *b, int64_t now)
{
    char *err = NULL;
    int rc = store_ingest_inventory(s, node, &b->inv, now, &err);
    if (rc != 0)
        fail_msg("ingest %s: %s", node, err);
    free(err);
}

/* ---- migrations ---- */

/* A new file gets every migration, WAL, foreign keys and the stable views;
 * opening it again changes nothing. */
static void test_open_migrates_and_reopens(void **state)
{
    fx_t *f = *state;
    sqlite3 *db = store_db(f->s);
    assert_true(store_schema_version() >= 1);
    assert_int_equal(q_int(db, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(q_int(db, "PRAGMA foreign_keys"), 1);
    assert_rows(db, "PRAGMA journal_mode", "wal\n");
    assert_rows(db, "SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name",
                "v_claims\nv_devices\nv_events\nv_groups\nv_mappings\nv_nics\nv_nodes\nv_passthrough\n"
                "v_rollout_nodes\nv_rollouts\nv_scan_errors\nv_vms\n");
    int64_t objects = q_int(db, "SELECT count(*) FROM sqlite_schema");
    assert_string_equal(store_path(f->s), f->path);
    store_close(&f->s);
    assert_null(f->s);
    store_close(&f->s); /* NULL-safe */

    char *err = NULL;
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_null(err);
    db = store_db(f->s);
    assert_int_equal(q_int(db, "PRAGMA user_version"), store_schema_version());
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema"), objects);
}

/* A database from a newer pcifleetd is refused with a clear message and
 * left as it was. */
static void test_newer_version_refused(void **state)
{
    fx_t *f = *state;
    store_close(&f->s);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", store_schema_version() + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char *err = NULL;
    assert_int_equal(store_open(f->path, &f->s, &err), -ENOTSUP);
    assert_null(f->s);
    assert_non_null(err);
    assert_non_null(strstr(err, "newer than this program knows"));
    assert_non_null(strstr(err, f->path));
    free(err);

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "PRAGMA user_version"), store_schema_version() + 1);
    sqlite3_close(db);
}

/* Someone else's SQLite file is not turned into a fleet database. */
static void test_foreign_database_refused(void **state)
{
    fx_t *f = *state;
    char *other = xasprintf("%s/other.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE mine (x); INSERT INTO mine VALUES (1)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    store_t *s = NULL;
    char *err = NULL;
    assert_int_equal(store_open(other, &s, &err), -EINVAL);
    assert_non_null(strstr(err, "not a pcifleet database"));
    free(err);
    err = NULL;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(q_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
    assert_int_equal(q_int(db, "PRAGMA user_version"), 0);
    sqlite3_close(db);

    /* and a file that is not SQLite at all */
    char *junk = xasprintf("%s/junk.db", f->dir);
    tu_write(f->dir, "junk.db", "this is not a database, it is a text file long enough to have a header....\n");
    assert_true(store_open(junk, &s, &err) < 0);
    assert_non_null(err);
    free(err);
    free(junk);
    free(other);
}

/* ---- ingest ---- */

/* An inventory lands in the tables and views with NULL for unknown facts,
 * JSON arrays for lists, and the NIC facts the queries need. */
static void test_ingest_stores_rows(void **state)
{
    fx_t *f = *state;
    ib_t *b = ib_pve1();
    ingest_ok(f->s, "pve1", b, NOW);
    sqlite3 *db = store_db(f->s);
    assert_rows(db,
                "SELECT name, online, verdict, loader, nic_count, vm_count, device_count, last_seen, first_seen,"
                " boot_id, kernel, cpu_vendor, iommu_enabled, iommu_units, iommu_groups, interrupt_remapping,"
                " reasons, configured_args, proxmox_boot_tool, vfio_missing, length(inventory_hash) FROM v_nodes",
                "pve1|1|ready|systemd-boot|5|2|7|1700000000|1700000000|boot-1|6.8.12-4-pve|intel|1|"
                "[\"dmar0\",\"dmar1\"]|5|1|[]|[\"root=ZFS=rpool/ROOT/pve-1\",\"quiet\"]|1|[]|64\n");
    assert_rows(db,
                "SELECT address, class, model, driver, iommu_group, numa_node, bridge, link_speed, link_width,"
                " assignable_alone, blockers FROM v_devices ORDER BY address",
                "0000:00:00.0|0600|8086:4c43|NULL|0|NULL|1|NULL|NULL|NULL|NULL\n"
                "0000:01:00.0|0200|8086:1533|igb|1|NULL|0|5GT/s|1|1|[]\n"
                "0000:02:00.0|0200|8086:15f3|igc|2|NULL|0|5GT/s|1|1|[]\n"
                "0000:03:00.0|0200|8086:15f3|igc|3|NULL|0|5GT/s|1|1|[]\n"
                "0000:04:00.0|0200|8086:10fb|ixgbe|4|NULL|0|5GT/s|1|0|[\"0000:04:00.1\",\"0000:05:00.0\"]\n"
                "0000:04:00.1|0200|8086:10fb|ixgbe|4|NULL|0|5GT/s|1|0|[\"0000:04:00.0\",\"0000:05:00.0\"]\n"
                "0000:05:00.0|0106|1b21:1166|ahci|4|NULL|0|NULL|NULL|0|[\"0000:04:00.0\",\"0000:04:00.1\"]\n");
    assert_rows(db, "SELECT group_id, isolated, device_count, devices, blocked FROM v_groups ORDER BY group_id",
                "0|1|1|[\"0000:00:00.0\"]|[]\n"
                "1|1|1|[\"0000:01:00.0\"]|[]\n"
                "2|1|1|[\"0000:02:00.0\"]|[]\n"
                "3|1|1|[\"0000:03:00.0\"]|[]\n"
                "4|0|3|[\"0000:04:00.0\",\"0000:04:00.1\",\"0000:05:00.0\"]|"
                "[\"0000:04:00.0\",\"0000:04:00.1\",\"0000:05:00.0\"]\n");
    assert_rows(db,
                "SELECT address, ifname, model, speed_mbps, management, assignable_alone, configured_in, free"
                " FROM v_nics ORDER BY address",
                "0000:01:00.0|enp1s0|8086:1533|1000|1|1|[]|0\n"
                "0000:02:00.0|enp2s0|8086:15f3|NULL|0|1|[\"100\"]|0\n"
                "0000:03:00.0|enp3s0|8086:15f3|NULL|0|1|[]|1\n"
                "0000:04:00.0|enp4s0f0|8086:10fb|NULL|0|0|[]|0\n"
                "0000:04:00.1|enp4s0f1|8086:10fb|NULL|0|0|[]|0\n");
    assert_rows(db, "SELECT vm_id, name, running, migratable, devices, reasons FROM v_vms ORDER BY vm_id",
                "100|router|0|0|[\"0000:02:00.0\"]|[\"hostpci0 passes through 0000:02:00.0\"]\n"
                "101|web|1|1|[]|[]\n");
    assert_rows(db, "SELECT vm_id, hostpci, address, pcie, running FROM v_passthrough", "100|0|0000:02:00.0|1|0\n");
    /* the hash the store computed is the agent's: SHA-256 of the encoding */
    assert_int_equal(q_int(db, "SELECT count(*) FROM nodes WHERE length(inventory_hash) = 32"), 1);
    ib_free(&b);
}

/* Re-ingesting replaces the node's rows (no leftovers) and leaves other
 * nodes alone. */
static void test_ingest_replaces(void **state)
{
    fx_t *f = *state;
    ib_t *a = ib_pve1(), *b2 = ib_pve2();
    ingest_ok(f->s, "pve1", a, NOW);
    ingest_ok(f->s, "pve2", b2, NOW);
    ib_t *small = ib_new("ready", "grub");
    ib_device(small, "0000:09:00.0", 0x0200, 0x8086, 0x1533, 9, "I210", "igb");
    ib_group(small, 9, "0000:09:00.0", false);
    ingest_ok(f->s, "pve1", small, NOW + 10);
    sqlite3 *db = store_db(f->s);
    assert_rows(db, "SELECT node, count(*) FROM devices GROUP BY node ORDER BY node", "pve1|1\npve2|1\n");
    assert_int_equal(q_int(db, "SELECT count(*) FROM nics WHERE node = 'pve1'"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM vms WHERE node = 'pve1'"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM vm_passthrough WHERE node = 'pve1'"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM iommu_groups WHERE node = 'pve1'"), 1);
    assert_rows(db, "SELECT name, loader, first_seen, last_seen, device_count FROM v_nodes ORDER BY name",
                "pve1|grub|1700000000|1700000010|1\npve2|grub|1700000000|1700000000|1\n");
    assert_rows(db, "SELECT node, location FROM v_scan_errors",
                "pve2|sys/bus/pci/devices/0000:01:00.0/iommu_group\n");
    ib_free(&a);
    ib_free(&b2);
    ib_free(&small);
}

/* A bad inventory is refused with a reason and the stored one survives
 * whole: the transaction is all or nothing. */
static void test_ingest_failure_keeps_old(void **state)
{
    fx_t *f = *state;
    ib_t *a = ib_pve1();
    ingest_ok(f->s, "pve1", a, NOW);
    sqlite3 *db = store_db(f->s);
    char *before = q_rows(db, "SELECT * FROM v_devices ORDER BY address");
    char *nodes_before = q_rows(db, "SELECT * FROM v_nodes");
    int64_t events = q_int(db, "SELECT count(*) FROM events");

    ib_t *bad = ib_new("needs-reboot", "grub");
    ib_device(bad, "0000:01:00.0", 0x0200, 0x8086, 0x1533, 1, "I210", "igb");
    ib_device(bad, "0000:01:00.0", 0x0200, 0x8086, 0x1533, 1, "I210 again", "igb");
    char *err = NULL;
    assert_int_equal(store_ingest_inventory(f->s, "pve1", &bad->inv, NOW + 5, &err), -EIO);
    assert_non_null(strstr(err, "cannot store the inventory of node pve1"));
    assert_non_null(strstr(err, "device 0000:01:00.0"));
    assert_non_null(strstr(err, "UNIQUE"));
    free(err);
    err = NULL;

    ib_t *odd = ib_new("ready", "lilo");
    assert_int_equal(store_ingest_inventory(f->s, "pve1", &odd->inv, NOW + 5, &err), -EINVAL);
    assert_non_null(strstr(err, "boot loader 'lilo' is not one this controller knows"));
    free(err);
    err = NULL;
    ib_t *odd2 = ib_new("maybe", "grub");
    assert_int_equal(store_ingest_inventory(f->s, "pve1", &odd2->inv, NOW + 5, &err), -EINVAL);
    assert_non_null(strstr(err, "IOMMU verdict 'maybe'"));
    free(err);
    err = NULL;
    assert_int_equal(store_ingest_inventory(f->s, "", &a->inv, NOW, &err), -EINVAL);
    free(err);

    char *after = q_rows(db, "SELECT * FROM v_devices ORDER BY address");
    char *nodes_after = q_rows(db, "SELECT * FROM v_nodes");
    assert_string_equal(before, after);
    assert_string_equal(nodes_before, nodes_after);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), events);
    assert_true(sqlite3_get_autocommit(db));
    free(before);
    free(after);
    free(nodes_before);
    free(nodes_after);
    ib_free(&a);
    ib_free(&bad);
    ib_free(&odd);
    ib_free(&odd2);
}

/* A reader on its own connection sees a node's inventory before or after
 * an ingest, never a mix: inside one read transaction the device rows, the
 * stored count and the verdict stay those of one inventory while the
 * writer replaces them; the next read transaction sees the new one whole. */
static void test_ingest_atomic_for_readers(void **state)
{
    fx_t *f = *state;
    ib_t *a = ib_pve1();
    ib_t *b = ib_new("needs-reboot", "grub");
    for (int i = 0; i < 20; i++) {
        char addr[16];
        snprintf(addr, sizeof(addr), "0000:%02x:00.0", 0x40 + i);
        ib_device(b, addr, 0x0200, 0x8086, 0x15f3, 40 + i, "I225", "igc");
    }
    ingest_ok(f->s, "pve1", a, NOW);

    sqlite3 *rd = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    const char *snap = "SELECT (SELECT count(*) FROM devices WHERE node = 'pve1') || '/' ||"
                       " (SELECT device_count FROM nodes WHERE name = 'pve1') || '/' ||"
                       " (SELECT verdict FROM iommu WHERE node = 'pve1')";
    assert_int_equal(sqlite3_exec(rd, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_rows(rd, snap, "7/7/ready\n");
    ingest_ok(f->s, "pve1", b, NOW + 1);
    assert_rows(store_db(f->s), snap, "20/20/needs-reboot\n");
    assert_rows(rd, snap, "7/7/ready\n"); /* still the old one, whole */
    assert_int_equal(sqlite3_exec(rd, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_rows(rd, snap, "20/20/needs-reboot\n"); /* the new one, whole */
    sqlite3_close(rd);
    ib_free(&a);
    ib_free(&b);
}

/* Group commit (store_batch_begin/_end): inside a batch nothing reaches a
 * reader until the end; a refused inventory in the middle (a device listed
 * twice among 20, so inside a multi-row insert) is undone alone, with the
 * device named; everything else of the batch is there, whole, afterwards. */
static void test_batch_group_commit(void **state)
{
    fx_t *f = *state;
    sqlite3 *rd = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &rd, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ib_t *a = ib_pve1();
    ib_t *bad = ib_new("ready", "grub");
    for (int i = 0; i < 20; i++) {
        char addr[16];
        snprintf(addr, sizeof(addr), "0000:%02x:00.0", 0x40 + (i == 9 ? 3 : i));
        ib_device(bad, addr, 0x0200, 0x8086, 0x15f3, 40 + i, "I225", "igc");
    }
    ib_t *c = ib_pve2();
    char *err = NULL;
    store_batch_begin(f->s);
    ingest_ok(f->s, "pve1", a, NOW);
    assert_int_equal(store_ingest_inventory(f->s, "bad", &bad->inv, NOW, &err), -EIO);
    assert_non_null(strstr(err, "device 0000:43:00.0"));
    assert_non_null(strstr(err, "UNIQUE"));
    free(err);
    err = NULL;
    ingest_ok(f->s, "pve2", c, NOW);
    bool known, match;
    assert_int_equal(store_heartbeat(f->s, "pve3", NULL, 0, "b3", NOW, &known, &match, &err), 0);
    assert_int_equal(q_int(rd, "SELECT count(*) FROM nodes"), 0); /* nothing yet */
    assert_int_equal(store_batch_end(f->s, &err), 0);
    assert_rows(rd, "SELECT name, device_count FROM nodes ORDER BY name", "pve1|7\npve2|1\npve3|0\n");
    assert_int_equal(q_int(rd, "SELECT count(*) FROM devices WHERE node = 'bad'"), 0);
    assert_int_equal(q_int(rd, "SELECT count(*) FROM devices WHERE node = 'pve1'"), 7);
    /* the heartbeat cache agrees with what was stored */
    assert_int_equal(store_heartbeat(f->s, "pve1", a->inv.hash.data, a->inv.hash.len, "boot-1", NOW + 1, &known,
                                     &match, &err),
                     0);
    assert_true(known);
    /* an empty batch commits nothing and succeeds */
    store_batch_begin(f->s);
    assert_int_equal(store_batch_end(f->s, &err), 0);
    sqlite3_close(rd);
    ib_free(&a);
    ib_free(&bad);
    ib_free(&c);
}

/* The same with a reader thread racing a writer that alternates two
 * inventories: every snapshot the reader takes is one of the two. */
typedef struct {
    const char *path;
    volatile int stop;
    int snapshots;
    int mixed;
} race_t;

static void *race_reader(void *p)
{
    race_t *r = p;
    sqlite3 *rd = NULL;
    if (sqlite3_open_v2(r->path, &rd, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(rd, 5000);
    const char *snap = "SELECT (SELECT count(*) FROM devices WHERE node = 'pve1'),"
                       " (SELECT count(*) FROM nics WHERE node = 'pve1'),"
                       " (SELECT device_count FROM nodes WHERE name = 'pve1'),"
                       " (SELECT verdict FROM iommu WHERE node = 'pve1')";
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(rd, snap, -1, &st, NULL);
    while (!r->stop) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            int dev = sqlite3_column_int(st, 0), nic = sqlite3_column_int(st, 1), cnt = sqlite3_column_int(st, 2);
            const char *v = (const char *)sqlite3_column_text(st, 3);
            bool a = dev == 7 && nic == 5 && cnt == 7 && v && strcmp(v, "ready") == 0;
            bool b = dev == 20 && nic == 0 && cnt == 20 && v && strcmp(v, "needs-reboot") == 0;
            if (!a && !b)
                r->mixed++;
            r->snapshots++;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(rd);
    return NULL;
}

static void test_ingest_atomic_race(void **state)
{
    fx_t *f = *state;
    ib_t *a = ib_pve1();
    ib_t *b = ib_new("needs-reboot", "grub");
    for (int i = 0; i < 20; i++) {
        char addr[16];
        snprintf(addr, sizeof(addr), "0000:%02x:00.0", 0x40 + i);
        ib_device(b, addr, 0x0200, 0x8086, 0x15f3, 40 + i, "I225", "igc");
    }
    ingest_ok(f->s, "pve1", a, NOW);
    race_t r = {.path = f->path};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_reader, &r), 0);
    for (int i = 0; i < 300; i++)
        ingest_ok(f->s, "pve1", i % 2 ? a : b, NOW + i);
    while (r.snapshots < 50)
        usleep(1000);
    r.stop = 1;
    pthread_join(th, NULL);
    assert_true(r.snapshots >= 50);
    assert_int_equal(r.mixed, 0);
    ib_free(&a);
    ib_free(&b);
}

/* ---- heartbeats ---- */

/* An unchanged heartbeat writes exactly one row (the node's last_seen):
 * no inventory row is rewritten. It reports whether the hash matches. */
static void test_heartbeat_writes_only_last_seen(void **state)
{
    fx_t *f = *state;
    store_set_flush_interval(f->s, 0);
    ib_t *a = ib_pve1();
    ib_set_hash(a, 0xab);
    ingest_ok(f->s, "pve1", a, NOW);
    sqlite3 *db = store_db(f->s);
    char *inv_before = q_rows(db, "SELECT * FROM devices NATURAL JOIN iommu ORDER BY address");
    int before = sqlite3_total_changes(db);
    uint8_t hash[32];
    memset(hash, 0xab, sizeof(hash));
    bool known = false, match = false;
    char *err = NULL;
    assert_int_equal(store_heartbeat(f->s, "pve1", hash, sizeof(hash), "boot-1", NOW + 5, &known, &match, &err), 0);
    assert_true(known);
    assert_true(match);
    assert_int_equal(sqlite3_total_changes(db) - before, 1);
    assert_int_equal(q_int(db, "SELECT last_seen FROM nodes WHERE name = 'pve1'"), NOW + 5);
    char *inv_after = q_rows(db, "SELECT * FROM devices NATURAL JOIN iommu ORDER BY address");
    assert_string_equal(inv_before, inv_after);

    /* a different hash: known, not matching, still only last_seen */
    hash[0] = 0;
    before = sqlite3_total_changes(db);
    assert_int_equal(store_heartbeat(f->s, "pve1", hash, sizeof(hash), "boot-1", NOW + 6, &known, &match, &err), 0);
    assert_true(known);
    assert_false(match);
    assert_int_equal(sqlite3_total_changes(db) - before, 1);
    /* an older timestamp never moves last_seen back (and writes nothing) */
    before = sqlite3_total_changes(db);
    assert_int_equal(store_heartbeat(f->s, "pve1", hash, sizeof(hash), "boot-1", NOW, &known, &match, &err), 0);
    assert_int_equal(sqlite3_total_changes(db) - before, 0);
    assert_int_equal(q_int(db, "SELECT last_seen FROM nodes WHERE name = 'pve1'"), NOW + 6);

    /* a node never seen: recorded (online, no inventory), known = false */
    assert_int_equal(store_heartbeat(f->s, "new1", hash, sizeof(hash), "b", NOW, &known, &match, &err), 0);
    assert_false(known);
    assert_false(match);
    assert_rows(db, "SELECT name, online, verdict, inventory_hash, device_count FROM v_nodes WHERE name = 'new1'",
                "new1|1|NULL|NULL|0\n");
    assert_int_equal(store_heartbeat(f->s, "new1", hash, sizeof(hash), "b", NOW + 1, &known, &match, &err), 0);
    assert_false(known);
    assert_int_equal(store_heartbeat(f->s, "", hash, sizeof(hash), "b", NOW + 1, &known, &match, &err), -EINVAL);
    free(err);
    free(inv_before);
    free(inv_after);
    ib_free(&a);
}

/* Batching: unchanged heartbeats wait in memory until store_flush, which
 * writes them in one go; a store reopened afterwards still knows them. */
static void test_heartbeat_batching(void **state)
{
    fx_t *f = *state;
    store_set_flush_interval(f->s, 3600 * 1000);
    char *err = NULL;
    bool known, match;
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%03d", i);
        assert_int_equal(store_heartbeat(f->s, name, NULL, 0, "b", NOW, &known, &match, &err), 0);
    }
    sqlite3 *db = store_db(f->s);
    assert_int_equal(store_pending_heartbeats(f->s), 0); /* new nodes are written at once */
    int before = sqlite3_total_changes(db);
    for (int round = 1; round <= 3; round++)
        for (int i = 0; i < 100; i++) {
            char name[16];
            snprintf(name, sizeof(name), "n%03d", i);
            assert_int_equal(store_heartbeat(f->s, name, NULL, 0, "b", NOW + round, &known, &match, &err), 0);
        }
    assert_int_equal(sqlite3_total_changes(db) - before, 0);
    assert_int_equal(store_pending_heartbeats(f->s), 100);
    assert_int_equal(q_int(db, "SELECT max(last_seen) FROM nodes"), NOW);
    assert_int_equal(store_flush(f->s, &err), 0);
    assert_int_equal(sqlite3_total_changes(db) - before, 100);
    assert_int_equal(store_pending_heartbeats(f->s), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM nodes WHERE last_seen = 1700000003"), 100);

    /* close flushes too */
    assert_int_equal(store_heartbeat(f->s, "n000", NULL, 0, "b", NOW + 9, &known, &match, &err), 0);
    store_close(&f->s);
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    assert_int_equal(q_int(store_db(f->s), "SELECT last_seen FROM nodes WHERE name = 'n000'"), NOW + 9);
    assert_null(err);
}

/* ---- offline, events ---- */

static char *events_of(sqlite3 *db)
{
    return q_rows(db, "SELECT time, kind, node, detail FROM v_events ORDER BY id");
}

/* Nodes whose last heartbeat is older than max_age go offline once, with
 * an event; a heartbeat brings them back, with an event. Buffered
 * heartbeats count: mark_offline flushes first. */
static void test_mark_offline(void **state)
{
    fx_t *f = *state;
    store_set_flush_interval(f->s, 3600 * 1000);
    char *err = NULL;
    bool known, match;
    ib_t *a = ib_pve1(), *b = ib_pve2();
    ingest_ok(f->s, "pve1", a, NOW);
    ingest_ok(f->s, "pve2", b, NOW);
    /* pve2 heartbeats (buffered); pve1 stays silent */
    assert_int_equal(store_heartbeat(f->s, "pve2", NULL, 0, "boot-2", NOW + 50, &known, &match, &err), 0);
    assert_int_equal(store_pending_heartbeats(f->s), 1);
    strv_t off = STRV_INIT;
    assert_int_equal(store_mark_offline(f->s, NOW + 60, 30, &off, &err), 0);
    assert_int_equal(off.n, 1);
    assert_string_equal(off.v[0], "pve1");
    strv_free(&off);
    sqlite3 *db = store_db(f->s);
    assert_rows(db, "SELECT name, online FROM v_nodes ORDER BY name", "pve1|0\npve2|1\n");
    /* again: nothing new */
    assert_int_equal(store_mark_offline(f->s, NOW + 61, 30, &off, &err), 0);
    assert_int_equal(off.n, 0);
    assert_int_equal(store_mark_offline(f->s, NOW + 61, 30, NULL, &err), 0);
    /* pve1 comes back */
    assert_int_equal(store_heartbeat(f->s, "pve1", NULL, 0, "boot-1", NOW + 70, &known, &match, &err), 0);
    assert_true(known);
    assert_rows(db, "SELECT name, online, last_seen FROM v_nodes ORDER BY name",
                "pve1|1|1700000070\npve2|1|1700000050\n");
    char *ev = events_of(db);
    assert_string_equal(ev, "1700000000|node-online|pve1|first inventory\n"
                            "1700000000|node-online|pve2|first inventory\n"
                            "1700000060|node-offline|pve1|no heartbeat for 60 s\n"
                            "1700000070|node-online|pve1|heartbeat after 70 s of silence\n");
    free(ev);
    assert_null(err);
    ib_free(&a);
    ib_free(&b);
}

/* Every event kind the store writes, with its detail, from one sequence:
 * first inventory, then a second one where the verdict changed, a device
 * vanished and one appeared, and stopped VM 100 now runs holding its NIC;
 * then offline, back online, and a reboot seen in a heartbeat. */
static void test_events_each_kind(void **state)
{
    fx_t *f = *state;
    store_set_flush_interval(f->s, 0);
    char *err = NULL;
    bool known, match;
    ib_t *v1 = ib_pve1();
    ingest_ok(f->s, "pve1", v1, NOW);

    ib_t *v2 = ib_new("needs-reboot", "systemd-boot");
    ib_device(v2, "0000:01:00.0", 0x0200, 0x8086, 0x1533, 1, "I210 Gigabit Network Connection", "igb");
    ib_device(v2, "0000:02:00.0", 0x0200, 0x8086, 0x15f3, 2, "Ethernet Controller I225-V", "vfio-pci");
    ib_device(v2, "0000:06:00.0", 0x0108, 0x144d, 0xa808, 6, "NVMe SSD Controller SM981", "nvme");
    ib_group(v2, 1, "0000:01:00.0", false);
    ib_group(v2, 2, "0000:02:00.0", false);
    ib_group(v2, 6, "0000:06:00.0", false);
    ib_vm(v2, "100", "router", PCIFLEET__TRI__TRI_TRUE, "0000:02:00.0", "hostpci0 passes through 0000:02:00.0");
    ib_vm(v2, "101", "web", PCIFLEET__TRI__TRI_TRUE, "", "");
    ingest_ok(f->s, "pve1", v2, NOW + 10);
    /* the same again: nothing new to say */
    ingest_ok(f->s, "pve1", v2, NOW + 20);

    strv_t off = STRV_INIT;
    assert_int_equal(store_mark_offline(f->s, NOW + 100, 30, &off, &err), 0);
    strv_free(&off);
    assert_int_equal(store_heartbeat(f->s, "pve1", NULL, 0, "boot-1", NOW + 110, &known, &match, &err), 0);
    assert_int_equal(store_heartbeat(f->s, "pve1", NULL, 0, "boot-9", NOW + 120, &known, &match, &err), 0);
    assert_int_equal(store_event(f->s, NOW + 130, "key-refused", NULL, "unknown key from 10.0.0.9", &err), 0);
    assert_int_equal(store_event(f->s, NOW + 130, "Bad Kind", "pve1", "x", &err), -EINVAL);
    assert_non_null(strstr(err, "event kind 'Bad Kind'"));
    free(err);
    err = NULL;

    char *ev = events_of(store_db(f->s));
    assert_string_equal(ev,
                        "1700000000|node-online|pve1|first inventory\n"
                        "1700000010|iommu-changed|pve1|verdict ready -> needs-reboot\n"
                        "1700000010|device-vanished|pve1|0000:00:00.0 8086:4c43 Host bridge\n"
                        "1700000010|device-vanished|pve1|0000:03:00.0 8086:15f3 Ethernet Controller I225-V\n"
                        "1700000010|device-vanished|pve1|0000:04:00.0 8086:10fb 82599ES 10-Gigabit SFI/SFP+\n"
                        "1700000010|device-vanished|pve1|0000:04:00.1 8086:10fb 82599ES 10-Gigabit SFI/SFP+\n"
                        "1700000010|device-vanished|pve1|0000:05:00.0 1b21:1166 ASM1166 SATA\n"
                        "1700000010|device-appeared|pve1|0000:06:00.0 144d:a808 NVMe SSD Controller SM981\n"
                        "1700000010|vm-holds-device|pve1|proxmox VM 100 (router) holds 0000:02:00.0\n"
                        "1700000100|node-offline|pve1|no heartbeat for 80 s\n"
                        "1700000110|node-online|pve1|heartbeat after 90 s of silence\n"
                        "1700000120|node-rebooted|pve1|boot id boot-1 -> boot-9\n"
                        "1700000130|key-refused|NULL|unknown key from 10.0.0.9\n");
    free(ev);
    assert_rows(store_db(f->s), "SELECT boot_id FROM nodes", "boot-9\n");
    ib_free(&v1);
    ib_free(&v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_migrates_and_reopens, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_database_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_stores_rows, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_replaces, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_failure_keeps_old, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_atomic_for_readers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_atomic_race, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_group_commit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_writes_only_last_seen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_batching, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_mark_offline, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_events_each_kind, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
