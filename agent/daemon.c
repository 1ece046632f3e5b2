/* daemon — `pcifleet-agent run` (see daemon.h).
 *
 * One loop: a zpoller over the DEALER socket and a zmonitor actor watching
 * it, woken by whichever comes first of a frame, a connection event, the
 * next heartbeat and the next rescan. */
#include "daemon.h"

#include "buf.h"
#include "inventory.h"
#include "keys.h"
#include "log.h"
#include "privs.h"
#include "report_pb.h"
#include "root.h"
#include "runner.h"
#include "sim.h"
#include "steps.h"
#include "stepmem.h"
#include "vmedit.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const agent_daemon_config_keys[] = {
    "controller", "controller-key", "key", "node", "root", "interval", "rescan", "log-level", "pci-ids",
    "simulate", "allow-vm-edits", "allow-reboot", "allow-steps", "state-dir", NULL,
};

#define DEFAULT_INTERVAL_MS 5000u
#define DEFAULT_RESCAN_MS 60000u
#define MIN_PERIOD_MS 50u
#define RECONNECT_IVL_MS 500
#define RECONNECT_IVL_MAX_MS 10000
#define QUEUE_LIMIT 64         /* messages ZeroMQ keeps while the controller is away */
#define LINGER_MS 200          /* what a stopping agent still tries to deliver */
#define NAG_MS 60000           /* repeat an operator hint at most once a minute */
#define DOWN_POLL_MS 1000      /* a simulated node that failed to boot checks its profile this often */

int agent_parse_seconds(const char *s, unsigned min_ms, unsigned max_ms, unsigned *ms)
{
    if (!s || !*s)
        return -EINVAL;
    unsigned long long whole = 0, frac = 0;
    int frac_digits = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > 100000000ull)
            return -EINVAL;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++frac_digits > 3)
                return -EINVAL;
            frac = frac * 10 + (unsigned)(*p - '0');
        }
    }
    if (*p)
        return -EINVAL;
    while (frac_digits < 3) {
        frac *= 10;
        frac_digits++;
    }
    unsigned long long v = whole * 1000 + frac;
    if (v < min_ms || v > max_ms)
        return -EINVAL;
    *ms = (unsigned)v;
    return 0;
}

int agent_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int agent_daemon_opts_parse(const config_t *c, agent_daemon_opts_t *o, char **err)
{
    *err = NULL;
    memset(o, 0, sizeof(*o));
    o->controller = config_get(c, "controller");
    o->controller_key = config_get(c, "controller-key");
    o->key = config_get(c, "key");
    o->node = config_get(c, "node");
    o->root = config_get(c, "root");
    o->ids_file = config_get(c, "pci-ids");
    o->interval_ms = DEFAULT_INTERVAL_MS;
    o->rescan_ms = DEFAULT_RESCAN_MS;
    o->log_level = LOG_LEVEL_INFO;
    o->allow_vm_edits = true;
    o->state_dir = config_get(c, "state-dir");
    o->allow_steps = config_get(c, "allow-steps");
    if (o->allow_steps) { /* every name must be a step kind: a typo must not open or close anything */
        char *copy = xstrdup(o->allow_steps), *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            bool known = false;
            for (int k = 1; k <= 7 && !known; k++)
                known = strcmp(t, steps_kind_name((Pcifleet__SetupStep__Kind)k)) == 0;
            if (!known) {
                *err = xasprintf("allow-steps names '%s', which is not a step (set-kernel-args, ensure-modules, "
                                 "refresh-boot, refresh-initramfs, reboot, verify, restore-backup)",
                                 t);
                free(copy);
                return -EINVAL;
            }
        }
        free(copy);
    }
    static const char *const bools[] = {"simulate", "allow-vm-edits", "allow-reboot"};
    bool *bool_dst[] = {&o->simulate, &o->allow_vm_edits, &o->allow_reboot};
    for (size_t i = 0; i < 3; i++) {
        const char *v = config_get(c, bools[i]);
        if (v && agent_parse_bool(v, bool_dst[i]) < 0) {
            *err = xasprintf("%s = '%s' is neither true nor false (true/false, yes/no, on/off, 1/0)", bools[i], v);
            return -EINVAL;
        }
    }
    static const char *const required[] = {"controller", "controller-key", "key"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const char *v = config_get(c, required[i]);
        if (!v || !*v) {
            *err = xasprintf("--%s is required (or '%s = ...' in the config file)", required[i], required[i]);
            return -EINVAL;
        }
    }
    if (o->state_dir && !*o->state_dir) {
        *err = xstrdup("--state-dir is empty: give the folder where step results are kept");
        return -EINVAL;
    }
    if (o->node && !keys_valid_node_name(o->node)) {
        *err = xasprintf("--node '%s' is not a valid node name: use 1-63 of A-Z a-z 0-9 . _ -, not starting "
                         "with . or -",
                         o->node);
        return -EINVAL;
    }
    const char *v = config_get(c, "interval");
    if (v && agent_parse_seconds(v, MIN_PERIOD_MS, 3600u * 1000, &o->interval_ms) < 0) {
        *err = xasprintf("--interval '%s' is not a number of seconds between 0.05 and 3600", v);
        return -EINVAL;
    }
    v = config_get(c, "rescan");
    if (v && agent_parse_seconds(v, MIN_PERIOD_MS, 86400u * 1000, &o->rescan_ms) < 0) {
        *err = xasprintf("--rescan '%s' is not a number of seconds between 0.05 and 86400", v);
        return -EINVAL;
    }
    v = config_get(c, "log-level");
    if (v) {
        int l = log_level_parse(v);
        if (l < 0) {
            *err = xasprintf("--log-level '%s' is not one of error, warn, info, debug", v);
            return -EINVAL;
        }
        o->log_level = l;
    }
    return 0;
}

