/* assign — the admin side of claims, with --apply waiting for the agent
 * (see assign.h). */
#include "assign.h"

#include "claims.h"
#include "json.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSIGN_USAGE "assign NODE ADDRESS VMID [--group] [--apply]"
#define RELEASE_USAGE "release NODE ADDRESS [--apply]"

typedef struct pending {
    struct pending *next;
    char *step_id;
    claim_t claim;
    bool release;
    bool json;
    int64_t deadline;
    void *token;
} pending_t;

struct assign_ctx {
    store_t *store;
    assign_send_fn send;
    void *arg;
    assign_token_free_fn token_free;
    int timeout_s;
    pending_t *pending;
    size_t n_pending;
    uint64_t steps;
};

assign_ctx_t *assign_new(store_t *s, assign_send_fn send, void *arg, assign_token_free_fn token_free, int timeout_s)
{
    assign_ctx_t *a = xcalloc(1, sizeof *a);
    a->store = s;
    a->send = send;
    a->arg = arg;
    a->token_free = token_free;
    a->timeout_s = timeout_s > 0 ? timeout_s : 30;
    return a;
}

static void pending_free(assign_ctx_t *a, pending_t *p)
{
    if (p->token && a->token_free)
        a->token_free(p->token);
    free(p->step_id);
    claim_clear(&p->claim);
    free(p);
}

void assign_destroy(assign_ctx_t **ap)
{
    if (!ap || !*ap)
        return;
    assign_ctx_t *a = *ap;
    while (a->pending) {
        pending_t *p = a->pending;
        a->pending = p->next;
        pending_free(a, p);
    }
    free(a);
    *ap = NULL;
}

size_t assign_pending(const assign_ctx_t *a) { return a ? a->n_pending : 0; }

/* ---- answers ---- */

static void answer(buf_t *out, bool json, const claim_t *c, bool release, const char *applied, int hostpci,
                   const char *command)
{
    if (json) {
        json_t *j = json_new(0);
        json_obj_open(j, NULL);
        json_str(j, release ? "released" : "claimed", c->claim_id);
        json_str(j, "node", c->node);
        json_str(j, "vm", c->vm_id);
        json_arr_open(j, "addresses");
        for (size_t i = 0; i < c->addresses.n; i++)
            json_str(j, NULL, c->addresses.v[i]);
        json_arr_close(j);
        if (applied) {
            json_str(j, "applied", applied);
            if (hostpci >= 0) {
                char e[24];
                snprintf(e, sizeof e, "hostpci%d", hostpci);
                json_str(j, "entry", e);
            }
            json_str(j, "command", command ? command : "");
        }
        json_obj_close(j);
        size_t n;
        const char *t = json_text(j, &n);
        buf_append(out, t, n);
        buf_putc(out, '\n');
        json_destroy(&j);
        return;
    }
    char *all = strv_join(&c->addresses, " ");
    buf_printf(out, "%s %s on %s %s VM %s (claim %s)\n", release ? "released" : "claimed", all, c->node,
               release ? "from" : "for", c->vm_id, c->claim_id);
    if (applied) {
        if (hostpci >= 0)
            buf_printf(out, "%s: hostpci%d", applied, hostpci);
        else
            buf_puts(out, applied);
        if (command && *command)
            buf_printf(out, " (%s)", command);
        buf_putc(out, '\n');
    }
    free(all);
}

/* ---- the step ---- */

static int send_edit(assign_ctx_t *a, pending_t *p, char **err)
{
    if (!a->send) {
        *err = xstrdup("--apply needs the controller's connection to the agents");
        return -1;
    }
    Pcifleet__VmDeviceEdit e = PCIFLEET__VM_DEVICE_EDIT__INIT;
    e.step_id = p->step_id;
    e.vm_id = p->claim.vm_id;
    e.remove = p->release;
    e.index = p->release ? (uint32_t)(p->claim.hostpci >= 0 ? p->claim.hostpci : 0) : (uint32_t)p->claim.next_index;
    e.addresses = p->claim.addresses.v;
    e.n_addresses = p->claim.addresses.n;
    e.pcie = p->claim.q35;
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    env.node = p->claim.node;
    env.body_case = PCIFLEET__ENVELOPE__BODY_VM_DEVICE_EDIT;
    env.vm_device_edit = &e;
    uint8_t *frame = NULL;
    size_t n = wire_encode(&env, &frame);
    int rc = a->send(a->arg, p->claim.node, frame, n);
    free(frame);
    if (rc < 0)
        *err = xasprintf("the agent of %s is not connected, so the VM's config cannot be changed now", p->claim.node);
    return rc;
}

