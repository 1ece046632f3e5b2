/* inv_builder — hand-built Pcifleet__Inventory values for the store and
 * query tests (header-only: each test program includes it once).
 *
 * Everything the inventory points to lives in the builder and is released
 * by ib_free. Lists are given as comma-separated strings. The inventory's
 * hash is left empty unless ib_set_hash is called: the store then computes
 * it the way the agent does. */
#ifndef PCIFLEET_TEST_INV_BUILDER_H
#define PCIFLEET_TEST_INV_BUILDER_H

#include "buf.h"
#include "pcifleet.pb-c.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IB_MAX 256

typedef struct {
    Pcifleet__Inventory inv;
    Pcifleet__Iommu iommu;
    Pcifleet__Boot boot;
    Pcifleet__Vfio vfio;
    Pcifleet__Device *devs[IB_MAX];
    Pcifleet__Group *groups[IB_MAX];
    Pcifleet__Nic *nics[IB_MAX];
    Pcifleet__Vm *vms[IB_MAX];
    Pcifleet__ScanError *errs[IB_MAX];
    char *reasons[16];
    uint8_t hash[32];
    void *allocs[8192];
    size_t nalloc;
} ib_t;

static inline void *ib_keep(ib_t *b, void *p)
{
    if (b->nalloc == sizeof(b->allocs) / sizeof(b->allocs[0]))
        abort();
    b->allocs[b->nalloc++] = p;
    return p;
}

static inline char *ib_str(ib_t *b, const char *s) { return ib_keep(b, xstrdup(s ? s : "")); }

/* Splits a comma-separated list into a kept char* array; *n gets the count. */
static inline char **ib_list(ib_t *b, const char *csv, size_t *n)
{
    *n = 0;
    if (!csv || !*csv)
        return NULL;
    size_t cap = 1;
    for (const char *p = csv; *p; p++)
        cap += *p == ',';
    char **v = ib_keep(b, xcalloc(cap, sizeof(char *)));
    const char *p = csv;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        v[(*n)++] = ib_keep(b, xstrndup(p, l));
        if (!c)
            break;
        p = c + 1;
    }
    return v;
}

/* A node whose IOMMU has the given verdict and boot loader. */
static inline ib_t *ib_new(const char *verdict, const char *loader)
{
    ib_t *b = xcalloc(1, sizeof(*b));
    pcifleet__inventory__init(&b->inv);
    pcifleet__iommu__init(&b->iommu);
    pcifleet__boot__init(&b->boot);
    pcifleet__vfio__init(&b->vfio);
    b->inv.agent_version = ib_str(b, "0.1.0");
    b->inv.boot_id = ib_str(b, "boot-1");
    b->inv.kernel_release = ib_str(b, "6.8.12-4-pve");
    b->inv.cpu_vendor = ib_str(b, "intel");
    b->inv.cpu_model = ib_str(b, "Intel(R) Xeon(R) E-2388G");
    b->inv.cpu_virtualization = PCIFLEET__TRI__TRI_TRUE;
    b->iommu.firmware = ib_str(b, "DMAR");
    b->iommu.enabled = strcmp(verdict, "needs-kernel-args") != 0;
    b->iommu.units = ib_list(b, b->iommu.enabled ? "dmar0,dmar1" : "", &b->iommu.n_units);
    b->iommu.groups = 0;
    b->iommu.default_domain = ib_str(b, b->iommu.enabled ? "translated" : "");
    b->iommu.interrupt_remapping = b->iommu.enabled ? PCIFLEET__TRI__TRI_TRUE : PCIFLEET__TRI__TRI_UNKNOWN;
    b->iommu.cmdline = ib_str(b, "BOOT_IMAGE=/boot/vmlinuz root=ZFS=rpool/ROOT/pve-1 quiet");
    b->iommu.verdict = ib_str(b, verdict);
    b->iommu.reasons = b->reasons;
    b->boot.loader = ib_str(b, loader);
    b->boot.cmdline_file = ib_str(b, strcmp(loader, "grub") == 0 ? "/etc/default/grub" : "/etc/kernel/cmdline");
    b->boot.configured_args = ib_list(b, "root=ZFS=rpool/ROOT/pve-1,quiet", &b->boot.n_configured_args);
    b->boot.refresh_command =
        ib_str(b, strcmp(loader, "grub") == 0 ? "update-grub" : "proxmox-boot-tool refresh");
    b->boot.proxmox_boot_tool = strcmp(loader, "systemd-boot") == 0;
    b->vfio.required = ib_list(b, "vfio,vfio_iommu_type1,vfio_pci", &b->vfio.n_required);
    b->vfio.loaded = ib_list(b, "vfio,vfio_iommu_type1,vfio_pci", &b->vfio.n_loaded);
    b->inv.iommu = &b->iommu;
    b->inv.boot = &b->boot;
    b->inv.vfio = &b->vfio;
    b->inv.devices = b->devs;
    b->inv.groups = b->groups;
    b->inv.nics = b->nics;
    b->inv.vms = b->vms;
    b->inv.errors = b->errs;
    return b;
}