/* ---- the running agent ---- */

typedef struct {
    const agent_daemon_opts_t *o;
    scan_opts_t scan;
    char *node;                 /* the name every envelope carries */
    zsock_t *sock;
    zactor_t *monitor;          /* NULL when it could not be started */
    Pcifleet__Inventory *inv;   /* the current report */
    uint64_t seq;
    int64_t last_answer;        /* last frame from the controller (zclock_mono ms) */
    int64_t last_hello;
    int64_t inv_sent_at;        /* last Inventory sent, and its hash */
    uint8_t inv_sent_hash[32];
    bool inv_sent;
    bool refused;               /* the controller refused our key or name: say Hello every interval */
    int64_t refused_logged_at;
    bool connected, ever_connected;
    bool lost_logged;            /* a warning about the lost connection is out */
    bool answered_on_connection; /* something came back since the last CONNECTED */
    int64_t handshake_hint_at;
    /* Steps: the node's root for reading configs, the one command runner
     * (NULL when no mode fits: see vm_policy), the results by step id. */
    root_t *root;
    runner_t *runner;
    stepmem_t *steps;
    vmedit_policy_t vm_policy;
    char *vm_refusal;
    step_policy_t step_policy;
    char *state_dir;
    /* A REBOOT step was carried out by the node simulator: the loop takes
     * the agent down and brings it back as a restarted one. */
    bool restart_pending;
} agent_t;

static const char *boot_id(const agent_t *a)
{
    return a->inv && a->inv->boot_id ? a->inv->boot_id : "";
}

static void hash_hex(const uint8_t *h, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < n && 2 * i + 2 < outlen; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Packs env and queues it without waiting. Returns 0, or -1 when ZeroMQ's
 * queue is full (the controller is away; the message is dropped). */
static int send_env(agent_t *a, Pcifleet__Envelope *env)
{
    env->seq = ++a->seq;
    env->node = a->node;
    uint8_t *buf = NULL;
    size_t n = wire_encode(env, &buf);
    int rc = zmq_send(zsock_resolve(a->sock), buf, n, ZMQ_DONTWAIT);
    int e = zmq_errno();
    free(buf);
    if (rc < 0) {
        if (e == EAGAIN)
            log_debug("the controller is not reachable and the queue is full: dropped a %s", wire_body_name(env));
        else
            log_warn("cannot send a %s to the controller: %s", wire_body_name(env), zmq_strerror(e));
        return -1;
    }
    log_debug("sent %s seq %llu (%zu bytes)", wire_body_name(env), (unsigned long long)env->seq, n);
    return 0;
}

static void send_hello(agent_t *a)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Hello h = PCIFLEET__HELLO__INIT;
    h.agent_version = (char *)agent_version();
    h.boot_id = (char *)boot_id(a);
    if (a->inv)
        h.inventory_hash = a->inv->hash;
    env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    send_env(a, &env);
    a->last_hello = zclock_mono();
}

static void send_heartbeat(agent_t *a)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Heartbeat h = PCIFLEET__HEARTBEAT__INIT;
    h.boot_id = (char *)boot_id(a);
    if (a->inv)
        h.inventory_hash = a->inv->hash;
    env.body_case = PCIFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &h;
    send_env(a, &env);
}