static int run_assign(assign_ctx_t *a, int argc, char **argv, bool json, int64_t now, void *token, bool *deferred,
                      buf_t *out, char **err)
{
    const char *pos[3];
    int npos = 0;
    bool group = false, apply = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--group") == 0)
            group = true;
        else if (strcmp(argv[i], "--apply") == 0)
            apply = true;
        else if (argv[i][0] == '-' && argv[i][1] == '-') {
            *err = xasprintf("unknown option '%s' (usage: " ASSIGN_USAGE ")", argv[i]);
            return 2;
        } else if (npos < 3)
            pos[npos++] = argv[i];
        else {
            *err = xasprintf("unexpected argument '%s' (usage: " ASSIGN_USAGE ")", argv[i]);
            return 2;
        }
    }
    if (npos != 3) {
        *err = xstrdup("assign needs NODE ADDRESS VMID (usage: " ASSIGN_USAGE ")");
        return 2;
    }
    claim_t c;
    int rc = claims_assign(a->store, pos[0], pos[1], pos[2], group, now, &c, err);
    if (rc != 0)
        return rc < 0 ? 1 : rc;
    if (!apply) {
        answer(out, json, &c, false, NULL, -1, NULL);
        claim_clear(&c);
        return 0;
    }
    if (strcmp(c.source, "proxmox") != 0) {
        *err = xasprintf("VM %s is a %s domain: --apply edits Proxmox VM configs only; the claim was not kept",
                         c.vm_id, c.source);
        claims_drop(a->store, c.claim_id, now, "--apply on a non-Proxmox VM", NULL);
        claim_clear(&c);
        return 1;
    }
    pending_t *p = xcalloc(1, sizeof *p);
    p->claim = c;
    p->json = json;
    p->step_id = xasprintf("claim-%s-%llu", c.claim_id, (unsigned long long)++a->steps);
    p->deadline = now + a->timeout_s;
    claims_set_state(a->store, c.claim_id, "applying", -1, NULL);
    if (send_edit(a, p, err) < 0) {
        claims_drop(a->store, c.claim_id, now, *err, NULL);
        pending_free(a, p);
        return 1;
    }
    p->token = token;
    p->next = a->pending;
    a->pending = p;
    a->n_pending++;
    *deferred = true;
    return 0;
}

static int run_release(assign_ctx_t *a, int argc, char **argv, bool json, int64_t now, void *token, bool *deferred,
                       buf_t *out, char **err)
{
    const char *pos[2];
    int npos = 0;
    bool apply = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--apply") == 0)
            apply = true;
        else if (argv[i][0] == '-' && argv[i][1] == '-') {
            *err = xasprintf("unknown option '%s' (usage: " RELEASE_USAGE ")", argv[i]);
            return 2;
        } else if (npos < 2)
            pos[npos++] = argv[i];
        else {
            *err = xasprintf("unexpected argument '%s' (usage: " RELEASE_USAGE ")", argv[i]);
            return 2;
        }
    }
    if (npos != 2) {
        *err = xstrdup("release needs NODE ADDRESS (usage: " RELEASE_USAGE ")");
        return 2;
    }
    claim_t c;
    int rc = claims_release(a->store, pos[0], pos[1], now, &c, err);
    if (rc != 0)
        return rc < 0 ? 1 : rc;
    if (!apply || !c.source || strcmp(c.source, "proxmox") != 0) {
        answer(out, json, &c, true, apply ? "the VM is not a Proxmox VM: its config was left as it is" : NULL, -1,
               NULL);
        claim_clear(&c);
        return 0;
    }
    pending_t *p = xcalloc(1, sizeof *p);
    p->claim = c;
    p->json = json;
    p->release = true;
    p->step_id = xasprintf("release-%s-%llu", c.claim_id, (unsigned long long)++a->steps);
    p->deadline = now + a->timeout_s;
    char *why = NULL;
    if (send_edit(a, p, &why) < 0) {
        /* the claim is gone either way; say the config still holds it */
        answer(out, json, &c, true, "released, but the VM's config still holds the entry", -1, why);
        free(why);
        pending_free(a, p);
        return 0;
    }
    p->token = token;
    p->next = a->pending;
    a->pending = p;
    a->n_pending++;
    *deferred = true;
    return 0;
}

