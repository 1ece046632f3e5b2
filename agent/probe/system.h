/* system — who the node is: name, kernel release, CPU vendor and whether the
 * CPU advertises hardware virtualization (vmx/svm).
 *
 * Contract: everything is read through the root (proc/cpuinfo,
 * proc/sys/kernel/osrelease, etc/hostname); an unreadable file leaves the
 * field NULL/unknown and adds an errs entry. */
#ifndef PCIFLEET_SYSTEM_H
#define PCIFLEET_SYSTEM_H

#include "errs.h"
#include "root.h"

typedef struct {
    char *node;             /* --node, else etc/hostname, else proc/sys/kernel/hostname */
    char *kernel_release;   /* NULL when unreadable */
    const char *cpu_vendor; /* "intel" | "amd" | "other" (static) */
    char *cpu_model;        /* "model name" of the first processor, may be NULL */
    int cpu_virtualization; /* 1 vmx/svm flag present, 0 absent, -1 unknown */
    char *boot_id;          /* proc/sys/kernel/random/boot_id, may be NULL */
} sysinfo_t;

int sysinfo_probe(const root_t *root, const char *node_override, sysinfo_t *out, errs_t *errs);
void sysinfo_free(sysinfo_t *s);

/* Parses /proc/cpuinfo text. vendor is set to a static string; model is
 * malloc'd or NULL; virt is 1/0, or -1 when no flags line was seen. */
void cpuinfo_parse(const char *buf, size_t len, const char **vendor, char **model, int *virt);

#endif
