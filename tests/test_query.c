/* Tests for controller/query.c, table.c and sqlguard.c: every query command
 * in table and JSON form with exact rows, the meaning of `nics --free`, usage
 * and unknown-node errors, and the sql guard's refusals (each one leaving
 * the database exactly as it was). The fleet is two hand-built nodes
 * (inv_builder.h): pve1 (ready) and pve2 (needs-kernel-args). */
#include "testutil.h"

#include "buf.h"
#include "inv_builder.h"
#include "jtext.h"
#include "query.h"
#include "store.h"
#include "strv.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

typedef struct {
    char *dir;
    char *path;
    store_t *s;
    query_opts_t opts;
} fx_t;

static void ingest(store_t *s, const char *node, ib_t *b, int64_t now)
{
    char *err = NULL;
    int rc = store_ingest_inventory(s, node, &b->inv, now, &err);
    if (rc)
        fail_msg("ingest %s: %s", node, err);
    ib_free(&b);
}

static int fx_setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    f->path = xasprintf("%s/fleet.db", f->dir);
    char *err = NULL;
    if (store_open(f->path, &f->s, &err))
        fail_msg("store_open: %s", err);
    ingest(f->s, "pve1", ib_pve1(), NOW);
    ingest(f->s, "pve2", ib_pve2(), NOW + 5);
    f->opts.sql_time_limit_ms = 300;
    f->opts.sql_max_rows = 100;
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

/* Runs a query given as words separated by single spaces ('_' inside a word
 * stands for a space). Returns the status; *out and *err (caller frees). */
static int run(fx_t *f, const char *line, bool json, char **out, char **err)
{
    strv_t words = STRV_INIT;
    const char *p = line;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        char *w = xstrndup(p, n);
        for (char *c = w; *c; c++)
            if (*c == '_' && strncmp(line, "sql ", 4) != 0)
                *c = ' ';
        strv_take(&words, w);
        p = sp ? sp + 1 : p + n;
    }
    buf_t b = BUF_INIT;
    buf_reset(&b);
    *err = NULL;
    int rc = query_run(f->s, &f->opts, (int)words.n, words.v, json, &b, err);
    *out = buf_steal(&b);
    strv_free(&words);
    return rc;
}

/* The sql command with the statement as one argument. */
static int run_sql(fx_t *f, const char *sql, bool json, char **out, char **err)
{
    char *argv[] = {"sql", (char *)sql};
    buf_t b = BUF_INIT;
    buf_reset(&b);
    *err = NULL;
    int rc = query_run(f->s, &f->opts, 2, argv, json, &b, err);
    *out = buf_steal(&b);
    return rc;
}

static void expect(fx_t *f, const char *line, bool json, const char *want)
{
    char *out, *err;
    int rc = run(f, line, json, &out, &err);
    if (rc != 0)
        fail_msg("%s: status %d: %s", line, rc, err);
    if (strcmp(out, want) != 0)
        fail_msg("%s%s\n--- got ---\n%s--- want ---\n%s", line, json ? " --json" : "", out, want);
    free(out);
    free(err);
}

static void expect_error(fx_t *f, const char *line, int status, const char *want_err)
{
    char *out, *err;
    int rc = run(f, line, false, &out, &err);
    if (rc != status || !err || strcmp(err, want_err) != 0)
        fail_msg("%s: status %d (want %d), error '%s' (want '%s')", line, rc, status, err ? err : "(none)",
                 want_err);
    assert_string_equal(out, ""); /* nothing half-written */
    free(out);
    free(err);
}

/* JSON validity, checked by SQLite's own parser. */
static void assert_json(const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_valid(?1)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_int(st, 0) != 1)
        fail_msg("not valid JSON:\n%s", text);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- the commands ---- */

/* nodes: name, online, verdict, loader, NIC and VM counts, last seen. */
static void test_nodes(void **state)
{
    fx_t *f = *state;
    expect(f, "nodes", false,
           "NAME  ONLINE  VERDICT            LOADER        NICS  VMS  LAST_SEEN\n"
           "pve1  yes     ready              systemd-boot  5     2    2023-11-14T22:13:20Z\n"
           "pve2  yes     needs-kernel-args  grub          1     1    2023-11-14T22:13:25Z\n");
    expect(f, "nodes", true,
           "[\n"
           "{\"name\":\"pve1\",\"online\":true,\"verdict\":\"ready\",\"loader\":\"systemd-boot\",\"nics\":5,"
           "\"vms\":2,\"last_seen\":1700000000},\n"
           "{\"name\":\"pve2\",\"online\":true,\"verdict\":\"needs-kernel-args\",\"loader\":\"grub\",\"nics\":1,"
           "\"vms\":1,\"last_seen\":1700000005}\n"
           "]\n");
    /* --json among the words works like the flag */
    expect(f, "nodes --json", false,
           "[\n"
           "{\"name\":\"pve1\",\"online\":true,\"verdict\":\"ready\",\"loader\":\"systemd-boot\",\"nics\":5,"
           "\"vms\":2,\"last_seen\":1700000000},\n"
           "{\"name\":\"pve2\",\"online\":true,\"verdict\":\"needs-kernel-args\",\"loader\":\"grub\",\"nics\":1,"
           "\"vms\":1,\"last_seen\":1700000005}\n"
           "]\n");
}

