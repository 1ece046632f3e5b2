/* claims — devices given to VMs through pcifleet (`pcifleet assign`,
 * `pcifleet release`).
 *
 * Contract: claims_assign checks, in one write transaction on the store's
 * connection, everything that makes a passthrough assignment go wrong: the
 * node unknown or offline, its IOMMU verdict not `ready`, the device
 * unknown, a bridge, in no IOMMU group, or sharing its group with endpoints
 * not claimed with it (--group claims the whole group), a management NIC,
 * already claimed, already in another VM's passthrough entries (running or
 * stopped), an SR-IOV PF whose VFs are in use or a VF whose PF is, the VM
 * not on that node. It then inserts one row per endpoint; the table's
 * primary key (node, address) is what makes two racing assignments unable
 * to both win. claims_release drops a claim and every endpoint claimed with
 * it. Both log an event.
 *
 * Returns 0 when done (*out filled; claim_clear releases it), CLAIM_REFUSED
 * with *why a sentence naming the reason and what to do instead, or a
 * negative errno when the database fails (*why set). */
#ifndef PCIFLEET_CLAIMS_H
#define PCIFLEET_CLAIMS_H

#include "store.h"
#include "strv.h"

#include <stdbool.h>
#include <stdint.h>

#define CLAIM_REFUSED 1

typedef struct {
    char *claim_id;   /* shared by the endpoints claimed together */
    char *node;
    char *vm_id;
    char *source;     /* the VM's kind: proxmox | libvirt */
    strv_t addresses; /* the claimed endpoints, sorted */
    bool q35;         /* the VM's machine is q35: hostpci entries get pcie=1 */
    int next_index;   /* lowest hostpciN the VM's stored config leaves free */
    int hostpci;      /* release: the entry a claim was applied as, -1 none */
    char *state;      /* claimed | applying | applied */
} claim_t;

/* Addresses may be given short (BB:DD.F, taken as domain 0000) and in any
 * case; they are stored as DDDD:BB:DD.F in lower case. */
int claims_assign(store_t *s, const char *node, const char *address, const char *vm_id, bool group, int64_t now,
                  claim_t *out, char **why);
int claims_release(store_t *s, const char *node, const char *address, int64_t now, claim_t *out, char **why);
/* Moves a claim's rows to state (and hostpci when >= 0). 0 or -errno. */
int claims_set_state(store_t *s, const char *claim_id, const char *state, int hostpci, char **err);
/* Drops a claim's rows (an --apply that failed). 0 or -errno. */
int claims_drop(store_t *s, const char *claim_id, int64_t now, const char *why, char **err);
void claim_clear(claim_t *c);

/* Normalizes a PCI address into out (13 bytes); false when it is not one. */
bool claims_address(const char *in, char out[13]);

#endif
