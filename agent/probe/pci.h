/* pci — every PCI function of the node, read through libpci.
 *
 * Contract: libpci's sysfs method is pointed at ROOT/sys/bus/pci, so the same
 * code reads a live host or a fixture tree. libpci's default error handler
 * exits the process; pci_probe installs its own, so a damaged device (missing
 * files, garbage config space) becomes an errs entry and the other devices are
 * still reported. Links the kernel keeps beside config space (driver,
 * iommu_group, physfn, sriov_*) are read through the root reader. */
#ifndef PCIFLEET_PCI_H
#define PCIFLEET_PCI_H

#include "errs.h"
#include "root.h"

#include <stdbool.h>

/* PCIe Device/Port Type values (PCIe capability, flags bits 7:4). */
enum {
    PCIE_TYPE_ENDPOINT = 0,
    PCIE_TYPE_LEGACY_ENDPOINT = 1,
    PCIE_TYPE_ROOT_PORT = 4,
    PCIE_TYPE_UPSTREAM = 5,
    PCIE_TYPE_DOWNSTREAM = 6,
    PCIE_TYPE_PCIE_TO_PCI = 7,
    PCIE_TYPE_PCI_TO_PCIE = 8,
    PCIE_TYPE_RC_INTEGRATED = 9,
    PCIE_TYPE_RC_EVENT_COLLECTOR = 10,
};

typedef struct {
    unsigned offset;
    unsigned id;
    bool extended;
} pci_cap_ref_t;

typedef struct {
    char address[16];         /* DDDD:BB:DD.F */
    unsigned domain, bus, dev, func;
    unsigned class_code;      /* base class << 8 | subclass */
    unsigned prog_if, revision;
    unsigned vendor_id, device_id, subsys_vendor_id, subsys_device_id;
    char *vendor_name, *device_name, *class_name, *subsys_name; /* NULL when pci.ids has none */
    char *driver;             /* bound driver, NULL when none */
    long iommu_group;         /* -1 when not in a group */
    int numa_node;            /* -1 when unknown */
    int header_type;          /* 0 normal, 1 bridge, 2 CardBus, -1 unreadable */
    bool has_acs;
    unsigned acs_cap, acs_ctl;
    bool has_sriov;
    long sriov_total, sriov_num;
    char *physfn;             /* a VF's PF address, NULL otherwise */
    bool is_pcie;
    int pcie_type;            /* PCIE_TYPE_*, -1 when not PCIe */
    int link_speed, link_width, link_max_speed, link_max_width; /* speed codes: 1 = 2.5 GT/s ...; 0 unknown */
    pci_cap_ref_t *caps;
    size_t n_caps;
} pci_dev_info_t;

typedef struct {
    pci_dev_info_t *v;
    size_t n, cap;
} pci_devs_t;

#define PCI_DEVS_INIT {NULL, 0, 0}

typedef struct {
    const char *ids_file;     /* pci.ids to name devices; NULL = libpci's default */
} pci_probe_opts_t;

/* Fills out with every function under ROOT/sys/bus/pci/devices, sorted by
 * address. Returns 0, or a negative errno when the bus could not be listed at
 * all (also recorded in errs). */
int pci_probe(const root_t *root, const pci_probe_opts_t *opts, pci_devs_t *out, errs_t *errs);
void pci_devs_free(pci_devs_t *d);

/* Binary search: d must be sorted by address text, as pci_probe leaves it
 * (callers that build a list by hand add in address order). */
const pci_dev_info_t *pci_devs_find(const pci_devs_t *d, const char *address);

/* Parses "DDDD:BB:DD.F" (or "BB:DD.F", domain 0). True when valid. */
bool pci_parse_address(const char *s, unsigned *domain, unsigned *bus, unsigned *dev, unsigned *func);

/* "2.5GT/s" ... for a link speed code; NULL when unknown. */
const char *pci_link_speed_name(int code);
/* Names of the ACS bits set in v (lspci's spelling), in bit order. */
const char *pci_acs_bit_name(unsigned bit);

/* A bridge or port (header type 1/2, PCI bridge class, or host bridge): such
 * functions do not count as endpoints when judging a group's isolation. */
bool pci_dev_is_bridge(const pci_dev_info_t *d);
bool pci_dev_is_network(const pci_dev_info_t *d);

#endif
