/* net — the node's NICs and which of them the host itself needs.
 *
 * Contract: a NIC is a PCI function of class 02xx, or any function a netdev in
 * ROOT/sys/class/net links to. management is true for every NIC that carries
 * a default route (proc/net/route, proc/net/ipv6_route): directly, as a port
 * of the bridge that has the route (Proxmox's vmbr0), as a slave of a bond
 * inside it, or below a VLAN on top of either. The walk over bridges, bonds
 * and lower links is bounded in depth and count. */
#ifndef PCIFLEET_NET_H
#define PCIFLEET_NET_H

#include "errs.h"
#include "pci.h"
#include "root.h"

typedef struct {
    char address[16];
    char *ifname;        /* first netdev of the function, NULL when none (e.g. bound to vfio-pci) */
    strv_t ifnames;      /* every netdev of the function */
    char *mac;
    long speed_mbps;     /* -1 when unknown or link down */
    char *operstate;
    bool management;
    char *management_via; /* "vmbr0 > bond0 > eno1": how the route reaches it */
    bool is_vf;
    char *driver;        /* copy of the PCI driver */
} nic_t;

typedef struct {
    nic_t *v;
    size_t n, cap;
    strv_t default_ifaces; /* interfaces holding a default route */
} nics_t;

#define NICS_INIT {NULL, 0, 0, STRV_INIT}

int net_probe(const root_t *root, const pci_devs_t *devs, nics_t *out, errs_t *errs);
void nics_free(nics_t *n);

/* Interfaces with a default route in /proc/net/route (IPv4) text. */
void route_default_ifaces_parse(const char *buf, size_t len, strv_t *out);
/* The same for /proc/net/ipv6_route text. */
void route6_default_ifaces_parse(const char *buf, size_t len, strv_t *out);

#endif
