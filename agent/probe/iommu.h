/* iommu — is DMA remapping on, and if not, why not and what to change.
 *
 * Contract: iommu_probe gathers the facts (ACPI table, IOMMU units, groups,
 * default domain, interrupt remapping, running command line, kernel log);
 * iommu_judge turns them, with the CPU, bootloader and vfio facts, into one
 * verdict and the reasons behind it. Kernel arguments are always compared as
 * tokens with values (cmdline.h), never as substrings. The verdicts, worst
 * first: unsupported, needs-firmware, needs-kernel-args, needs-reboot,
 * needs-modules, ready. */
#ifndef PCIFLEET_IOMMU_H
#define PCIFLEET_IOMMU_H

#include "boot.h"
#include "cmdline.h"
#include "errs.h"
#include "groups.h"
#include "klog.h"
#include "root.h"
#include "system.h"
#include "vfio.h"

typedef enum {
    VERDICT_READY = 0,
    VERDICT_NEEDS_MODULES,
    VERDICT_NEEDS_REBOOT,
    VERDICT_NEEDS_KERNEL_ARGS,
    VERDICT_NEEDS_FIRMWARE,
    VERDICT_UNSUPPORTED,
} verdict_t;

typedef struct {
    const char *firmware;       /* "DMAR" | "IVRS" | NULL */
    bool enabled;               /* units present and groups populated */
    strv_t units;               /* names in sys/class/iommu */
    long groups;                /* number of IOMMU groups */
    const char *default_domain; /* "translated" | "identity" | NULL */
    int interrupt_remapping;    /* 1, 0, -1 unknown */
    int ir_from_interrupts;     /* what proc/interrupts alone says: 1, 0, -1 */
    char *cmdline;              /* running command line, NULL if unreadable */
    kargs_t running_args;
    bool klog_available;
    klog_facts_t klog;
    verdict_t verdict;
    strv_t reasons;
} iommu_state_t;

int iommu_probe(const root_t *root, const iommu_groups_t *groups, iommu_state_t *out, errs_t *errs);
void iommu_judge(iommu_state_t *st, const sysinfo_t *sys, const boot_info_t *boot, const vfio_info_t *vfio);
void iommu_state_free(iommu_state_t *st);

const char *verdict_name(verdict_t v);

/* proc/interrupts: 1 when any line is IR- remapped, 0 when MSI/IO-APIC lines
 * exist and none is, -1 when the text says nothing either way. */
int interrupts_ir_parse(const char *buf, size_t len);

#endif
