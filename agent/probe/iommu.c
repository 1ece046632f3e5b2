#include "iommu.h"

#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *verdict_name(verdict_t v)
{
    switch (v) {
    case VERDICT_READY: return "ready";
    case VERDICT_NEEDS_MODULES: return "needs-modules";
    case VERDICT_NEEDS_REBOOT: return "needs-reboot";
    case VERDICT_NEEDS_KERNEL_ARGS: return "needs-kernel-args";
    case VERDICT_NEEDS_FIRMWARE: return "needs-firmware";
    case VERDICT_UNSUPPORTED: return "unsupported";
    }
    return "unsupported";
}

int interrupts_ir_parse(const char *buf, size_t len)
{
    bool remapped = false, plain = false;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        /* Tokens of the line; the chip name is one of them. */
        for (const char *t = p; t < e;) {
            while (t < e && (*t == ' ' || *t == '\t'))
                t++;
            const char *te = t;
            while (te < e && *te != ' ' && *te != '\t')
                te++;
            size_t n = (size_t)(te - t);
            if (n > 3 && strncmp(t, "IR-", 3) == 0)
                remapped = true;
            else if ((n >= 7 && strncmp(t, "PCI-MSI", 7) == 0) || (n == 7 && strncmp(t, "IO-APIC", 7) == 0))
                plain = true;
            t = te;
        }
        p = e + 1;
    }
    if (remapped)
        return 1;
    return plain ? 0 : -1;
}

/* Most common group type decides the default domain the kernel chose. */
static const char *default_domain(const iommu_groups_t *g)
{
    size_t identity = 0, translated = 0;
    for (size_t i = 0; i < g->n; i++) {
        const char *t = g->v[i].type;
        if (!t)
            continue;
        if (strcmp(t, "identity") == 0)
            identity++;
        else if (strcmp(t, "DMA") == 0 || strcmp(t, "DMA-FQ") == 0)
            translated++;
    }
    if (!identity && !translated)
        return NULL;
    return identity > translated ? "identity" : "translated";
}

int iommu_probe(const root_t *root, const iommu_groups_t *groups, iommu_state_t *out, errs_t *errs)
{
    memset(out, 0, sizeof(*out));
    out->interrupt_remapping = -1;
    out->ir_from_interrupts = -1;

    if (root_exists(root, "sys/firmware/acpi/tables/DMAR"))
        out->firmware = "DMAR";
    else if (root_exists(root, "sys/firmware/acpi/tables/IVRS"))
        out->firmware = "IVRS";

    int rc = root_list(root, "sys/class/iommu", &out->units);
    if (rc < 0 && rc != -ENOENT)
        errs_add(errs, "/sys/class/iommu", "cannot list IOMMU units: %s", strerror(-rc));
    out->groups = (long)groups->n;
    out->enabled = out->units.n > 0 && groups->n > 0;
    out->default_domain = default_domain(groups);

    char *text = NULL;
    size_t len = 0;
    rc = root_read(root, "proc/interrupts", ROOT_READ_MAX, &text, &len);
    if (rc == 0)
        out->ir_from_interrupts = interrupts_ir_parse(text, len);
    else
        errs_add(errs, "/proc/interrupts", "cannot read interrupts: %s", strerror(-rc));
    free(text);
    text = NULL;

    rc = root_read(root, "proc/cmdline", 64 * 1024, &text, &len);
    if (rc == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            text[--len] = '\0';
        out->cmdline = text;
        kargs_parse(text, len, &out->running_args);
    } else {
        errs_add(errs, "/proc/cmdline", "cannot read the running command line: %s", strerror(-rc));
    }

    text = NULL;
    if (klog_read(root, &text, &len, errs) == 0) {
        out->klog_available = true;
        klog_parse(text, len, &out->klog);
    }
    free(text);

    if (out->ir_from_interrupts == 1)
        out->interrupt_remapping = 1;
    else if (out->klog_available && out->klog.ir_enabled >= 0)
        out->interrupt_remapping = out->klog.ir_enabled;
    else
        out->interrupt_remapping = out->ir_from_interrupts;
    return 0;
}

static bool arg_has(const kargs_t *args, const char *key, const char *opt)
{
    const karg_t *a = kargs_find_last(args, key);
    return a && karg_has_option(a, opt);
}

static void worsen(iommu_state_t *st, verdict_t v)
{
    if (v > st->verdict)
        st->verdict = v;
}

