/* claims — the checks and rows behind `pcifleet assign` and `release`
 * (see claims.h). Every check reads the store as the agents last reported
 * it; the write transaction (BEGIN IMMEDIATE) makes the checks and the
 * insert one step, and the primary key stops a second claim even so. */
#include "claims.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool claims_address(const char *in, char out[13])
{
    char tmp[13];
    size_t n = in ? strlen(in) : 0;
    if (n == 7) { /* BB:DD.F */
        snprintf(tmp, sizeof tmp, "0000:%s", in);
        in = tmp;
        n = 12;
    }
    if (n != 12)
        return false;
    for (size_t i = 0; i < 12; i++) {
        char c = (char)tolower((unsigned char)in[i]);
        bool sep = i == 4 || i == 7 || i == 10;
        if (sep ? c != (i == 10 ? '.' : ':') : !isxdigit((unsigned char)c))
            return false;
        out[i] = c;
    }
    out[12] = '\0';
    /* device 00-1f, function 0-7 */
    unsigned dev = (unsigned)strtoul(out + 8, NULL, 16), fn = (unsigned)(out[11] - '0');
    return dev <= 0x1f && out[11] >= '0' && fn <= 7;
}

void claim_clear(claim_t *c)
{
    if (!c)
        return;
    free(c->claim_id);
    free(c->node);
    free(c->vm_id);
    free(c->source);
    free(c->state);
    strv_free(&c->addresses);
    memset(c, 0, sizeof *c);
    c->hostpci = -1;
}

/* ---- small SQL helpers ---- */

typedef struct {
    sqlite3 *db;
    char **why;
    int rc; /* first failure: -EIO */
} q_t;

static int say(char **why, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char **why, int rc, const char *fmt, ...)
{
    if (why) {
        buf_t b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        free(*why);
        *why = buf_steal(&b);
    }
    return rc;
}

/* Prepares sql and binds the text arguments ?1.. (NULL-terminated list). */
static sqlite3_stmt *q(q_t *x, const char *sql, ...)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK) {
        x->rc = say(x->why, -EIO, "the claims query failed: %s", sqlite3_errmsg(x->db));
        sqlite3_finalize(st);
        return NULL;
    }
    va_list ap;
    va_start(ap, sql);
    const char *a;
    for (int i = 1; (a = va_arg(ap, const char *)) != NULL; i++)
        sqlite3_bind_text(st, i, a, -1, SQLITE_TRANSIENT);
    va_end(ap);
    return st;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

/* Every row's first column, joined by ", " (empty when none). */
static char *list_of(q_t *x, sqlite3_stmt *st)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    if (!st)
        return buf_steal(&b);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (b.len)
            buf_puts(&b, ", ");
        buf_puts(&b, col(st, 0));
    }
    if (rc != SQLITE_DONE)
        x->rc = say(x->why, -EIO, "the claims query failed: %s", sqlite3_errmsg(x->db));
    sqlite3_finalize(st);
    return buf_steal(&b);
}

static int exec(sqlite3 *db, const char *sql, char **why)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = say(why, -EIO, "%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static void event(sqlite3 *db, int64_t now, const char *kind, const char *node, const char *detail)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO events (time, kind, node, detail) VALUES (?1, ?2, ?3, ?4)", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now);
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, node, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
}