static void send_inventory(agent_t *a)
{
    if (!a->inv)
        return;
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    env.body_case = PCIFLEET__ENVELOPE__BODY_INVENTORY;
    env.inventory = a->inv;
    if (send_env(a, &env) == 0) {
        a->inv_sent = true;
        a->inv_sent_at = zclock_mono();
        memcpy(a->inv_sent_hash, a->inv->hash.data, 32);
    }
}

/* Scans the node; returns the new report or NULL (logged). */
static Pcifleet__Inventory *scan_node(agent_t *a, char **err)
{
    inventory_t *inv = NULL;
    if (inventory_scan(&a->scan, &inv, err) < 0)
        return NULL;
    if (!a->node) {
        /* No --node: the name the host gives itself. */
        if (!inv->sys.node || !keys_valid_node_name(inv->sys.node)) {
            *err = xasprintf("the host's name ('%s') is not a valid node name; give one with --node",
                             inv->sys.node ? inv->sys.node : "");
            inventory_destroy(&inv);
            return NULL;
        }
        a->node = xstrdup(inv->sys.node);
    }
    Pcifleet__Inventory *pb = NULL;
    report_to_pb(inv, &pb);
    inventory_destroy(&inv);
    return pb;
}

static void rescan(agent_t *a)
{
    char *err = NULL;
    int64_t t0 = zclock_mono();
    Pcifleet__Inventory *pb = scan_node(a, &err);
    if (!pb) {
        log_error("rescan failed, keeping the previous inventory: %s", err ? err : "unknown error");
        free(err);
        return;
    }
    if (memcmp(pb->hash.data, a->inv->hash.data, 32) == 0) {
        log_debug("rescan in %lld ms: inventory unchanged", (long long)(zclock_mono() - t0));
        report_pb_free(&pb);
        return;
    }
    char hex[17];
    hash_hex(pb->hash.data, 8, hex, sizeof(hex));
    log_info("the inventory changed (hash %s..., %zu devices, %zu VMs); sending it", hex, pb->n_devices,
             pb->n_vms);
    report_pb_free(&a->inv);
    a->inv = pb;
    send_inventory(a);
}

static void send_step_result(agent_t *a, Pcifleet__StepResult *r)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    env.body_case = PCIFLEET__ENVELOPE__BODY_STEP_RESULT;
    env.step_result = r;
    send_env(a, &env);
}

static void on_vm_device_edit(agent_t *a, const Pcifleet__VmDeviceEdit *e)
{
    Pcifleet__StepResult r;
    bool repeated = false;
    bool ran = vmedit_handle(a->steps, a->root, a->runner, e, &a->vm_policy, &r, &repeated);
    const char *outcome = step_outcome_name(r.outcome);
    if (repeated)
        log_info("step %s (VM %s) was carried out before: answering %s again", r.step_id, e->vm_id, outcome);
    else if (r.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ||
             r.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED)
        log_info("step %s (VM %s): %s: %s", r.step_id, e->vm_id, outcome, r.detail);
    else
        log_warn("step %s (VM %s): %s: %s", r.step_id, e->vm_id, outcome, r.detail);
    /* The node may have changed: the controller gets the new inventory
     * before the result, so when it sees DONE the config it holds agrees. */
    if (ran)
        rescan(a);
    send_step_result(a, &r);
    step_result_clear(&r);
}

/* Whether the allow-steps list (NULL: everything) names kind. */
static bool step_allowed(const char *list, const char *kind)
{
    if (!list)
        return true;
    size_t kl = strlen(kind);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == kl && strncmp(p, kind, n) == 0)
            return true;
        p += n;
    }
    return false;
}

/* A SetupStep: a repeated id gets the stored result and nothing runs;
 * otherwise steps.h carries it out under this agent's policy, the result is
 * kept (in the state folder, so a restarted agent still knows it), the
 * inventory goes out first when the node changed, then the result. */
