/* rollout — rolling IOMMU enablement across the fleet, as a state machine
 * in SQLite (db/migrations/0003_rollouts.sql).
 *
 * Contract: rollout_start records a rollout and its nodes (in the order
 * given, or by name for --all) and returns its id; nothing is sent yet.
 * rollout_tick, called about once a second, moves every running rollout on:
 * a waiting node is prechecked (already `ready`: skipped; needs firmware or
 * unsupported: skipped with the reason, pcifleet cannot flip a BIOS switch;
 * a running VM that cannot live-migrate: refused unless --allow-downtime)
 * and started when fewer than `batch` nodes are in flight and starting it
 * keeps its Proxmox cluster quorate; a node in flight gets its steps one at
 * a time (set kernel args, ensure modules, refresh boot, refresh initramfs,
 * reboot, verify), each sent only after its step_id is committed, and sent
 * again under the same id when unanswered (after a controller restart, or
 * every resend interval). A reboot the agent's policy refuses leaves the
 * node `awaiting-reboot` for the operator; a rebooting node is verified once
 * it reports a new boot id, and fails when it does not within the reboot
 * timeout. The first node that fails halts the rollout with the reason.
 * --dry-run sends every step as a dry run, collects the diffs and reboots
 * nothing. rollout_step_result takes an agent's StepResult for a step_id
 * this module made (ids start with "ro"); it returns false for any other.
 * Every function returns 0 or a negative errno / 1 (refused) with *err. */
#ifndef PCIFLEET_ROLLOUT_H
#define PCIFLEET_ROLLOUT_H

#include "buf.h"
#include "pcifleet.pb-c.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rollout_ctx rollout_ctx_t;

/* Sends one packed Envelope to node's agent: 0, or -1 when not connected. */
typedef int (*rollout_send_fn)(void *arg, const char *node, const uint8_t *frame, size_t len);

typedef struct {
    const char *const *nodes; /* NULL with all */
    size_t n_nodes;
    bool all, pt, dry_run, allow_downtime;
    int batch;          /* >= 1 */
    int reboot_timeout; /* seconds; 0 = 600 */
    const char *grub_variable; /* NULL = GRUB_CMDLINE_LINUX_DEFAULT; or GRUB_CMDLINE_LINUX */
} rollout_opts_t;

rollout_ctx_t *rollout_new(store_t *s, rollout_send_fn send, void *arg);
void rollout_destroy(rollout_ctx_t **r);
/* Seconds between sends of an unanswered step (default 10). */
void rollout_set_resend(rollout_ctx_t *r, int seconds);

int rollout_start(rollout_ctx_t *r, const rollout_opts_t *o, int64_t now, int64_t *id, char **err);
/* pause, resume, abort: id 0 = the newest rollout. */
int rollout_control(rollout_ctx_t *r, const char *what, int64_t id, int64_t now, char **err);
void rollout_tick(rollout_ctx_t *r, int64_t now);
bool rollout_step_result(rollout_ctx_t *r, const char *node, const Pcifleet__StepResult *res, int64_t now);

/* The admin commands: `rollout start|status|pause|resume|abort ...`
 * (watch is the CLI polling status). Returns the CLI status. */
int rollout_admin(rollout_ctx_t *r, int argc, char **argv, bool json, int64_t now, buf_t *out, char **err);

#endif