static char *new_claim_id(void)
{
    uint8_t r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) /* never fails for 8 bytes; be safe anyway */
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (uint8_t)rand();
    return xasprintf("%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* ---- the checks for one endpoint ---- */

/* A check that found something (list non-empty) refuses with the sentence
 * fmt makes; the list is freed either way. True when refused. */
static bool refuse_listed(q_t *x, char *list, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool refuse_listed(q_t *x, char *list, const char *fmt, ...)
{
    bool found = list && *list;
    if (found && x->why) {
        buf_t b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        free(*x->why);
        *x->why = buf_steal(&b);
    }
    free(list);
    return found;
}

static int check_endpoint(q_t *x, const char *node, const char *addr, const char *vm_id)
{
    sqlite3_stmt *st;
    /* the host's own network */
    if ((st = q(x, "SELECT ifname, management_via FROM nics WHERE node = ?1 AND address = ?2 AND management = 1",
                node, addr, NULL))) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            int r = say(x->why, CLAIM_REFUSED,
                        "%s (%s) is a management NIC of %s: it carries the host's default route (%s); passing it "
                        "to a VM cuts the node off. Pick a free NIC: pcifleet nics --node %s --free",
                        addr, col(st, 0), node, *col(st, 1) ? col(st, 1) : "directly", node);
            sqlite3_finalize(st);
            return r;
        }
        sqlite3_finalize(st);
    }
    /* claimed already */
    if ((st = q(x, "SELECT vm_id, state FROM claims WHERE node = ?1 AND address = ?2", node, addr, NULL))) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            int r = say(x->why, CLAIM_REFUSED,
                        "%s on %s is already claimed for VM %s (%s)%s", addr, node, col(st, 0), col(st, 1),
                        strcmp(col(st, 0), vm_id) == 0
                            ? ""
                            : ": release it first (pcifleet release NODE ADDRESS) or pick another device");
            sqlite3_finalize(st);
            return r;
        }
        sqlite3_finalize(st);
    }
    /* in another VM's config, running or not */
    char *other = list_of(x, q(x,
                               "SELECT DISTINCT p.vm_id || ' (hostpci' || p.hostpci || ', ' ||"
                               " CASE v.running WHEN 1 THEN 'running' WHEN 0 THEN 'stopped' ELSE 'state unknown' END"
                               " || ')' FROM vm_passthrough p JOIN vms v ON v.node = p.node AND v.source = p.source"
                               " AND v.vm_id = p.vm_id WHERE p.node = ?1 AND p.address = ?2 AND p.vm_id <> ?3"
                               " ORDER BY 1",
                               node, addr, vm_id, NULL));
    if (refuse_listed(x, other,
                      "%s on %s is already in the config of VM %s: Proxmox lets two VMs hold one device and only the "
                      "first to start gets it. Remove it from that VM first, or pick a free device",
                      addr, node, other))
        return CLAIM_REFUSED;
    /* SR-IOV: a PF whose VFs are in use, a VF whose PF is */
    char *vfs = list_of(x, q(x,
                             "SELECT d.address FROM devices d WHERE d.node = ?1 AND d.physfn = ?2 AND"
                             " (EXISTS (SELECT 1 FROM claims k WHERE k.node = d.node AND k.address = d.address) OR"
                             "  EXISTS (SELECT 1 FROM vm_passthrough p WHERE p.node = d.node AND p.address = d.address))"
                             " ORDER BY 1",
                             node, addr, NULL));
    if (refuse_listed(x, vfs,
                      "%s on %s is an SR-IOV PF whose VFs are in use (%s): passing the PF would take them from their "
                      "VMs. Claim a free VF instead, or free the VFs first",
                      addr, node, vfs))
        return CLAIM_REFUSED;
    char *pf = list_of(x, q(x,
                            "SELECT d.physfn FROM devices d WHERE d.node = ?1 AND d.address = ?2 AND d.physfn IS NOT"
                            " NULL AND (EXISTS (SELECT 1 FROM claims k WHERE k.node = d.node AND k.address = d.physfn)"
                            " OR EXISTS (SELECT 1 FROM vm_passthrough p WHERE p.node = d.node AND p.address = d.physfn))",
                            node, addr, NULL));
    if (refuse_listed(x, pf,
                      "%s on %s is a VF of %s, which is itself claimed or configured in a VM: the VF goes with it. "
                      "Free the PF first",
                      addr, node, pf))
        return CLAIM_REFUSED;
    return x->rc;
}

