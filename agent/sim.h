/* sim — the node simulator: what the runner does with a command in
 * SIMULATE mode (runner.h).
 *
 * Contract: sim_run takes the argv the agent would have executed and
 * carries out its effect on the files under the simulator's root, as the
 * real command would on a real node. It never executes anything, and it
 * never pretends: a program, subcommand or option it does not understand
 * is refused with a message and a non-zero exit status, and nothing is
 * changed. Every file it changes is replaced atomically (atomic.h); a
 * refused or failed command leaves the tree as it was.
 *
 * Understood now (a dispatch table; issue 5 adds the boot commands):
 *   qm set VMID --hostpciN VALUE      (N 0-15; VALUE checked as Proxmox's
 *                                      hostpci syntax, mapping names are not)
 *   qm set VMID --delete hostpciN[,hostpciM...]
 * Several options may be given in one call, applied in order, written once.
 * They edit ROOT/etc/pve/qemu-server/VMID.conf with pve_edit.h: only the
 * live section, every other line byte for byte. Deleting a key that is not
 * set warns as qm does ("cannot delete 'hostpci3' - not set in current
 * configuration!") and succeeds without writing. Unlike qm on a running
 * VM, the change always goes to the live section, never to [PENDING].
 *
 * Exit statuses, as qm's: 0 done; 2 the VM has no config ("Configuration
 * file 'nodes/NODE/qemu-server/VMID.conf' does not exist"); 255 for a
 * malformed or not-simulated request ("400 ..." lines); 1 when the file
 * cannot be read or replaced. A program other than those in the table gets
 * 127, as a shell gives for a command it cannot find. */
#ifndef PCIFLEET_SIM_H
#define PCIFLEET_SIM_H

#include "runner.h"

typedef struct sim sim_t;

/* root: an existing folder that is not the live root (-EPERM otherwise: the
 * simulator would edit the host's own files). Returns 0 or a negative errno
 * with *err set (caller frees). */
int sim_new(const char *root, sim_t **out, char **err);
void sim_destroy(sim_t **s);

/* Fills res (output and status) and returns 0; argv as for runner_run. */
int sim_run(sim_t *s, const char *const *argv, runner_result_t *res);

#endif
