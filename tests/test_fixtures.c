/* Every fixture host, scanned whole: each test asserts the node's verdict and
 * the facts behind it (firmware table, kernel state, bootloader, vfio, groups,
 * NICs, VMs). The fixtures are described in tests/fixtures/README.md; each
 * test scans a fresh copy so nothing here depends on test order. */
#include "testutil.h"

#include "buf.h"
#include "inventory.h"

#include <string.h>

typedef struct {
    char *dir;
    inventory_t *inv;
} scan_t;

static scan_t scan_fixture(const char *name)
{
    scan_t s = {tu_fixture_copy(name), NULL};
    scan_opts_t o = {s.dir, NULL, NULL};
    char *err = NULL;
    int rc = inventory_scan(&o, &s.inv, &err);
    if (rc < 0)
        fail_msg("scan of %s failed: %s", name, err);
    assert_non_null(s.inv);
    /* A well-formed fixture reads without a single error. */
    for (size_t i = 0; i < s.inv->errors.n; i++)
        print_error("%s: %s: %s\n", name, s.inv->errors.v[i].where, s.inv->errors.v[i].what);
    assert_int_equal(s.inv->errors.n, 0);
    assert_string_equal(s.inv->sys.node, name);
    return s;
}

static void scan_done(scan_t *s)
{
    inventory_destroy(&s->inv);
    assert_null(s->inv);
    tu_rm_rf(s->dir);
    free(s->dir);
}

static const char *verdict(const scan_t *s)
{
    return verdict_name(s->inv->iommu.verdict);
}

static bool reason_has(const scan_t *s, const char *needle)
{
    for (size_t i = 0; i < s->inv->iommu.reasons.n; i++)
        if (strstr(s->inv->iommu.reasons.v[i], needle))
            return true;
    return false;
}

static const nic_t *nic(const scan_t *s, const char *addr)
{
    for (size_t i = 0; i < s->inv->nics.n; i++)
        if (strcmp(s->inv->nics.v[i].address, addr) == 0)
            return &s->inv->nics.v[i];
    fail_msg("no NIC %s", addr);
    return NULL;
}

static const vm_t *vm(const scan_t *s, const char *id)
{
    for (size_t i = 0; i < s->inv->vms.n; i++)
        if (strcmp(s->inv->vms.v[i].id, id) == 0)
            return &s->inv->vms.v[i];
    fail_msg("no VM %s", id);
    return NULL;
}

static const group_member_t *member(const scan_t *s, const char *addr)
{
    const group_member_t *m = groups_find_member(&s->inv->groups, addr);
    if (!m)
        fail_msg("%s is in no group", addr);
    return m;
}

/* Intel X58 on GRUB: VT-d in firmware, kernel not told to use it. */
static void test_intel_grub_vtd_off(void **state)
{
    (void)state;
    scan_t s = scan_fixture("intel-grub-vtd-off");
    inventory_t *inv = s.inv;
    assert_string_equal(verdict(&s), "needs-kernel-args");
    assert_true(reason_has(&s, "ACPI DMAR table present but the kernel did not enable DMA remapping: add "
                               "intel_iommu=on to GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub and run update-grub"));
    assert_string_equal(inv->sys.cpu_vendor, "intel");
    assert_int_equal(inv->sys.cpu_virtualization, 1);
    assert_string_equal(inv->iommu.firmware, "DMAR");
    assert_false(inv->iommu.enabled);
    assert_int_equal(inv->iommu.groups, 0);
    assert_null(inv->iommu.default_domain);
    assert_int_equal(inv->boot.loader, BOOT_GRUB);
    assert_string_equal(inv->boot.cmdline_file, "/etc/default/grub");
    assert_string_equal(inv->boot.refresh_command, "update-grub");
    assert_int_equal(inv->devices.n, 53);
    assert_true(nic(&s, "0000:07:00.0")->management);
    assert_false(nic(&s, "0000:08:00.0")->management);
    assert_int_equal(inv->vms.n, 1);
    assert_string_equal(inv->vms.v[0].source, "libvirt");
    assert_string_equal(inv->vms.v[0].hostpci[0].addresses.v[0], "0000:08:00.0");
    assert_false(inv->vms.v[0].migratable);
    scan_done(&s);
}