/* Lowest hostpciN the VM's stored config and its applied claims leave free. */
static int next_index(q_t *x, const char *node, const char *vm_id)
{
    sqlite3_stmt *st = q(x,
                         "SELECT hostpci FROM vm_passthrough WHERE node = ?1 AND vm_id = ?2 UNION"
                         " SELECT hostpci FROM claims WHERE node = ?1 AND vm_id = ?2 AND hostpci IS NOT NULL"
                         " ORDER BY 1",
                         node, vm_id, NULL);
    int n = 0;
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int used = sqlite3_column_int(st, 0);
        if (used == n)
            n++;
        else if (used > n)
            break;
    }
    sqlite3_finalize(st);
    return n;
}

int claims_assign(store_t *s, const char *node, const char *address, const char *vm_id, bool group, int64_t now,
                  claim_t *out, char **why)
{
    memset(out, 0, sizeof *out);
    out->hostpci = -1;
    char addr[13];
    if (!node || !*node || !vm_id || !*vm_id)
        return say(why, CLAIM_REFUSED, "assign needs a node, a device address and a VM id");
    if (!claims_address(address, addr))
        return say(why, CLAIM_REFUSED, "'%s' is not a PCI address (DDDD:BB:DD.F, e.g. 0000:03:00.0)",
                   address ? address : "");
    char *ferr = NULL;
    if (store_flush(s, &ferr) < 0) { /* current online state */
        int r = say(why, -EIO, "%s", ferr ? ferr : "cannot record heartbeats");
        free(ferr);
        return r;
    }
    sqlite3 *db = store_db(s);
    if (exec(db, "BEGIN IMMEDIATE", why) < 0)
        return -EIO;
    q_t x = {db, why, 0};
    int rc = 0;
    sqlite3_stmt *st = NULL;

    /* the node */
    if (!(st = q(&x, "SELECT n.online, i.verdict FROM nodes n LEFT JOIN iommu i ON i.node = n.name WHERE n.name = ?1",
                 node, NULL)))
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = say(why, CLAIM_REFUSED, "no node named %s (pcifleet nodes lists them)", node);
        goto out;
    }
    bool online = sqlite3_column_int(st, 0) != 0;
    char *verdict = xstrdup(col(st, 1));
    sqlite3_finalize(st);
    st = NULL;

    /* the device */
    if (!(st = q(&x, "SELECT iommu_group, bridge FROM devices WHERE node = ?1 AND address = ?2", node, addr, NULL))) {
        free(verdict);
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = say(why, CLAIM_REFUSED, "node %s has no device at %s (pcifleet show %s lists its devices)", node, addr,
                 node);
        free(verdict);
        goto out;
    }
    bool has_group = sqlite3_column_type(st, 0) != SQLITE_NULL;
    char *grp = xstrdup(col(st, 0));
    bool bridge = sqlite3_column_int(st, 1) != 0;
    sqlite3_finalize(st);
    st = NULL;
    if (!online) {
        rc = say(why, CLAIM_REFUSED,
                 "node %s is offline: a claim needs the node's current report; wait for its agent to come back", node);
    } else if (strcmp(verdict, "ready") != 0) {
        rc = say(why, CLAIM_REFUSED,
                 "the IOMMU of node %s is not ready (verdict %s): passthrough cannot work there yet. "
                 "pcifleet show %s says what to change",
                 node, *verdict ? verdict : "unknown", node);
    } else if (bridge) {
        rc = say(why, CLAIM_REFUSED, "%s on %s is a PCI bridge or port: it cannot be passed to a VM", addr, node);
    } else if (!has_group) {
        rc = say(why, CLAIM_REFUSED, "%s on %s is in no IOMMU group, so it cannot be passed to a VM", addr, node);
    }
    free(verdict);
    if (rc) {
        free(grp);
        goto out;
    }

    /* the VM: on this node */
    if (!(st = q(&x, "SELECT source, machine FROM vms WHERE node = ?1 AND vm_id = ?2 ORDER BY source", node, vm_id,
                 NULL))) {
        free(grp);
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->source = xstrdup(col(st, 0));
        out->q35 = strstr(col(st, 1), "q35") != NULL;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!out->source) {
        char *where = list_of(&x, q(&x, "SELECT DISTINCT node FROM vms WHERE vm_id = ?1 ORDER BY 1", vm_id, NULL));
        if (*where)
            rc = say(why, CLAIM_REFUSED,
                     "VM %s lives on %s, not on %s: a VM can only be given its own node's devices. Assign a device of "
                     "%s, or move the VM first (pcifleet plan migrate %s --to %s)",
                     vm_id, where, node, where, vm_id, node);
        else
            rc = say(why, CLAIM_REFUSED, "no VM %s on node %s (pcifleet vms lists them)", vm_id, node);
        free(where);
        free(grp);
        goto out;
    }

    /* the group: every endpoint goes to the VM together */
    char *others = list_of(&x, q(&x,
                                 "SELECT address FROM devices WHERE node = ?1 AND iommu_group = CAST(?2 AS INTEGER)"
                                 " AND bridge = 0 AND address <> ?3 ORDER BY address",
                                 node, grp, addr, NULL));
    if (*others && !group) {
        rc = say(why, CLAIM_REFUSED,
                 "%s on %s shares IOMMU group %s with %s: they can only go to a VM together. Claim the whole group "
                 "with --group, or pick a device alone in its group (pcifleet nics --free)",
                 addr, node, grp, others);
        free(others);
        free(grp);
        goto out;
    }
    strv_add(&out->addresses, addr);
    if (*others) {
        char *save = NULL;
        for (char *t = strtok_r(others, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
            strv_add(&out->addresses, t);
    }
    free(others);
    free(grp);
    strv_sort(&out->addresses);
    for (size_t i = 0; i < out->addresses.n && !rc; i++)
        rc = check_endpoint(&x, node, out->addresses.v[i], vm_id);
    if (rc || x.rc)
        goto out;

    /* the rows; the primary key refuses a device claimed meanwhile */
    out->claim_id = new_claim_id();
    for (size_t i = 0; i < out->addresses.n; i++) {
        if (!(st = q(&x,
                     "INSERT INTO claims (node, address, vm_id, claim_id, state, created)"
                     " VALUES (?1, ?2, ?3, ?4, 'claimed', CAST(?5 AS INTEGER))",
                     node, out->addresses.v[i], vm_id, out->claim_id, NULL)))
            goto out;
        sqlite3_bind_int64(st, 5, now);
        int r = sqlite3_step(st);
        bool dup = (sqlite3_extended_errcode(db) & 0xff) == SQLITE_CONSTRAINT;
        sqlite3_finalize(st);
        st = NULL;
        if (r != SQLITE_DONE) {
            rc = dup ? say(why, CLAIM_REFUSED, "%s on %s was claimed by someone else meanwhile", out->addresses.v[i],
                           node)
                     : say(why, -EIO, "cannot store the claim: %s", sqlite3_errmsg(db));
            goto out;
        }
    }
    out->next_index = next_index(&x, node, vm_id);
    out->node = xstrdup(node);
    out->vm_id = xstrdup(vm_id);
    out->state = xstrdup("claimed");
    char *all = strv_join(&out->addresses, ", ");
    char *detail = xasprintf("%s claimed for VM %s (claim %s)", all, vm_id, out->claim_id);
    event(db, now, "device-claimed", node, detail);
    free(detail);
    free(all);
out:
    sqlite3_finalize(st);
    if (!rc && x.rc)
        rc = x.rc;
    if (rc == 0 && exec(db, "COMMIT", why) < 0)
        rc = -EIO;
    if (rc != 0) {
        if (!sqlite3_get_autocommit(db))
            exec(db, "ROLLBACK", NULL);
        claim_clear(out);
    }
    return rc;
}

int claims_release(store_t *s, const char *node, const char *address, int64_t now, claim_t *out, char **why)
{
    memset(out, 0, sizeof *out);
    out->hostpci = -1;
    char addr[13];
    if (!claims_address(address, addr))
        return say(why, CLAIM_REFUSED, "'%s' is not a PCI address (DDDD:BB:DD.F, e.g. 0000:03:00.0)",
                   address ? address : "");
    sqlite3 *db = store_db(s);
    if (exec(db, "BEGIN IMMEDIATE", why) < 0)
        return -EIO;
    q_t x = {db, why, 0};
    int rc = 0;
    sqlite3_stmt *st = q(&x, "SELECT claim_id, vm_id, state, hostpci FROM claims WHERE node = ?1 AND address = ?2",
                         node, addr, NULL);
    if (!st)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = say(why, CLAIM_REFUSED, "nothing is claimed at %s on %s (pcifleet sql \"SELECT * FROM v_claims\" lists "
                                     "the claims)", addr, node);
        goto out;
    }
    out->claim_id = xstrdup(col(st, 0));
    out->vm_id = xstrdup(col(st, 1));
    out->state = xstrdup(col(st, 2));
    out->hostpci = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
    sqlite3_finalize(st);
    st = NULL;
    if ((st = q(&x, "SELECT address FROM claims WHERE claim_id = ?1 ORDER BY address", out->claim_id, NULL))) {
        while (sqlite3_step(st) == SQLITE_ROW)
            strv_add(&out->addresses, col(st, 0));
        sqlite3_finalize(st);
        st = NULL;
    }
    if ((st = q(&x, "SELECT source, machine FROM vms WHERE node = ?1 AND vm_id = ?2 ORDER BY source", node,
                out->vm_id, NULL))) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            out->source = xstrdup(col(st, 0));
            out->q35 = strstr(col(st, 1), "q35") != NULL;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    if ((st = q(&x, "DELETE FROM claims WHERE claim_id = ?1", out->claim_id, NULL))) {
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = say(why, -EIO, "cannot drop the claim: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        st = NULL;
    }
    out->node = xstrdup(node);
    if (!rc) {
        char *all = strv_join(&out->addresses, ", ");
        char *detail = xasprintf("%s released from VM %s (claim %s)", all, out->vm_id, out->claim_id);
        event(db, now, "device-released", node, detail);
        free(detail);
        free(all);
    }
out:
    sqlite3_finalize(st);
    if (!rc && x.rc)
        rc = x.rc;
    if (rc == 0 && exec(db, "COMMIT", why) < 0)
        rc = -EIO;
    if (rc != 0) {
        if (!sqlite3_get_autocommit(db))
            exec(db, "ROLLBACK", NULL);
        claim_clear(out);
    }
    return rc;
}

int claims_set_state(store_t *s, const char *claim_id, const char *state, int hostpci, char **err)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "UPDATE claims SET state = ?2, hostpci = coalesce(?3, hostpci) WHERE claim_id = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return say(err, -EIO, "cannot update the claim: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, claim_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (hostpci >= 0)
        sqlite3_bind_int(st, 3, hostpci);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : say(err, -EIO, "cannot update the claim: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

int claims_drop(store_t *s, const char *claim_id, int64_t now, const char *why_dropped, char **err)
{
    sqlite3 *db = store_db(s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM claims WHERE claim_id = ?1 RETURNING node, address, vm_id", -1, &st,
                           NULL) != SQLITE_OK)
        return say(err, -EIO, "cannot drop the claim: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, claim_id, -1, SQLITE_STATIC);
    strv_t rows = STRV_INIT;
    int r;
    char *node = NULL;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (!node)
            node = xstrdup(col(st, 0));
        strv_add(&rows, col(st, 1));
    }
    sqlite3_finalize(st);
    if (r == SQLITE_DONE && node) {
        char *all = strv_join(&rows, ", ");
        char *detail = xasprintf("claim %s of %s rolled back: %s", claim_id, all, why_dropped ? why_dropped : "");
        event(db, now, "claim-rolled-back", node, detail);
        free(detail);
        free(all);
    }
    free(node);
    strv_free(&rows);
    return r == SQLITE_DONE ? 0 : say(err, -EIO, "cannot drop the claim: %s", sqlite3_errmsg(db));
}
