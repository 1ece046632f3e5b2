/* Tests of IOMMU group analysis: which endpoints can be passed alone, which
 * same-slot functions go along, which other endpoints block. */
#include "testutil.h"

#include "buf.h"
#include "groups.h"

#include <string.h>

static void add_dev(pci_devs_t *d, const char *addr, unsigned cls, int hdr, long group)
{
    d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
    pci_dev_info_t *x = &d->v[d->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->address, sizeof(x->address), "%s", addr);
    pci_parse_address(addr, &x->domain, &x->bus, &x->dev, &x->func);
    x->class_code = cls;
    x->header_type = hdr;
    x->iommu_group = group;
}

static void member(const char *r, long g, const char *addr)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%ld/devices/%s", g, addr);
    tu_write(r, rel, "");
}

static void test_group_analysis(void **state)
{
    (void)state;
    char *r = tu_tmpdir();
    /* group 3: root port + NIC + wifi behind ports without ACS */
    member(r, 3, "0000:00:1c.0");
    member(r, 3, "0000:00:1c.1");
    member(r, 3, "0000:01:00.0");
    member(r, 3, "0000:02:00.0");
    /* group 7: GPU and its audio function, same slot */
    member(r, 7, "0000:06:00.0");
    member(r, 7, "0000:06:00.1");
    /* group 10: one NIC alone */
    member(r, 10, "0000:07:00.0");
    tu_write(r, "sys/kernel/iommu_groups/10/type", "DMA-FQ\n");
    pci_devs_t devs = PCI_DEVS_INIT;
    add_dev(&devs, "0000:00:1c.0", 0x0604, 1, 3);
    add_dev(&devs, "0000:00:1c.1", 0x0604, 1, 3);
    add_dev(&devs, "0000:01:00.0", 0x0200, 0, 3);
    add_dev(&devs, "0000:02:00.0", 0x0280, 0, 3);
    add_dev(&devs, "0000:06:00.0", 0x0300, 0, 7);
    add_dev(&devs, "0000:06:00.1", 0x0403, 0, 7);
    add_dev(&devs, "0000:07:00.0", 0x0200, 0, 10);
    /* a device whose link names a group the folders do not list */
    add_dev(&devs, "0000:08:00.0", 0x0200, 0, 11);

    root_t *root;
    assert_int_equal(root_new(r, &root), 0);
    iommu_groups_t g = IOMMU_GROUPS_INIT;
    errs_t e = ERRS_INIT;
    assert_int_equal(groups_probe(root, &devs, &g, &e), 0);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.v[0].id, 3);
    assert_int_equal(g.v[3].id, 11);
    assert_int_equal(e.n, 1); /* the unlisted link is reported */

    const group_member_t *nic = groups_find_member(&g, "0000:01:00.0");
    assert_non_null(nic);
    assert_true(nic->endpoint);
    assert_false(nic->alone);
    assert_int_equal(nic->blockers.n, 1);
    assert_string_equal(nic->blockers.v[0], "0000:02:00.0");
    assert_false(groups_find_member(&g, "0000:00:1c.0")->endpoint);
    assert_false(g.v[0].isolated);

    const group_member_t *gpu = groups_find_member(&g, "0000:06:00.0");
    assert_true(gpu->alone);
    assert_int_equal(gpu->slot_functions.n, 1);
    assert_string_equal(gpu->slot_functions.v[0], "0000:06:00.1");
    assert_true(g.v[1].isolated);

    assert_true(groups_find_member(&g, "0000:07:00.0")->alone);
    assert_string_equal(g.v[2].type, "DMA-FQ");

    groups_free(&g);
    errs_free(&e);
    root_destroy(&root);
    pci_devs_free(&devs);
    tu_rm_rf(r);
    free(r);
}

/* A group folder with a garbage name or member is reported, not fatal. */
static void test_odd_tree(void **state)
{
    (void)state;
    char *r = tu_tmpdir();
    tu_write(r, "sys/kernel/iommu_groups/notanumber/devices/x", "");
    member(r, 1, "garbage");
    member(r, 1, "0000:00:02.0");
    pci_devs_t devs = PCI_DEVS_INIT;
    root_t *root;
    assert_int_equal(root_new(r, &root), 0);
    iommu_groups_t g = IOMMU_GROUPS_INIT;
    errs_t e = ERRS_INIT;
    groups_probe(root, &devs, &g, &e);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].n_members, 1);
    /* unknown to libpci: counted as an endpoint, never as clean by accident */
    assert_true(g.v[0].members[0].endpoint);
    assert_int_equal(e.n, 2);
    groups_free(&g);
    errs_free(&e);
    root_destroy(&root);
    tu_rm_rf(r);
    free(r);
}

/* Only the kernel's own spelling of a group number names a group: "07" and
 * "+7" are not group 7 (fuzz_sysfs found that a second folder for one id
 * read the first one's files and leaked its type). */
static void test_group_names_canonical(void **state)
{
    (void)state;
    char *r = tu_tmpdir();
    tu_write(r, "sys/kernel/iommu_groups/7/type", "DMA\n");
    member(r, 7, "0000:00:02.0");
    tu_write(r, "sys/kernel/iommu_groups/07/type", "identity\n");
    tu_write(r, "sys/kernel/iommu_groups/07/devices/0000:00:03.0", "");
    tu_write(r, "sys/kernel/iommu_groups/+7/type", "identity\n");
    tu_write(r, "sys/kernel/iommu_groups/99999999999999999999/type", "DMA\n");
    tu_write(r, "sys/kernel/iommu_groups/99999999999999999998/type", "DMA\n");
    pci_devs_t devs = PCI_DEVS_INIT;
    root_t *root;
    assert_int_equal(root_new(r, &root), 0);
    iommu_groups_t g = IOMMU_GROUPS_INIT;
    errs_t e = ERRS_INIT;
    groups_probe(root, &devs, &g, &e);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].id, 7);
    assert_string_equal(g.v[0].type, "DMA");
    assert_int_equal(g.v[0].n_members, 1);
    assert_string_equal(g.v[0].members[0].address, "0000:00:02.0");
    /* "+7", "07" and both out-of-range names, each skipped with a reason */
    assert_int_equal(e.n, 4);
    for (size_t i = 0; i < e.n; i++)
        assert_non_null(strstr(e.v[i].what, "is not a group number"));
    groups_free(&g);
    errs_free(&e);
    root_destroy(&root);
    tu_rm_rf(r);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_analysis),
        cmocka_unit_test(test_odd_tree),
        cmocka_unit_test(test_group_names_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