static void on_setup_step(agent_t *a, const Pcifleet__SetupStep *s)
{
    const char *kind = steps_kind_name(s->kind);
    const Pcifleet__StepResult *seen = s->step_id && *s->step_id ? stepmem_find(a->steps, s->step_id) : NULL;
    if (seen) {
        Pcifleet__StepResult r;
        step_result_copy(&r, seen);
        log_info("step %s (%s) was carried out before: answering %s again without running anything", r.step_id,
                 kind, step_outcome_name(r.outcome));
        send_step_result(a, &r);
        step_result_clear(&r);
        return;
    }
    Pcifleet__StepResult r;
    pcifleet__step_result__init(&r);
    if (!step_allowed(a->o->allow_steps, kind)) {
        r.step_id = xstrdup(s->step_id ? s->step_id : "");
        r.outcome = PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED;
        r.detail = xasprintf("this agent's policy does not allow %s steps (allow-steps = %s)", kind,
                             a->o->allow_steps);
        log_warn("step %s (%s): refused: %s", r.step_id, kind, r.detail);
        stepmem_put(a->steps, &r);
        send_step_result(a, &r);
        step_result_clear(&r);
        return;
    }
    bool changed = steps_apply(a->o->root ? a->o->root : "/", a->runner, s, &a->step_policy, &r);
    const char *outcome = step_outcome_name(r.outcome);
    if (r.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE ||
        r.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED)
        log_info("step %s (%s%s): %s: %s", r.step_id, kind, s->dry_run ? ", dry run" : "", outcome, r.detail);
    else
        log_warn("step %s (%s%s): %s: %s", r.step_id, kind, s->dry_run ? ", dry run" : "", outcome, r.detail);
    char *err = NULL;
    if (stepmem_put_err(a->steps, &r, &err) < 0) {
        log_error("%s; a repeat of step %s after a restart would be carried out again", err, r.step_id);
        free(err);
    }
    bool rebooted = s->kind == PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT && !s->dry_run &&
                    r.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE;
    if (rebooted && a->runner && runner_mode(a->runner) == RUNNER_SIMULATE)
        a->restart_pending = true; /* the rescan comes with the restart */
    else if (changed && !rebooted)
        rescan(a);
    send_step_result(a, &r);
    steps_result_clear(&r);
}

static void on_error(agent_t *a, const Pcifleet__Error *e, int64_t now)
{
    const char *msg = e->message && *e->message ? e->message : "(no reason given)";
    switch (e->code) {
    case PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED:
        if (!a->refused || now - a->refused_logged_at >= NAG_MS) {
            log_error("the controller has not accepted this agent's key yet (%s). On the controller, run: "
                      "pcifleet keys accept %s -- retrying every %.1f s",
                      msg, a->node, a->o->interval_ms / 1000.0);
            a->refused_logged_at = now;
        }
        a->refused = true;
        break;
    case PCIFLEET__ERROR__CODE__CODE_WRONG_NODE:
        if (!a->refused || now - a->refused_logged_at >= NAG_MS) {
            log_error("the controller refuses the node name %s for this key (%s). Run the agent with the node "
                      "name its key was accepted for, or accept a new key for %s -- retrying every %.1f s",
                      a->node, msg, a->node, a->o->interval_ms / 1000.0);
            a->refused_logged_at = now;
        }
        a->refused = true;
        break;
    case PCIFLEET__ERROR__CODE__CODE_REPLAYED:
        /* Our counter fell behind the controller's floor (the clock was set
         * back across a restart): continue above it and say hello again, so
         * what the refused message carried is asked for once more. */
        log_warn("the controller refused message %llu as replayed (%s); continuing above seq %llu",
                 (unsigned long long)e->seq, msg, (unsigned long long)e->accepted_seq);
        if (e->accepted_seq >= a->seq && e->accepted_seq < WIRE_MAX_SEQ) {
            a->seq = e->accepted_seq;
            send_hello(a);
        }
        break;
    default:
        log_warn("the controller refused message %llu: %s: %s", (unsigned long long)e->seq, wire_code_name(e->code),
                 msg);
        break;
    }
}

