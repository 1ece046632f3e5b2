/* plan — drain and migrate plans (see plan.h).
 *
 * A VM's passthrough entries become "needs": one per address (a
 * multi-function entry needs each of its functions) or one per mapping.
 * Candidates for a need are read once per model (or mapping), ordered by
 * node, through the partial index on devices(vendor_id, device_id); a node
 * can take the VM when every need finds a distinct candidate on it. */
#include "plan.h"

#include "json.h"
#include "strv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_SHOWN 5

typedef struct {
    char *node, *address;
} cand_t;

typedef struct {
    char *from;       /* the address on the VM's node ("" for an unresolved mapping) */
    char *mapping;    /* mapping name, or NULL */
    char *model;      /* "8086:1533" for messages */
    cand_t *c;        /* the candidates loaded now: those of one node */
    size_t nc, cap;
    sqlite3_stmt *on_node; /* candidates on node ?3 */
    sqlite3_stmt *fleet;   /* every candidate, by node then address, stepped as needed */
    bool peeked, done;     /* fleet: a row of the next node is waiting */
} need_t;

typedef struct {
    sqlite3 *db;
    char **why;
    int rc;
} plan_t;

static int say(char **why, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char **why, int rc, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    free(*why);
    *why = buf_steal(&b);
    return rc;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static sqlite3_stmt *prep(plan_t *p, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(p->db, sql, -1, &st, NULL) != SQLITE_OK) {
        p->rc = say(p->why, 1, "plan query failed: %s", sqlite3_errmsg(p->db));
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* The free-device conditions, for a device row d on another node n. */
#define FREE_ON_TARGET                                                                                        \
    " CROSS JOIN iommu i ON i.node = d.node AND i.verdict = 'ready'"                                          \
    " WHERE n.online = 1 AND d.node <> ?1 AND d.bridge = 0 AND d.assignable_alone = 1"                         \
    " AND NOT EXISTS (SELECT 1 FROM vm_passthrough p WHERE p.node = d.node AND p.address = d.address)"        \
    " AND NOT EXISTS (SELECT 1 FROM claims k WHERE k.node = d.node AND k.address = d.address)"                \
    " AND NOT EXISTS (SELECT 1 FROM nics c WHERE c.node = d.node AND c.address = d.address AND c.management = 1)" \
    " AND NOT EXISTS (SELECT 1 FROM devices v WHERE v.node = d.node AND v.physfn = d.address AND"               \
    "  (EXISTS (SELECT 1 FROM vm_passthrough p WHERE p.node = v.node AND p.address = v.address) OR"            \
    "   EXISTS (SELECT 1 FROM claims k WHERE k.node = v.node AND k.address = v.address)))"

static void cands_clear(need_t *n)
{
    for (size_t k = 0; k < n->nc; k++) {
        free(n->c[k].node);
        free(n->c[k].address);
    }
    n->nc = 0;
}

static void cand_add(need_t *n, const char *node, const char *address)
{
    if (n->nc == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 8;
        n->c = xrealloc(n->c, n->cap * sizeof(*n->c));
    }
    n->c[n->nc].node = xstrdup(node);
    n->c[n->nc].address = xstrdup(address);
    n->nc++;
}

/* The candidate queries of a need: for a device, the same model (and for
 * a NIC the same PCIe link); for a mapping, that mapping's devices. The
 * fleet-wide one streams node by node in name order, one seek per node in
 * devices_node_model (node, then model; migration 0005), so a drain reads
 * only as far as it needs. CROSS JOIN keeps that order: SQLite would
 * otherwise start from the smaller iommu table and sort the whole answer. */
#define DEVICE_CANDS                                                                                          \
    "SELECT d.node, d.address FROM devices s CROSS JOIN nodes n"                                              \
    " CROSS JOIN devices d INDEXED BY devices_node_model ON d.node = n.name AND d.vendor_id = s.vendor_id"    \
    " AND d.device_id = s.device_id" FREE_ON_TARGET " AND s.node = ?1 AND s.address = ?2"                     \
    " AND (NOT EXISTS (SELECT 1 FROM nics c WHERE c.node = s.node AND c.address = s.address)"                 \
    "      OR (d.link_speed IS s.link_speed AND d.link_width IS s.link_width))"
#define MAPPING_CANDS                                                                                         \
    "SELECT d.node, d.address FROM mappings m JOIN devices d ON d.node = m.node AND d.address = m.address"     \
    " JOIN nodes n ON n.name = d.node" FREE_ON_TARGET " AND m.name = ?2"

static void need_prepare(plan_t *p, const char *node, need_t *n)
{
    const char *base = n->mapping ? MAPPING_CANDS : DEVICE_CANDS;
    char *one = xasprintf("%s AND n.name = ?3 AND d.node = ?3 ORDER BY d.address", base);
    char *all = xasprintf("%s ORDER BY n.name, %s", base, n->mapping ? "m.pos" : "d.address");
    n->on_node = prep(p, one);
    n->fleet = prep(p, all);
    free(one);
    free(all);
    const char *key = n->mapping ? n->mapping : n->from;
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st = i ? n->fleet : n->on_node;
        if (!st)
            continue;
        sqlite3_bind_text(st, 1, node, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    }
    if (n->mapping) {
        n->model = xasprintf("mapping %s", n->mapping);
        return;
    }
    sqlite3_stmt *m = prep(p, "SELECT printf('%04x:%04x', vendor_id, device_id) FROM devices WHERE node = ?1 AND"
                              " address = ?2");
    if (m) {
        sqlite3_bind_text(m, 1, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(m, 2, n->from, -1, SQLITE_STATIC);
        n->model = sqlite3_step(m) == SQLITE_ROW
                       ? xstrdup(col(m, 0))
                       : xasprintf("equivalent of %s (gone from this node, so its model is unknown)", n->from);
        sqlite3_finalize(m);
    }
}

/* Loads the need's candidates on target. */
static void load_on(plan_t *p, need_t *n, const char *target)
{
    cands_clear(n);
    if (!n->on_node)
        return;
    sqlite3_reset(n->on_node);
    sqlite3_bind_text(n->on_node, 3, target, -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(n->on_node)) == SQLITE_ROW)
        cand_add(n, col(n->on_node, 0), col(n->on_node, 1));
    if (rc != SQLITE_DONE)
        p->rc = say(p->why, 1, "plan query failed: %s", sqlite3_errmsg(p->db));
}

/* Loads the candidates of the next node in the fleet-wide stream; returns
 * that node (borrowed from the need) or NULL at the end. */
static const char *next_node(plan_t *p, need_t *n)
{
    cands_clear(n);
    if (!n->fleet || n->done)
        return NULL;
    int rc = SQLITE_ROW;
    if (!n->peeked)
        rc = sqlite3_step(n->fleet);
    n->peeked = false;
    while (rc == SQLITE_ROW) {
        if (n->nc && strcmp(col(n->fleet, 0), n->c[0].node) != 0) {
            n->peeked = true; /* the row stays current for the next call */
            return n->c[0].node;
        }
        cand_add(n, col(n->fleet, 0), col(n->fleet, 1));
        rc = sqlite3_step(n->fleet);
    }
    n->done = true;
    if (rc != SQLITE_DONE)
        p->rc = say(p->why, 1, "plan query failed: %s", sqlite3_errmsg(p->db));
    return n->nc ? n->c[0].node : NULL;
}

static void needs_free(need_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cands_clear(&v[i]);
        free(v[i].c);
        free(v[i].from);
        free(v[i].mapping);
        free(v[i].model);
        sqlite3_finalize(v[i].on_node);
        sqlite3_finalize(v[i].fleet);
    }
    free(v);
}

/* The VM's needs. */
static need_t *load_needs(plan_t *p, const char *node, const char *source, const char *vm_id, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = prep(p, "SELECT address, mapping FROM vm_passthrough WHERE node = ?1 AND source = ?2 AND"
                               " vm_id = ?3 AND (address IS NOT NULL OR mapping IS NOT NULL)"
                               " GROUP BY coalesce(mapping || '#' || hostpci, address) ORDER BY hostpci, pos");
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, vm_id, -1, SQLITE_STATIC);
    need_t *v = NULL;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            v = xrealloc(v, cap * sizeof(*v));
        }
        need_t *x = &v[(*n)++];
        memset(x, 0, sizeof *x);
        x->from = xstrdup(col(st, 0));
        if (sqlite3_column_type(st, 1) != SQLITE_NULL)
            x->mapping = xstrdup(col(st, 1));
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < *n; i++)
        need_prepare(p, node, &v[i]);
    return v;
}

