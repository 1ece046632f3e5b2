/* inventory — one node's whole report, as the agent sends it to the controller.
 *
 * Contract: inventory_scan never fails on what it reads: every probe records
 * what it could not read in inv->errors and the report holds the rest. It
 * fails (negative errno, message in *err) only when the root itself is
 * unusable. inventory_to_json writes the one JSON document whose field names
 * are the contract with the controller and with operators' scripts;
 * inventory_summary writes the ten-second human view. */
#ifndef PCIFLEET_INVENTORY_H
#define PCIFLEET_INVENTORY_H

#include "boot.h"
#include "buf.h"
#include "corosync.h"
#include "errs.h"
#include "groups.h"
#include "iommu.h"
#include "json.h"
#include "net.h"
#include "pci.h"
#include "root.h"
#include "system.h"
#include "vfio.h"
#include "vms.h"

typedef struct {
    const char *root;      /* root prefix, NULL = "/" */
    const char *node;      /* node name override, NULL = from the host */
    const char *ids_file;  /* pci.ids override, NULL = libpci default */
} scan_opts_t;

typedef struct {
    char *root;
    sysinfo_t sys;
    iommu_state_t iommu;
    boot_info_t boot;
    vfio_info_t vfio;
    pci_devs_t devices;
    iommu_groups_t groups;
    nics_t nics;
    vms_t vms;
    pve_mappings_t mappings; /* pci.cfg, sorted by name; those with n_alts 0 are not this node's */
    cluster_t cluster;       /* corosync.conf; name NULL when in no cluster */
    errs_t errors;
} inventory_t;

int inventory_scan(const scan_opts_t *opts, inventory_t **out, char **err);
void inventory_destroy(inventory_t **inv);

void inventory_to_json(const inventory_t *inv, json_t *j);
void inventory_summary(const inventory_t *inv, buf_t *out);

const char *agent_version(void);

#endif