static void on_frame(agent_t *a, const uint8_t *data, size_t len, int64_t now)
{
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    int code = wire_decode(data, len, WIRE_MAX_FRAME, &env, &err);
    if (code) {
        log_warn("ignored a frame from the controller: %s: %s", wire_code_name(code), err ? err : "");
        free(err);
        return;
    }
    a->last_answer = now;
    a->answered_on_connection = true;
    switch (env->body_case) {
    case PCIFLEET__ENVELOPE__BODY_ACK:
        if (a->refused) {
            log_info("the controller accepted this agent as node %s", a->node);
            a->refused = false;
        }
        log_debug("ack for seq %llu", (unsigned long long)env->ack->seq);
        break;
    case PCIFLEET__ENVELOPE__BODY_ERROR: on_error(a, env->error, now); break;
    case PCIFLEET__ENVELOPE__BODY_VM_DEVICE_EDIT: on_vm_device_edit(a, env->vm_device_edit); break;
    case PCIFLEET__ENVELOPE__BODY_SETUP_STEP:
        if (a->restart_pending)
            log_debug("ignored a setup step: this node is rebooting");
        else
            on_setup_step(a, env->setup_step);
        break;
    case PCIFLEET__ENVELOPE__BODY_RESEND:
        if (a->refused) {
            log_info("the controller accepted this agent as node %s", a->node);
            a->refused = false;
        }
        /* The Hello we send with an Inventory right behind it draws a Resend
         * of its own; an Inventory of this very hash still under way within
         * the last interval answers it. A real loss shows in the next
         * heartbeat, which draws another Resend. */
        if (a->inv_sent && memcmp(a->inv_sent_hash, a->inv->hash.data, 32) == 0 &&
            now - a->inv_sent_at < (int64_t)a->o->interval_ms) {
            log_debug("resend asked (%s); the same inventory went out %lld ms ago", env->resend->reason,
                      (long long)(now - a->inv_sent_at));
        } else {
            log_info("the controller asks for the full inventory (%s); sending it",
                     *env->resend->reason ? env->resend->reason : "no reason given");
            send_inventory(a);
        }
        break;
    default: log_debug("ignored a %s from the controller", wire_body_name(env)); break;
    }
    wire_free(&env);
}

static void on_monitor_event(agent_t *a, int64_t now)
{
    zmsg_t *msg = zmsg_recv(a->monitor);
    if (!msg)
        return;
    char *event = zmsg_popstr(msg);
    zmsg_destroy(&msg);
    if (!event)
        return;
    if (streq(event, "CONNECTED")) {
        bool reconnect = a->ever_connected;
        if (!reconnect)
            log_info("connected to the controller at %s", a->o->controller);
        else if (a->lost_logged)
            log_info("connected to the controller at %s again", a->o->controller);
        else
            log_debug("connected to the controller at %s again", a->o->controller);
        a->connected = a->ever_connected = true;
        a->answered_on_connection = false;
        a->lost_logged = false;
        if (reconnect)
            send_hello(a); /* a new connection: the controller may be a new process */
    } else if (streq(event, "DISCONNECTED")) {
        if (!a->answered_on_connection) {
            /* Closed before a single answer: the controller went away, or it
             * could not complete the CURVE handshake. */
            if (!a->handshake_hint_at || now - a->handshake_hint_at >= NAG_MS) {
                log_warn("the controller at %s closed the connection before answering; retrying (if this "
                         "repeats, check that --controller-key is the controller's controller.key)",
                         a->o->controller);
                a->handshake_hint_at = now;
                a->lost_logged = true;
            }
        } else if (a->connected && !a->lost_logged) {
            log_warn("lost the connection to the controller at %s; reconnecting", a->o->controller);
            a->lost_logged = true;
        }
        a->connected = false;
    }
    free(event);
}

static char *pair_path(const char *key)
{
    size_t n = strlen(key);
    if (n > 4 && strcmp(key + n - 4, ".key") == 0) {
        char *s = xasprintf("%s_secret", key);
        if (access(s, F_OK) == 0)
            return s;
        free(s);
    }
    return xstrdup(key);
}

static int setup_socket(agent_t *a, char **err)
{
    char *path = pair_path(a->o->key);
    zcert_t *cert = keys_load_cert(path, err);
    free(path);
    if (!cert)
        return -EINVAL;
    char server[KEY_Z85_LEN + 1];
    if (keys_load_public(a->o->controller_key, server, err) < 0) {
        zcert_destroy(&cert);
        return -EINVAL;
    }
    a->sock = zsock_new(ZMQ_DEALER);
    if (!a->sock) {
        zcert_destroy(&cert);
        *err = xstrdup("cannot create a ZeroMQ socket");
        return -ENOMEM;
    }
    zcert_apply(cert, a->sock);
    zcert_destroy(&cert);
    zsock_set_curve_serverkey(a->sock, server);
    zsock_set_linger(a->sock, LINGER_MS);
    zsock_set_reconnect_ivl(a->sock, RECONNECT_IVL_MS);
    zsock_set_reconnect_ivl_max(a->sock, RECONNECT_IVL_MAX_MS);
    zsock_set_sndhwm(a->sock, QUEUE_LIMIT);
    zsock_set_rcvhwm(a->sock, QUEUE_LIMIT);
    zsock_set_maxmsgsize(a->sock, (int)WIRE_MAX_FRAME);
    zsock_set_heartbeat_ivl(a->sock, (int)a->o->interval_ms);
    zsock_set_heartbeat_timeout(a->sock, (int)(3 * a->o->interval_ms));

    a->monitor = zactor_new(zmonitor, a->sock);
    if (a->monitor) {
        zstr_sendx(a->monitor, "LISTEN", "CONNECTED", "DISCONNECTED", NULL);
        zstr_sendx(a->monitor, "START", NULL);
        zsock_wait(a->monitor);
    } else {
        log_warn("cannot watch the connection (zmonitor); reconnects are still handled");
    }
    if (zsock_connect(a->sock, "%s", a->o->controller) < 0) {
        *err = xasprintf("cannot connect to '%s': %s (an endpoint looks like tcp://HOST:PORT)", a->o->controller,
                         zmq_strerror(zmq_errno()));
        return -EINVAL;
    }
    return 0;
}

