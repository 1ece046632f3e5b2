/* daemon — `pcifleet-agent run`: report this node to the controller, and keep
 * reporting.
 *
 * Contract: agent_daemon_run scans the node through the root, connects a
 * DEALER socket to the controller with CURVE (this agent's pair from --key,
 * the controller's public key from --controller-key) and sends Hello and the
 * full Inventory. Then, until SIGTERM or SIGINT:
 *  - every interval (default 5 s) a Heartbeat with the inventory hash and
 *    boot_id; the controller answers Resend when the hash is not the one it
 *    stored, and the agent sends the full Inventory;
 *  - every rescan period (default 60 s) a new scan; the full Inventory goes
 *    out only when its hash changed (report_pb.h says what the hash covers);
 *  - an Error from the controller is logged; KEY_NOT_ACCEPTED (and
 *    WRONG_NODE) with a line telling the operator what to run on the
 *    controller, and the agent says Hello again every interval until it is
 *    let in;
 *  - a VmDeviceEdit from the controller is carried out by vmedit_handle
 *    (vmedit.h: policy, step-id memory of the last 256 results, the one
 *    qm command through the runner); when a command ran the agent rescans
 *    at once and sends the Inventory if its hash changed, then it answers
 *    with a StepResult (same step_id) in an Envelope like every other
 *    (node, next seq). The runner is SIMULATE with --simulate (refused on
 *    the live root: the simulator edits the root's files), REAL on the live
 *    root, and none for a fixture root without --simulate, where every VM
 *    edit is REFUSED with that reason rather than running the host's qm for
 *    a tree that is not the host. allow-vm-edits = false (--no-vm-edits)
 *    refuses them all, saying so;
 *  - a SetupStep (issue 5) is carried out by steps_apply (steps.h) with
 *    the same runner, under the policy allow-reboot (--allow-reboot;
 *    default false: a REBOOT step is REFUSED with the reason) and the
 *    state folder. A step_id answered before — also before a restart of
 *    the agent: results are kept in STATE_DIR/steps.pb (stepmem.h), last
 *    256 — is answered with the stored result and nothing runs. When the
 *    step changed something the agent rescans and sends the Inventory if
 *    its hash changed, then answers with the StepResult (node, next seq).
 *    STATE_DIR is --state-dir (config state-dir), default
 *    AGENT_DEFAULT_STATE_DIR on the live root and ROOT/var/lib/pcifleet for
 *    a fixture root. Setup steps arriving while a simulated reboot is under
 *    way are dropped, as a rebooting node would drop them;
 *  - a DONE REBOOT in --simulate mode: the node simulator has already
 *    booted the tree (sim.h), so after sending the result the agent acts
 *    as a restarted one: closes its connection, stays silent for the
 *    profile's boot_delay_ms (at most SIM_BOOT_DELAY_MAX_MS), or for as long
 *    as the profile says boot_fails (then boots the tree once the line is
 *    gone), rescans (a new boot id) and connects again with Hello and the
 *    full Inventory. A real reboot needs none of this: the host goes down;
 *  - ZeroMQ reconnects on its own (reconnect interval 0.5 s growing to 10 s,
 *    ZMTP heartbeats drop a dead connection after three intervals); after a
 *    reconnect, and whenever nothing has come back from the controller for
 *    three intervals, the agent says Hello again.
 * Sends never block: while the controller is away a bounded number of
 * messages wait in ZeroMQ's queue and the rest are dropped (the next Hello
 * or Heartbeat catches up). Every wait is bounded by the next timer; a scan
 * that fails after start is logged and the previous inventory is kept.
 * A step's command blocks the loop while it runs (bounded by the runner's
 * timeout); ZeroMQ keeps the connection alive meanwhile.
 * Logs go through log.h. Returns 0 after a signal, or a negative errno with
 * *err set (caller frees) when it cannot start: root, keys, endpoint,
 * --simulate on the live root. */
#ifndef PCIFLEET_AGENT_DAEMON_H
#define PCIFLEET_AGENT_DAEMON_H

#include "config.h"

#include <stdbool.h>

/* Read when it exists and no --config is given. Not under --root: it is the
 * agent's own config, not the node's. */
#define AGENT_DEFAULT_CONFIG "/etc/pcifleet/agent.conf"
/* Step results (and steps.h's backup index) on the live root. */
#define AGENT_DEFAULT_STATE_DIR "/var/lib/pcifleet"

typedef struct {
    const char *controller;     /* endpoint: tcp://HOST:PORT */
    const char *controller_key; /* the controller's public key (controller.key) */
    const char *key;            /* this agent's NAME.key_secret; NAME.key is taken to
                                   mean NAME.key_secret when that file exists */
    const char *node;           /* node name; NULL = the host's (ROOT/etc/hostname) */
    const char *root;           /* NULL = "/" */
    const char *ids_file;       /* pci.ids override, NULL = libpci's */
    unsigned interval_ms;       /* heartbeat interval */
    unsigned rescan_ms;         /* rescan period */
    int log_level;              /* log_level_t */
    bool simulate;              /* commands go to the node simulator (sim.h) */
    bool allow_vm_edits;        /* VmDeviceEdit steps may run (default true) */
    bool allow_reboot;          /* REBOOT setup steps may run (default false) */
    const char *allow_steps;    /* comma-separated step kinds the controller may ask for
                                   (set-kernel-args, ensure-modules, ...); NULL = all */
    const char *state_dir;      /* step results; NULL = the default (see above) */
} agent_daemon_opts_t;

/* The keys a config file (and the command line) may set, NULL-terminated:
 * controller, controller-key, key, node, root, interval, rescan, log-level,
 * pci-ids, simulate, allow-vm-edits, allow-reboot, allow-steps, state-dir.
 * A SetupStep whose kind allow-steps does not name is answered REFUSED with
 * the reason, and nothing runs. */
extern const char *const agent_daemon_config_keys[];

/* Fills *o from c (values are borrowed from c), with the defaults for what
 * c lacks, and checks them: controller, controller-key and key are
 * required; interval and rescan are seconds, a fraction allowed ("0.5"),
 * interval 0.05-3600, rescan 0.05-86400; log-level one of log.h's names;
 * simulate (default false), allow-vm-edits (default true) and allow-reboot
 * (default false) booleans as agent_parse_bool reads them; state-dir not
 * empty.
 * Returns 0 or -EINVAL with *err naming the option (caller frees). */
int agent_daemon_opts_parse(const config_t *c, agent_daemon_opts_t *o, char **err);

/* Seconds with an optional fraction of up to 3 digits, to milliseconds
 * within [min_ms, max_ms]. Returns 0 or -EINVAL. */
int agent_parse_seconds(const char *s, unsigned min_ms, unsigned max_ms, unsigned *ms);
/* true/yes/on/1 or false/no/off/0, any case. Returns 0 or -EINVAL. */
int agent_parse_bool(const char *s, bool *out);

int agent_daemon_run(const agent_daemon_opts_t *o, char **err);

#endif