/* A heartbeat still waiting in the store's buffer shows up in queries:
 * query_run flushes first. An offline node says so. */
static void test_nodes_see_buffered_heartbeats(void **state)
{
    fx_t *f = *state;
    store_set_flush_interval(f->s, 3600 * 1000);
    char *err = NULL;
    bool known, match;
    assert_int_equal(store_heartbeat(f->s, "pve2", NULL, 0, "boot-2", NOW + 100, &known, &match, &err), 0);
    assert_int_equal(store_pending_heartbeats(f->s), 1);
    assert_int_equal(store_mark_offline(f->s, NOW + 90, 60, NULL, &err), 0); /* pve1: 90 s silent */
    expect(f, "nodes", false,
           "NAME  ONLINE  VERDICT            LOADER        NICS  VMS  LAST_SEEN\n"
           "pve1  no      ready              systemd-boot  5     2    2023-11-14T22:13:20Z\n"
           "pve2  yes     needs-kernel-args  grub          1     1    2023-11-14T22:15:00Z\n");
    assert_int_equal(store_pending_heartbeats(f->s), 0);
    assert_null(err);
}

static const char NICS_HEADER[] = "NODE  ADDRESS       IFNAME    MAC                MODEL      DRIVER  SPEED_MBPS  "
                                  "OPERSTATE  MANAGEMENT  IOMMU_GROUP  CONFIGURED_IN  FREE\n";

/* nics: the fleet-wide table, filtered by node and model. */
static void test_nics(void **state)
{
    fx_t *f = *state;
    buf_t want = BUF_INIT;
    buf_puts(&want, NICS_HEADER);
    buf_puts(&want,
             "pve1  0000:01:00.0  enp1s0    a8:a1:59:00:00:01  8086:1533  igb     1000        up         yes       "
             "  1            -              no\n"
             "pve1  0000:02:00.0  enp2s0    a8:a1:59:00:00:02  8086:15f3  igc     -           down       no        "
             "  2            100            no\n"
             "pve1  0000:03:00.0  enp3s0    a8:a1:59:00:00:03  8086:15f3  igc     -           down       no        "
             "  3            -              yes\n"
             "pve1  0000:04:00.0  enp4s0f0  90:e2:ba:00:00:00  8086:10fb  ixgbe   -           down       no        "
             "  4            -              no\n"
             "pve1  0000:04:00.1  enp4s0f1  90:e2:ba:00:00:01  8086:10fb  ixgbe   -           down       no        "
             "  4            -              no\n"
             "pve2  0000:01:00.0  eno1      3c:ec:ef:00:00:01  8086:15f3  igc     -           down       no        "
             "  -            200            no\n");
    expect(f, "nics", false, want.p);
    buf_free(&want);

    expect(f, "nics --node pve2", true,
           "[\n"
           "{\"node\":\"pve2\",\"address\":\"0000:01:00.0\",\"ifname\":\"eno1\",\"mac\":\"3c:ec:ef:00:00:01\","
           "\"model\":\"8086:15f3\",\"driver\":\"igc\",\"speed_mbps\":null,\"operstate\":\"down\","
           "\"management\":false,\"iommu_group\":null,\"configured_in\":[\"200\"],\"free\":false}\n"
           "]\n");
    expect(f, "nics --model 8086:1533", false,
           "NODE  ADDRESS       IFNAME  MAC                MODEL      DRIVER  SPEED_MBPS  OPERSTATE  MANAGEMENT  "
           "IOMMU_GROUP  CONFIGURED_IN  FREE\n"
           "pve1  0000:01:00.0  enp1s0  a8:a1:59:00:00:01  8086:1533  igb     1000        up         yes         "
           "1            -              no\n");
}

/* nics --free: not configured in any VM (running or stopped), not the
 * management NIC, and assignable alone. Of pve1's and pve2's six NICs only
 * 0000:03:00.0 on pve1 is free: 01:00.0 carries the management route,
 * 02:00.0 is configured in stopped VM 100, the 82599 pair shares group 4
 * with a SATA controller, and pve2's NIC is in no group (IOMMU off) and
 * configured in VM 200. Taking VM 100's config away frees 02:00.0. */