/* The first candidate of need on node (candidates are ordered by node):
 * a fleet-wide model has tens of thousands of them. */
static size_t first_on(const need_t *need, const char *node)
{
    size_t lo = 0, hi = need->nc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(need->c[mid].node, node) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Whether target can take every need with distinct devices; fills got[i]
 * with the chosen candidate's address (borrowed). */
static bool fits(need_t *v, size_t n, const char *target, const char **got)
{
    for (size_t i = 0; i < n; i++) {
        got[i] = NULL;
        for (size_t k = first_on(&v[i], target); k < v[i].nc && !got[i]; k++) {
            if (strcmp(v[i].c[k].node, target) != 0)
                break;
            bool taken = false;
            for (size_t j = 0; j < i && !taken; j++)
                taken = got[j] && strcmp(got[j], v[i].c[k].address) == 0;
            if (!taken)
                got[i] = v[i].c[k].address;
        }
        if (!got[i])
            return false;
    }
    return true;
}

typedef struct {
    const char *source, *vm_id, *name, *reasons;
    int running; /* -1 unknown */
    bool migratable;
} vm_row_t;

static const char *running_text(int r) { return r == 1 ? "yes" : r == 0 ? "no" : "?"; }

/* One VM of a drain: a JSON object, or a line of text. */
static void plan_vm(plan_t *p, const char *node, const vm_row_t *vm, bool all, json_t *j, buf_t *text)
{
    size_t nn = 0;
    need_t *v = vm->migratable ? NULL : load_needs(p, node, vm->source, vm->vm_id, &nn);
    const char **got = xcalloc(nn + 1, sizeof *got);
    buf_t where = BUF_INIT;
    buf_puts(&where, "");
    size_t found = 0;
    if (j) {
        json_obj_open(j, NULL);
        json_str(j, "vm", vm->vm_id);
        json_str(j, "source", vm->source);
        json_str(j, "name", vm->name);
        json_tribool(j, "running", vm->running);
    }
    const char *action;
    if (vm->migratable) {
        action = "live-migrate";
    } else if (!nn) {
        action = "stop";
    } else {
        action = "stop-and-move";
        if (j)
            json_arr_open(j, "targets");
        /* walk the nodes that have the first need's device, in order; ask
         * each for the other needs; stop once enough are shown */
        const char *t;
        while ((t = next_node(p, &v[0])) != NULL && !p->rc) {
            for (size_t i = 1; i < nn; i++)
                load_on(p, &v[i], t);
            if (!fits(v, nn, t, got))
                continue;
            found++;
            if (!all && found > PLAN_SHOWN)
                break;
            if (j) {
                json_obj_open(j, NULL);
                json_str(j, "node", t);
                json_arr_open(j, "devices");
                for (size_t i = 0; i < nn; i++) {
                    json_obj_open(j, NULL);
                    json_str(j, "from", v[i].from);
                    if (v[i].mapping)
                        json_str(j, "mapping", v[i].mapping);
                    json_str(j, "to", got[i]);
                    json_obj_close(j);
                }
                json_arr_close(j);
                json_obj_close(j);
            }
            if (found > 1)
                buf_puts(&where, "; ");
            buf_printf(&where, "%s (", t);
            for (size_t i = 0; i < nn; i++)
                buf_printf(&where, "%s%s -> %s", i ? ", " : "", *v[i].from ? v[i].from : v[i].mapping, got[i]);
            buf_putc(&where, ')');
        }
        if (j)
            json_arr_close(j);
        if (!all && found > PLAN_SHOWN)
            buf_puts(&where, "; and more (--all lists every one)");
        if (!found) {
            buf_puts(&where, "nowhere: no other online node with a ready IOMMU has a free ");
            for (size_t i = 0; i < nn; i++)
                buf_printf(&where, "%s%s", i ? " and " : "", v[i].model ? v[i].model : "device");
            action = "stop";
        }
    }
    if (j) {
        json_str(j, "action", action);
        if (!vm->migratable && nn)
            json_bool(j, "more_targets", !all && found > PLAN_SHOWN);
        json_arr_open(j, "devices");
        for (size_t i = 0; i < nn; i++)
            json_str(j, NULL, *v[i].from ? v[i].from : v[i].mapping);
        json_arr_close(j);
        json_str(j, "reasons", vm->reasons);
        json_obj_close(j);
    } else {
        buf_printf(text, "%-6s %-16.16s %-7s %-13s %s\n", vm->vm_id, *vm->name ? vm->name : "-",
                   running_text(vm->running), action,
                   vm->migratable ? "any node (no passthrough)"
                   : !nn          ? vm->reasons
                                  : where.p);
    }
    buf_free(&where);
    free(got);
    needs_free(v, nn);
}

static bool node_known(plan_t *p, const char *node)
{
    sqlite3_stmt *st = prep(p, "SELECT 1 FROM nodes WHERE name = ?1");
    if (!st)
        return false;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return ok;
}

static int drain(plan_t *p, const char *node, bool all, bool json, buf_t *out)
{
    if (!node_known(p, node))
        return p->rc ? p->rc : say(p->why, 1, "no node named %s (pcifleet nodes lists them)", node);
    sqlite3_stmt *st = prep(p, "SELECT source, vm_id, coalesce(name, ''), running, migratable,"
                               " (SELECT group_concat(value, '; ') FROM json_each(reasons)) FROM vms WHERE node = ?1"
                               " ORDER BY source, CAST(vm_id AS INTEGER), vm_id");
    if (!st)
        return p->rc;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    json_t *j = json ? json_new(0) : NULL;
    buf_t text = BUF_INIT;
    buf_puts(&text, "");
    if (j) {
        json_obj_open(j, NULL);
        json_str(j, "node", node);
        json_arr_open(j, "vms");
    } else {
        buf_printf(&text, "drain %s: nothing changes until an operator acts\n", node);
        buf_printf(&text, "%-6s %-16s %-7s %-13s %s\n", "VM", "NAME", "RUNNING", "PLAN", "WHERE");
    }
    size_t vms = 0;
    while (sqlite3_step(st) == SQLITE_ROW && !p->rc) {
        vm_row_t vm = {col(st, 0), col(st, 1), col(st, 2), col(st, 5),
                       sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3),
                       sqlite3_column_int(st, 4) != 0};
        char *s0 = xstrdup(vm.source), *s1 = xstrdup(vm.vm_id), *s2 = xstrdup(vm.name), *s5 = xstrdup(vm.reasons);
        vm.source = s0, vm.vm_id = s1, vm.name = s2, vm.reasons = s5;
        plan_vm(p, node, &vm, all, j, &text);
        free(s0), free(s1), free(s2), free(s5);
        vms++;
    }
    sqlite3_finalize(st);
    if (j) {
        json_arr_close(j);
        json_obj_close(j);
        size_t n;
        const char *t = json_text(j, &n);
        buf_append(out, t, n);
        buf_putc(out, '\n');
        json_destroy(&j);
    } else {
        if (!vms)
            buf_puts(&text, "(no VMs: the node can go down as it is)\n");
        buf_append(out, text.p, text.len);
    }
    buf_free(&text);
    return p->rc;
}

