/* A broken host tree gives a report with errors, never a crash or an exit
 * from inside libpci: missing sysfs files, garbage config space, a dangling
 * link, a truncated VM config, a 1 GB file, empty files. Each damage must show up in
 * errors[] naming the path, and everything else must still be reported. */
#include "testutil.h"

#include "buf.h"
#include "inventory.h"

#include <string.h>

static bool error_at(const inventory_t *inv, const char *where_part)
{
    for (size_t i = 0; i < inv->errors.n; i++)
        if (strstr(inv->errors.v[i].where, where_part))
            return true;
    return false;
}

static void test_damaged_tree(void **state)
{
    (void)state;
    char *dir = tu_fixture_copy("pve-intel-sdboot-i225");
    const char *D = "sys/bus/pci/devices";
    char *cmd;
    /* 1: a function without its vendor file (libpci would exit) */
    cmd = xasprintf("rm -f '%s/%s/0000:03:00.0/vendor'", dir, D);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* 2: garbage config space, 7 bytes long */
    cmd = xasprintf("printf 'garbage' > '%s/%s/0000:04:00.0/config'", dir, D);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* 3: a dangling driver link */
    cmd = xasprintf("rm -f '%s/%s/0000:01:00.0/driver' && ln -s ../../../bus/pci/drivers/nowhere "
                    "'%s/%s/0000:01:00.0/driver' && rm -rf '%s/sys/bus/pci/drivers/nowhere'",
                    dir, D, dir, D, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* 4: a truncated VM config (cut mid-line) */
    cmd = xasprintf("head -c 37 '%s/etc/pve/qemu-server/101.conf' > '%s/t' && mv '%s/t' "
                    "'%s/etc/pve/qemu-server/101.conf'",
                    dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* 5: a 1 GB (sparse) kernel command line file */
    cmd = xasprintf("rm -f '%s/proc/cmdline' && truncate -s 1G '%s/proc/cmdline'", dir, dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* 6: an iommu_group link to nowhere */
    cmd = xasprintf("rm -f '%s/%s/0000:01:00.0/iommu_group' && ln -s ../../../kernel/iommu_groups/x9 "
                    "'%s/%s/0000:01:00.0/iommu_group'",
                    dir, D, dir, D);
    assert_int_equal(system(cmd), 0);
    free(cmd);

    /* 7: empty IOMMU group type files (the type is then unknown, not
     * whatever the read buffer held: found by fuzz_sysfs) */
    cmd = xasprintf("for t in '%s'/sys/kernel/iommu_groups/*/type; do : > \"$t\"; done", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);

    scan_opts_t o = {dir, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&o, &inv, &err), 0);
    assert_true(inv->groups.n > 0);
    for (size_t i = 0; i < inv->groups.n; i++)
        assert_null(inv->groups.v[i].type);
    assert_true(error_at(inv, "0000:03:00.0/vendor"));
    assert_true(error_at(inv, "/proc/cmdline"));
    assert_true(error_at(inv, "/etc/pve/qemu-server/101.conf"));
    assert_true(error_at(inv, "0000:01:00.0/iommu_group"));
    /* The function without vendor is left out; everything else is there. */
    assert_null(pci_devs_find(&inv->devices, "0000:03:00.0"));
    assert_non_null(pci_devs_find(&inv->devices, "0000:01:00.0"));
    assert_non_null(pci_devs_find(&inv->devices, "0000:02:00.0"));
    /* Garbage config: still listed, with what sysfs said. */
    const pci_dev_info_t *g = pci_devs_find(&inv->devices, "0000:04:00.0");
    assert_non_null(g);
    assert_int_equal(g->vendor_id, 0x8086);
    /* Dangling driver link: the name is still what the link says. */
    assert_string_equal(pci_devs_find(&inv->devices, "0000:01:00.0")->driver, "nowhere");
    assert_null(inv->iommu.cmdline);
    assert_true(inv->vms.n >= 2);

    /* And the JSON of a damaged node is still one valid document with errors. */
    json_t *j = json_new(0);
    inventory_to_json(inv, j);
    assert_non_null(strstr(json_text(j, NULL), "\"errors\":[{\"where\":"));
    json_destroy(&j);
    inventory_destroy(&inv);
    tu_rm_rf(dir);
    free(dir);
}

/* A root that does not exist is refused with a message, not scanned. */
static void test_missing_root(void **state)
{
    (void)state;
    scan_opts_t o = {"/nonexistent/pcifleet-root", NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_true(inventory_scan(&o, &inv, &err) < 0);
    assert_null(inv);
    assert_non_null(strstr(err, "/nonexistent/pcifleet-root"));
    free(err);
}

/* An empty directory is a node with nothing readable: errors, no crash. */
static void test_empty_root(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    scan_opts_t o = {dir, "empty", NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&o, &inv, &err), 0);
    assert_int_equal(inv->devices.n, 0);
    assert_true(inv->errors.n > 0);
    assert_true(error_at(inv, "/sys/bus/pci/devices"));
    inventory_destroy(&inv);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damaged_tree),
        cmocka_unit_test(test_missing_root),
        cmocka_unit_test(test_empty_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