/* Chooses the runner: SIMULATE with --simulate (never on the live root),
 * REAL on the live root, and none for a fixture root without --simulate:
 * running the host's real qm for a tree that is not the host would change
 * the wrong machine, so VM edits are refused there with the reason. */
static int setup_steps(agent_t *a, char **err)
{
    const char *dir = a->o->root ? a->o->root : "/";
    int rc = root_new(dir, &a->root);
    if (rc < 0) {
        *err = xasprintf("root %s: %s", dir, rc == -ENOTDIR ? "not a directory" : strerror(-rc));
        return rc;
    }
    /* Step results outlive the process: a reboot step restarts the agent. */
    a->state_dir = a->o->state_dir ? xstrdup(a->o->state_dir)
                   : root_is_live(a->root) ? xstrdup(AGENT_DEFAULT_STATE_DIR)
                                           : root_path(a->root, "var/lib/pcifleet");
    char *warn = NULL, *e0 = NULL;
    if ((rc = stepmem_open(a->state_dir, STEPMEM_DEFAULT_CAP, &a->steps, &warn, &e0)) < 0) {
        *err = xasprintf("--state-dir: %s", e0);
        free(e0);
        return rc;
    }
    if (warn) {
        log_warn("%s", warn);
        free(warn);
    }
    a->step_policy.allow_reboot = a->o->allow_reboot;
    a->step_policy.state_dir = a->state_dir;
    if (a->o->simulate) {
        char *e = NULL;
        if ((rc = runner_new(RUNNER_SIMULATE, dir, &a->runner, &e)) < 0) {
            *err = xasprintf("--simulate: %s", e ? e : strerror(-rc));
            free(e);
            return rc;
        }
    } else if (root_is_live(a->root)) {
        char *e = NULL;
        if ((rc = runner_new(RUNNER_REAL, dir, &a->runner, &e)) < 0) {
            *err = e;
            return rc;
        }
    } else {
        a->vm_refusal = xasprintf("this agent reads the node tree under %s, not this host, and was started "
                                  "without --simulate, so it runs no commands for it",
                                  dir);
    }
    a->vm_policy.allow_vm_edits = a->o->allow_vm_edits && a->runner;
    a->vm_policy.refuse_reason = !a->o->allow_vm_edits ? "this agent's policy does not allow VM config edits "
                                                         "(allow-vm-edits = false or --no-vm-edits)"
                                                       : a->vm_refusal;
    return 0;
}

static void agent_free(agent_t *a)
{
    runner_destroy(&a->runner);
    stepmem_destroy(&a->steps);
    root_destroy(&a->root);
    free(a->vm_refusal);
    free(a->state_dir);
    zactor_destroy(&a->monitor);
    zsock_destroy(&a->sock);
    report_pb_free(&a->inv);
    free(a->node);
}

/* Sleeps ms, waking early for SIGTERM/SIGINT. */
static void sleep_interruptible(unsigned ms)
{
    int64_t until = zclock_mono() + ms;
    while (!zsys_interrupted) {
        int64_t left = until - zclock_mono();
        if (left <= 0)
            break;
        zclock_sleep((int)(left < 100 ? left : 100));
    }
}

/* After a REBOOT the node simulator carried out: the agent does what a
 * restarted one would. Its connection goes (the controller sees it drop),
 * it stays silent for the profile's boot_delay_ms, or, while the profile
 * says boot_fails, until that line is gone (then the tree boots); then it
 * scans (the new boot id) and connects again with Hello and the full
 * Inventory. Step results stay in the state folder. */
