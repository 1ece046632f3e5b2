/* plan — read-only migration plans over the stored fleet.
 *
 * Contract: plan_run answers `plan drain NODE [--all]` and `plan migrate
 * VMID --to NODE` on a read-only connection; it changes nothing. For every
 * VM it says: live-migratable (no passthrough), or it must stop, and where
 * it could run instead: online nodes whose IOMMU is `ready` and that have,
 * for each of the VM's passthrough devices, a free equivalent (same
 * vendor:device, and the same PCIe link for NICs; for a Proxmox resource
 * mapping, a free device of the same mapping there) with the address it
 * would get. Free means: assignable alone, in no VM's config, not claimed,
 * not a management NIC. drain lists up to five such nodes per VM (--all:
 * every one) and how many there are; migrate answers yes or no with the
 * devices it would use or what is missing. Returns 0, 1 (unknown node or
 * VM: *why says so) or 2 (bad usage). */
#ifndef PCIFLEET_PLAN_H
#define PCIFLEET_PLAN_H

#include "buf.h"

#include <sqlite3.h>
#include <stdbool.h>

int plan_run(sqlite3 *ro, int argc, char **argv, bool json, buf_t *out, char **why);

#endif