static int migrate(plan_t *p, const char *vm_id, const char *to, bool json, buf_t *out)
{
    sqlite3_stmt *st = prep(p, "SELECT node, source, coalesce(name, ''), running, migratable,"
                               " (SELECT group_concat(value, '; ') FROM json_each(reasons)) FROM vms WHERE vm_id = ?1"
                               " ORDER BY source = 'proxmox' DESC, node");
    if (!st)
        return p->rc;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return say(p->why, 1, "no VM %s in the fleet (pcifleet vms lists them)", vm_id);
    }
    char *node = xstrdup(col(st, 0)), *source = xstrdup(col(st, 1)), *name = xstrdup(col(st, 2));
    char *reasons = xstrdup(col(st, 5));
    bool migratable = sqlite3_column_int(st, 4) != 0;
    sqlite3_finalize(st);
    int rc = 0;
    bool yes = false;
    buf_t why = BUF_INIT;
    buf_puts(&why, "");
    size_t nn = 0;
    need_t *v = NULL;
    const char **got = NULL;
    if (!node_known(p, to)) {
        rc = p->rc ? p->rc : say(p->why, 1, "no node named %s (pcifleet nodes lists them)", to);
        goto out;
    }
    if (strcmp(node, to) == 0) {
        buf_printf(&why, "VM %s already runs on %s", vm_id, to);
        yes = true;
    } else if (migratable) {
        buf_printf(&why, "VM %s has no passthrough devices: it can live-migrate to %s", vm_id, to);
        yes = true;
    } else {
        v = load_needs(p, node, source, vm_id, &nn);
        got = xcalloc(nn + 1, sizeof *got);
        for (size_t i = 0; i < nn; i++)
            load_on(p, &v[i], to);
        if (!nn) {
            buf_printf(&why, "VM %s cannot live-migrate (%s) and has no passthrough device to place: stop it, "
                             "then move it", vm_id, reasons);
            yes = true;
        } else if (fits(v, nn, to, got)) {
            buf_printf(&why, "VM %s must stop; on %s it would get ", vm_id, to);
            for (size_t i = 0; i < nn; i++)
                buf_printf(&why, "%s%s (for %s)", i ? ", " : "", got[i], *v[i].from ? v[i].from : v[i].mapping);
            yes = true;
        } else {
            /* say what is missing, need by need */
            sqlite3_stmt *t = prep(p, "SELECT n.online, i.verdict FROM nodes n LEFT JOIN iommu i ON i.node = n.name"
                                      " WHERE n.name = ?1");
            bool online = false;
            char *verdict = NULL;
            if (t) {
                sqlite3_bind_text(t, 1, to, -1, SQLITE_STATIC);
                if (sqlite3_step(t) == SQLITE_ROW) {
                    online = sqlite3_column_int(t, 0) != 0;
                    verdict = xstrdup(col(t, 1));
                }
                sqlite3_finalize(t);
            }
            if (!online)
                buf_printf(&why, "%s is offline", to);
            else if (!verdict || strcmp(verdict, "ready") != 0)
                buf_printf(&why, "the IOMMU of %s is not ready (verdict %s)", to, verdict && *verdict ? verdict : "?");
            else {
                buf_printf(&why, "%s has no free ", to);
                bool first = true;
                for (size_t i = 0; i < nn; i++) {
                    bool any = false;
                    for (size_t k = 0; k < v[i].nc && !any; k++)
                        any = strcmp(v[i].c[k].node, to) == 0;
                    if (got[i] && any)
                        continue;
                    buf_printf(&why, "%s%s (for %s)", first ? "" : ", ", v[i].model ? v[i].model : "device",
                               *v[i].from ? v[i].from : v[i].mapping);
                    first = false;
                }
                if (first)
                    buf_puts(&why, "set of devices for all of the VM's entries at once");
            }
            free(verdict);
        }
    }
    if (json) {
        json_t *j = json_new(0);
        json_obj_open(j, NULL);
        json_str(j, "vm", vm_id);
        json_str(j, "name", name);
        json_str(j, "from", node);
        json_str(j, "to", to);
        json_bool(j, "possible", yes);
        json_bool(j, "live", yes && migratable);
        json_arr_open(j, "devices");
        for (size_t i = 0; yes && i < nn; i++) {
            json_obj_open(j, NULL);
            json_str(j, "from", v[i].from);
            if (v[i].mapping)
                json_str(j, "mapping", v[i].mapping);
            json_str(j, "to", got[i]);
            json_obj_close(j);
        }
        json_arr_close(j);
        json_str(j, "reason", why.p);
        json_obj_close(j);
        size_t n;
        const char *t = json_text(j, &n);
        buf_append(out, t, n);
        buf_putc(out, '\n');
        json_destroy(&j);
    } else {
        buf_printf(out, "%s: %s\n", yes ? "yes" : "no", why.p);
    }