static void test_nics_free(void **state)
{
    fx_t *f = *state;
    const char *one =
        "[\n"
        "{\"node\":\"pve1\",\"address\":\"0000:03:00.0\",\"ifname\":\"enp3s0\",\"mac\":\"a8:a1:59:00:00:03\","
        "\"model\":\"8086:15f3\",\"driver\":\"igc\",\"speed_mbps\":null,\"operstate\":\"down\","
        "\"management\":false,\"iommu_group\":3,\"configured_in\":[],\"free\":true}\n"
        "]\n";
    expect(f, "nics --free", true, one);
    expect(f, "nics --free --model 8086:15F3", true, one); /* model in capitals too */
    expect(f, "nics --free --node pve2", true, "[]\n");
    expect(f, "nics --free --model 8086:10fb", false,
           "NODE  ADDRESS  IFNAME  MAC  MODEL  DRIVER  SPEED_MBPS  OPERSTATE  MANAGEMENT  IOMMU_GROUP  CONFIGURED_IN  "
           "FREE\n");

    ib_t *b = ib_pve1();
    b->inv.n_vms = 1;
    b->vms[0] = b->vms[1]; /* only VM 101, which passes nothing through */
    ingest(f->s, "pve1", b, NOW + 20);
    char *out, *err;
    assert_int_equal(run(f, "nics --free", false, &out, &err), 0);
    assert_non_null(strstr(out, "pve1  0000:02:00.0"));
    assert_non_null(strstr(out, "pve1  0000:03:00.0"));
    assert_null(strstr(out, "0000:01:00.0"));
    assert_null(strstr(out, "0000:04:00"));
    free(out);
    free(err);
}

/* groups NODE: one row per IOMMU group, with its members and the endpoints
 * that cannot be passed alone. */
static void test_groups(void **state)
{
    fx_t *f = *state;
    expect(f, "groups pve1", false,
           "GROUP_ID  TYPE    ISOLATED  DEVICES                                 BLOCKED\n"
           "0         DMA-FQ  yes       0000:00:00.0                            -\n"
           "1         DMA-FQ  yes       0000:01:00.0                            -\n"
           "2         DMA-FQ  yes       0000:02:00.0                            -\n"
           "3         DMA-FQ  yes       0000:03:00.0                            -\n"
           "4         DMA-FQ  no        0000:04:00.0,0000:04:00.1,0000:05:00.0  "
           "0000:04:00.0,0000:04:00.1,0000:05:00.0\n");
    expect(f, "groups pve1", true,
           "[\n"
           "{\"group_id\":0,\"type\":\"DMA-FQ\",\"isolated\":true,\"devices\":[\"0000:00:00.0\"],\"blocked\":[]},\n"
           "{\"group_id\":1,\"type\":\"DMA-FQ\",\"isolated\":true,\"devices\":[\"0000:01:00.0\"],\"blocked\":[]},\n"
           "{\"group_id\":2,\"type\":\"DMA-FQ\",\"isolated\":true,\"devices\":[\"0000:02:00.0\"],\"blocked\":[]},\n"
           "{\"group_id\":3,\"type\":\"DMA-FQ\",\"isolated\":true,\"devices\":[\"0000:03:00.0\"],\"blocked\":[]},\n"
           "{\"group_id\":4,\"type\":\"DMA-FQ\",\"isolated\":false,"
           "\"devices\":[\"0000:04:00.0\",\"0000:04:00.1\",\"0000:05:00.0\"],"
           "\"blocked\":[\"0000:04:00.0\",\"0000:04:00.1\",\"0000:05:00.0\"]}\n"
           "]\n");
    expect(f, "groups pve2", false, "GROUP_ID  TYPE  ISOLATED  DEVICES  BLOCKED\n");
    expect(f, "groups pve2", true, "[]\n");
}