static int simulated_restart(agent_t *a, char **err)
{
    a->restart_pending = false;
    zactor_destroy(&a->monitor);
    zsock_destroy(&a->sock);
    a->connected = a->answered_on_connection = a->inv_sent = false;
    sim_profile_t prof;
    char *perr = NULL;
    if (sim_profile_read(a->root, &prof, &perr) < 0) {
        log_warn("simulated reboot: %s; coming back at once", perr);
        free(perr);
    }
    if (prof.boot_fails) {
        log_warn("simulated reboot: the node does not come back (boot_fails in /%s); silent until that "
                 "changes",
                 SIM_PROFILE_FILE);
        while (!zsys_interrupted && prof.boot_fails) {
            sleep_interruptible(DOWN_POLL_MS);
            sim_profile_free(&prof);
            if (sim_profile_read(a->root, &prof, &perr) < 0) {
                free(perr);
                perr = NULL;
                prof.boot_fails = true; /* a half-written profile is not a fix */
            }
        }
        if (zsys_interrupted) {
            sim_profile_free(&prof);
            return 0;
        }
        char *report = NULL;
        int brc = sim_boot_dir(a->o->root, &report);
        log_info("simulated reboot: the node boots after all: %s", report ? report : strerror(-brc));
        free(report);
    }
    unsigned delay = prof.boot_delay_ms > SIM_BOOT_DELAY_MAX_MS ? SIM_BOOT_DELAY_MAX_MS : prof.boot_delay_ms;
    sim_profile_free(&prof);
    if (delay) {
        log_info("simulated reboot: the node comes back in %u ms", delay);
        sleep_interruptible(delay);
        if (zsys_interrupted)
            return 0;
    }
    char *serr = NULL;
    Pcifleet__Inventory *pb = scan_node(a, &serr);
    if (pb) {
        report_pb_free(&a->inv);
        a->inv = pb;
    } else {
        log_error("scan after the simulated reboot failed, keeping the previous inventory: %s",
                  serr ? serr : "unknown error");
        free(serr);
    }
    int rc = setup_socket(a, err);
    if (rc < 0)
        return rc;
    log_info("simulated reboot done: boot id %s; saying hello to the controller again", boot_id(a));
    send_hello(a);
    send_inventory(a);
    return 0;
}

/* What the policy lets the controller ask for decides what the agent keeps:
 * reading only, file edits (simulated steps, or steps on a fixture root),
 * or the real step commands. */
static privs_level_t privs_level(const agent_t *a)
{
    bool effectful = a->vm_policy.allow_vm_edits;
    for (int k = 1; k <= 7 && !effectful; k++) {
        Pcifleet__SetupStep__Kind kind = (Pcifleet__SetupStep__Kind)k;
        effectful = kind != PCIFLEET__SETUP_STEP__KIND__KIND_VERIFY &&
                    step_allowed(a->o->allow_steps, steps_kind_name(kind));
    }
    if (!effectful)
        return PRIVS_PROBE;
    return a->runner && runner_mode(a->runner) == RUNNER_REAL ? PRIVS_TOOLS : PRIVS_EDIT;
}

static int drop_privileges(agent_t *a, char **err)
{
    privs_level_t level = privs_level(a);
    bool reboot = level == PRIVS_TOOLS && a->o->allow_reboot &&
                  step_allowed(a->o->allow_steps, steps_kind_name(PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT));
    uint64_t kept = 0;
    char *e = NULL;
    int rc = privs_restrict(privs_mask(level, reboot), &kept, &e);
    if (rc < 0) {
        *err = xasprintf("cannot drop privileges: %s", e);
        free(e);
        return rc;
    }
    buf_t names = BUF_INIT;
    privs_describe(kept, &names);
    log_info("privileges: kept what %s needs (%s), no_new_privs set", level == PRIVS_PROBE ? "reading the node"
                                                                      : level == PRIVS_EDIT ? "editing its files"
                                                                                            : "running the step commands",
             names.p);
    buf_free(&names);
    return 0;
}

