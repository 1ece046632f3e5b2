/* Tests of the NIC probe: default routes from /proc/net/route and
 * ipv6_route, and management NICs found through bridges, bonds and VLANs. */
#include "testutil.h"

#include "buf.h"
#include "net.h"

#include <string.h>
#include <unistd.h>

static void test_route_parse(void **state)
{
    (void)state;
    const char *route =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "vmbr0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "vmbr0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eno2\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
    strv_t out = STRV_INIT;
    route_default_ifaces_parse(route, strlen(route), &out);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0], "vmbr0");
    strv_free(&out);

    /* A header-only or garbage table has no default route. */
    route_default_ifaces_parse("Iface\tDestination\n", 18, &out);
    route_default_ifaces_parse("\x01\x02 00000000 x y z w v 00000000", 30, &out);
    assert_int_equal(out.n, 0);
    strv_free(&out);
}

static void test_route6_parse(void **state)
{
    (void)state;
    const char *r6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                     "fe800000000000000000000000000001 00000400 00000001 00000000 00000003 bond0\n"
                     "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                     "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n"
                     "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
                     "00000000000000000000000000000000 00000100 00000001 00000000 00000001 eno1\n";
    strv_t out = STRV_INIT;
    route6_default_ifaces_parse(r6, strlen(r6), &out);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0], "bond0");
    strv_free(&out);
}

static void mklink(const char *root, const char *rel, const char *target)
{
    char *path = xasprintf("%s/%s", root, rel);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    char *cmd = xasprintf("mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(symlink(target, path), 0);
    free(cmd);
    free(dir);
    free(path);
}

static void add_dev(pci_devs_t *d, const char *addr, unsigned cls, const char *physfn)
{
    d->v = xrealloc(d->v, (d->n + 1) * sizeof(*d->v));
    pci_dev_info_t *x = &d->v[d->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->address, sizeof(x->address), "%s", addr);
    pci_parse_address(addr, &x->domain, &x->bus, &x->dev, &x->func);
    x->class_code = cls;
    x->iommu_group = -1;
    x->physfn = physfn ? xstrdup(physfn) : NULL;
}

/* vmbr0 (route) > bond0 > eno1 + eno2; eno3 is a separate NIC; a VF without
 * netdev is still a NIC; a VLAN on top of the bridge is followed too. */
static void test_management_through_bridge_and_bond(void **state)
{
    (void)state;
    char *r = tu_tmpdir();
    tu_write(r, "proc/net/route",
             "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
             "vmbr0.10\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
    mklink(r, "sys/class/net/vmbr0.10/lower_vmbr0", "../vmbr0");
    mklink(r, "sys/class/net/vmbr0/brif/bond0", "../../bond0/brport");
    tu_write(r, "sys/class/net/bond0/bonding/slaves", "eno1 eno2\n");
    const char *nics[] = {"eno1", "eno2", "eno3"};
    const char *addrs[] = {"0000:01:00.0", "0000:01:00.1", "0000:02:00.0"};
    for (int i = 0; i < 3; i++) {
        char rel[96], tgt[96];
        snprintf(rel, sizeof(rel), "sys/class/net/%s/device", nics[i]);
        snprintf(tgt, sizeof(tgt), "../../../bus/pci/devices/%s", addrs[i]);
        mklink(r, rel, tgt);
        snprintf(rel, sizeof(rel), "sys/class/net/%s/address", nics[i]);
        tu_write(r, rel, "3c:ec:ef:00:00:01\n");
        snprintf(rel, sizeof(rel), "sys/class/net/%s/operstate", nics[i]);
        tu_write(r, rel, "up\n");
        snprintf(rel, sizeof(rel), "sys/class/net/%s/speed", nics[i]);
        tu_write(r, rel, i == 2 ? "-1\n" : "1000\n");
    }
    pci_devs_t devs = PCI_DEVS_INIT;
    add_dev(&devs, "0000:00:1f.0", 0x0601, NULL);
    add_dev(&devs, "0000:01:00.0", 0x0200, NULL);
    add_dev(&devs, "0000:01:00.1", 0x0200, NULL);
    add_dev(&devs, "0000:02:00.0", 0x0200, NULL);
    add_dev(&devs, "0000:02:10.0", 0x0200, "0000:02:00.0");

    root_t *root;
    assert_int_equal(root_new(r, &root), 0);
    nics_t n = NICS_INIT;
    errs_t e = ERRS_INIT;
    assert_int_equal(net_probe(root, &devs, &n, &e), 0);
    assert_int_equal(n.n, 4);
    assert_string_equal(n.v[0].ifname, "eno1");
    assert_true(n.v[0].management);
    assert_string_equal(n.v[0].management_via, "vmbr0.10 > vmbr0 > bond0 > eno1");
    assert_int_equal(n.v[0].speed_mbps, 1000);
    assert_true(n.v[1].management);
    assert_false(n.v[2].management);
    assert_int_equal(n.v[2].speed_mbps, -1);
    assert_null(n.v[3].ifname);
    assert_true(n.v[3].is_vf);
    assert_false(n.v[3].management);
    nics_free(&n);
    errs_free(&e);
    root_destroy(&root);
    pci_devs_free(&devs);
    tu_rm_rf(r);
    free(r);
}

/* A loop of lower links (a > b > a) ends; nothing is marked twice. */
static void test_walk_is_bounded(void **state)
{
    (void)state;
    char *r = tu_tmpdir();
    tu_write(r, "proc/net/route", "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                                  "a\t00000000\t01000000\t0003\t0\t0\t0\t00000000\n");
    mklink(r, "sys/class/net/a/lower_b", "../b");
    mklink(r, "sys/class/net/b/lower_a", "../a");
    pci_devs_t devs = PCI_DEVS_INIT;
    root_t *root;
    assert_int_equal(root_new(r, &root), 0);
    nics_t n = NICS_INIT;
    errs_t e = ERRS_INIT;
    assert_int_equal(net_probe(root, &devs, &n, &e), 0);
    assert_int_equal(n.n, 0);
    assert_int_equal(n.default_ifaces.n, 1);
    nics_free(&n);
    errs_free(&e);
    root_destroy(&root);
    tu_rm_rf(r);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_parse),
        cmocka_unit_test(test_route6_parse),
        cmocka_unit_test(test_management_through_bridge_and_bond),
        cmocka_unit_test(test_walk_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
