/* Tests of the IOMMU verdict (iommu_judge) and the proc/interrupts reader.
 * Each case builds the facts a probe would have gathered and checks the one
 * verdict and the actionable reason; arguments are compared as tokens. */
#include "testutil.h"

#include "buf.h"
#include "iommu.h"

#include <string.h>

typedef struct {
    sysinfo_t sys;
    iommu_state_t io;
    boot_info_t boot;
    vfio_info_t vfio;
} facts_t;

static void facts_init(facts_t *f, const char *vendor, const char *firmware, bool enabled,
                       boot_loader_t loader, const char *configured, const char *running)
{
    memset(f, 0, sizeof(*f));
    f->sys.cpu_vendor = vendor;
    f->sys.cpu_virtualization = 1;
    f->sys.kernel_release = xstrdup("6.1.0-18-amd64");
    f->io.firmware = firmware;
    f->io.enabled = enabled;
    f->io.interrupt_remapping = enabled ? 1 : -1;
    if (enabled) {
        strv_add(&f->io.units, strcmp(vendor, "amd") == 0 ? "ivhd0" : "dmar0");
        f->io.groups = 12;
    }
    kargs_parse(running, strlen(running), &f->io.running_args);
    f->boot.loader = loader;
    if (loader == BOOT_GRUB) {
        f->boot.loader_name = "grub";
        f->boot.cmdline_file = "/etc/default/grub";
        f->boot.refresh_command = "update-grub";
    } else if (loader == BOOT_SYSTEMD_BOOT) {
        f->boot.loader_name = "systemd-boot";
        f->boot.cmdline_file = "/etc/kernel/cmdline";
        f->boot.refresh_command = "proxmox-boot-tool refresh";
    }
    if (configured)
        kargs_parse(configured, strlen(configured), &f->boot.configured_args);
}

static void facts_free(facts_t *f)
{
    kargs_free(&f->boot.configured_args);
    strv_free(&f->vfio.missing);
    strv_free(&f->vfio.configured);
    strv_free(&f->vfio.loaded);
    free(f->sys.kernel_release);
    iommu_state_free(&f->io);
}

static bool has_reason(const facts_t *f, const char *needle)
{
    for (size_t i = 0; i < f->io.reasons.n; i++)
        if (strstr(f->io.reasons.v[i], needle))
            return true;
    return false;
}

static void judge(facts_t *f)
{
    iommu_judge(&f->io, &f->sys, &f->boot, &f->vfio);
}

/* The classic case: VT-d in firmware, nothing on the command line. */
static void test_intel_grub_needs_args(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", false, BOOT_GRUB, "quiet", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-kernel-args");
    assert_true(has_reason(&f, "ACPI DMAR table present but the kernel did not enable DMA remapping: add "
                               "intel_iommu=on to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and run update-grub"));
    facts_free(&f);
}

/* The file asks for it (with extra options), the running kernel does not. */
static void test_intel_configured_not_running_needs_reboot(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", false, BOOT_GRUB, "quiet intel_iommu=on,sm_on", "quiet");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-reboot");
    assert_true(has_reason(&f, "/etc/default/grub already asks for intel_iommu=on"));
    facts_free(&f);
}

/* intel_iommu=off in the file is replaced, not joined. */
static void test_intel_off_is_replaced(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", false, BOOT_SYSTEMD_BOOT, "root=ZFS=rpool/ROOT/pve-1 intel_iommu=off",
               "root=ZFS=rpool/ROOT/pve-1 intel_iommu=off");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-kernel-args");
    assert_true(has_reason(&f, "replace intel_iommu=off with intel_iommu=on in /etc/kernel/cmdline"));
    assert_true(has_reason(&f, "proxmox-boot-tool refresh"));
    facts_free(&f);
}

/* Substrings never count: xintel_iommu=on is another parameter. */
static void test_substring_is_not_the_argument(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", false, BOOT_GRUB, "xintel_iommu=on intel_iommu_on", "quiet");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-kernel-args");
    facts_free(&f);
}

/* Booted with the argument and a table, yet off: firmware trouble. */
static void test_running_on_but_disabled_is_firmware(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", false, BOOT_GRUB, "intel_iommu=on", "quiet intel_iommu=on");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-firmware");
    facts_free(&f);
}

static void test_no_table_needs_firmware(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", NULL, false, BOOT_GRUB, "intel_iommu=on", "intel_iommu=on");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-firmware");
    assert_true(has_reason(&f, "No ACPI DMAR table"));
    facts_free(&f);
}

