/* Tests of the node simulator's boot commands and simulated boot
 * (agent/sim_boot.c, agent/sim_profile.c; docs/simulator.md).
 *
 * Proves, on fresh copies of the fixture hosts: update-grub then a reboot
 * turns VT-d on for an Intel GRUB node whose etc/default/grub got
 * intel_iommu=on, and the agent's scan then says ready; the same edit
 * without update-grub changes nothing but the boot id; the systemd-boot
 * node boots what proxmox-boot-tool refresh put in the ESP's entries (off
 * with intel_iommu=off, on again after the next refresh); a node without
 * a DMAR table stays off; AMD comes up by default and goes off with
 * amd_iommu=off; every profile failure (boot_fails, iommu_after_boot = off,
 * interrupt_remapping = off, load_modules = false, a malformed profile)
 * shows as it should; profile groups are used; every boot has a new boot
 * id; the live root is refused, and so is writing through a link that
 * leaves the root. */
#include "testutil.h"

#include "buf.h"
#include "inventory.h"
#include "runner.h"
#include "sim.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char *slurp(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f)
        return NULL;
    buf_t b = BUF_INIT;
    buf_reset(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b);
}

static bool exists(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
    struct stat st;
    bool ok = stat(path, &st) == 0;
    free(path);
    return ok;
}

/* Replaces the first `from` in DIR/REL with `to`. */
static void edit(const char *dir, const char *rel, const char *from, const char *to)
{
    char *s = slurp(dir, rel);
    assert_non_null(s);
    char *at = strstr(s, from);
    assert_non_null(at);
    char *n = xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
    tu_write(dir, rel, n);
    free(n);
    free(s);
}

static int run(const char *root, const char *const *argv, char **output)
{
    runner_t *r = NULL;
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_SIMULATE, root, &r, &err), 0);
    runner_result_t res = RUNNER_RESULT_INIT;
    assert_int_equal(runner_run(r, argv, &res), 0);
    int st = res.status;
    if (output)
        *output = xstrdup(res.output);
    runner_result_clear(&res);
    runner_destroy(&r);
    return st;
}

#define RUN0(root, ...) assert_int_equal(run(root, (const char *const[]){__VA_ARGS__, NULL}, NULL), 0)

static char *verdict(const char *root)
{
    scan_opts_t o = {root, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&o, &inv, &err), 0);
    char *v = xstrdup(verdict_name(inv->iommu.verdict));
    inventory_destroy(&inv);
    return v;
}

static void assert_verdict(const char *root, const char *want)
{
    char *v = verdict(root);
    if (strcmp(v, want) != 0) {
        scan_opts_t o = {root, NULL, NULL};
        inventory_t *inv = NULL;
        char *err = NULL;
        inventory_scan(&o, &inv, &err);
        for (size_t i = 0; i < inv->iommu.reasons.n; i++)
            fprintf(stderr, "reason: %s\n", inv->iommu.reasons.v[i]);
        inventory_destroy(&inv);
    }
    assert_string_equal(v, want);
    free(v);
}

static const char *VFIO_61 = "vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n";

static void add_vfio(const char *root)
{
    char *m = slurp(root, "etc/modules");
    char *n = xasprintf("%s%s", m ? m : "", VFIO_61);
    tu_write(root, "etc/modules", n);
    free(n);
    free(m);
}

