/* groups — IOMMU groups and whether each endpoint in one can be passed alone.
 *
 * Contract: groups come from ROOT/sys/kernel/iommu_groups/N/devices (the
 * kernel's own list); when that folder is absent but devices carry
 * iommu_group links, the links are used. An endpoint is any function that is
 * not a bridge or port (pci_dev_is_bridge). An endpoint can be passed alone
 * when every other endpoint of its group is a function of the same slot:
 * those functions go along with it and are named in slot_functions; any other
 * endpoint of the group is named in blockers. */
#ifndef PCIFLEET_GROUPS_H
#define PCIFLEET_GROUPS_H

#include "errs.h"
#include "pci.h"
#include "root.h"

typedef struct {
    char address[16];
    bool endpoint;         /* false for bridges and ports */
    bool alone;            /* endpoints only: assignable without other endpoints */
    strv_t slot_functions; /* same-slot endpoints of the group that go along */
    strv_t blockers;       /* other endpoints of the group (other slots) */
} group_member_t;

typedef struct {
    long id;
    char *type;            /* "DMA", "DMA-FQ", "identity", ... or NULL */
    group_member_t *members;
    size_t n_members;
    bool isolated;         /* no endpoint of the group has blockers */
} iommu_group_t;

typedef struct {
    iommu_group_t *v;
    size_t n, cap;
} iommu_groups_t;

#define IOMMU_GROUPS_INIT {NULL, 0, 0}

int groups_probe(const root_t *root, const pci_devs_t *devs, iommu_groups_t *out, errs_t *errs);
void groups_free(iommu_groups_t *g);
const iommu_group_t *groups_find(const iommu_groups_t *g, long id);
const group_member_t *groups_find_member(const iommu_groups_t *g, const char *address);

#endif
