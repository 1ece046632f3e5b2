/* rollout — the IOMMU rollout state machine (see rollout.h). All state is in
 * the rollouts and rollout_nodes tables; this module keeps nothing in
 * memory between calls, so a restarted controller picks up where the
 * database says. */
#include "rollout.h"

#include "json.h"
#include "log.h"
#include "strv.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTIVE_STATES "('stepping', 'rebooting', 'awaiting-reboot', 'verifying')"

struct rollout_ctx {
    store_t *store;
    rollout_send_fn send;
    void *arg;
    int resend_s;
};

static const struct {
    const char *name;
    Pcifleet__SetupStep__Kind kind;
} kinds[] = {
    {"set-kernel-args", PCIFLEET__SETUP_STEP__KIND__KIND_SET_KERNEL_ARGS},
    {"ensure-modules", PCIFLEET__SETUP_STEP__KIND__KIND_ENSURE_MODULES},
    {"refresh-boot", PCIFLEET__SETUP_STEP__KIND__KIND_REFRESH_BOOT},
    {"refresh-initramfs", PCIFLEET__SETUP_STEP__KIND__KIND_REFRESH_INITRAMFS},
    {"reboot", PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT},
    {"verify", PCIFLEET__SETUP_STEP__KIND__KIND_VERIFY},
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static int say(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char **err, int rc, const char *fmt, ...)
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

rollout_ctx_t *rollout_new(store_t *s, rollout_send_fn send, void *arg)
{
    rollout_ctx_t *r = xcalloc(1, sizeof *r);
    r->store = s;
    r->send = send;
    r->arg = arg;
    r->resend_s = 10;
    return r;
}

void rollout_destroy(rollout_ctx_t **r)
{
    if (!r || !*r)
        return;
    free(*r);
    *r = NULL;
}

void rollout_set_resend(rollout_ctx_t *r, int seconds) { r->resend_s = seconds > 0 ? seconds : 1; }

/* ---- SQL helpers ---- */

static sqlite3 *db_of(rollout_ctx_t *r) { return store_db(r->store); }

/* Runs sql with text arguments (NULL-terminated; NULL pointers as SQL
 * NULL cannot be given: use "" and nullif). Returns 0 or -EIO. */
static int run(rollout_ctx_t *r, const char *sql, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_of(r), sql, -1, &st, NULL) != SQLITE_OK) {
        log_error("rollout: %s: %s", sql, sqlite3_errmsg(db_of(r)));
        return -EIO;
    }
    va_list ap;
    va_start(ap, sql);
    const char *a;
    for (int i = 1; (a = va_arg(ap, const char *)) != NULL; i++)
        sqlite3_bind_text(st, i, a, -1, SQLITE_TRANSIENT);
    va_end(ap);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        log_error("rollout: %s: %s", sql, sqlite3_errmsg(db_of(r)));
        return -EIO;
    }
    return 0;
}

static char *num(int64_t v) { return xasprintf("%" PRId64, v); }

static void event(rollout_ctx_t *r, int64_t now, const char *kind, const char *node, const char *detail)
{
    char *err = NULL;
    if (store_event(r->store, now, kind, node, detail, &err) < 0) {
        log_warn("rollout: cannot log an event: %s", err ? err : "?");
        free(err);
    }
}

/* ---- start ---- */