static void test_grub_refresh_then_reboot(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    char *id0 = slurp(root, "proc/sys/kernel/random/boot_id");
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
         "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"");
    add_vfio(root);
    RUN0(root, "update-grub");
    char *cfg = slurp(root, "boot/grub/grub.cfg");
    assert_non_null(strstr(cfg, "\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=UUID=3f9b2c1e-5d7a-4e8b-9c2d-1a6f0e4b7d32 "
                                "ro quiet intel_iommu=on\n"));
    assert_non_null(strstr(cfg, "ro single\n")); /* recovery entries get GRUB_CMDLINE_LINUX only */
    assert_non_null(strstr(cfg, "### END /etc/grub.d/40_custom ###")); /* the rest stays */
    free(cfg);
    RUN0(root, "update-initramfs", "-u", "-k", "all");
    char *rec = slurp(root, "boot/pcifleet-sim/initramfs.modules");
    assert_non_null(strstr(rec, "\nvfio_pci\n"));
    free(rec);
    char *out = NULL;
    assert_int_equal(run(root, (const char *const[]){"systemctl", "reboot", NULL}, &out), 0);
    assert_non_null(strstr(out, "IOMMU on"));
    free(out);

    char *cl = slurp(root, "proc/cmdline");
    assert_string_equal(cl, "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=3f9b2c1e-5d7a-4e8b-9c2d-1a6f0e4b7d32 ro "
                            "quiet intel_iommu=on\n");
    free(cl);
    char *id1 = slurp(root, "proc/sys/kernel/random/boot_id");
    assert_int_equal(strlen(id1), 37);
    assert_string_not_equal(id0, id1);
    assert_true(exists(root, "sys/class/iommu/dmar0/devices/0000:00:00.0"));
    assert_true(exists(root, "sys/bus/pci/devices/0000:00:00.0/iommu_group/devices/0000:00:00.0"));
    char *irq = slurp(root, "proc/interrupts");
    assert_non_null(strstr(irq, "IR-IO-APIC"));
    assert_non_null(strstr(irq, "IR-PCI-MSI"));
    free(irq);
    char *mods = slurp(root, "proc/modules");
    assert_non_null(strstr(mods, "\nvfio_pci 16384 0 - Live 0x0000000000000000\n"));
    assert_non_null(strstr(mods, "r8169 106496 0 - Live")); /* the earlier lines stay */
    free(mods);
    char *log = slurp(root, "dmesg.txt");
    assert_non_null(strstr(log, "DMAR: IOMMU enabled"));
    assert_non_null(strstr(log, "Kernel command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64"));
    assert_non_null(strstr(log, "ACPI: DMAR 0x")); /* firmware lines stay */
    free(log);
    assert_verdict(root, "ready");

    /* A second boot rebuilds the same state, with another id. */
    RUN0(root, "reboot");
    char *id2 = slurp(root, "proc/sys/kernel/random/boot_id");
    assert_string_not_equal(id1, id2);
    assert_verdict(root, "ready");
    free(id0);
    free(id1);
    free(id2);
    tu_rm_rf(root);
    free(root);
}

static void test_edit_without_refresh(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    char *cl0 = slurp(root, "proc/cmdline");
    char *id0 = slurp(root, "proc/sys/kernel/random/boot_id");
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
         "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"");
    RUN0(root, "systemctl", "reboot");
    char *cl1 = slurp(root, "proc/cmdline");
    assert_string_equal(cl0, cl1);
    char *id1 = slurp(root, "proc/sys/kernel/random/boot_id");
    assert_string_not_equal(id0, id1);
    assert_false(exists(root, "sys/class/iommu/dmar0"));
    assert_false(exists(root, "sys/kernel/iommu_groups/0"));
    assert_verdict(root, "needs-reboot"); /* configured, never refreshed */
    free(cl0);
    free(cl1);
    free(id0);
    free(id1);
    tu_rm_rf(root);
    free(root);
}