/* vms and vms --non-migratable, with the reasons. */
static void test_vms(void **state)
{
    fx_t *f = *state;
    expect(f, "vms", false,
           "NODE  VM_ID  NAME    SOURCE   MACHINE  RUNNING  MIGRATABLE  DEVICES       REASONS\n"
           "pve1  100    router  proxmox  q35      no       no          0000:02:00.0  "
           "hostpci0 passes through 0000:02:00.0\n"
           "pve1  101    web     proxmox  q35      yes      yes         -             -\n"
           "pve2  200    db      proxmox  q35      yes      no          0000:01:00.0  "
           "hostpci0 passes through 0000:01:00.0\n");
    expect(f, "vms --non-migratable", true,
           "[\n"
           "{\"node\":\"pve1\",\"vm_id\":\"100\",\"name\":\"router\",\"source\":\"proxmox\",\"machine\":\"q35\","
           "\"running\":false,\"migratable\":false,\"devices\":[\"0000:02:00.0\"],"
           "\"reasons\":[\"hostpci0 passes through 0000:02:00.0\"]},\n"
           "{\"node\":\"pve2\",\"vm_id\":\"200\",\"name\":\"db\",\"source\":\"proxmox\",\"machine\":\"q35\","
           "\"running\":true,\"migratable\":false,\"devices\":[\"0000:01:00.0\"],"
           "\"reasons\":[\"hostpci0 passes through 0000:01:00.0\"]}\n"
           "]\n");
    expect(f, "vms --node pve1 --non-migratable", false,
           "NODE  VM_ID  NAME    SOURCE   MACHINE  RUNNING  MIGRATABLE  DEVICES       REASONS\n"
           "pve1  100    router  proxmox  q35      no       no          0000:02:00.0  "
           "hostpci0 passes through 0000:02:00.0\n");
}

/* show NODE: the node's facts and reasons, then devices, groups, NICs, VMs,
 * scan errors and recent events; JSON is one object with those arrays. */
static void test_show(void **state)
{
    fx_t *f = *state;
    char *out, *err;
    assert_int_equal(run(f, "show pve2", false, &out, &err), 0);
    static const char *const parts[] = {
        "NODE pve2\nname                 pve2\nonline               yes\nverdict              needs-kernel-args\n"
        "loader               grub\n",
        "iommu_enabled        no\n",
        "reasons              Add intel_iommu=on to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then run "
        "update-grub\n",
        "configured_args      root=ZFS=rpool/ROOT/pve-1\n                     quiet\n",
        "refresh_command      update-grub\n",
        "\nDEVICES\nADDRESS       CLASS  CLASS_NAME           MODEL      VENDOR_NAME        DEVICE_NAME       "
        "          DRIVER  IOMMU_GROUP  NUMA_NODE  LINK_SPEED  LINK_WIDTH  SRIOV_TOTAL  PHYSFN  ASSIGNABLE_ALONE\n"
        "0000:01:00.0  0200   Ethernet controller  8086:15f3  Intel Corporation  Ethernet Controller I225-V  igc "
        "    -            -          5GT/s       1           -            -       -\n",
        "\nGROUPS\n(none)\n",
        "\nNICS\nADDRESS       IFNAME  MAC                MODEL      DRIVER  SPEED_MBPS  OPERSTATE  MANAGEMENT  "
        "IOMMU_GROUP  CONFIGURED_IN  FREE\n0000:01:00.0  eno1    3c:ec:ef:00:00:01  8086:15f3  igc     -        "
        "   down       no          -            200            no\n",
        "\nVMS\nVM_ID  NAME  SOURCE   MACHINE  RUNNING  MIGRATABLE  DEVICES       REASONS\n"
        "200    db    proxmox  q35      yes      no          0000:01:00.0  hostpci0 passes through 0000:01:00.0\n",
        "\nSCAN ERRORS\nLOCATION                                      MESSAGE\n"
        "sys/bus/pci/devices/0000:01:00.0/iommu_group  no IOMMU group: the IOMMU is off\n",
        "\nRECENT EVENTS\nID  TIME                  KIND         DETAIL\n"
        "2   2023-11-14T22:13:25Z  node-online  first inventory\n",
    };
    const char *at = out;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        const char *hit = strstr(at, parts[i]);
        if (!hit)
            fail_msg("show pve2: missing (in order) part %zu:\n%s\n--- output ---\n%s", i, parts[i], out);
        at = hit + strlen(parts[i]);
    }
    assert_string_equal(at, "");
    free(out);
    free(err);

    assert_int_equal(run(f, "show pve1", true, &out, &err), 0);
    assert_json(out);
    assert_true(strncmp(out, "{\"node\":{\"name\":\"pve1\",\"online\":true,\"verdict\":\"ready\"", 52) == 0);
    static const char *const keys[] = {"\n\"devices\":[\n{\"address\":\"0000:00:00.0\"", "\n\"groups\":[\n",
                                       "\n\"nics\":[\n", "\n\"vms\":[\n{\"vm_id\":\"100\"", "\n\"scan_errors\":[],",
                                       "\n\"events\":[\n{\"id\":1,\"time\":1700000000,\"kind\":\"node-online\""};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strstr(out, keys[i]))
            fail_msg("show pve1 --json lacks %s:\n%s", keys[i], out);
    assert_non_null(strstr(out, "\"iommu_units\":[\"dmar0\",\"dmar1\"]"));
    assert_non_null(strstr(out, "\"reasons\":[]"));
    free(out);
    free(err);
}

