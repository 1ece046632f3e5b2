/* steps — the typed IOMMU setup steps (SetupStep) carried out on one node,
 * and the plan of steps a node needs to become `ready`.
 *
 * Contract of steps_apply: it never fails otherwise than through *out,
 * which is always filled: step_id, outcome, detail (a sentence), command
 * (the command run or that would run), diff (unified, a/PATH b/PATH),
 * backups (root-relative paths with a leading '/'), boot_id (the boot the
 * answer was given in; REBOOT: the boot that was ended), verdict (VERIFY).
 * A step without step_id is FAILED (a repeat could not be recognized).
 * A dry run (s->dry_run) answers as the real run would — DONE meaning "would
 * change", UNCHANGED, REFUSED, or FAILED — with detail starting "dry run:",
 * the diff or the command, and changes and runs nothing.
 *  - SET_KERNEL_ARGS: the file boot.h names for the loader (etc/default/grub,
 *    variable s->grub_variable, default GRUB_CMDLINE_LINUX_DEFAULT; or
 *    etc/kernel/cmdline), edited with kargs_edit.h. UNCHANGED when the
 *    arguments are already so. FAILED for an unknown loader, GRUB drop-ins
 *    that set the command line (an edit of etc/default/grub would not
 *    count), or a file the editor will not edit safely.
 *  - ENSURE_MODULES: s->modules (none = those vfio.h requires for the
 *    running kernel) that no etc/modules or etc/modules-load.d file
 *    configures yet go into etc/modules-load.d/pcifleet-vfio.conf — a file of
 *    our own, so the operator's /etc/modules is never touched and removing
 *    one file undoes the step; systemd-modules-load reads both alike.
 *  - Edits are atomic (atomic.h). Before a file is first changed by a step,
 *    its old content is kept beside it as FILE.pcifleet-STEPID.bak (STEPID
 *    with characters other than [A-Za-z0-9._-] as '_'), and the edit is
 *    recorded in STATE_DIR/backups (lines "STEPID<TAB>FILE<TAB>BACKUP", BACKUP
 *    "-" when the step created the file). STATE_DIR is policy->state_dir or
 *    ROOT/var/lib/pcifleet.
 *  - RESTORE_BACKUP: puts back every file recorded for s->restore_of (""
 *    = every step), newest first (a file a step created is removed), then
 *    drops the record and the backup file. UNCHANGED when nothing is
 *    recorded. A boot refresh is needed afterwards; detail says so.
 *  - REFRESH_BOOT: the loader's refresh command (boot.h: `update-grub`,
 *    `proxmox-boot-tool refresh`, ...); REFRESH_INITRAMFS: `update-initramfs
 *    -u -k all`. Always run (both are idempotent by themselves): DONE when
 *    the command exits 0, FAILED with its status and output otherwise.
 *  - REBOOT: REFUSED unless policy->allow_reboot; else `systemctl reboot`
 *    through the runner (SIMULATE performs a simulated boot); DONE means
 *    the reboot was started.
 *  - VERIFY: scans the node (inventory.h): DONE when the verdict is ready,
 *    IOMMU groups exist and interrupt remapping is reported on; FAILED with
 *    the reasons otherwise. verdict and boot_id are filled.
 * Commands go through r only; r NULL (a fixture root without --simulate)
 * makes every command step REFUSED, nothing run. Strings in *out are
 * malloc'd: steps_result_clear. Returns true when something on the node
 * changed or a command ran (the caller rescans). */
#ifndef PCIFLEET_STEPS_H
#define PCIFLEET_STEPS_H

#include "inventory.h"
#include "pcifleet.pb-c.h"
#include "runner.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    bool allow_reboot;
    const char *state_dir; /* backups index lives here; NULL = ROOT/var/lib/pcifleet */
} step_policy_t;

/* The file ENSURE_MODULES writes, root-relative. */
#define STEPS_MODULES_FILE "etc/modules-load.d/pcifleet-vfio.conf"

bool steps_apply(const char *root, runner_t *r, const Pcifleet__SetupStep *s, const step_policy_t *policy,
                 Pcifleet__StepResult *out);
void steps_result_clear(Pcifleet__StepResult *out);

/* The steps this node needs to become `ready`, in order: SET_KERNEL_ARGS
 * (Intel: intel_iommu=on while the IOMMU is off or the configured line
 * turns it off; AMD: never amd_iommu=on — it is not a switch — only the
 * removal of amd_iommu=off / iommu=off; iommu=pt when pt; included only
 * when the editor would change the file), ENSURE_MODULES (the missing vfio
 * modules), REFRESH_BOOT (after an edit, or when the configured IOMMU
 * arguments differ from the running ones), REFRESH_INITRAMFS (modules added
 * or configured but not loaded), REBOOT, VERIFY. None when the node is
 * ready (*why: "already ready"), or when it needs firmware changes or is
 * unsupported (*why: the verdict and its reasons: pcifleet cannot flip a
 * firmware switch), or when its boot loader is unknown and arguments are
 * needed (*why says so). step_ids are prefix "-" N, N from 1. *why is
 * malloc'd or NULL (caller frees). Returns 0 (or a negative errno when the
 * root cannot be read; *why says why). Free with steps_plan_free. */
int steps_plan(const inventory_t *inv, bool pt, const char *prefix, Pcifleet__SetupStep ***out, size_t *n,
               char **why);
void steps_plan_free(Pcifleet__SetupStep ***steps, size_t n);

/* "set-kernel-args", "ensure-modules", "refresh-boot", "refresh-initramfs",
 * "reboot", "verify", "restore-backup", "unspecified". */
const char *steps_kind_name(Pcifleet__SetupStep__Kind k);
/* One line a person reads: "set-kernel-args: add intel_iommu=on iommu=pt". Caller frees. */
char *steps_describe(const Pcifleet__SetupStep *s);

#endif
