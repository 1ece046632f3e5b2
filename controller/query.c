/* query — the `pcifleet` query commands (see query.h). Every command reads
 * the v_* views on the store's read-only connection; `sql` goes through the
 * guard in sqlguard.c. Rows are held in a table_t and written by table.c. */
#include "query.h"

#include "plan.h"
#include "sqlguard.h"
#include "table.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_COMMANDS "nodes, nics, groups, vms, show, events, sql, conflicts, plan"
#define QUERY_DEFAULT_EVENTS 50
#define QUERY_SHOW_EVENTS 20

typedef struct {
    store_t *s;
    sqlite3 *ro;
    const query_opts_t *opts;
    bool json;
    buf_t *out;
    char **err;
} q_t;

static int say(q_t *q, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(q_t *q, int status, const char *fmt, ...)
{
    if (q->err) {
        buf_t b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        free(*q->err);
        *q->err = buf_steal(&b);
    }
    return status;
}

/* ---- options ---- */

typedef struct {
    const char *name;   /* "--node" */
    const char **value; /* NULL: a flag */
    bool *flag;
} opt_t;

/* Parses argv[1..] of command cmd: options from opts (--name VALUE or
 * --name=VALUE), --json anywhere, and at most npos_max positional words.
 * Returns 0 or the usage status 2 (with *err). */
static int parse_args(q_t *q, int argc, char **argv, const opt_t *opts, const char **pos, size_t npos_max,
                      size_t *npos, const char *usage)
{
    const char *cmd = argv[0];
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            q->json = true;
            continue;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a, '=');
            size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
            const opt_t *o = NULL;
            for (size_t k = 0; opts && opts[k].name; k++)
                if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, a, nlen) == 0)
                    o = &opts[k];
            if (!o)
                return say(q, 2, "unknown option '%.*s' for %s (usage: %s)", (int)nlen, a, cmd, usage);
            if (!o->value) {
                if (eq)
                    return say(q, 2, "%s takes no value (usage: %s)", o->name, usage);
                *o->flag = true;
                continue;
            }
            if (eq) {
                *o->value = eq + 1;
            } else {
                if (i + 1 >= argc)
                    return say(q, 2, "%s needs a value (usage: %s)", o->name, usage);
                *o->value = argv[++i];
            }
            if (!**o->value)
                return say(q, 2, "%s needs a value (usage: %s)", o->name, usage);
            continue;
        }
        if (*npos >= npos_max)
            return say(q, 2, "unexpected argument '%s' for %s (usage: %s)", a, cmd, usage);
        pos[(*npos)++] = a;
    }
    return 0;
}

/* ---- running statements ---- */