/* events [--node N] [--limit N]: the newest N, oldest first. */
static void test_events(void **state)
{
    fx_t *f = *state;
    char *err = NULL;
    assert_int_equal(store_event(f->s, NOW + 7, "key-refused", NULL, "unknown key from 10.0.0.9", &err), 0);
    expect(f, "events", false,
           "ID  TIME                  KIND         NODE  DETAIL\n"
           "1   2023-11-14T22:13:20Z  node-online  pve1  first inventory\n"
           "2   2023-11-14T22:13:25Z  node-online  pve2  first inventory\n"
           "3   2023-11-14T22:13:27Z  key-refused  -     unknown key from 10.0.0.9\n");
    expect(f, "events --limit 2", true,
           "[\n"
           "{\"id\":2,\"time\":1700000005,\"kind\":\"node-online\",\"node\":\"pve2\",\"detail\":\"first inventory\"},\n"
           "{\"id\":3,\"time\":1700000007,\"kind\":\"key-refused\",\"node\":null,"
           "\"detail\":\"unknown key from 10.0.0.9\"}\n"
           "]\n");
    expect(f, "events --node pve1 --limit=5", true,
           "[\n"
           "{\"id\":1,\"time\":1700000000,\"kind\":\"node-online\",\"node\":\"pve1\",\"detail\":\"first inventory\"}\n"
           "]\n");
}

/* Usage errors are status 2 with a sentence; an unknown node is status 1. */
static void test_errors(void **state)
{
    fx_t *f = *state;
    expect_error(f, "bogus", 2,
                 "unknown command 'bogus'; commands: nodes, nics, groups, vms, show, events, sql, conflicts, plan");
    expect_error(f, "nics --bogus", 2,
                 "unknown option '--bogus' for nics (usage: nics [--node N] [--model VVVV:DDDD] [--free])");
    expect_error(f, "nics --node", 2, "--node needs a value (usage: nics [--node N] [--model VVVV:DDDD] [--free])");
    expect_error(f, "nics --model 8086", 2, "--model wants VVVV:DDDD (hex vendor and device id), not '8086'");
    expect_error(f, "nics --free=yes", 2,
                 "--free takes no value (usage: nics [--node N] [--model VVVV:DDDD] [--free])");
    expect_error(f, "nodes extra", 2, "unexpected argument 'extra' for nodes (usage: nodes)");
    expect_error(f, "groups", 2, "groups needs a node name (usage: groups NODE)");
    expect_error(f, "show", 2, "show needs a node name (usage: show NODE)");
    expect_error(f, "events --limit 0", 2, "--limit wants a number from 1 to 1000000, not '0'");
    expect_error(f, "sql", 2, "sql needs a statement (usage: sql \"SELECT ... FROM v_nodes\")");
    expect_error(f, "nics --node nope", 1, "no node named nope");
    expect_error(f, "groups nope", 1, "no node named nope");
    expect_error(f, "show nope", 1, "no node named nope");
    expect_error(f, "vms --node nope", 1, "no node named nope");
    expect_error(f, "events --node nope", 1, "no node named nope");
    char *out, *err = NULL;
    buf_t b = BUF_INIT;
    buf_reset(&b);
    assert_int_equal(query_run(f->s, &f->opts, 0, NULL, false, &b, &err), 2);
    assert_string_equal(err,
                        "no command given; commands: nodes, nics, groups, vms, show, events, sql, conflicts, plan");
    free(err);
    buf_free(&b);
    (void)out;
}

/* ---- sql ---- */