static void test_sdboot_refresh(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("pve-intel-sdboot-i225");
    assert_verdict(root, "ready");
    tu_write(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n");
    /* Without the refresh the ESP still boots the old arguments. */
    RUN0(root, "systemctl", "reboot");
    assert_true(exists(root, "sys/class/iommu/dmar1"));
    RUN0(root, "proxmox-boot-tool", "refresh");
    char *e = slurp(root, "boot/efi/loader/entries/proxmox-6.8.12-4-pve.conf");
    assert_non_null(strstr(e, "\noptions  root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n"));
    assert_non_null(strstr(e, "\nlinux    /EFI/proxmox/6.8.12-4-pve/vmlinuz-6.8.12-4-pve\n"));
    free(e);
    RUN0(root, "systemctl", "reboot");
    char *cl = slurp(root, "proc/cmdline");
    assert_string_equal(cl, "initrd=\\EFI\\proxmox\\6.8.12-4-pve\\initrd.img-6.8.12-4-pve root=ZFS=rpool/ROOT/pve-1 "
                            "boot=zfs intel_iommu=off\n");
    free(cl);
    assert_false(exists(root, "sys/class/iommu/dmar0"));
    assert_false(exists(root, "sys/kernel/iommu_groups"));
    assert_false(exists(root, "sys/bus/pci/devices/0000:02:00.0/iommu_group"));
    char *irq = slurp(root, "proc/interrupts");
    assert_null(strstr(irq, "IR-PCI-MSI"));
    free(irq);
    assert_verdict(root, "needs-kernel-args");

    /* 6.8 -pve kernels enable VT-d by default: dropping the off is enough. */
    tu_write(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n");
    RUN0(root, "proxmox-boot-tool", "refresh");
    RUN0(root, "systemctl", "reboot");
    assert_true(exists(root, "sys/class/iommu/dmar0"));
    assert_true(exists(root, "sys/class/iommu/dmar1"));
    char *type = slurp(root, "sys/kernel/iommu_groups/0/type");
    assert_string_equal(type, "identity\n");
    free(type);
    /* The graphics unit's scope keeps 00:02.0; the rest is on dmar1. */
    assert_true(exists(root, "sys/class/iommu/dmar0/devices/0000:00:02.0"));
    assert_true(exists(root, "sys/class/iommu/dmar1/devices/0000:01:00.0"));
    assert_verdict(root, "ready");
    tu_rm_rf(root);
    free(root);
}

static void test_no_firmware_table(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("no-firmware-table");
    RUN0(root, "update-grub");
    RUN0(root, "systemctl", "reboot");
    char *cl = slurp(root, "proc/cmdline");
    assert_non_null(strstr(cl, "intel_iommu=on"));
    free(cl);
    assert_false(exists(root, "sys/class/iommu/dmar0"));
    assert_false(exists(root, "sys/kernel/iommu_groups/0"));
    char *log = slurp(root, "dmesg.txt");
    assert_non_null(strstr(log, "DMAR: IOMMU enabled")); /* printed for the argument alone */
    free(log);
    assert_verdict(root, "needs-firmware");
    tu_rm_rf(root);
    free(root);
}

static void test_amd(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("amd-default-on");
    RUN0(root, "systemctl", "reboot");
    assert_true(exists(root, "sys/class/iommu/ivhd0"));
    assert_false(exists(root, "sys/bus/pci/devices/0000:00:00.2/iommu_group")); /* the IOMMU itself */
    assert_verdict(root, "ready");
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
         "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=off\"");
    RUN0(root, "update-grub");
    RUN0(root, "systemctl", "reboot");
    assert_false(exists(root, "sys/class/iommu/ivhd0"));
    assert_verdict(root, "needs-kernel-args");

    /* GRUB_CMDLINE_LINUX reaches recovery entries too; quoting as a shell reads it. */
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet amd_iommu=off\"", "GRUB_CMDLINE_LINUX_DEFAULT='quiet'");
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"", "PT=iommu=pt\nGRUB_CMDLINE_LINUX=\"$PT\"");
    RUN0(root, "update-grub");
    char *cfg = slurp(root, "boot/grub/grub.cfg");
    assert_non_null(strstr(cfg, "\tlinux\t/boot/vmlinuz-6.5.13-5-pve root=/dev/mapper/pve-root ro iommu=pt quiet\n"));
    assert_non_null(strstr(cfg, "\tlinux\t/boot/vmlinuz-6.5.13-5-pve root=/dev/mapper/pve-root ro single iommu=pt\n"));
    free(cfg);
    RUN0(root, "systemctl", "reboot");
    char *type = slurp(root, "sys/kernel/iommu_groups/0/type");
    assert_string_equal(type, "identity\n");
    free(type);
    assert_verdict(root, "ready");
    tu_rm_rf(root);
    free(root);
}