/* Proxmox on systemd-boot, IOMMU on, four I225-V ports, one passed through
 * to a running VM and configured in a stopped one as well. */
static void test_pve_intel_sdboot_i225(void **state)
{
    (void)state;
    scan_t s = scan_fixture("pve-intel-sdboot-i225");
    inventory_t *inv = s.inv;
    assert_string_equal(verdict(&s), "ready");
    assert_int_equal(inv->iommu.reasons.n, 0);
    assert_string_equal(inv->iommu.firmware, "DMAR");
    assert_true(inv->iommu.enabled);
    assert_string_equal(inv->iommu.default_domain, "identity");
    assert_int_equal(inv->iommu.interrupt_remapping, 1);
    assert_int_equal(inv->boot.loader, BOOT_SYSTEMD_BOOT);
    assert_string_equal(inv->boot.cmdline_file, "/etc/kernel/cmdline");
    assert_string_equal(inv->boot.refresh_command, "proxmox-boot-tool refresh");
    assert_int_equal(inv->vfio.missing.n, 0);
    const char *ports[] = {"0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0"};
    for (int i = 0; i < 4; i++) {
        const pci_dev_info_t *d = pci_devs_find(&inv->devices, ports[i]);
        assert_non_null(d);
        assert_int_equal(d->vendor_id, 0x8086);
        assert_int_equal(d->device_id, 0x15f3);
        assert_true(member(&s, ports[i])->alone);
        assert_int_equal(member(&s, ports[i])->slot_functions.n, 0);
        assert_false(nic(&s, ports[i])->is_vf);
    }
    assert_true(nic(&s, "0000:01:00.0")->management);
    assert_string_equal(nic(&s, "0000:01:00.0")->management_via, "vmbr0 > enp1s0");
    assert_false(nic(&s, "0000:03:00.0")->management);
    assert_null(nic(&s, "0000:02:00.0")->ifname); /* bound to vfio-pci */
    assert_string_equal(pci_devs_find(&inv->devices, "0000:02:00.0")->driver, "vfio-pci");

    const vm_t *fw = vm(&s, "100"), *standby = vm(&s, "101"), *plain = vm(&s, "102");
    assert_int_equal(fw->running, 1);
    assert_int_equal(fw->n_hostpci, 1); /* [PENDING] and snapshot lines ignored */
    assert_string_equal(fw->hostpci[0].addresses.v[0], "0000:02:00.0");
    assert_true(fw->hostpci[0].pcie);
    assert_false(fw->migratable);
    assert_int_equal(standby->running, 0);
    assert_string_equal(standby->hostpci[0].addresses.v[0], "0000:02:00.0");
    assert_int_equal(plain->running, 1);
    assert_int_equal(plain->n_hostpci, 0);
    assert_true(plain->migratable);
    scan_done(&s);
}

/* AMD: the IOMMU is on by default, no kernel arguments needed. */
static void test_amd_default_on(void **state)
{
    (void)state;
    scan_t s = scan_fixture("amd-default-on");
    inventory_t *inv = s.inv;
    assert_string_equal(verdict(&s), "ready");
    assert_string_equal(inv->sys.cpu_vendor, "amd");
    assert_string_equal(inv->iommu.firmware, "IVRS");
    assert_true(inv->iommu.enabled);
    assert_string_equal(inv->iommu.default_domain, "translated");
    assert_int_equal(inv->iommu.interrupt_remapping, 1);
    assert_null(kargs_find_last(&inv->iommu.running_args, "amd_iommu"));
    assert_null(kargs_find_last(&inv->iommu.running_args, "iommu"));
    assert_int_equal(inv->boot.loader, BOOT_GRUB);
    assert_int_equal(inv->vfio.missing.n, 0);
    assert_true(inv->nics.n >= 1);
    scan_done(&s);
}