static inline void ib_free(ib_t **bp)
{
    if (!bp || !*bp)
        return;
    for (size_t i = 0; i < (*bp)->nalloc; i++)
        free((*bp)->allocs[i]);
    free(*bp);
    *bp = NULL;
}

static inline void ib_reason(ib_t *b, const char *text)
{
    b->reasons[b->iommu.n_reasons++] = ib_str(b, text);
}

static inline void ib_set_hash(ib_t *b, uint8_t fill)
{
    memset(b->hash, fill, sizeof(b->hash));
    b->inv.hash.data = b->hash;
    b->inv.hash.len = sizeof(b->hash);
}

/* A PCI function; group < 0 for none. */
static inline Pcifleet__Device *ib_device(ib_t *b, const char *addr, uint32_t class_code, uint32_t vendor,
                                          uint32_t device, int64_t group, const char *name, const char *driver)
{
    Pcifleet__Device *d = ib_keep(b, xmalloc(sizeof(*d)));
    pcifleet__device__init(d);
    d->address = ib_str(b, addr);
    d->class_code = class_code;
    d->vendor_id = vendor;
    d->device_id = device;
    d->subsystem_vendor_id = vendor;
    d->subsystem_device_id = 0;
    d->vendor_name = ib_str(b, vendor == 0x8086 ? "Intel Corporation" : "");
    d->device_name = ib_str(b, name);
    d->driver = ib_str(b, driver);
    d->iommu_group = group;
    d->numa_node = -1;
    d->bridge = (class_code >> 8) == 0x06;
    d->class_name = ib_str(b, (class_code >> 8) == 0x02 ? "Ethernet controller" : "");
    if ((class_code >> 8) == 0x02) {
        d->link_speed = ib_str(b, "5GT/s");
        d->link_width = 1;
    }
    b->devs[b->inv.n_devices++] = d;
    if (group >= 0 && (size_t)group + 1 > b->iommu.groups)
        b->iommu.groups = (uint32_t)group + 1;
    return d;
}

static inline const Pcifleet__Device *ib_find_device(ib_t *b, const char *addr)
{
    for (size_t i = 0; i < b->inv.n_devices; i++)
        if (strcmp(b->devs[i]->address, addr) == 0)
            return b->devs[i];
    return NULL;
}

/* An IOMMU group of the listed functions. Every non-bridge member is an
 * endpoint; in a shared group each endpoint is blocked by the others. */
static inline Pcifleet__Group *ib_group(ib_t *b, int64_t id, const char *members, bool shared)
{
    Pcifleet__Group *g = ib_keep(b, xmalloc(sizeof(*g)));
    pcifleet__group__init(g);
    g->id = id;
    g->type = ib_str(b, "DMA-FQ");
    g->devices = ib_list(b, members, &g->n_devices);
    g->isolated = !shared;
    g->endpoints = ib_keep(b, xcalloc(g->n_devices + 1, sizeof(*g->endpoints)));
    for (size_t i = 0; i < g->n_devices; i++) {
        const Pcifleet__Device *d = ib_find_device(b, g->devices[i]);
        if (d && d->bridge)
            continue;
        Pcifleet__GroupEndpoint *e = ib_keep(b, xmalloc(sizeof(*e)));
        pcifleet__group_endpoint__init(e);
        e->address = ib_str(b, g->devices[i]);
        e->assignable_alone = !shared;
        if (shared) {
            e->blockers = ib_keep(b, xcalloc(g->n_devices, sizeof(char *)));
            for (size_t k = 0; k < g->n_devices; k++)
                if (k != i)
                    e->blockers[e->n_blockers++] = ib_str(b, g->devices[k]);
        }
        g->endpoints[g->n_endpoints++] = e;
    }
    b->groups[b->inv.n_groups++] = g;
    return g;
}

static inline Pcifleet__Nic *ib_nic(ib_t *b, const char *addr, const char *ifname, const char *mac, bool management)
{
    Pcifleet__Nic *c = ib_keep(b, xmalloc(sizeof(*c)));
    pcifleet__nic__init(c);
    c->address = ib_str(b, addr);
    c->ifname = ib_str(b, ifname);
    c->mac = ib_str(b, mac);
    c->speed_mbps = management ? 1000 : -1;
    c->operstate = ib_str(b, management ? "up" : "down");
    c->management = management;
    c->management_via = ib_str(b, management ? "vmbr0 > enp1s0" : "");
    const Pcifleet__Device *d = ib_find_device(b, addr);
    c->driver = ib_str(b, d ? d->driver : "");
    b->nics[b->inv.n_nics++] = c;
    return c;
}

