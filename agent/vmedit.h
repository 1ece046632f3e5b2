/* vmedit — the VmDeviceEdit step: add or remove one Proxmox hostpciN entry.
 *
 * Contract: vmedit_apply decides and carries out one VmDeviceEdit on the
 * node under root, running its one command through runner (runner.h), and
 * always fills *out with the StepResult to send (step_id, outcome, detail,
 * command, index); it never fails otherwise. The outcomes:
 *  - REFUSED: the local policy does not allow VM edits (allow-vm-edits =
 *    false, --no-vm-edits, or no runner fits this root); detail says which.
 *    Nothing is read or run.
 *  - FAILED without a command: the step is malformed (no step_id, a VMID
 *    that is not one, no or bad addresses) or the VM has no readable config
 *    on this node (etc/pve/qemu-server/VMID.conf), or every hostpci0-15 is
 *    taken. Nothing is run.
 *  - UNCHANGED: adding, and a live entry without mapping= already passes
 *    through exactly these addresses (as a set, a slot like "02:00"
 *    expanded to its functions present in ROOT/sys/bus/pci/devices): index
 *    is that entry's. Removing, and no live entry holds exactly them (index
 *    stays the proposed one). Nothing is run.
 *  - DONE: the command exited 0. Adding: `qm set VMID --hostpciN
 *    ADDR[;ADDR...][,pcie=1]` where N is the proposed index when no live
 *    entry and no [PENDING] change uses it (and it is 0-15), else the lowest
 *    such N. Removing: `qm set VMID --delete hostpciN` for the entry holding
 *    exactly the addresses. command is the line run, index N. When the live
 *    config read back afterwards does not show the change (qm puts a running
 *    VM's change into [PENDING]), detail says so.
 *  - FAILED with a command: the command exited non-zero, timed out or could
 *    not start; detail holds its status and output.
 * Addresses are taken as "[DDDD:]BB:DD.F" in any case and written full and
 * lowercase. The strings in *out are the caller's (step_result_clear).
 * Returns true when a command was run (the node may have changed: rescan).
 *
 * vmedit_handle adds the step-id memory (stepmem.h) in front: a step_id
 * seen before is answered with the stored result and nothing is done
 * again; otherwise vmedit_apply runs and its result is stored. */
#ifndef PCIFLEET_VMEDIT_H
#define PCIFLEET_VMEDIT_H

#include "pcifleet.pb-c.h"
#include "root.h"
#include "runner.h"
#include "stepmem.h"

#include <stdbool.h>

typedef struct {
    bool allow_vm_edits;       /* config allow-vm-edits (default true), false with --no-vm-edits */
    const char *refuse_reason; /* the sentence for REFUSED; NULL = the default one */
} vmedit_policy_t;

bool vmedit_apply(const root_t *root, runner_t *runner, const Pcifleet__VmDeviceEdit *e,
                  const vmedit_policy_t *policy, Pcifleet__StepResult *out);

/* As vmedit_apply; *repeated says whether the answer came from memory. */
bool vmedit_handle(stepmem_t *mem, const root_t *root, runner_t *runner, const Pcifleet__VmDeviceEdit *e,
                   const vmedit_policy_t *policy, Pcifleet__StepResult *out, bool *repeated);

#endif