static void reason(iommu_state_t *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(iommu_state_t *st, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    strv_take(&st->reasons, buf_steal(&b));
}

/* Completes an action ("add intel_iommu=on to", "remove X from", "replace X
 * with Y in") with where this node's kernel arguments live and how to apply
 * them, e.g. "... GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and run
 * update-grub". */
static char *where_to_edit(const boot_info_t *boot, const char *action)
{
    if (boot && boot->loader == BOOT_GRUB)
        return xasprintf("%s GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and run %s", action,
                         boot->refresh_command ? boot->refresh_command : "update-grub");
    if (boot && boot->loader == BOOT_SYSTEMD_BOOT)
        return xasprintf("%s /etc/kernel/cmdline and run %s", action,
                         boot->refresh_command ? boot->refresh_command : "proxmox-boot-tool refresh");
    return xasprintf("%s the bootloader's kernel command line (pcifleet could not tell which bootloader "
                     "this node uses)",
                     action);
}

static void judge_disabled_intel(iommu_state_t *st, const sysinfo_t *sys, const boot_info_t *boot)
{
    const kargs_t *run = &st->running_args;
    const kargs_t *cfg = boot && boot->loader != BOOT_UNKNOWN ? &boot->configured_args : NULL;
    bool run_on = arg_has(run, "intel_iommu", "on");
    bool cfg_on = cfg && arg_has(cfg, "intel_iommu", "on");
    bool cfg_off = cfg && (arg_has(cfg, "intel_iommu", "off") || arg_has(cfg, "iommu", "off"));
    /* Kernels from 6.8 on may turn VT-d on by default; if it is off anyway,
     * the argument is still what turns it on. */
    (void)sys;
    if (cfg_on && !run_on && !cfg_off) {
        worsen(st, VERDICT_NEEDS_REBOOT);
        reason(st, "%s already asks for intel_iommu=on but the running kernel was booted without it: "
                   "run %s if that was not done since the edit, then reboot",
               boot->cmdline_file, boot->refresh_command ? boot->refresh_command : "the boot refresh");
        return;
    }
    if (run_on && !arg_has(run, "iommu", "off")) {
        worsen(st, VERDICT_NEEDS_FIRMWARE);
        reason(st, "The kernel was booted with intel_iommu=on and the firmware has a DMAR table, but DMA "
                   "remapping is not active: the DMAR table may be broken or VT-d half-enabled; check the "
                   "kernel log for DMAR errors and update the firmware");
        return;
    }
    worsen(st, VERDICT_NEEDS_KERNEL_ARGS);
    char *how;
    if (cfg && arg_has(cfg, "intel_iommu", "off"))
        how = where_to_edit(boot, "replace intel_iommu=off with intel_iommu=on in");
    else
        how = where_to_edit(boot, "add intel_iommu=on to");
    reason(st, "ACPI DMAR table present but the kernel did not enable DMA remapping: %s", how);
    free(how);
    if (cfg && arg_has(cfg, "iommu", "off")) {
        how = where_to_edit(boot, "remove iommu=off from");
        reason(st, "The configured command line turns every IOMMU off with iommu=off: %s", how);
        free(how);
    }
}

static void judge_disabled_amd(iommu_state_t *st, const boot_info_t *boot)
{
    const kargs_t *run = &st->running_args;
    const kargs_t *cfg = boot && boot->loader != BOOT_UNKNOWN ? &boot->configured_args : NULL;
    const char *off_key = arg_has(run, "amd_iommu", "off") ? "amd_iommu=off"
                          : arg_has(run, "iommu", "off")   ? "iommu=off"
                                                           : NULL;
    if (off_key) {
        bool still = cfg && (arg_has(cfg, "amd_iommu", "off") || arg_has(cfg, "iommu", "off"));
        if (cfg && !still) {
            worsen(st, VERDICT_NEEDS_REBOOT);
            reason(st, "The running kernel was booted with %s, which %s no longer has: run %s if that was "
                       "not done since the edit, then reboot",
                   off_key, boot->cmdline_file, boot->refresh_command ? boot->refresh_command : "the boot refresh");
        } else {
            worsen(st, VERDICT_NEEDS_KERNEL_ARGS);
            char *action = xasprintf("remove %s from", off_key);
            char *how = where_to_edit(boot, action);
            free(action);
            reason(st, "ACPI IVRS table present but the kernel command line turns AMD-Vi off: %s", how);
            free(how);
        }
        return;
    }
    worsen(st, VERDICT_NEEDS_FIRMWARE);
    reason(st, "ACPI IVRS table present and nothing on the command line turns AMD-Vi off, yet the kernel "
               "did not enable it: check the kernel log for AMD-Vi errors and the firmware's IOMMU "
               "setting (amd_iommu=on is not a real switch and would not help)");
}

void iommu_judge(iommu_state_t *st, const sysinfo_t *sys, const boot_info_t *boot, const vfio_info_t *vfio)
{
    st->verdict = VERDICT_READY;
    strv_free(&st->reasons);
    bool intel = strcmp(sys->cpu_vendor, "intel") == 0;
    bool amd = strcmp(sys->cpu_vendor, "amd") == 0;

    if (!intel && !amd && !st->enabled) {
        worsen(st, VERDICT_UNSUPPORTED);
        reason(st, "The CPU is neither Intel nor AMD x86 and no IOMMU is active: pcifleet can only "
                   "enable VT-d (ACPI DMAR) and AMD-Vi (ACPI IVRS)");
        return;
    }
    if (sys->cpu_virtualization == 0) {
        worsen(st, VERDICT_NEEDS_FIRMWARE);
        reason(st, "The CPU does not show the %s flag in /proc/cpuinfo: enable %s in the firmware setup",
               amd ? "svm" : "vmx", amd ? "SVM mode (AMD-V)" : "Intel Virtualization Technology (VT-x)");
    }

    if (!st->enabled) {
        if (!st->firmware) {
            worsen(st, VERDICT_NEEDS_FIRMWARE);
            if (amd)
                reason(st, "No ACPI IVRS table: the firmware does not advertise AMD-Vi; enable the IOMMU "
                           "(often \"IOMMU\" or \"AMD-Vi\" under the chipset settings) in the firmware setup");
            else
                reason(st, "No ACPI DMAR table: the firmware does not advertise VT-d; enable \"VT-d\" "
                           "(Intel Virtualization Technology for Directed I/O) in the firmware setup");
            return;
        }
        if (st->units.n > 0 && st->groups == 0) {
            worsen(st, VERDICT_NEEDS_REBOOT);
            reason(st, "IOMMU units are present but no IOMMU groups were formed: reboot, then check the "
                       "kernel log");
            return;
        }
        if (intel || strcmp(st->firmware, "DMAR") == 0)
            judge_disabled_intel(st, sys, boot);
        else
            judge_disabled_amd(st, boot);
        return;
    }

    /* The IOMMU is on. What would still stop passthrough, or the next boot? */
    const kargs_t *cfg = boot && boot->loader != BOOT_UNKNOWN ? &boot->configured_args : NULL;
    if (cfg && (arg_has(cfg, "intel_iommu", "off") || arg_has(cfg, "amd_iommu", "off") ||
                arg_has(cfg, "iommu", "off"))) {
        worsen(st, VERDICT_NEEDS_KERNEL_ARGS);
        reason(st, "%s turns the IOMMU off for the next boot: remove the off argument there and run %s",
               boot->cmdline_file ? boot->cmdline_file : "The configured command line",
               boot->refresh_command ? boot->refresh_command : "the boot refresh");
    }
    if (st->interrupt_remapping == 0) {
        worsen(st, VERDICT_NEEDS_FIRMWARE);
        reason(st, "DMA remapping is on but interrupt remapping is not (no IR- interrupts): passthrough is "
                   "unsafe and VFIO refuses devices unless allow_unsafe_interrupts is set; enable interrupt "
                   "remapping / x2APIC in the firmware setup");
    }
    if (vfio && vfio->missing.n > 0) {
        buf_t list = BUF_INIT;
        for (size_t i = 0; i < vfio->missing.n; i++)
            buf_printf(&list, "%s%s", i ? " " : "", vfio->missing.v[i]);
        worsen(st, VERDICT_NEEDS_MODULES);
        reason(st, "vfio modules neither loaded nor configured: %s; add them to /etc/modules (one per line) "
                   "and run update-initramfs -u -k all",
               list.p);
        buf_free(&list);
    } else if (vfio) {
        buf_t list = BUF_INIT;
        for (size_t i = 0; i < vfio->configured.n; i++)
            if (!strv_contains(&vfio->loaded, vfio->configured.v[i]))
                buf_printf(&list, "%s%s", list.len ? " " : "", vfio->configured.v[i]);
        if (list.len) {
            worsen(st, VERDICT_NEEDS_REBOOT);
            reason(st, "vfio modules configured but not loaded: %s; run update-initramfs -u -k all and "
                       "reboot (or load them now with modprobe)",
                   list.p);
        }
        buf_free(&list);
    }
}

void iommu_state_free(iommu_state_t *st)
{
    strv_free(&st->units);
    free(st->cmdline);
    kargs_free(&st->running_args);
    if (st->klog_available)
        klog_facts_free(&st->klog);
    strv_free(&st->reasons);
    memset(st, 0, sizeof(*st));
    st->interrupt_remapping = -1;
    st->ir_from_interrupts = -1;
}