int assign_run(assign_ctx_t *a, int argc, char **argv, bool json, int64_t now, void *token, bool *deferred,
               buf_t *out, char **err)
{
    *deferred = false;
    if (argc < 1)
        return 2;
    if (strcmp(argv[0], "assign") == 0)
        return run_assign(a, argc, argv, json, now, token, deferred, out, err);
    if (strcmp(argv[0], "release") == 0)
        return run_release(a, argc, argv, json, now, token, deferred, out, err);
    *err = xasprintf("unknown command '%s'", argv[0]);
    return 2;
}

/* Takes p out of the list and finishes it; returns its token. */
static void *finish(assign_ctx_t *a, pending_t *p, const Pcifleet__StepResult *r, int64_t now, int *status,
                    buf_t *out, char **err)
{
    for (pending_t **pp = &a->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            a->n_pending--;
            break;
        }
    bool ok = r && (r->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ||
                    r->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED);
    const char *what = !r ? "no answer from the agent in time"
                           : r->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED ? "refused by the agent"
                                                                                            : "failed on the node";
    const char *detail = r && r->detail && *r->detail ? r->detail : "";
    char *why = NULL;
    if (p->release) {
        answer(out, p->json, &p->claim, true,
               ok ? (r->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ? "removed from the VM's config"
                                                                                : "the VM's config did not hold it")
                  : "released, but the VM's config still holds the entry",
               ok ? (int)r->index : -1, r ? r->command : NULL);
        if (!ok)
            log_warn("release of %s on %s: the VM edit %s%s%s", p->claim.claim_id, p->claim.node, what,
                     *detail ? ": " : "", detail);
        *status = 0;
    } else if (ok) {
        claims_set_state(a->store, p->claim.claim_id, "applied", (int)r->index, NULL);
        answer(out, p->json, &p->claim, false,
               r->outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ? "added to the VM's config"
                                                                          : "already in the VM's config",
               (int)r->index, r->command);
        *status = 0;
    } else {
        why = xasprintf("the claim of %s for VM %s was rolled back: the VM edit was %s%s%s", p->claim.node,
                        p->claim.vm_id, what, *detail ? ": " : "", detail);
        claims_drop(a->store, p->claim.claim_id, now, why, NULL);
        *err = why;
        *status = 1;
    }
    void *token = p->token;
    p->token = NULL;
    pending_free(a, p);
    return token;
}

void *assign_step_result(assign_ctx_t *a, const char *node, const Pcifleet__StepResult *r, int64_t now, int *status,
                         buf_t *out, char **err)
{
    for (pending_t *p = a->pending; p; p = p->next) {
        if (r->step_id && strcmp(p->step_id, r->step_id) == 0) {
            if (strcmp(p->claim.node, node) != 0) {
                log_warn("node %s answered step %s, which went to %s: ignored", node, r->step_id, p->claim.node);
                return NULL;
            }
            return finish(a, p, r, now, status, out, err);
        }
    }
    log_info("node %s answered step %s, which nothing waits for (late or repeated)", node,
             r->step_id ? r->step_id : "");
    return NULL;
}

void *assign_expired(assign_ctx_t *a, int64_t now, int *status, buf_t *out, char **err)
{
    for (pending_t *p = a->pending; p; p = p->next)
        if (now >= p->deadline)
            return finish(a, p, NULL, now, status, out, err);
    return NULL;
}