static sqlite3_stmt *prep(q_t *q, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->ro, sql, -1, &st, NULL) != SQLITE_OK) {
        say(q, 1, "query failed: %s", sqlite3_errmsg(q->ro));
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Fills t from st (typed), finalizes st. Returns 0 or status 1. */
static int fill(q_t *q, sqlite3_stmt *st, table_t *t)
{
    char *why = NULL;
    int rc = table_fill(t, st, true, 0, 0, &why);
    sqlite3_finalize(st);
    if (rc < 0) {
        say(q, 1, "%s", why ? why : "query failed");
        free(why);
        return 1;
    }
    return 0;
}

static int select_rows(q_t *q, const char *sql, const char *p1, const char *p2, table_t *t)
{
    sqlite3_stmt *st = prep(q, sql);
    if (!st)
        return 1;
    if (p1)
        sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
    if (p2)
        sqlite3_bind_text(st, 2, p2, -1, SQLITE_STATIC);
    return fill(q, st, t);
}

static void emit(q_t *q, table_t *t)
{
    if (q->json) {
        table_write_json(t, q->out);
        buf_putc(q->out, '\n');
    } else {
        table_write_text(t, q->out);
    }
}

/* 0 when node exists, else status 1 "no node named X". */
static int need_node(q_t *q, const char *node)
{
    sqlite3_stmt *st = prep(q, "SELECT 1 FROM v_nodes WHERE name = ?1");
    if (!st)
        return 1;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return say(q, 1, "query failed: %s", sqlite3_errmsg(q->ro));
    return say(q, 1, "no node named %s", node);
}

/* ---- the commands ---- */

static const char SQL_NODES[] = "SELECT name, online, verdict, loader, nic_count AS nics, vm_count AS vms, last_seen"
                                " FROM v_nodes ORDER BY name";

static int cmd_nodes(q_t *q, int argc, char **argv)
{
    size_t npos;
    int rc = parse_args(q, argc, argv, NULL, NULL, 0, &npos, "nodes");
    if (rc)
        return rc;
    table_t *t = table_new();
    rc = select_rows(q, SQL_NODES, NULL, NULL, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    return rc;
}

static bool is_hex4(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

#define NIC_COLUMNS                                                                                            \
    "address, ifname, mac, model, driver, speed_mbps, operstate, management, iommu_group, configured_in, free"

static int cmd_nics(q_t *q, int argc, char **argv)
{
    static const char usage[] = "nics [--node N] [--model VVVV:DDDD] [--free]";
    const char *node = NULL, *model = NULL;
    bool free_only = false;
    const opt_t opts[] = {{"--node", &node, NULL}, {"--model", &model, NULL}, {"--free", NULL, &free_only}, {0}};
    size_t npos;
    int rc = parse_args(q, argc, argv, opts, NULL, 0, &npos, usage);
    if (rc)
        return rc;
    char mbuf[10];
    if (model) {
        if (strlen(model) != 9 || model[4] != ':' || !is_hex4(model) || !is_hex4(model + 5))
            return say(q, 2, "--model wants VVVV:DDDD (hex vendor and device id), not '%s'", model);
        for (int i = 0; i < 9; i++)
            mbuf[i] = (model[i] >= 'A' && model[i] <= 'F') ? (char)(model[i] - 'A' + 'a') : model[i];
        mbuf[9] = '\0';
        model = mbuf;
    }
    if (node && (rc = need_node(q, node)))
        return rc;
    buf_t sql = BUF_INIT;
    buf_puts(&sql, "SELECT node, " NIC_COLUMNS " FROM v_nics WHERE 1");
    if (node)
        buf_puts(&sql, " AND node = ?1");
    if (model)
        buf_puts(&sql, " AND model = ?2");
    if (free_only)
        buf_puts(&sql, " AND free");
    buf_puts(&sql, " ORDER BY node, address");
    table_t *t = table_new();
    rc = select_rows(q, sql.p, node, model, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    buf_free(&sql);
    return rc;
}

static const char SQL_GROUPS[] = "SELECT group_id, type, isolated, devices, blocked FROM v_groups WHERE node = ?1"
                                 " ORDER BY group_id";

static int cmd_groups(q_t *q, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    int rc = parse_args(q, argc, argv, NULL, pos, 1, &npos, "groups NODE");
    if (rc)
        return rc;
    if (npos != 1)
        return say(q, 2, "groups needs a node name (usage: groups NODE)");
    if ((rc = need_node(q, pos[0])))
        return rc;
    table_t *t = table_new();
    rc = select_rows(q, SQL_GROUPS, pos[0], NULL, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    return rc;
}

#define VM_COLUMNS "vm_id, name, source, machine, running, migratable, devices, reasons"
#define VM_ORDER " ORDER BY node, source, CAST(vm_id AS INTEGER), vm_id"

static int cmd_vms(q_t *q, int argc, char **argv)
{
    static const char usage[] = "vms [--node N] [--non-migratable]";
    const char *node = NULL;
    bool nonmig = false;
    const opt_t opts[] = {{"--node", &node, NULL}, {"--non-migratable", NULL, &nonmig}, {0}};
    size_t npos;
    int rc = parse_args(q, argc, argv, opts, NULL, 0, &npos, usage);
    if (rc)
        return rc;
    if (node && (rc = need_node(q, node)))
        return rc;
    buf_t sql = BUF_INIT;
    buf_puts(&sql, "SELECT node, " VM_COLUMNS " FROM v_vms WHERE 1");
    if (node)
        buf_puts(&sql, " AND node = ?1");
    if (nonmig)
        buf_puts(&sql, " AND migratable = 0");
    buf_puts(&sql, VM_ORDER);
    table_t *t = table_new();
    rc = select_rows(q, sql.p, node, NULL, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    buf_free(&sql);
    return rc;
}

/* What the reports already show wrong. Each row: kind, node, vm, address,
 * detail (a sentence with what to do). Kinds: shared-device,
 * missing-device, unresolved-mapping, pcie-on-i440fx, pf-with-vfs-in-use,
 * group-split, claim-other-vm, claim-not-in-config, claim-device-gone. */
static const char SQL_CONFLICTS[] =
    "WITH pt AS (SELECT p.*, v.machine, v.running FROM vm_passthrough p JOIN vms v"
    "            ON v.node = p.node AND v.source = p.source AND v.vm_id = p.vm_id)"
    " SELECT * FROM ("
    /* one device in several VMs' configs */
    " SELECT 'shared-device' AS kind, node, group_concat(DISTINCT vm_id) AS vm, address,"
    "  'configured in VMs ' || group_concat(DISTINCT vm_id) || ': only the first to start gets it; remove it from"
    " all but one' AS detail"
    "  FROM pt WHERE address IS NOT NULL GROUP BY node, address HAVING count(DISTINCT vm_id) > 1"
    /* addresses that are gone */
    " UNION ALL SELECT 'missing-device', node, vm_id, address,"
    "  'hostpci' || hostpci || ' names ' || address || ', which the node does not have (moved hardware or a"
    " renumbered bus?): the VM will not start; fix the entry'"
    "  FROM pt WHERE address IS NOT NULL AND NOT EXISTS"
    "  (SELECT 1 FROM devices d WHERE d.node = pt.node AND d.address = pt.address)"
    " UNION ALL SELECT 'unresolved-mapping', node, vm_id, NULL,"
    "  'hostpci' || hostpci || ' uses mapping ' || mapping || ', which has no device for this node: the VM will"
    " not start here'"
    "  FROM pt WHERE address IS NULL AND mapping IS NOT NULL"
    /* pcie=1 needs q35 */
    " UNION ALL SELECT 'pcie-on-i440fx', node, vm_id, min(address),"
    "  'hostpci' || hostpci || ' has pcie=1 but the machine is ' || coalesce(nullif(machine, ''), 'i440fx (the"
    " default)') || ': the VM will not start; drop pcie=1 or use machine q35'"
    "  FROM pt WHERE pcie = 1 AND source = 'proxmox' AND coalesce(machine, '') NOT LIKE '%q35%'"
    "  GROUP BY node, vm_id, hostpci"
    /* a PF passed while its VFs are in use */
    " UNION ALL SELECT 'pf-with-vfs-in-use', pt.node, pt.vm_id, pt.address,"
    "  'the SR-IOV PF is passed while its VFs ' || group_concat(DISTINCT vf.address) || ' are in use: the VFs"
    " go with the PF'"
    "  FROM pt JOIN devices vf ON vf.node = pt.node AND vf.physfn = pt.address"
    "  WHERE EXISTS (SELECT 1 FROM vm_passthrough u WHERE u.node = vf.node AND u.address = vf.address)"
    "     OR EXISTS (SELECT 1 FROM claims k WHERE k.node = vf.node AND k.address = vf.address)"
    "  GROUP BY pt.node, pt.vm_id, pt.address"
    /* passed without the rest of its IOMMU group */
    " UNION ALL SELECT 'group-split', pt.node, pt.vm_id, pt.address,"
    "  'IOMMU group ' || d.iommu_group || ' also holds ' || group_concat(DISTINCT o.address) || ', not passed"
    " to this VM: a group goes to a VM whole; pass them too, or use a device alone in its group'"
    "  FROM pt JOIN devices d ON d.node = pt.node AND d.address = pt.address"
    "  JOIN devices o ON o.node = d.node AND o.iommu_group = d.iommu_group AND o.address <> d.address"
    "   AND o.bridge = 0"
    "  WHERE NOT EXISTS (SELECT 1 FROM vm_passthrough u WHERE u.node = pt.node AND u.source = pt.source"
    "   AND u.vm_id = pt.vm_id AND u.address = o.address)"
    "  GROUP BY pt.node, pt.vm_id, pt.address"
    /* claims against the configs */
    " UNION ALL SELECT 'claim-other-vm', k.node, k.vm_id, k.address,"
    "  'claimed for VM ' || k.vm_id || ' but configured in VM ' || group_concat(DISTINCT pt.vm_id)"
    "  FROM claims k JOIN pt ON pt.node = k.node AND pt.address = k.address AND pt.vm_id <> k.vm_id"
    "  GROUP BY k.node, k.address"
    " UNION ALL SELECT 'claim-not-in-config', k.node, k.vm_id, k.address,"
    "  'applied as hostpci' || coalesce(k.hostpci, '?') || ' but the config of VM ' || k.vm_id || ' does not"
    " hold it: apply it again or release it'"
    "  FROM claims k WHERE k.state = 'applied' AND NOT EXISTS"
    "  (SELECT 1 FROM vm_passthrough u WHERE u.node = k.node AND u.address = k.address AND u.vm_id = k.vm_id)"
    " UNION ALL SELECT 'claim-device-gone', k.node, k.vm_id, k.address,"
    "  'claimed for VM ' || k.vm_id || ' but the node no longer has the device: release the claim'"
    "  FROM claims k WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.node = k.node AND d.address = k.address)"
    " ) ORDER BY node, kind, vm, address";

static int cmd_conflicts(q_t *q, int argc, char **argv)
{
    size_t npos;
    int rc = parse_args(q, argc, argv, NULL, NULL, 0, &npos, "conflicts");
    if (rc)
        return rc;
    table_t *t = table_new();
    rc = select_rows(q, SQL_CONFLICTS, NULL, NULL, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    return rc;
}

static int cmd_plan(q_t *q, int argc, char **argv)
{
    char *why = NULL;
    int rc = plan_run(q->ro, argc, argv, q->json, q->out, &why);
    if (rc)
        say(q, rc, "%s", why ? why : "plan failed");
    free(why);
    return rc;
}

static int parse_limit(q_t *q, const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 1000000)
        return say(q, 2, "--limit wants a number from 1 to 1000000, not '%s'", s);
    *out = v;
    return 0;
}

static int cmd_events(q_t *q, int argc, char **argv)
{
    static const char usage[] = "events [--node N] [--limit N]";
    const char *node = NULL, *limit_s = NULL;
    const opt_t opts[] = {{"--node", &node, NULL}, {"--limit", &limit_s, NULL}, {0}};
    size_t npos;
    int rc = parse_args(q, argc, argv, opts, NULL, 0, &npos, usage);
    if (rc)
        return rc;
    long limit = QUERY_DEFAULT_EVENTS;
    if (limit_s && (rc = parse_limit(q, limit_s, &limit)))
        return rc;
    if (node && (rc = need_node(q, node)))
        return rc;
    sqlite3_stmt *st = prep(q, node ? "SELECT id, time, kind, node, detail FROM (SELECT * FROM v_events"
                                      " WHERE node = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id"
                                    : "SELECT id, time, kind, node, detail FROM (SELECT * FROM v_events"
                                      " ORDER BY id DESC LIMIT ?2) ORDER BY id");
    if (!st)
        return 1;
    if (node)
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit);
    table_t *t = table_new();
    rc = fill(q, st, t);
    if (!rc)
        emit(q, t);
    table_destroy(&t);
    return rc;
}

/* `show NODE`: the node, then its devices, groups, NICs, VMs, scan errors
 * and recent events; one read transaction, so all from one state. */
static const struct {
    const char *key;   /* JSON key */
    const char *title; /* text heading */
    const char *sql;   /* ?1 = node */
} show_parts[] = {
    {"devices", "DEVICES",
     "SELECT address, class, class_name, model, vendor_name, device_name, driver, iommu_group, numa_node,"
     " link_speed, link_width, sriov_total, physfn, assignable_alone FROM v_devices WHERE node = ?1"
     " ORDER BY address"},
    {"groups", "GROUPS", SQL_GROUPS},
    {"nics", "NICS", "SELECT " NIC_COLUMNS " FROM v_nics WHERE node = ?1 ORDER BY address"},
    {"vms", "VMS", "SELECT " VM_COLUMNS " FROM v_vms WHERE node = ?1" VM_ORDER},
    {"scan_errors", "SCAN ERRORS", "SELECT location, message FROM v_scan_errors WHERE node = ?1 ORDER BY seq"},
    {"events", "RECENT EVENTS",
     "SELECT id, time, kind, detail FROM (SELECT * FROM v_events WHERE node = ?1 ORDER BY id DESC LIMIT 20)"
     " ORDER BY id"},
};

static int cmd_show(q_t *q, int argc, char **argv)
{
    const char *pos[1];
    size_t npos;
    int rc = parse_args(q, argc, argv, NULL, pos, 1, &npos, "show NODE");
    if (rc)
        return rc;
    if (npos != 1)
        return say(q, 2, "show needs a node name (usage: show NODE)");
    const char *node = pos[0];
    if (sqlite3_exec(q->ro, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return say(q, 1, "query failed: %s", sqlite3_errmsg(q->ro));
    table_t *t = table_new();
    buf_t body = BUF_INIT;
    buf_reset(&body);
    if ((rc = need_node(q, node)))
        goto out;
    if ((rc = select_rows(q, "SELECT * FROM v_nodes WHERE name = ?1", node, NULL, t)))
        goto out;
    if (q->json) {
        buf_puts(&body, "{\"node\":");
        table_write_json_row(t, 0, &body);
    } else {
        buf_printf(&body, "NODE %s\n", node);
        table_write_record(t, 0, &body);
    }
    for (size_t i = 0; i < sizeof(show_parts) / sizeof(show_parts[0]); i++) {
        if ((rc = select_rows(q, show_parts[i].sql, node, NULL, t)))
            goto out;
        if (q->json) {
            buf_printf(&body, ",\n\"%s\":", show_parts[i].key);
            table_write_json(t, &body);
        } else {
            buf_printf(&body, "\n%s\n", show_parts[i].title);
            if (table_rows(t))
                table_write_text(t, &body);
            else
                buf_puts(&body, "(none)\n");
        }
    }
    if (q->json)
        buf_puts(&body, "}\n");
    buf_append(q->out, body.p, body.len);
out:
    sqlite3_exec(q->ro, "COMMIT", NULL, NULL, NULL);
    table_destroy(&t);
    buf_free(&body);
    return rc;
}

static int cmd_sql(q_t *q, int argc, char **argv)
{
    buf_t sql = BUF_INIT;
    buf_reset(&sql);
    int words = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) { /* alone, it could only be a comment */
            q->json = true;
            continue;
        }
        if (words++)
            buf_putc(&sql, ' ');
        buf_puts(&sql, argv[i]);
    }
    if (!words) {
        buf_free(&sql);
        return say(q, 2, "sql needs a statement (usage: sql \"SELECT ... FROM v_nodes\")");
    }
    sqlguard_limits_t lim = {
        .time_limit_ms = q->opts ? q->opts->sql_time_limit_ms : 0,
        .max_rows = q->opts ? q->opts->sql_max_rows : 0,
    };
    table_t *t = table_new();
    char *why = NULL;
    int rc = sqlguard_run(q->ro, sql.p, sql.len, &lim, t, &why);
    if (rc == 0) {
        emit(q, t);
    } else {
        say(q, 1, "%s", why ? why : "query failed");
        rc = 1;
    }
    free(why);
    table_destroy(&t);
    buf_free(&sql);
    return rc;
}

/* cacheable: the output holds nothing that moves with heartbeats alone
 * (no last_seen, no online flag), see query_cache_t */
static const struct {
    const char *name;
    int (*run)(q_t *q, int argc, char **argv);
    bool cacheable;
} commands[] = {
    {"nodes", cmd_nodes, false}, {"nics", cmd_nics, true},     {"groups", cmd_groups, true},
    {"vms", cmd_vms, true},      {"show", cmd_show, false},    {"events", cmd_events, false},
    {"sql", cmd_sql, false},         {"conflicts", cmd_conflicts, true}, {"plan", cmd_plan, false},
};

/* ---- kept answers ---- */

typedef struct {
    char *key;        /* argv joined by NUL bytes, then the json flag */
    size_t key_len;
    uint64_t version; /* store_content_version when computed */
    blob_t *body;     /* shared with answers still being sent (query_run_kept) */
    uint64_t used;    /* lookup clock of the last hit, for replacement */
} cache_entry_t;

struct query_cache {
    cache_entry_t e[QUERY_CACHE_ENTRIES];
    uint64_t clock, lookups, hits;
};

query_cache_t *query_cache_new(void) { return xcalloc(1, sizeof(query_cache_t)); }

void query_cache_destroy(query_cache_t **cp)
{
    if (!cp || !*cp)
        return;
    for (size_t i = 0; i < QUERY_CACHE_ENTRIES; i++) {
        free((*cp)->e[i].key);
        blob_unref(&(*cp)->e[i].body);
    }
    free(*cp);
    *cp = NULL;
}

void query_cache_stats(const query_cache_t *c, uint64_t *lookups, uint64_t *hits)
{
    *lookups = c ? c->lookups : 0;
    *hits = c ? c->hits : 0;
}

static void cache_key(int argc, char **argv, bool json, buf_t *k)
{
    for (int i = 0; i < argc; i++) {
        buf_puts(k, argv[i]);
        buf_putc(k, '\0');
    }
    buf_putc(k, json ? 'j' : 't');
}

static cache_entry_t *cache_lookup(query_cache_t *c, const buf_t *k, uint64_t version)
{
    c->lookups++;
    for (size_t i = 0; i < QUERY_CACHE_ENTRIES; i++) {
        cache_entry_t *e = &c->e[i];
        if (e->key && e->version == version && e->key_len == k->len && memcmp(e->key, k->p, k->len) == 0) {
            e->used = ++c->clock;
            c->hits++;
            return e;
        }
    }
    return NULL;
}

static cache_entry_t *cache_store(query_cache_t *c, const buf_t *k, uint64_t version, const char *body, size_t len)
{
    if (len > QUERY_CACHE_MAX_BYTES)
        return NULL;
    cache_entry_t *victim = &c->e[0];
    for (size_t i = 0; i < QUERY_CACHE_ENTRIES; i++) {
        cache_entry_t *e = &c->e[i];
        if (e->key && e->key_len == k->len && memcmp(e->key, k->p, k->len) == 0) {
            victim = e; /* an older answer to the same question */
            break;
        }
        if (!e->key || e->used < victim->used)
            victim = e;
        if (!e->key)
            break;
    }
    free(victim->key);
    blob_unref(&victim->body);
    victim->key = xmalloc(k->len);
    memcpy(victim->key, k->p, k->len);
    victim->key_len = k->len;
    victim->version = version;
    /* an answer long enough to go in chunks is kept where a local CLI can
     * read it itself (blob.h, AdminRequest.can_share) */
    victim->body = len > WIRE_ADMIN_INLINE_MAX ? blob_new_shared(body, len) : NULL;
    if (!victim->body)
        victim->body = blob_new(body, len);
    victim->used = ++c->clock;
    return victim;
}

int query_run(store_t *s, const query_opts_t *opts, int argc, char **argv, bool json, buf_t *out, char **err)
{
    return query_run_kept(s, opts, argc, argv, json, out, NULL, err);
}

int query_run_kept(store_t *s, const query_opts_t *opts, int argc, char **argv, bool json, buf_t *out,
                   blob_t **kept, char **err)
{
    if (kept)
        *kept = NULL;
    q_t q = {.s = s, .opts = opts, .json = json, .out = out, .err = err};
    if (argc < 1 || !argv || !argv[0])
        return say(&q, 2, "no command given; commands: " QUERY_COMMANDS);
    int (*run)(q_t *, int, char **) = NULL;
    bool cacheable = false;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[0], commands[i].name) == 0) {
            run = commands[i].run;
            cacheable = commands[i].cacheable;
        }
    if (!run)
        return say(&q, 2, "unknown command '%s'; commands: " QUERY_COMMANDS, argv[0]);
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return say(&q, 2, "argument %d is missing", i);
    char *why = NULL;
    if (store_flush(s, &why) < 0) {
        say(&q, 1, "%s", why ? why : "cannot record heartbeats");
        free(why);
        return 1;
    }
    q.ro = store_reader(s, &why);
    if (!q.ro) {
        say(&q, 1, "%s", why ? why : "cannot open the database for reading");
        free(why);
        return 1;
    }
    query_cache_t *cache = cacheable && opts ? opts->cache : NULL;
    buf_t key = BUF_INIT;
    uint64_t version = 0;
    if (cache) {
        cache_key(argc, argv, json, &key);
        version = store_content_version(s);
        cache_entry_t *e = cache_lookup(cache, &key, version);
        if (e) {
            if (kept) {
                *kept = blob_ref(e->body);
            } else {
                buf_reserve(out, blob_len(e->body) + 1);
                buf_append(out, blob_data(e->body), blob_len(e->body));
            }
            buf_free(&key);
            return 0;
        }
    }
    buf_reserve(out, 0);
    size_t mark = out->len;
    int rc = run(&q, argc, argv);
    if (rc) { /* nothing half-written */
        out->len = mark;
        out->p[mark] = '\0';
    } else if (cache) {
        cache_entry_t *e = cache_store(cache, &key, version, out->p + mark, out->len - mark);
        if (e && kept && mark == 0) {
            /* the caller sends the kept copy: out need not hold it too */
            *kept = blob_ref(e->body);
            buf_reset(out);
        }
    }
    buf_free(&key);
    return rc;
}