/* A Proxmox VM; hostpci0 holds the listed addresses (none: no hostpci). */
static inline Pcifleet__Vm *ib_vm(ib_t *b, const char *id, const char *name, Pcifleet__Tri running,
                                  const char *hostpci0, const char *reason)
{
    Pcifleet__Vm *v = ib_keep(b, xmalloc(sizeof(*v)));
    pcifleet__vm__init(v);
    v->source = ib_str(b, "proxmox");
    v->id = ib_str(b, id);
    v->name = ib_str(b, name);
    v->machine = ib_str(b, "q35");
    v->running = running;
    if (hostpci0 && *hostpci0) {
        Pcifleet__HostPci *h = ib_keep(b, xmalloc(sizeof(*h)));
        pcifleet__host_pci__init(h);
        h->index = 0;
        h->addresses = ib_list(b, hostpci0, &h->n_addresses);
        h->pcie = true;
        h->raw = ib_str(b, hostpci0);
        v->hostpci = ib_keep(b, xcalloc(1, sizeof(*v->hostpci)));
        v->hostpci[0] = h;
        v->n_hostpci = 1;
    }
    v->migratable = !(hostpci0 && *hostpci0);
    v->reasons = ib_list(b, reason, &v->n_reasons);
    b->vms[b->inv.n_vms++] = v;
    return v;
}

static inline void ib_error(ib_t *b, const char *where, const char *what)
{
    Pcifleet__ScanError *e = ib_keep(b, xmalloc(sizeof(*e)));
    pcifleet__scan_error__init(e);
    e->where = ib_str(b, where);
    e->what = ib_str(b, what);
    b->errs[b->inv.n_errors++] = e;
}

/* ---- the two nodes most tests use ----
 *
 * pve1 (ready, systemd-boot): a host bridge; an I210 that carries the
 * management route; an I225 configured in stopped VM 100; a second I225,
 * free; an 82599 pair (04:00.0/.1) sharing group 4 with a SATA controller;
 * running VM 101 with no passthrough.
 * pve2 (needs-kernel-args, grub): IOMMU off, one I225 in no group, running
 * VM 200 passing it through, and one scan error. */
static inline ib_t *ib_pve1(void)
{
    ib_t *b = ib_new("ready", "systemd-boot");
    ib_device(b, "0000:00:00.0", 0x0600, 0x8086, 0x4c43, 0, "Host bridge", "");
    ib_device(b, "0000:01:00.0", 0x0200, 0x8086, 0x1533, 1, "I210 Gigabit Network Connection", "igb");
    ib_device(b, "0000:02:00.0", 0x0200, 0x8086, 0x15f3, 2, "Ethernet Controller I225-V", "igc");
    ib_device(b, "0000:03:00.0", 0x0200, 0x8086, 0x15f3, 3, "Ethernet Controller I225-V", "igc");
    ib_device(b, "0000:04:00.0", 0x0200, 0x8086, 0x10fb, 4, "82599ES 10-Gigabit SFI/SFP+", "ixgbe");
    ib_device(b, "0000:04:00.1", 0x0200, 0x8086, 0x10fb, 4, "82599ES 10-Gigabit SFI/SFP+", "ixgbe");
    ib_device(b, "0000:05:00.0", 0x0106, 0x1b21, 0x1166, 4, "ASM1166 SATA", "ahci");
    ib_group(b, 0, "0000:00:00.0", false);
    ib_group(b, 1, "0000:01:00.0", false);
    ib_group(b, 2, "0000:02:00.0", false);
    ib_group(b, 3, "0000:03:00.0", false);
    ib_group(b, 4, "0000:04:00.0,0000:04:00.1,0000:05:00.0", true);
    ib_nic(b, "0000:01:00.0", "enp1s0", "a8:a1:59:00:00:01", true);
    ib_nic(b, "0000:02:00.0", "enp2s0", "a8:a1:59:00:00:02", false);
    ib_nic(b, "0000:03:00.0", "enp3s0", "a8:a1:59:00:00:03", false);
    ib_nic(b, "0000:04:00.0", "enp4s0f0", "90:e2:ba:00:00:00", false);
    ib_nic(b, "0000:04:00.1", "enp4s0f1", "90:e2:ba:00:00:01", false);
    ib_vm(b, "100", "router", PCIFLEET__TRI__TRI_FALSE, "0000:02:00.0",
          "hostpci0 passes through 0000:02:00.0");
    ib_vm(b, "101", "web", PCIFLEET__TRI__TRI_TRUE, "", "");
    return b;
}

static inline ib_t *ib_pve2(void)
{
    ib_t *b = ib_new("needs-kernel-args", "grub");
    ib_reason(b, "Add intel_iommu=on to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub, then run update-grub");
    b->inv.boot_id = ib_str(b, "boot-2");
    ib_device(b, "0000:01:00.0", 0x0200, 0x8086, 0x15f3, -1, "Ethernet Controller I225-V", "igc");
    ib_nic(b, "0000:01:00.0", "eno1", "3c:ec:ef:00:00:01", false);
    ib_vm(b, "200", "db", PCIFLEET__TRI__TRI_TRUE, "0000:01:00.0", "hostpci0 passes through 0000:01:00.0");
    ib_error(b, "sys/bus/pci/devices/0000:01:00.0/iommu_group", "no IOMMU group: the IOMMU is off");
    return b;
}

#endif