/* An intel-grub-vtd-off copy with everything configured and refreshed. */
static char *prepared(const char *profile)
{
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    edit(root, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"",
         "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"");
    add_vfio(root);
    RUN0(root, "update-grub");
    if (profile)
        tu_write(root, SIM_PROFILE_FILE, profile);
    return root;
}

static void test_profile_failures(void **state)
{
    (void)state;
    char *root = prepared("# the node never comes back\nboot_fails = true\nboot_delay_ms = 1500\n");
    char *cl0 = slurp(root, "proc/cmdline");
    char *id0 = slurp(root, "proc/sys/kernel/random/boot_id");
    char *out = NULL;
    assert_int_equal(run(root, (const char *const[]){"systemctl", "reboot", NULL}, &out), 0);
    assert_non_null(strstr(out, "does not come back"));
    free(out);
    char *cl1 = slurp(root, "proc/cmdline");
    char *id1 = slurp(root, "proc/sys/kernel/random/boot_id");
    assert_string_equal(cl0, cl1);
    assert_string_equal(id0, id1);
    free(cl0);
    free(cl1);
    free(id0);
    free(id1);
    tu_rm_rf(root);
    free(root);

    root = prepared("iommu_after_boot = off\n");
    RUN0(root, "systemctl", "reboot");
    assert_false(exists(root, "sys/class/iommu/dmar0"));
    assert_verdict(root, "needs-firmware"); /* booted with the argument, still off */
    tu_rm_rf(root);
    free(root);

    root = prepared("interrupt_remapping = off\n");
    RUN0(root, "systemctl", "reboot");
    assert_true(exists(root, "sys/class/iommu/dmar0"));
    char *irq = slurp(root, "proc/interrupts");
    assert_null(strstr(irq, "IR-"));
    free(irq);
    assert_verdict(root, "needs-firmware");
    tu_rm_rf(root);
    free(root);

    root = prepared("load_modules = no\n");
    RUN0(root, "systemctl", "reboot");
    assert_verdict(root, "needs-reboot"); /* configured, not loaded */
    tu_rm_rf(root);
    free(root);

    /* A typo must not give a normal boot. */
    root = prepared("boot_fail = true\n");
    char *c0 = slurp(root, "proc/cmdline");
    assert_int_not_equal(run(root, (const char *const[]){"systemctl", "reboot", NULL}, &out), 0);
    assert_non_null(strstr(out, "unknown key 'boot_fail'"));
    free(out);
    char *c1 = slurp(root, "proc/cmdline");
    assert_string_equal(c0, c1);
    free(c0);
    free(c1);
    tu_rm_rf(root);
    free(root);
}

static void test_profile_groups(void **state)
{
    (void)state;
    char *root = prepared("group = 7 0000:00:00.0 0000:00:01.0\ngroup = 9 0000:07:00.0\n");
    RUN0(root, "systemctl", "reboot");
    assert_true(exists(root, "sys/kernel/iommu_groups/7/devices/0000:00:01.0"));
    assert_true(exists(root, "sys/kernel/iommu_groups/9/devices/0000:07:00.0"));
    assert_false(exists(root, "sys/kernel/iommu_groups/0"));
    assert_false(exists(root, "sys/bus/pci/devices/0000:08:00.0/iommu_group"));
    tu_rm_rf(root);
    free(root);

    sim_profile_t p;
    char *err = NULL;
    const char *bad[] = {"group = x 0000:00:00.0\n", "group = 1 00:00.0\n", "boot_delay_ms = 700000\n",
                         "iommu_after_boot = maybe\n", "novalue\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(sim_profile_parse(bad[i], strlen(bad[i]), &p, &err), -EINVAL);
        assert_non_null(err);
        free(err);
        sim_profile_free(&p);
    }
    const char *good = "boot_delay_ms = 250 # late\n\ninterrupt_remapping = off\ngroup = 3 0000:00:1C.0,0000:01:00.0\n";
    assert_int_equal(sim_profile_parse(good, strlen(good), &p, &err), 0);
    assert_int_equal(p.boot_delay_ms, 250);
    assert_false(p.interrupt_remapping);
    assert_int_equal(p.n_groups, 1);
    assert_string_equal(p.groups[0].devices.v[0], "0000:00:1c.0");
    sim_profile_free(&p);
}

static void test_live_root_refused(void **state)
{
    (void)state;
    char *report = NULL;
    assert_int_equal(sim_boot_dir("/", &report), -EPERM);
    assert_non_null(report);
    free(report);
    assert_int_equal(sim_boot_dir("//", &report), -EPERM);
    free(report);
    runner_t *r = NULL;
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_SIMULATE, "/", &r, &err), -EPERM);
    free(err);
}

/* A fixture whose sys/class is a link out of the root: the boot must not
 * write there. */
static void test_links_out_of_root(void **state)
{
    (void)state;
    char *root = prepared(NULL);
    char *outside = tu_tmpdir();
    char *cls = xasprintf("%s/sys/class", root);
    tu_rm_rf(cls);
    assert_int_equal(symlink(outside, cls), 0);
    char *out = NULL;
    assert_int_not_equal(run(root, (const char *const[]){"systemctl", "reboot", NULL}, &out), 0);
    assert_non_null(strstr(out, "IOMMU state"));
    free(out);
    char *probe = xasprintf("%s/iommu", outside);
    struct stat st;
    assert_int_not_equal(lstat(probe, &st), 0);
    free(probe);
    free(cls);
    tu_rm_rf(outside);
    free(outside);
    tu_rm_rf(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grub_refresh_then_reboot),
        cmocka_unit_test(test_edit_without_refresh),
        cmocka_unit_test(test_sdboot_refresh),
        cmocka_unit_test(test_no_firmware_table),
        cmocka_unit_test(test_amd),
        cmocka_unit_test(test_profile_failures),
        cmocka_unit_test(test_profile_groups),
        cmocka_unit_test(test_live_root_refused),
        cmocka_unit_test(test_links_out_of_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