/* A read over the views works, in both forms, with SQLite's own types. */
static void test_sql_select(void **state)
{
    fx_t *f = *state;
    char *out, *err;
    assert_int_equal(run_sql(f, "SELECT name, verdict, nic_count FROM v_nodes ORDER BY name", false, &out, &err), 0);
    assert_string_equal(out, "NAME  VERDICT            NIC_COUNT\n"
                             "pve1  ready              5\n"
                             "pve2  needs-kernel-args  1\n");
    free(out);
    assert_int_equal(run_sql(f, "SELECT name, online, 1.5 AS x, NULL AS n, x'00ff' AS b FROM v_nodes"
                                " WHERE name = 'pve2'",
                             true, &out, &err),
                     0);
    /* untyped: online stays a number, a BLOB is hex */
    assert_string_equal(out, "[\n{\"name\":\"pve2\",\"online\":1,\"x\":1.5,\"n\":null,\"b\":\"00ff\"}\n]\n");
    free(out);
    /* views inside CTEs, subqueries, count(*), json_each over a list column */
    assert_int_equal(run_sql(f,
                             "WITH x AS (SELECT * FROM v_nics WHERE free) SELECT count(*) AS n,"
                             " (SELECT count(*) FROM v_devices) AS d FROM x",
                             false, &out, &err),
                     0);
    assert_string_equal(out, "N  D\n1  8\n");
    free(out);
    assert_int_equal(run_sql(f, "SELECT n.name, r.value FROM v_nodes n, json_each(n.reasons) r", true, &out, &err),
                     0);
    assert_string_equal(out, "[\n{\"name\":\"pve2\",\"value\":\"Add intel_iommu=on to GRUB_CMDLINE_LINUX_DEFAULT in "
                             "/etc/default/grub, then run update-grub\"}\n]\n");
    free(out);
    assert_int_equal(run_sql(f, "SELECT count(*) AS views FROM sqlite_schema WHERE type = 'view'", false, &out, &err),
                     0);
    assert_string_equal(out, "VIEWS\n12\n");
    free(out);
    /* a trailing semicolon and comment are not a second statement */
    assert_int_equal(run_sql(f, "SELECT 1 AS one; -- done\n", false, &out, &err), 0);
    assert_string_equal(out, "ONE\n1\n");
    free(out);
    /* several words are joined into one statement */
    char *argv[] = {"sql", "SELECT", "count(*)", "AS", "n", "FROM", "v_vms"};
    buf_t b = BUF_INIT;
    buf_reset(&b);
    assert_int_equal(query_run(f->s, &f->opts, 7, argv, false, &b, &err), 0);
    assert_string_equal(b.p, "N\n3\n");
    buf_free(&b);
}

/* Everything the database holds, for before/after comparisons. */
static char *dump(store_t *s)
{
    sqlite3 *db = store_db(s);
    buf_t b = BUF_INIT;
    buf_reset(&b);
    static const char *const sql[] = {
        "SELECT group_concat(type || ' ' || name || ' ' || coalesce(sql, ''), '\n') FROM sqlite_schema",
        "PRAGMA user_version",
        "SELECT group_concat(name || online || last_seen || hex(inventory_hash)) FROM nodes",
        "SELECT count(*), group_concat(address || driver) FROM devices",
        "SELECT count(*), group_concat(address || configured_in) FROM nics",
        "SELECT count(*), group_concat(coalesce(assignable_alone, '-')) FROM devices",
        "SELECT count(*) FROM iommu_groups",
        "SELECT count(*), group_concat(vm_id || running) FROM vms", "SELECT count(*) FROM vm_passthrough",
        "SELECT count(*), group_concat(kind || detail) FROM events", "SELECT count(*) FROM iommu",
        "SELECT count(*) FROM scan_errors",
    };
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql[i], -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++)
                buf_printf(&b, "%s|", sqlite3_column_text(st, c) ? (const char *)sqlite3_column_text(st, c) : "");
        buf_putc(&b, '\n');
        sqlite3_finalize(st);
    }
    return buf_steal(&b);
}

static int64_t data_version(store_t *s)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(s), "PRAGMA data_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Each write, escape and runaway is refused with its own sentence, and the
 * database is exactly as before (contents, schema, and no commit by any
 * other connection: PRAGMA data_version unchanged). */
