/* klog — IOMMU facts from the kernel log.
 *
 * Contract: klog_parse reads a kernel log in any of the shapes an operator
 * saves it in (dmesg, dmesg -T, dmesg -r "<6>[…]", /dev/kmsg records, syslog
 * or journalctl "Mon DD hh:mm:ss host kernel: " lines) and sets a fact only
 * when a line the kernel prints for it is present. Prefixes are stripped
 * before matching; matching is by whole kernel message phrases, so arbitrary
 * bytes (NULs, binary junk, endless lines) are safe and at worst match
 * nothing. Evidence keeps the matched lines (prefixes stripped, control and
 * non-ASCII bytes shown as '?', at most KLOG_EVIDENCE_LINE_MAX bytes each),
 * at most KLOG_EVIDENCE_MAX of them, a few per fact so that a long run of
 * table lines cannot crowd out the interrupt remapping verdict.
 *
 * Read the facts together: "DMAR: IOMMU enabled" is printed when the kernel
 * accepts intel_iommu=on, even on a machine without a DMAR table, so
 * iommu_enabled without dmar_table/ivrs_table means "asked for, not there".
 * Kernels that enable VT-d by default (Proxmox 6.8+) print no such line; the
 * "Intel(R) Virtualization Technology for Directed I/O" and "Adding to iommu
 * group" lines prove it instead. "AMD IOMMUv2 driver by …" is printed even
 * without the hardware and proves nothing; only "AMD IOMMUv2 loaded and
 * initialized" counts.
 *
 * Interrupt remapping: a line saying it was enabled wins over any line saying
 * otherwise (e.g. "x2apic: IRQ remapping doesn't support X2APIC mode" is
 * printed on machines that then enable remapping in xAPIC mode). */
#ifndef PCIFLEET_KLOG_H
#define PCIFLEET_KLOG_H

#include "errs.h"
#include "root.h"
#include "strv.h"

#include <stdbool.h>
#include <stddef.h>

#define KLOG_EVIDENCE_MAX 16
#define KLOG_EVIDENCE_LINE_MAX 240
/* Largest dmesg.txt read from a fixture root. */
#define KLOG_FILE_MAX (16u * 1024 * 1024)

typedef struct {
    bool dmar_table;     /* "ACPI: DMAR 0x…" or DMAR table lines (DRHD, RMRR, Host address width) */
    bool ivrs_table;     /* "ACPI: IVRS 0x…" or AMD-Vi lines */
    bool iommu_enabled;  /* "DMAR: IOMMU enabled", "DMAR: Intel(R) Virtualization Technology for
                            Directed I/O", AMD-Vi "Found IOMMU" / "Interrupt remapping enabled" /
                            "AMD IOMMUv2", "Adding to iommu group" */
    int ir_enabled;      /* -1 unknown, 1 enabled, 0 a line says it is not */
    bool iommu_disabled; /* "DMAR: IOMMU disabled" / "AMD-Vi: AMD IOMMU disabled" style lines */
    strv_t evidence;     /* the matched lines, without prefixes */
} klog_facts_t;

/* Fills *out (overwritten; need not be initialised). Returns 0, or -EINVAL
 * for a NULL out. Release with klog_facts_free. */
int klog_parse(const char *buf, size_t len, klog_facts_t *out);
/* Releases the evidence and leaves *f zeroed with ir_enabled = -1. NULL-safe. */
void klog_facts_free(klog_facts_t *f);

/* Reads the kernel log into *buf (NUL-terminated, caller frees) and *len:
 * ROOT/dmesg.txt when the root is not live (at most KLOG_FILE_MAX bytes);
 * on the live root the kernel's own ring buffer via klogctl
 * (SYSLOG_ACTION_SIZE_BUFFER, then SYSLOG_ACTION_READ_ALL: reading only,
 * never clearing). The ring buffer may have lost early boot lines on a long
 * running, chatty host. Returns 0, or -errno with an errs entry (where
 * "/dmesg.txt" or "kernel log") when it cannot be read, e.g. -EPERM when
 * kernel.dmesg_restrict is set and the agent lacks CAP_SYSLOG. */
int klog_read(const root_t *root, char **buf, size_t *len, errs_t *errs);

#endif