static bool node_exists(rollout_ctx_t *r, const char *node)
{
    sqlite3_stmt *st = NULL;
    bool ok = false;
    if (sqlite3_prepare_v2(db_of(r), "SELECT 1 FROM nodes WHERE name = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return ok;
}

int rollout_start(rollout_ctx_t *r, const rollout_opts_t *o, int64_t now, int64_t *id, char **err)
{
    sqlite3 *db = db_of(r);
    if (o->batch < 1)
        return say(err, 2, "--batch wants a number of nodes of 1 or more");
    if (!o->all && !o->n_nodes)
        return say(err, 2, "say which nodes: --nodes a,b or --all");
    char *e = NULL;
    if (store_flush(r->store, &e) < 0) {
        int rc = say(err, -EIO, "%s", e ? e : "cannot record heartbeats");
        free(e);
        return rc;
    }
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return say(err, -EIO, "cannot start a rollout: %s", sqlite3_errmsg(db));
    int rc = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id, state FROM rollouts WHERE state IN ('running', 'paused') LIMIT 1", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        rc = say(err, 1, "rollout %lld is still %s: finish, resume or abort it first (pcifleet rollout status)",
                 (long long)sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    st = NULL;
    strv_t nodes = STRV_INIT;
    if (!rc && o->all) {
        if (sqlite3_prepare_v2(db, "SELECT name FROM nodes ORDER BY name", -1, &st, NULL) == SQLITE_OK)
            while (sqlite3_step(st) == SQLITE_ROW)
                strv_add(&nodes, (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        st = NULL;
        if (!nodes.n)
            rc = say(err, 1, "the fleet has no nodes yet");
    } else if (!rc) {
        for (size_t i = 0; i < o->n_nodes && !rc; i++) {
            if (!node_exists(r, o->nodes[i]))
                rc = say(err, 1, "no node named %s (pcifleet nodes lists them)", o->nodes[i]);
            else if (strv_contains(&nodes, o->nodes[i]))
                rc = say(err, 2, "node %s is named twice", o->nodes[i]);
            else
                strv_add(&nodes, o->nodes[i]);
        }
    }
    if (!rc) {
        char *b = num(o->batch), *t = num(o->reboot_timeout > 0 ? o->reboot_timeout : 600), *n = num(now);
        rc = run(r,
                 "INSERT INTO rollouts (kind, state, batch, pt, dry_run, allow_downtime, reboot_timeout, created,"
                 " updated, grub_variable) VALUES ('iommu', 'running', CAST(?1 AS INTEGER), ?2, ?3, ?4,"
                 " CAST(?5 AS INTEGER), CAST(?6 AS INTEGER), CAST(?6 AS INTEGER), ?7)",
                 b, o->pt ? "1" : "0", o->dry_run ? "1" : "0", o->allow_downtime ? "1" : "0", t, n,
                 o->grub_variable ? o->grub_variable : "GRUB_CMDLINE_LINUX_DEFAULT", NULL);
        free(b);
        free(t);
        *id = sqlite3_last_insert_rowid(db);
        char *rid = num(*id);
        for (size_t i = 0; i < nodes.n && !rc; i++) {
            char *pos = num((int64_t)i);
            rc = run(r,
                     "INSERT INTO rollout_nodes (rollout, node, pos, state, updated) VALUES (CAST(?1 AS INTEGER),"
                     " ?2, CAST(?3 AS INTEGER), 'waiting', CAST(?4 AS INTEGER))",
                     rid, nodes.v[i], pos, n, NULL);
            free(pos);
        }
        free(rid);
        free(n);
        if (rc < 0)
            say(err, rc, "cannot store the rollout: %s", sqlite3_errmsg(db));
    }
    if (!rc && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = say(err, -EIO, "cannot store the rollout: %s", sqlite3_errmsg(db));
    if (rc) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    } else {
        char *d = xasprintf("rollout %lld of %zu nodes, batch %d%s%s%s", (long long)*id, nodes.n, o->batch,
                            o->pt ? ", iommu=pt" : "", o->dry_run ? ", dry run" : "",
                            o->allow_downtime ? ", downtime allowed" : "");
        event(r, now, "rollout-started", NULL, d);
        free(d);
    }
    strv_free(&nodes);
    return rc;
}

/* ---- the per-node machine ---- */

typedef struct {
    int64_t id;
    int batch, reboot_timeout;
    bool pt, dry_run, allow_downtime;
    bool grub_linux; /* kernel arguments go to GRUB_CMDLINE_LINUX */
} ro_t;

typedef struct {
    char *node, *state, *steps, *sent, *boot_id;
    int step;
    int64_t sent_at, reboot_at;
} rn_t;

static void rn_clear(rn_t *n)
{
    free(n->node);
    free(n->state);
    free(n->steps);
    free(n->sent);
    free(n->boot_id);
    memset(n, 0, sizeof *n);
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? xstrdup(v) : NULL;
}

static void set_node(rollout_ctx_t *r, const ro_t *ro, const char *node, const char *state, int step,
                     const char *detail, int64_t now)
{
    char *rid = num(ro->id), *s = num(step), *n = num(now);
    run(r,
        "UPDATE rollout_nodes SET state = ?3, step = CAST(?4 AS INTEGER), sent = NULL, detail = nullif(?5, ''),"
        " updated = CAST(?6 AS INTEGER) WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2",
        rid, node, state, s, detail ? detail : "", n, NULL);
    free(rid);
    free(s);
    free(n);
    char *kind = xasprintf("rollout-%s", state);
    char *d = xasprintf("rollout %lld: %s%s%s", (long long)ro->id, state, detail && *detail ? ": " : "",
                        detail ? detail : "");
    event(r, now, kind, node, d);
    free(kind);
    free(d);
}

static void halt(rollout_ctx_t *r, const ro_t *ro, const char *why, int64_t now)
{
    char *rid = num(ro->id), *n = num(now);
    run(r, "UPDATE rollouts SET state = 'halted', reason = ?2, updated = CAST(?3 AS INTEGER) WHERE id = CAST(?1 AS"
           " INTEGER) AND state = 'running'",
        rid, why, n, NULL);
    free(rid);
    free(n);
    char *d = xasprintf("rollout %lld halted: %s", (long long)ro->id, why);
    log_warn("%s", d);
    event(r, now, "rollout-halted", NULL, d);
    free(d);
}

/* The step names of a node's plan, from its JSON array. */
static void step_names(const char *json, strv_t *out)
{
    /* the array is ours: ["a","b",...] with plain names */
    for (const char *p = json ? strchr(json, '"') : NULL; p; p = strchr(p + 1, '"')) {
        const char *q = strchr(p + 1, '"');
        if (!q)
            break;
        strv_addn(out, p + 1, (size_t)(q - p - 1));
        p = q;
    }
}

/* The precheck at a node's turn. Returns the state to go to ("skipped",
 * "refused", "stepping") with *detail, and the plan in *steps. */
static const char *precheck(rollout_ctx_t *r, const ro_t *ro, const char *node, char **detail, char **steps)
{
    sqlite3 *db = db_of(r);
    sqlite3_stmt *st = NULL;
    *detail = NULL;
    *steps = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT n.online, i.verdict, (SELECT group_concat(value, ' ') FROM json_each(i.reasons))"
                           " FROM nodes n LEFT JOIN iommu i ON i.node = n.name WHERE n.name = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    const char *next = NULL;
    if (sqlite3_step(st) != SQLITE_ROW) {
        *detail = xstrdup("the node is no longer known");
        next = "skipped";
    } else {
        bool online = sqlite3_column_int(st, 0) != 0;
        const char *v = (const char *)sqlite3_column_text(st, 1);
        const char *why = (const char *)sqlite3_column_text(st, 2);
        if (!online) {
            *detail = xstrdup("offline at its turn: start it again with this node once its agent reports");
            next = "skipped";
        } else if (v && strcmp(v, "ready") == 0) {
            *detail = xstrdup("already ready");
            next = "skipped";
        } else if (!v || strcmp(v, "needs-firmware") == 0 || strcmp(v, "unsupported") == 0) {
            *detail = xasprintf("needs a firmware change pcifleet cannot make (%s)%s%s", v ? v : "no report",
                                why && *why ? ": " : "", why ? why : "");
            next = "skipped";
        }
    }
    sqlite3_finalize(st);
    if (next)
        return next;
    /* the drain guard */
    if (!ro->allow_downtime &&
        sqlite3_prepare_v2(db,
                           "SELECT group_concat(vm_id, ', ') FROM vms WHERE node = ?1 AND running = 1 AND migratable = 0",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            *detail = xasprintf("VM %s runs and cannot live-migrate (passthrough): stop or move it first "
                                "(pcifleet plan drain %s), or start the rollout with --allow-downtime",
                                (const char *)sqlite3_column_text(st, 0), node);
            next = "refused";
        }
        sqlite3_finalize(st);
        if (next)
            return next;
    }
    *steps = xstrdup(ro->dry_run ? "[\"set-kernel-args\",\"ensure-modules\",\"refresh-boot\",\"refresh-initramfs\"]"
                                 : "[\"set-kernel-args\",\"ensure-modules\",\"refresh-boot\",\"refresh-initramfs\","
                                   "\"reboot\",\"verify\"]");
    return "stepping";
}

/* Whether taking node down now keeps its Proxmox cluster quorate. */
static bool quorum_allows(rollout_ctx_t *r, const char *node, char **why)
{
    sqlite3_stmt *st = NULL;
    bool ok = true;
    if (sqlite3_prepare_v2(db_of(r),
                           "SELECT count(*), sum(coalesce((SELECT n.online FROM nodes n WHERE n.name = c.member), 0) = 0"
                           " OR EXISTS (SELECT 1 FROM rollout_nodes x WHERE x.node = c.member AND x.state IN " ACTIVE_STATES
                           ")) FROM clusters c WHERE c.node = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return true;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t members = sqlite3_column_int64(st, 0), down = sqlite3_column_int64(st, 1);
        if (members > 0) {
            int64_t may_be_down = members - (members / 2 + 1);
            if (down + 1 > may_be_down) {
                ok = false;
                *why = xasprintf("waiting: with %" PRId64 " of its cluster's %" PRId64
                                 " nodes down or in the rollout, taking it down too would lose quorum",
                                 down, members);
            }
        }
    }
    sqlite3_finalize(st);
    return ok;
}

static char *node_boot_id(rollout_ctx_t *r, const char *node, bool *online)
{
    sqlite3_stmt *st = NULL;
    char *b = NULL;
    *online = false;
    if (sqlite3_prepare_v2(db_of(r), "SELECT boot_id, online FROM nodes WHERE name = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            b = dup_col(st, 0);
            *online = sqlite3_column_int(st, 1) != 0;
        }
    }
    sqlite3_finalize(st);
    return b;
}

/* Sends step index of node's plan (recorded first, so a restart resends
 * the same id). */
static void send_step(rollout_ctx_t *r, const ro_t *ro, rn_t *n, const char *kind, int64_t now)
{
    char *step_id = n->sent ? xstrdup(n->sent)
                            : xasprintf("ro%lld-%s-%d", (long long)ro->id, n->node, n->step);
    if (!n->sent) {
        char *rid = num(ro->id), *t = num(now);
        bool online;
        char *boot = strcmp(kind, "reboot") == 0 ? node_boot_id(r, n->node, &online) : NULL;
        run(r,
            "UPDATE rollout_nodes SET sent = ?3, sent_at = CAST(?4 AS INTEGER), boot_id = coalesce(nullif(?5, ''),"
            " boot_id), updated = CAST(?4 AS INTEGER) WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2",
            rid, n->node, step_id, t, boot ? boot : "", NULL);
        free(rid);
        free(t);
        free(boot);
    } else {
        char *rid = num(ro->id), *t = num(now);
        run(r,
            "UPDATE rollout_nodes SET sent_at = CAST(?3 AS INTEGER) WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2",
            rid, n->node, t, NULL);
        free(rid);
        free(t);
    }
    /* the step's content: the same for the same id */
    Pcifleet__SetupStep s = PCIFLEET__SETUP_STEP__INIT;
    s.step_id = step_id;
    for (size_t i = 0; i < N_KINDS; i++)
        if (strcmp(kinds[i].name, kind) == 0)
            s.kind = kinds[i].kind;
    s.dry_run = ro->dry_run;
    strv_t add = STRV_INIT, rem = STRV_INIT, mods = STRV_INIT;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_of(r),
                           "SELECT n.cpu_vendor, (SELECT group_concat(value, ' ') FROM json_each(i.vfio_required))"
                           " FROM nodes n LEFT JOIN iommu i ON i.node = n.name WHERE n.name = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, n->node, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *vendor = (const char *)sqlite3_column_text(st, 0);
            /* Intel needs intel_iommu=on (an existing =off is replaced); AMD's
             * IOMMU is on by default, so there only what turns it off goes
             * (amd_iommu=on is not a switch the kernel has); iommu=off turns
             * either off */
            if (vendor && strcmp(vendor, "intel") == 0)
                strv_add(&add, "intel_iommu=on");
            else if (vendor && strcmp(vendor, "amd") == 0)
                strv_add(&rem, "amd_iommu=off");
            strv_add(&rem, "iommu=off");
            if (ro->pt)
                strv_add(&add, "iommu=pt");
            const char *req = (const char *)sqlite3_column_text(st, 1);
            char *copy = xstrdup(req && *req ? req : "vfio vfio_iommu_type1 vfio_pci");
            char *save = NULL;
            for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
                strv_add(&mods, t);
            free(copy);
        }
    }
    sqlite3_finalize(st);
    if (s.kind == PCIFLEET__SETUP_STEP__KIND__KIND_SET_KERNEL_ARGS) {
        s.add_args = add.v;
        s.n_add_args = add.n;
        s.remove_args = rem.v;
        s.n_remove_args = rem.n;
        s.grub_variable = ro->grub_linux ? "GRUB_CMDLINE_LINUX" : "";
    } else if (s.kind == PCIFLEET__SETUP_STEP__KIND__KIND_ENSURE_MODULES) {
        s.modules = mods.v;
        s.n_modules = mods.n;
    }
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    env.node = n->node;
    env.body_case = PCIFLEET__ENVELOPE__BODY_SETUP_STEP;
    env.setup_step = &s;
    uint8_t *frame = NULL;
    size_t len = wire_encode(&env, &frame);
    if (!r->send || r->send(r->arg, n->node, frame, len) < 0)
        log_info("rollout %lld: %s's agent is not connected; step %s waits", (long long)ro->id, n->node, step_id);
    free(frame);
    strv_free(&add);
    strv_free(&rem);
    strv_free(&mods);
    free(step_id);
}

/* Moves one node on; returns true when it just finished or failed (a place
 * in the batch is free). */
static bool drive_node(rollout_ctx_t *r, const ro_t *ro, rn_t *n, int64_t now)
{
    bool final = false;
    strv_t names = STRV_INIT;
    step_names(n->steps, &names);
    if (!strcmp(n->state, "rebooting") || !strcmp(n->state, "awaiting-reboot")) {
        bool online;
        char *boot = node_boot_id(r, n->node, &online);
        if (online && boot && n->boot_id && strcmp(boot, n->boot_id) != 0) {
            /* back with a new boot id: verify (the step after the reboot), now */
            set_node(r, ro, n->node, "verifying", n->step, "back after the reboot", now);
            free(n->state);
            n->state = xstrdup("verifying");
            free(n->sent);
            n->sent = NULL;
        } else if (!strcmp(n->state, "rebooting") && now - n->reboot_at > ro->reboot_timeout) {
            char *why = xasprintf("%s did not come back within %d s of its reboot", n->node, ro->reboot_timeout);
            set_node(r, ro, n->node, "failed", n->step, why, now);
            halt(r, ro, why, now);
            free(why);
            final = true;
        }
        free(boot);
    }
    if (!strcmp(n->state, "stepping") || !strcmp(n->state, "verifying")) {
        if (n->step >= (int)names.n) {
            set_node(r, ro, n->node, "done", n->step, ro->dry_run ? "dry run: nothing changed" : "ready", now);
            final = true;
        } else if (!n->sent || now - n->sent_at >= r->resend_s) {
            send_step(r, ro, n, names.v[n->step], now);
        }
    }
    strv_free(&names);
    return final;
}

static int load_rows(rollout_ctx_t *r, int64_t id, const char *node, rn_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(db_of(r),
                           "SELECT node, state, steps, step, sent, coalesce(sent_at, 0), boot_id, coalesce(reboot_at, 0)"
                           " FROM rollout_nodes WHERE rollout = ?1 AND (?2 IS NULL OR node = ?2) ORDER BY pos",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    if (node)
        sqlite3_bind_text(st, 2, node, -1, SQLITE_STATIC);
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        rn_t *x = &(*out)[(*n)++];
        x->node = dup_col(st, 0);
        x->state = dup_col(st, 1);
        x->steps = dup_col(st, 2);
        x->step = sqlite3_column_int(st, 3);
        x->sent = dup_col(st, 4);
        x->sent_at = sqlite3_column_int64(st, 5);
        x->boot_id = dup_col(st, 6);
        x->reboot_at = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    return 0;
}

static int load_nodes(rollout_ctx_t *r, int64_t id, rn_t **out, size_t *n) { return load_rows(r, id, NULL, out, n); }
static int load_one(rollout_ctx_t *r, int64_t id, const char *node, rn_t **out, size_t *n)
{
    return load_rows(r, id, node, out, n);
}

static void tick_one(rollout_ctx_t *r, const ro_t *ro, int64_t now)
{
    rn_t *v;
    size_t n;
    if (load_nodes(r, ro->id, &v, &n) < 0)
        return;
    int active = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = v[i].state;
        if (!strcmp(s, "stepping") || !strcmp(s, "rebooting") || !strcmp(s, "awaiting-reboot") ||
            !strcmp(s, "verifying"))
            active++;
    }
    /* nodes in flight first, then start waiting ones while the batch allows */
    for (size_t i = 0; i < n; i++) {
        rn_t *x = &v[i];
        if (!strcmp(x->state, "waiting")) {
            /* Each node is prechecked once when the rollout first sees it
             * (nodes to skip or refuse are settled at once, the others get
             * their plan and wait), and again at its turn, just before it
             * starts: a VM may have started meanwhile. Waiting nodes past
             * a full batch cost nothing more. */
            bool planned = x->steps && strcmp(x->steps, "[]") != 0;
            if (planned && active >= ro->batch)
                continue;
            char *detail = NULL, *steps = NULL;
            const char *next = precheck(r, ro, x->node, &detail, &steps);
            if (next && !strcmp(next, "stepping")) {
                char *why = NULL;
                if (!planned) {
                    char *rid = num(ro->id);
                    run(r, "UPDATE rollout_nodes SET steps = ?3 WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2",
                        rid, x->node, steps, NULL);
                    free(rid);
                }
                if (active >= ro->batch) {
                    /* planned now; starts at its turn */
                } else if (!ro->dry_run && !quorum_allows(r, x->node, &why)) {
                    char *rid = num(ro->id);
                    run(r, "UPDATE rollout_nodes SET detail = ?3 WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2",
                        rid, x->node, why, NULL);
                    free(rid);
                } else {
                    set_node(r, ro, x->node, "stepping", 0, ro->dry_run ? "dry run" : "started", now);
                    free(x->state);
                    x->state = xstrdup("stepping");
                    free(x->steps);
                    x->steps = steps;
                    steps = NULL;
                    x->step = 0;
                    free(x->sent);
                    x->sent = NULL;
                    active++;
                    drive_node(r, ro, x, now);
                }
                free(why);
            } else if (next) {
                set_node(r, ro, x->node, next, 0, detail, now);
            }
            free(detail);
            free(steps);
        } else if (!strcmp(x->state, "stepping") || !strcmp(x->state, "rebooting") ||
                   !strcmp(x->state, "awaiting-reboot") || !strcmp(x->state, "verifying")) {
            drive_node(r, ro, x, now);
        }
    }
    for (size_t i = 0; i < n; i++)
        rn_clear(&v[i]);
    free(v);
    /* done when no node is left to move (counted after this tick's moves) */
    sqlite3_stmt *st = NULL;
    bool finished = false;
    if (sqlite3_prepare_v2(db_of(r),
                           "SELECT count(*) FROM rollout_nodes WHERE rollout = ?1 AND state NOT IN ('done', 'skipped',"
                           " 'refused', 'failed')",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, ro->id);
        finished = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == 0;
    }
    sqlite3_finalize(st);
    if (finished) {
        char *rid = num(ro->id), *t = num(now);
        run(r, "UPDATE rollouts SET state = 'done', updated = CAST(?2 AS INTEGER) WHERE id = CAST(?1 AS INTEGER) AND"
               " state = 'running'",
            rid, t, NULL);
        free(rid);
        free(t);
        char *d = xasprintf("rollout %lld done", (long long)ro->id);
        event(r, now, "rollout-done", NULL, d);
        free(d);
    }
}

static int load_rollouts(rollout_ctx_t *r, const char *where, ro_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    char *sql = xasprintf("SELECT id, batch, reboot_timeout, pt, dry_run, allow_downtime,"
                          " grub_variable = 'GRUB_CMDLINE_LINUX' FROM rollouts WHERE %s ORDER BY id",
                          where);
    int rc = sqlite3_prepare_v2(db_of(r), sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK)
        return -EIO;
    size_t cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = xrealloc(*out, cap * sizeof(**out));
        }
        ro_t *x = &(*out)[(*n)++];
        x->id = sqlite3_column_int64(st, 0);
        x->batch = sqlite3_column_int(st, 1);
        x->reboot_timeout = sqlite3_column_int(st, 2);
        x->pt = sqlite3_column_int(st, 3) != 0;
        x->dry_run = sqlite3_column_int(st, 4) != 0;
        x->allow_downtime = sqlite3_column_int(st, 5) != 0;
        x->grub_linux = sqlite3_column_int(st, 6) != 0;
    }
    sqlite3_finalize(st);
    return 0;
}

void rollout_tick(rollout_ctx_t *r, int64_t now)
{
    ro_t *v;
    size_t n;
    if (load_rollouts(r, "state = 'running'", &v, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        tick_one(r, &v[i], now);
    free(v);
}

bool rollout_step_result(rollout_ctx_t *r, const char *node, const Pcifleet__StepResult *res, int64_t now)
{
    if (!res->step_id || strncmp(res->step_id, "ro", 2) != 0)
        return false;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_of(r),
                           "SELECT n.rollout, n.step, n.steps, r.batch, r.reboot_timeout, r.pt, r.dry_run,"
                           " r.allow_downtime, r.state, r.grub_variable = 'GRUB_CMDLINE_LINUX'"
                           " FROM rollout_nodes n JOIN rollouts r ON r.id = n.rollout"
                           " WHERE n.node = ?1 AND n.sent = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return true;
    sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, res->step_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        log_info("rollout: %s answered step %s, which nothing waits for (late or repeated)", node, res->step_id);
        return true;
    }
    ro_t ro = {sqlite3_column_int64(st, 0),      sqlite3_column_int(st, 3),      sqlite3_column_int(st, 4),
               sqlite3_column_int(st, 5) != 0, sqlite3_column_int(st, 6) != 0, sqlite3_column_int(st, 7) != 0,
               sqlite3_column_int(st, 9) != 0};
    int step = sqlite3_column_int(st, 1);
    char *steps_json = dup_col(st, 2);
    bool aborted = strcmp((const char *)sqlite3_column_text(st, 8), "aborted") == 0;
    sqlite3_finalize(st);
    strv_t names = STRV_INIT;
    step_names(steps_json, &names);
    free(steps_json);
    const char *kind = step < (int)names.n ? names.v[step] : "?";
    const char *detail = res->detail && *res->detail ? res->detail : "";
    char *rid = num(ro.id);
    /* what the step left behind */
    for (size_t i = 0; i < res->n_backups; i++)
        run(r,
            "UPDATE rollout_nodes SET backups = json_insert(backups, '$[#]', ?3) WHERE rollout = CAST(?1 AS INTEGER)"
            " AND node = ?2",
            rid, node, res->backups[i], NULL);
    if (res->diff && *res->diff)
        run(r, "UPDATE rollout_nodes SET diffs = diffs || ?3 WHERE rollout = CAST(?1 AS INTEGER) AND node = ?2", rid,
            node, res->diff, NULL);
    bool ok = res->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ||
              res->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED;
    char *why = NULL;
    if (aborted) {
        /* an aborted rollout records answers but moves nothing */
    } else if (ok && !strcmp(kind, "reboot")) {
        set_node(r, &ro, node, "rebooting", step + 1, detail, now);
        char *t = num(now);
        run(r, "UPDATE rollout_nodes SET reboot_at = CAST(?3 AS INTEGER) WHERE rollout = CAST(?1 AS INTEGER) AND"
               " node = ?2",
            rid, node, t, NULL);
        free(t);
    } else if (ok && !strcmp(kind, "verify")) {
        set_node(r, &ro, node, "done", step + 1, *detail ? detail : "ready", now);
    } else if (ok) {
        set_node(r, &ro, node, "stepping", step + 1, detail, now);
    } else if (res->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED && !strcmp(kind, "reboot")) {
        why = xasprintf("the agent's policy does not allow reboots (%s): reboot %s yourself; the rollout verifies "
                        "it once it is back",
                        detail, node);
        set_node(r, &ro, node, "awaiting-reboot", step + 1, why, now);
    } else {
        why = xasprintf("%s: step %s %s: %s", node, kind,
                        res->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED ? "refused" : "failed",
                        *detail ? detail : "no detail");
        set_node(r, &ro, node, "failed", step, why, now);
        halt(r, &ro, why, now);
    }
    free(why);
    free(rid);
    strv_free(&names);
    /* The next step goes out at once, not at the next tick: drive this node
     * alone, and the whole rollout only when a place in the batch freed up
     * (a node finished or failed), so an answer costs one node's work. */
    if (!aborted) {
        rn_t *v;
        size_t n;
        if (load_one(r, ro.id, node, &v, &n) == 0 && n == 1) {
            bool final = !strcmp(v[0].state, "done") || !strcmp(v[0].state, "failed");
            if (!final)
                final = drive_node(r, &ro, &v[0], now);
            rn_clear(&v[0]);
            free(v);
            if (final)
                rollout_tick(r, now);
        } else if (n) {
            free(v);
        }
    }
    return true;
}

/* ---- control and status ---- */

static int64_t newest(rollout_ctx_t *r)
{
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    if (sqlite3_prepare_v2(db_of(r), "SELECT max(id) FROM rollouts", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

static char *state_of(rollout_ctx_t *r, int64_t id)
{
    sqlite3_stmt *st = NULL;
    char *s = NULL;
    if (sqlite3_prepare_v2(db_of(r), "SELECT state FROM rollouts WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            s = dup_col(st, 0);
    }
    sqlite3_finalize(st);
    return s;
}

int rollout_control(rollout_ctx_t *r, const char *what, int64_t id, int64_t now, char **err)
{
    if (!id)
        id = newest(r);
    char *state = id ? state_of(r, id) : NULL;
    if (!state)
        return say(err, 1, id ? "no rollout %lld (pcifleet rollout status lists the newest)" : "no rollout yet%.0lld",
                   (long long)id);
    const char *from = NULL, *to = NULL;
    if (!strcmp(what, "pause"))
        from = "running", to = "paused";
    else if (!strcmp(what, "resume"))
        from = "paused", to = "running";
    else if (!strcmp(what, "abort"))
        to = "aborted";
    else {
        free(state);
        return say(err, 2, "unknown rollout command '%s'", what);
    }
    int rc = 0;
    bool final = !strcmp(state, "done") || !strcmp(state, "aborted");
    if ((from && strcmp(state, from) != 0) || (!from && final)) {
        rc = say(err, 1, "rollout %lld is %s: it cannot be %s", (long long)id, state,
                 !strcmp(what, "pause") ? "paused" : !strcmp(what, "resume") ? "resumed" : "aborted");
    } else {
        char *rid = num(id), *t = num(now);
        rc = run(r, "UPDATE rollouts SET state = ?2, updated = CAST(?3 AS INTEGER) WHERE id = CAST(?1 AS INTEGER)",
                 rid, to, t, NULL);
        free(rid);
        free(t);
        char *kind = xasprintf("rollout-%s", to);
        char *d = xasprintf("rollout %lld %s by the operator", (long long)id, to);
        event(r, now, kind, NULL, d);
        free(kind);
        free(d);
    }
    free(state);
    return rc;
}

static void status(rollout_ctx_t *r, int64_t id, bool json, buf_t *out)
{
    sqlite3 *db = db_of(r);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT state, batch, pt, dry_run, allow_downtime, created, updated, coalesce(reason, '')"
                           " FROM rollouts WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK || (sqlite3_bind_int64(st, 1, id), sqlite3_step(st)) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return;
    }
    json_t *j = json ? json_new(0) : NULL;
    const char *state = (const char *)sqlite3_column_text(st, 0);
    int batch = sqlite3_column_int(st, 1);
    bool pt = sqlite3_column_int(st, 2), dry = sqlite3_column_int(st, 3), down = sqlite3_column_int(st, 4);
    const char *reason = (const char *)sqlite3_column_text(st, 7);
    if (j) {
        json_obj_open(j, NULL);
        json_int(j, "id", id);
        json_str(j, "kind", "iommu");
        json_str(j, "state", state);
        json_int(j, "batch", batch);
        json_bool(j, "pt", pt);
        json_bool(j, "dry_run", dry);
        json_bool(j, "allow_downtime", down);
        json_int(j, "created", sqlite3_column_int64(st, 5));
        json_int(j, "updated", sqlite3_column_int64(st, 6));
        if (*reason)
            json_str(j, "reason", reason);
        json_arr_open(j, "nodes");
    } else {
        buf_printf(out, "rollout %lld (iommu): %s, batch %d%s%s%s\n", (long long)id, state, batch,
                   pt ? ", iommu=pt" : "", dry ? ", dry run" : "", down ? ", downtime allowed" : "");
        if (*reason)
            buf_printf(out, "reason: %s\n", reason);
    }
    sqlite3_finalize(st);
    st = NULL;
    int counts[4] = {0}; /* done-ish, in flight, waiting, failed */
    if (sqlite3_prepare_v2(db,
                           "SELECT node, state, steps, step, coalesce(detail, ''), backups, diffs FROM rollout_nodes"
                           " WHERE rollout = ?1 ORDER BY pos",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        buf_t lines = BUF_INIT;
        buf_puts(&lines, "");
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *node = (const char *)sqlite3_column_text(st, 0);
            const char *ns = (const char *)sqlite3_column_text(st, 1);
            strv_t names = STRV_INIT;
            step_names((const char *)sqlite3_column_text(st, 2), &names);
            int step = sqlite3_column_int(st, 3);
            const char *detail = (const char *)sqlite3_column_text(st, 4);
            const char *backups = (const char *)sqlite3_column_text(st, 5);
            const char *diffs = (const char *)sqlite3_column_text(st, 6);
            int c = !strcmp(ns, "done") || !strcmp(ns, "skipped") || !strcmp(ns, "refused") ? 0
                    : !strcmp(ns, "waiting")                                                ? 2
                    : !strcmp(ns, "failed")                                                 ? 3
                                                                                            : 1;
            counts[c]++;
            const char *cur = step < (int)names.n ? names.v[step] : "";
            if (j) {
                json_obj_open(j, NULL);
                json_str(j, "node", node);
                json_str(j, "state", ns);
                json_arr_open(j, "steps");
                for (size_t i = 0; i < names.n; i++)
                    json_str(j, NULL, names.v[i]);
                json_arr_close(j);
                json_int(j, "step", step);
                if (*cur)
                    json_str(j, "current", cur);
                json_str(j, "detail", detail);
                json_arr_open(j, "backups");
                strv_t b = STRV_INIT;
                step_names(backups, &b);
                for (size_t i = 0; i < b.n; i++)
                    json_str(j, NULL, b.v[i]);
                strv_free(&b);
                json_arr_close(j);
                if (diffs && *diffs)
                    json_str(j, "diff", diffs);
                json_obj_close(j);
            } else {
                buf_printf(&lines, "%-20s %-16s %-18s %s\n", node, ns, *cur && c == 1 ? cur : "", detail);
                if (backups && strcmp(backups, "[]") != 0)
                    buf_printf(&lines, "%-20s %-16s %-18s backups: %s\n", "", "", "", backups);
            }
            strv_free(&names);
        }
        if (!j) {
            buf_printf(out, "nodes: %d done or skipped, %d in progress, %d waiting, %d failed\n", counts[0],
                       counts[1], counts[2], counts[3]);
            buf_printf(out, "%-20s %-16s %-18s %s\n", "NODE", "STATE", "STEP", "DETAIL");
            buf_append(out, lines.p, lines.len);
        }
        buf_free(&lines);
    }
    sqlite3_finalize(st);
    if (j) {
        json_arr_close(j);
        json_int(j, "finished", counts[0]);
        json_int(j, "in_progress", counts[1]);
        json_int(j, "waiting", counts[2]);
        json_int(j, "failed", counts[3]);
        json_obj_close(j);
        size_t n;
        const char *t = json_text(j, &n);
        buf_append(out, t, n);
        buf_putc(out, '\n');
        json_destroy(&j);
    }
}

static bool parse_id(const char *s, int64_t *id)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 1)
        return false;
    *id = v;
    return true;
}

int rollout_admin(rollout_ctx_t *r, int argc, char **argv, bool json, int64_t now, buf_t *out, char **err)
{
    static const char usage[] =
        "rollout start iommu [--nodes a,b | --all] [--batch N] [--pt] [--dry-run] [--allow-downtime]"
        " [--reboot-timeout S] [--grub-variable GRUB_CMDLINE_LINUX] | rollout status|pause|resume|abort [ID]";
    if (argc < 2)
        return say(err, 2, "usage: %s", usage);
    const char *sub = argv[1];
    if (!strcmp(sub, "start")) {
        if (argc < 3 || strcmp(argv[2], "iommu") != 0)
            return say(err, 2, "rollout start wants what to roll out: iommu (usage: %s)", usage);
        rollout_opts_t o = {.batch = 1};
        strv_t nodes = STRV_INIT;
        int rc = 0;
        for (int i = 3; i < argc && !rc; i++) {
            const char *a = argv[i];
            const char *val = i + 1 < argc ? argv[i + 1] : NULL;
            if (!strcmp(a, "--all"))
                o.all = true;
            else if (!strcmp(a, "--pt"))
                o.pt = true;
            else if (!strcmp(a, "--dry-run"))
                o.dry_run = true;
            else if (!strcmp(a, "--allow-downtime"))
                o.allow_downtime = true;
            else if ((!strcmp(a, "--nodes") || !strcmp(a, "--batch") || !strcmp(a, "--reboot-timeout") ||
                      !strcmp(a, "--grub-variable")) &&
                     !val)
                rc = say(err, 2, "%s needs a value (usage: %s)", a, usage);
            else if (!strcmp(a, "--grub-variable")) {
                o.grub_variable = argv[++i];
                if (strcmp(o.grub_variable, "GRUB_CMDLINE_LINUX_DEFAULT") && strcmp(o.grub_variable, "GRUB_CMDLINE_LINUX"))
                    rc = say(err, 2, "--grub-variable is GRUB_CMDLINE_LINUX_DEFAULT (the default) or GRUB_CMDLINE_LINUX,"
                                     " not '%s'", o.grub_variable);
            }
            else if (!strcmp(a, "--nodes")) {
                char *copy = xstrdup(argv[++i]), *save = NULL;
                for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
                    strv_add(&nodes, t);
                free(copy);
            } else if (!strcmp(a, "--batch") || !strcmp(a, "--reboot-timeout")) {
                int64_t v;
                if (!parse_id(argv[++i], &v) || v > 100000)
                    rc = say(err, 2, "%s wants a whole number from 1, not '%s'", a, argv[i]);
                else if (!strcmp(a, "--batch"))
                    o.batch = (int)v;
                else
                    o.reboot_timeout = (int)v;
            } else
                rc = say(err, 2, "unknown option '%s' (usage: %s)", a, usage);
        }
        if (!rc && o.all && nodes.n)
            rc = say(err, 2, "--nodes and --all exclude each other");
        int64_t id = 0;
        if (!rc) {
            o.nodes = (const char *const *)nodes.v;
            o.n_nodes = nodes.n;
            rc = rollout_start(r, &o, now, &id, err);
        }
        strv_free(&nodes);
        if (rc)
            return rc < 0 ? 1 : rc;
        rollout_tick(r, now); /* the first batch starts now */
        if (json)
            buf_printf(out, "{\"id\":%lld}\n", (long long)id);
        else
            buf_printf(out, "%lld\n", (long long)id);
        return 0;
    }
    int64_t id = 0;
    if (argc > 3)
        return say(err, 2, "usage: %s", usage);
    if (argc == 3 && !parse_id(argv[2], &id))
        return say(err, 2, "'%s' is not a rollout id", argv[2]);
    if (!strcmp(sub, "status")) {
        if (!id)
            id = newest(r);
        char *st = id ? state_of(r, id) : NULL;
        if (!st) {
            if (!id) {
                buf_puts(out, json ? "null\n" : "no rollout yet\n");
                return 0;
            }
            return say(err, 1, "no rollout %lld", (long long)id);
        }
        free(st);
        status(r, id, json, out);
        return 0;
    }
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "abort")) {
        int rc = rollout_control(r, sub, id, now, err);
        if (rc)
            return rc < 0 ? 1 : rc;
        if (!strcmp(sub, "resume"))
            rollout_tick(r, now);
        status(r, id ? id : newest(r), json, out);
        return 0;
    }
    return say(err, 2, "unknown rollout command '%s' (usage: %s)", sub, usage);
}
