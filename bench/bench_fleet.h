/* bench_fleet — the servers the controller benchmarks feed it (header-only).
 *
 * bench_make_node(i, d) builds node i's inventory of d PCI functions with
 * inv_builder.h: what a typical passthrough host reports. */
#ifndef PCIFLEET_BENCH_FLEET_H
#define PCIFLEET_BENCH_FLEET_H

#include "buf.h"
#include "inv_builder.h"

#include <stdio.h>

/* ---- one node's inventory ----
 *
 * A two-socket-ish Xeon server of `devices` functions: chipset functions and
 * root ports, two onboard I210 (the first carries the management route), a
 * four-port I350 of which two ports are configured in VMs, NVMe drives, and
 * uncore system peripherals filling up the rest. Every node differs in name,
 * MACs and boot id, so the hashes differ as they would in a real fleet. */
static inline void bench_add_dev(ib_t *b, unsigned *n, unsigned max, const char *addr, uint32_t cls, uint32_t ven,
                    uint32_t dev, int64_t group, const char *name, const char *drv)
{
    if (*n >= max)
        return;
    ib_device(b, addr, cls, ven, dev, group, name, drv);
    (*n)++;
}

static inline ib_t *bench_make_node(unsigned idx, unsigned devices)
{
    ib_t *b = ib_new("ready", idx % 2 ? "grub" : "systemd-boot");
    char boot[64];
    snprintf(boot, sizeof boot, "boot-%08x", idx * 2654435761u);
    b->inv.boot_id = ib_str(b, boot);
    unsigned n = 0;
    int64_t g = 0;
    char a[16];
    /* chipset */
    bench_add_dev(b, &n, devices, "0000:00:00.0", 0x0600, 0x8086, 0x3e30, g++, "Host bridge", "");
    bench_add_dev(b, &n, devices, "0000:00:02.0", 0x0300, 0x8086, 0x3e9a, g++, "UHD Graphics P630", "i915");
    bench_add_dev(b, &n, devices, "0000:00:14.0", 0x0c03, 0x8086, 0xa36d, g, "USB 3.1 xHCI", "xhci_hcd");
    bench_add_dev(b, &n, devices, "0000:00:14.2", 0x0500, 0x8086, 0xa36f, g++, "Shared SRAM", "");
    bench_add_dev(b, &n, devices, "0000:00:16.0", 0x0780, 0x8086, 0xa360, g++, "MEI Controller", "mei_me");
    bench_add_dev(b, &n, devices, "0000:00:17.0", 0x0106, 0x8086, 0xa352, g++, "SATA AHCI", "ahci");
    bench_add_dev(b, &n, devices, "0000:00:1f.0", 0x0601, 0x8086, 0xa30a, g, "LPC/eSPI", "");
    bench_add_dev(b, &n, devices, "0000:00:1f.4", 0x0c05, 0x8086, 0xa323, g, "SMBus", "i801_smbus");
    bench_add_dev(b, &n, devices, "0000:00:1f.5", 0x0c80, 0x8086, 0xa324, g++, "SPI", "intel-spi");
    /* root ports, one group each */
    for (unsigned i = 0; i < 8; i++) {
        snprintf(a, sizeof a, "0000:00:1%c.%u", i < 4 ? 'b' : 'c', i % 4);
        bench_add_dev(b, &n, devices, a, 0x0604, 0x8086, 0xa340 + i, g++, "PCI Express Root Port", "pcieport");
    }
    /* NICs */
    bench_add_dev(b, &n, devices, "0000:01:00.0", 0x0200, 0x8086, 0x1533, g++, "I210", "igb");
    bench_add_dev(b, &n, devices, "0000:02:00.0", 0x0200, 0x8086, 0x1533, g++, "I210", "igb");
    for (unsigned f = 0; f < 4; f++) {
        snprintf(a, sizeof a, "0000:03:00.%u", f);
        bench_add_dev(b, &n, devices, a, 0x0200, 0x8086, 0x1521, g++, "I350", "igb");
    }
    /* NVMe */
    for (unsigned i = 0; i < 4; i++) {
        snprintf(a, sizeof a, "0000:%02x:00.0", 4 + i);
        bench_add_dev(b, &n, devices, a, 0x0108, 0x144d, 0xa808, g++, "NVMe SSD Controller", "nvme");
    }
    /* uncore peripherals up to the device count, one group per device */
    for (unsigned i = 0; n < devices && i < 256; i++) {
        snprintf(a, sizeof a, "0000:ff:%02x.%u", 8 + i / 8, i % 8);
        bench_add_dev(b, &n, devices, a, 0x0880, 0x8086, 0x2010 + i, g++, "Xeon uncore", "");
    }
    /* groups: devices sharing an id share a group (all isolated apart from
     * that: chipset groups hold one endpoint or a slot's functions) */
    for (size_t i = 0; i < b->inv.n_devices;) {
        size_t k = i;
        buf_t m = BUF_INIT;
        while (k < b->inv.n_devices && b->devs[k]->iommu_group == b->devs[i]->iommu_group) {
            if (m.len)
                buf_putc(&m, ',');
            buf_puts(&m, b->devs[k]->address);
            k++;
        }
        ib_group(b, b->devs[i]->iommu_group, m.p, false);
        buf_free(&m);
        i = k;
    }
    static const char *ifn[6] = {"eno1", "eno2", "enp3s0f0", "enp3s0f1", "enp3s0f2", "enp3s0f3"};
    static const char *addr[6] = {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0",
                                  "0000:03:00.1", "0000:03:00.2", "0000:03:00.3"};
    for (unsigned i = 0; i < 6; i++) {
        if (!ib_find_device(b, addr[i]))
            continue;
        char mac[32];
        snprintf(mac, sizeof mac, "3c:ec:ef:%02x:%02x:%02x", (idx >> 12) & 0xff, (idx >> 4) & 0xff,
                 ((idx & 0xf) << 4) | i);
        ib_nic(b, addr[i], ifn[i], mac, i == 0);
    }
    ib_vm(b, "100", "fw1", PCIFLEET__TRI__TRI_TRUE, "0000:03:00.0", "hostpci0: 0000:03:00.0 is passed through");
    ib_vm(b, "101", "router", PCIFLEET__TRI__TRI_FALSE, "0000:03:00.1",
          "hostpci0: 0000:03:00.1 is passed through");
    ib_vm(b, "102", "web", PCIFLEET__TRI__TRI_TRUE, NULL, NULL);
    ib_vm(b, "103", "db", PCIFLEET__TRI__TRI_TRUE, NULL, NULL);
    return b;
}

#endif