static void test_sql_refusals(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *sql;
        const char *err;
    } cases[] = {
        {"INSERT INTO events (time, kind, detail) VALUES (1, 'x', 'y')", "refused: pcifleet sql is read-only (INSERT)"},
        {"UPDATE nodes SET online = 0", "refused: pcifleet sql is read-only (UPDATE)"},
        {"DELETE FROM events", "refused: pcifleet sql is read-only (DELETE)"},
        {"DROP TABLE nodes", "refused: pcifleet sql is read-only (DROP TABLE)"},
        {"DROP VIEW v_nodes", "refused: pcifleet sql is read-only (DROP VIEW)"},
        {"CREATE TABLE t (x)", "refused: pcifleet sql is read-only (CREATE TABLE)"},
        {"CREATE TEMP VIEW v_x AS SELECT * FROM nodes", "refused: pcifleet sql is read-only (CREATE TEMP VIEW)"},
        {"ALTER TABLE nodes ADD COLUMN x", "refused: pcifleet sql is read-only (ALTER TABLE)"},
        {"BEGIN", "refused: pcifleet sql is read-only (BEGIN/COMMIT/ROLLBACK)"},
        {"ANALYZE", "refused: pcifleet sql is read-only (ANALYZE)"},
        {"VACUUM", "refused: pcifleet sql is read-only"},
        {"ATTACH DATABASE '/tmp/pcifleet-attach.db' AS x", "refused: pcifleet sql cannot ATTACH databases"},
        {"VACUUM INTO '/tmp/pcifleet-vacuum.db'", "refused: pcifleet sql is read-only"},
        {"DETACH DATABASE x", "refused: pcifleet sql cannot DETACH databases"},
        {"PRAGMA journal_mode = DELETE", "refused: pcifleet sql does not run PRAGMA (journal_mode)"},
        {"PRAGMA writable_schema = ON", "refused: pcifleet sql does not run PRAGMA (writable_schema)"},
        {"PRAGMA user_version", "refused: pcifleet sql does not run PRAGMA (user_version)"},
        {"SELECT * FROM pragma_table_info('nodes')", "refused: pcifleet sql does not run PRAGMA (pragma_table_info)"},
        {"SELECT 1; DELETE FROM events", "refused: pcifleet sql runs exactly one statement"},
        {"SELECT 1; SELECT 2", "refused: pcifleet sql runs exactly one statement"},
        {"SELECT * FROM nodes", "refused: pcifleet sql reads the v_* views, not the table 'nodes' (docs/db.md lists them)"},
        {"SELECT count(*) FROM devices",
         "refused: pcifleet sql reads the v_* views, not the table 'devices' (docs/db.md lists them)"},
        {"SELECT name FROM v_nodes WHERE name IN (SELECT node FROM nics)",
         "refused: pcifleet sql reads the v_* views, not the table 'nics' (docs/db.md lists them)"},
        {"WITH v_nodes AS (SELECT * FROM devices) SELECT * FROM v_nodes",
         "refused: pcifleet sql reads the v_* views, not the table 'devices' (docs/db.md lists them)"},
        {"SELECT * FROM temp.sqlite_schema", "refused: pcifleet sql reads the fleet database only, not 'temp'"},
        {"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
         "refused: query ran longer than 300 ms"},
        {"SELECT a.address FROM v_devices a, v_devices b, v_devices c",
         "refused: the result has more than 100 rows or 32 MiB; add a LIMIT"},
        {"SELEC 1", "sql error: near \"SELEC\": syntax error"},
        {"-- only a comment", "sql error: no SQL statement given"},
    };
    char *before = dump(f->s);
    int64_t dv = data_version(f->s);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out, *err;
        int rc = run_sql(f, cases[i].sql, false, &out, &err);
        if (rc != 1 || !err || strcmp(err, cases[i].err) != 0)
            fail_msg("sql %s: status %d, error '%s' (want '%s')", cases[i].sql, rc, err ? err : "(none)",
                     cases[i].err);
        assert_string_equal(out, "");
        free(out);
        free(err);
        char *after = dump(f->s);
        if (strcmp(before, after) != 0)
            fail_msg("sql %s changed the database", cases[i].sql);
        free(after);
        assert_int_equal(data_version(f->s), dv);
    }
    free(before);
    /* nothing was created next to the database either */
    FILE *fp = fopen("/tmp/pcifleet-vacuum.db", "r");
    assert_null(fp);
    /* and the store still works afterwards (no authorizer left behind) */
    expect(f, "nodes", true,
           "[\n"
           "{\"name\":\"pve1\",\"online\":true,\"verdict\":\"ready\",\"loader\":\"systemd-boot\",\"nics\":5,"
           "\"vms\":2,\"last_seen\":1700000000},\n"
           "{\"name\":\"pve2\",\"online\":true,\"verdict\":\"needs-kernel-args\",\"loader\":\"grub\",\"nics\":1,"
           "\"vms\":1,\"last_seen\":1700000005}\n"
           "]\n");
    ib_t *b = ib_pve2();
    ingest(f->s, "pve2", b, NOW + 30);
}

/* ---- rendering details ---- */

/* Agents' strings reach terminals and scripts safely: control characters
 * become '?' in tables, JSON escapes them, invalid UTF-8 becomes U+FFFD. */
static void test_render_hostile_strings(void **state)
{
    fx_t *f = *state;
    ib_t *b = ib_new("ready", "grub");
    ib_vm(b, "300", "evil\x1b[2Jname\n\xff", PCIFLEET__TRI__TRI_FALSE, "", "line one\nline \"two\"");
    ingest(f->s, "pve3", b, NOW);
    char *out, *err;
    assert_int_equal(run(f, "vms --node pve3", false, &out, &err), 0);
    assert_string_equal(out, "NODE  VM_ID  NAME            SOURCE   MACHINE  RUNNING  MIGRATABLE  DEVICES  REASONS\n"
                             "pve3  300    evil?[2Jname?\xff  proxmox  q35      no       yes         -        "
                             "line one?line \"two\"\n");
    free(out);
    assert_int_equal(run(f, "vms --node pve3", true, &out, &err), 0);
    assert_json(out);
    assert_non_null(strstr(out, "\"name\":\"evil\\u001b[2Jname\\n\\ufffd\""));
    assert_non_null(strstr(out, "\"reasons\":[\"line one\\nline \\\"two\\\"\"]"));
    free(out);
}