/* An ICH7 platform without ACS: the NIC shares its group with the wifi. */
static void test_old_shared_group(void **state)
{
    (void)state;
    scan_t s = scan_fixture("old-shared-group");
    inventory_t *inv = s.inv;
    assert_string_equal(verdict(&s), "ready");
    const group_member_t *m = member(&s, "0000:01:00.0");
    assert_true(m->endpoint);
    assert_false(m->alone);
    assert_true(strv_contains(&m->blockers, "0000:02:00.0"));
    assert_false(strv_contains(&m->blockers, "0000:00:1c.0")); /* ports do not count */
    const pci_dev_info_t *port = pci_devs_find(&inv->devices, "0000:00:1c.0");
    assert_non_null(port);
    assert_false(port->has_acs);
    assert_true(inv->vms.n >= 1);
    scan_done(&s);
}

/* SR-IOV: a PF with four VFs, two of them in VMs (one through a mapping). */
static void test_sriov_82599(void **state)
{
    (void)state;
    scan_t s = scan_fixture("sriov-82599");
    inventory_t *inv = s.inv;
    assert_string_equal(verdict(&s), "ready");
    const pci_dev_info_t *pf = pci_devs_find(&inv->devices, "0000:03:00.0");
    assert_non_null(pf);
    assert_true(pf->has_sriov);
    assert_int_equal(pf->sriov_total, 63);
    assert_int_equal(pf->sriov_num, 4);
    const char *vfs[] = {"0000:03:10.0", "0000:03:10.2", "0000:03:10.4", "0000:03:10.6"};
    for (int i = 0; i < 4; i++) {
        const pci_dev_info_t *vf = pci_devs_find(&inv->devices, vfs[i]);
        assert_non_null(vf);
        assert_string_equal(vf->physfn, "0000:03:00.0");
        assert_true(nic(&s, vfs[i])->is_vf);
        assert_true(member(&s, vfs[i])->alone);
    }
    assert_string_equal(vm(&s, "200")->hostpci[0].addresses.v[0], "0000:03:10.0");
    assert_int_equal(vm(&s, "200")->running, 1);
    const vm_t *mapped = vm(&s, "201");
    assert_string_equal(mapped->hostpci[0].mapping, "sriov-vfs");
    assert_string_equal(mapped->hostpci[0].addresses.v[0], "0000:03:10.2");
    /* management through vmbr0 > bond0 > eno1/eno2 */
    size_t mgmt = 0;
    for (size_t i = 0; i < inv->nics.n; i++)
        if (inv->nics.v[i].management) {
            mgmt++;
            assert_non_null(strstr(inv->nics.v[i].management_via, "bond0"));
        }
    assert_int_equal(mgmt, 2);
    assert_false(nic(&s, "0000:03:00.0")->management);
    scan_done(&s);
}

/* No DMAR table: asking the kernel changes nothing, the firmware must. */
static void test_no_firmware_table(void **state)
{
    (void)state;
    scan_t s = scan_fixture("no-firmware-table");
    assert_string_equal(verdict(&s), "needs-firmware");
    assert_true(reason_has(&s, "No ACPI DMAR table"));
    assert_null(s.inv->iommu.firmware);
    assert_false(s.inv->iommu.enabled);
    assert_non_null(kargs_find_last(&s.inv->iommu.running_args, "intel_iommu"));
    assert_true(s.inv->nics.n >= 1);
    scan_done(&s);
}

/* A PowerPC board: nothing pcifleet can enable. */
static void test_ppc_p2020(void **state)
{
    (void)state;
    scan_t s = scan_fixture("ppc-p2020");
    assert_string_equal(verdict(&s), "unsupported");
    assert_string_equal(s.inv->sys.cpu_vendor, "other");
    assert_int_equal(s.inv->boot.loader, BOOT_UNKNOWN);
    assert_int_equal(s.inv->devices.n, 6);
    scan_done(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intel_grub_vtd_off),
        cmocka_unit_test(test_pve_intel_sdboot_i225),
        cmocka_unit_test(test_amd_default_on),
        cmocka_unit_test(test_old_shared_group),
        cmocka_unit_test(test_sriov_82599),
        cmocka_unit_test(test_no_firmware_table),
        cmocka_unit_test(test_ppc_p2020),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