static void test_other_cpu_unsupported(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "other", NULL, false, BOOT_UNKNOWN, NULL, "console=ttyS0");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "unsupported");
    facts_free(&f);
}

static void test_vmx_missing_needs_firmware(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", true, BOOT_GRUB, "quiet", "quiet");
    f.sys.cpu_virtualization = 0;
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-firmware");
    assert_true(has_reason(&f, "vmx"));
    facts_free(&f);
}

static void test_enabled_missing_modules(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "amd", "IVRS", true, BOOT_GRUB, "quiet", "quiet");
    strv_add(&f.vfio.missing, "vfio_pci");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-modules");
    assert_true(has_reason(&f, "vfio_pci"));
    facts_free(&f);
}

static void test_enabled_modules_configured_not_loaded(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "amd", "IVRS", true, BOOT_GRUB, "quiet", "quiet");
    strv_add(&f.vfio.configured, "vfio");
    strv_add(&f.vfio.configured, "vfio_pci");
    strv_add(&f.vfio.loaded, "vfio");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-reboot");
    assert_true(has_reason(&f, "configured but not loaded: vfio_pci"));
    facts_free(&f);
}

/* AMD: on by default with no arguments at all. */
static void test_amd_default_on_ready(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "amd", "IVRS", true, BOOT_GRUB, "quiet", "BOOT_IMAGE=/boot/vmlinuz quiet");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "ready");
    assert_int_equal(f.io.reasons.n, 0);
    facts_free(&f);
}

static void test_amd_off_argument(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "amd", "IVRS", false, BOOT_GRUB, "quiet amd_iommu=off", "quiet amd_iommu=off");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-kernel-args");
    assert_true(has_reason(&f, "remove amd_iommu=off from GRUB_CMDLINE_LINUX_DEFAULT"));
    facts_free(&f);

    facts_init(&f, "amd", "IVRS", false, BOOT_GRUB, "quiet", "quiet amd_iommu=off");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-reboot");
    facts_free(&f);
}

static void test_ir_off_blocks(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", true, BOOT_GRUB, "intel_iommu=on", "intel_iommu=on");
    f.io.interrupt_remapping = 0;
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-firmware");
    assert_true(has_reason(&f, "interrupt remapping"));
    facts_free(&f);
}

/* On now, but the file would turn it off at the next boot. */
static void test_enabled_but_configured_off(void **state)
{
    (void)state;
    facts_t f;
    facts_init(&f, "intel", "DMAR", true, BOOT_GRUB, "quiet intel_iommu=off", "quiet intel_iommu=on");
    judge(&f);
    assert_string_equal(verdict_name(f.io.verdict), "needs-kernel-args");
    facts_free(&f);
}

static void test_interrupts_parse(void **state)
{
    (void)state;
    const char *ir = "           CPU0       CPU1\n"
                     "  0:         35          0   IR-IO-APIC    2-edge      timer\n"
                     " 24:          0          0   IR-PCI-MSI 327680-edge      xhci_hcd\n";
    const char *plain = "           CPU0\n  0:  35  IO-APIC   2-edge  timer\n"
                        " 24:  0  PCI-MSI 327680-edge  xhci_hcd\n";
    const char *none = "           CPU0\nNMI:  0  Non-maskable interrupts\n";
    assert_int_equal(interrupts_ir_parse(ir, strlen(ir)), 1);
    assert_int_equal(interrupts_ir_parse(plain, strlen(plain)), 0);
    assert_int_equal(interrupts_ir_parse(none, strlen(none)), -1);
    assert_int_equal(interrupts_ir_parse("", 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intel_grub_needs_args),
        cmocka_unit_test(test_intel_configured_not_running_needs_reboot),
        cmocka_unit_test(test_intel_off_is_replaced),
        cmocka_unit_test(test_substring_is_not_the_argument),
        cmocka_unit_test(test_running_on_but_disabled_is_firmware),
        cmocka_unit_test(test_no_table_needs_firmware),
        cmocka_unit_test(test_other_cpu_unsupported),
        cmocka_unit_test(test_vmx_missing_needs_firmware),
        cmocka_unit_test(test_enabled_missing_modules),
        cmocka_unit_test(test_enabled_modules_configured_not_loaded),
        cmocka_unit_test(test_amd_default_on_ready),
        cmocka_unit_test(test_amd_off_argument),
        cmocka_unit_test(test_ir_off_blocks),
        cmocka_unit_test(test_enabled_but_configured_off),
        cmocka_unit_test(test_interrupts_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