/* jtext round trip: what jtext_array writes, jtext_array_items reads back;
 * anything else is rejected. */
static void test_jtext(void **state)
{
    (void)state;
    char *items[] = {"a", "b \"q\" \\ /", "\xc3\xa9t\xc3\xa9", "tab\there"};
    buf_t b = BUF_INIT;
    buf_reset(&b);
    jtext_array(&b, items, 4);
    assert_string_equal(b.p, "[\"a\",\"b \\\"q\\\" \\\\ /\",\"\xc3\xa9t\xc3\xa9\",\"tab\\there\"]");
    strv_t back = STRV_INIT;
    assert_int_equal(jtext_array_items(b.p, b.len, &back), 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(back.v[i], items[i]);
    strv_free(&back);
    assert_int_equal(jtext_array_items("[\"\\u00e9\\ud83d\\ude00\"]", 22, &back), 1);
    assert_string_equal(back.v[0], "\xc3\xa9\xf0\x9f\x98\x80");
    strv_free(&back);
    static const char *const bad[] = {"", "[", "[\"a\"", "[1]", "{\"a\":1}", "[\"a\",]", "[\"a\"] x", "[\"\\x\"]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(jtext_array_items(bad[i], strlen(bad[i]), &back), -1);
        assert_int_equal(back.n, 0);
    }
    assert_int_equal(jtext_array_items(" [ ] ", 5, &back), 0);
    buf_free(&b);
}

/* The answer cache (query.h): a repeated `nics --free` is answered from it
 * while nothing but heartbeats happened, and never after a change: a new
 * inventory or a node going offline gives the new answer at once. Queries
 * that show last_seen (nodes) are never kept. */
static void test_query_cache(void **state)
{
    fx_t *f = *state;
    f->opts.cache = query_cache_new();
    uint64_t lookups, hits;
    char *first, *again, *err;
    assert_int_equal(run(f, "nics --free", true, &first, &err), 0);
    assert_int_equal(run(f, "nics --free", true, &again, &err), 0);
    assert_string_equal(first, again);
    assert_non_null(strstr(first, "\"pve1\""));
    query_cache_stats(f->opts.cache, &lookups, &hits);
    assert_int_equal(lookups, 2);
    assert_int_equal(hits, 1);
    free(again);

    /* table and JSON are different answers */
    char *table;
    assert_int_equal(run(f, "nics --free", false, &table, &err), 0);
    assert_null(strstr(table, "{"));
    free(table);

    /* heartbeats only: still the kept answer */
    bool known, match;
    assert_int_equal(store_heartbeat(f->s, "pve1", NULL, 0, "boot-1", NOW + 30, &known, &match, &err), 0);
    assert_int_equal(store_flush(f->s, &err), 0);
    assert_int_equal(run(f, "nics --free", true, &again, &err), 0);
    assert_string_equal(first, again);
    query_cache_stats(f->opts.cache, &lookups, &hits);
    assert_int_equal(hits, 2);
    free(again);

    /* a new inventory of pve1 without its free I225: the answer changes */
    ib_t *b = ib_pve1();
    b->inv.n_nics = 0;
    ingest(f->s, "pve1", b, NOW + 40);
    assert_int_equal(run(f, "nics --free", true, &again, &err), 0);
    assert_string_not_equal(first, again);
    assert_null(strstr(again, "\"pve1\""));
    query_cache_stats(f->opts.cache, &lookups, &hits);
    assert_int_equal(hits, 2);
    free(again);

    /* nodes shows last_seen: never kept */
    char *n1, *n2;
    assert_int_equal(run(f, "nodes", true, &n1, &err), 0);
    assert_int_equal(store_heartbeat(f->s, "pve2", NULL, 0, "boot-1", NOW + 90, &known, &match, &err), 0);
    assert_int_equal(run(f, "nodes", true, &n2, &err), 0);
    assert_string_not_equal(n1, n2);
    query_cache_stats(f->opts.cache, &lookups, &hits);
    assert_int_equal(hits, 2);
    free(n1);
    free(n2);
    free(first);
    query_cache_destroy(&f->opts.cache);
    assert_null(f->opts.cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nodes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_see_buffered_heartbeats, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nics, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nics_free, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_query_cache, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_groups, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_vms, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_show, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_events, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sql_select, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sql_refusals, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_render_hostile_strings, fx_setup, fx_teardown),
        cmocka_unit_test(test_jtext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