int agent_daemon_run(const agent_daemon_opts_t *o, char **err)
{
    *err = NULL;
    agent_t a;
    memset(&a, 0, sizeof(a));
    a.o = o;
    a.scan.root = o->root;
    a.scan.node = o->node;
    a.scan.ids_file = o->ids_file;
    a.node = o->node ? xstrdup(o->node) : NULL;
    /* The controller refuses a seq not above the last it accepted from this
     * node, across restarts: the wall clock in microseconds starts above
     * any seq an earlier run used (one message per microsecond is far
     * beyond any agent); a clock set back is repaired by CODE_REPLAYED. */
    a.seq = (uint64_t)zclock_time() * 1000u;

    int rc;
    if ((rc = setup_steps(&a, err)) < 0) {
        agent_free(&a);
        return rc;
    }
    /* Before any thread exists (capabilities are per thread; ZeroMQ's I/O
     * threads inherit the reduced set) and before anything is read. */
    if ((rc = drop_privileges(&a, err)) < 0) {
        agent_free(&a);
        return rc;
    }
    zsys_init(); /* installs the SIGINT/SIGTERM handler that sets zsys_interrupted */
    a.inv = scan_node(&a, err);
    if (!a.inv) {
        agent_free(&a);
        return -ENOENT;
    }
    if ((rc = setup_socket(&a, err)) < 0) {
        agent_free(&a);
        return rc;
    }
    char hex[17];
    hash_hex(a.inv->hash.data, 8, hex, sizeof(hex));
    log_info("pcifleet-agent %s: node %s reporting to %s (heartbeat every %.2g s, rescan every %.3g s); "
             "inventory %s...: %zu devices, %zu NICs, %zu VMs, %zu read problems",
             agent_version(), a.node, o->controller, o->interval_ms / 1000.0, o->rescan_ms / 1000.0, hex,
             a.inv->n_devices, a.inv->n_nics, a.inv->n_vms, a.inv->n_errors);
    if (a.vm_policy.allow_vm_edits)
        log_info("VM config edits from the controller: allowed, commands run %s",
                 runner_mode(a.runner) == RUNNER_SIMULATE ? "in the node simulator on the root's files"
                                                          : "for real on this host");
    else
        log_info("VM config edits from the controller: refused (%s)", a.vm_policy.refuse_reason);
    log_info("setup steps: reboots %s; step results kept in %s", o->allow_reboot ? "allowed" : "refused "
             "(allow-reboot = false; give --allow-reboot to let the controller reboot this node)",
             a.state_dir);

    send_hello(&a);
    send_inventory(&a);
    int64_t now = zclock_mono();
    a.last_answer = now;
    int64_t next_beat = now + o->interval_ms;
    int64_t next_scan = now + o->rescan_ms;
    zpoller_t *poller = zpoller_new(a.sock, NULL);
    if (a.monitor)
        zpoller_add(poller, a.monitor);

    while (!zsys_interrupted) {
        if (a.restart_pending) {
            zpoller_destroy(&poller);
            if ((rc = simulated_restart(&a, err)) < 0) {
                agent_free(&a);
                return rc;
            }
            if (zsys_interrupted)
                break;
            poller = zpoller_new(a.sock, NULL);
            if (a.monitor)
                zpoller_add(poller, a.monitor);
            now = zclock_mono();
            a.last_answer = now;
            next_beat = now + o->interval_ms;
            next_scan = now + o->rescan_ms;
        }
        now = zclock_mono();
        int64_t wake = next_beat < next_scan ? next_beat : next_scan;
        int timeout = wake > now ? (int)(wake - now) : 0;
        void *which = zpoller_wait(poller, timeout);
        if (zpoller_terminated(poller))
            break;
        now = zclock_mono();
        if (which == a.sock) {
            zmsg_t *msg = zmsg_recv(a.sock);
            if (msg) {
                if (zmsg_size(msg) != 1) {
                    log_warn("ignored a message of %zu frames from the controller; the protocol uses one",
                             zmsg_size(msg));
                } else {
                    zframe_t *f = zmsg_first(msg);
                    on_frame(&a, zframe_data(f), zframe_size(f), now);
                }
                zmsg_destroy(&msg);
            }
        } else if (a.monitor && which == a.monitor) {
            on_monitor_event(&a, now);
        }
        if (now >= next_beat) {
            int64_t quiet = now - a.last_answer;
            if (a.refused) {
                send_hello(&a);
            } else if (quiet >= 3 * (int64_t)o->interval_ms && now - a.last_hello >= 3 * (int64_t)o->interval_ms) {
                log_debug("nothing from the controller for %lld ms; saying hello again", (long long)quiet);
                send_hello(&a);
            } else {
                send_heartbeat(&a);
            }
            next_beat += o->interval_ms;
            if (next_beat <= now)
                next_beat = now + o->interval_ms;
        }
        if (now >= next_scan) {
            rescan(&a);
            next_scan = zclock_mono() + o->rescan_ms;
        }
    }
    log_info("stopping: signal received");
    zpoller_destroy(&poller);
    agent_free(&a);
    return 0;
}