out:
    free(got);
    needs_free(v, nn);
    buf_free(&why);
    free(node);
    free(source);
    free(name);
    free(reasons);
    return rc ? rc : p->rc;
}

int plan_run(sqlite3 *ro, int argc, char **argv, bool json, buf_t *out, char **why)
{
    plan_t p = {ro, why, 0};
    static const char usage[] = "usage: plan drain NODE [--all] | plan migrate VMID --to NODE";
    if (argc < 2)
        return say(why, 2, "%s", usage);
    bool all = false;
    const char *to = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (strncmp(argv[i], "--to=", 5) == 0 && argv[i][5])
            to = argv[i] + 5;
        else if (argv[i][0] == '-')
            return say(why, 2, "unknown option '%s' (%s)", argv[i], usage);
        else if (npos < 1)
            pos[npos++] = argv[i];
        else
            return say(why, 2, "unexpected argument '%s' (%s)", argv[i], usage);
    }
    /* one snapshot for the whole plan */
    sqlite3_exec(ro, "BEGIN", NULL, NULL, NULL);
    int rc;
    if (strcmp(argv[1], "drain") == 0 && npos == 1 && !to)
        rc = drain(&p, pos[0], all, json, out);
    else if (strcmp(argv[1], "migrate") == 0 && npos == 1 && to && !all)
        rc = migrate(&p, pos[0], to, json, out);
    else
        rc = say(why, 2, "%s", usage);
    sqlite3_exec(ro, "COMMIT", NULL, NULL, NULL);
    return rc;
}
