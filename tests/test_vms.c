/* Tests for agent/probe/vms (pve.c, libvirt.c, vms.c): Proxmox VM configs,
 * hostpci values, pci.cfg mappings, libvirt domain XML, the walk over a root,
 * and the JSON. Inputs are realistic configs in tests/data/vms/. */
#include "testutil.h"

#include "buf.h"
#include "errs.h"
#include "json.h"
#include "root.h"
#include "strv.h"
#include "vms.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static char *data_read(const char *name, size_t *len)
{
    const char *src = getenv("PCIFLEET_SOURCE");
    assert_non_null(src);
    char *path = xasprintf("%s/tests/data/vms/%s", src, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    buf_reset(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    free(path);
    if (len)
        *len = b.len;
    return buf_steal(&b);
}

/* The node's functions in the tests: some slots sparse (02:00 has .0 .1 .3). */
static void present_init(strv_t *p)
{
    static const char *const addrs[] = {
        "0000:01:00.0", "0000:01:00.1", "0000:02:00.3", "0000:02:00.0", "0000:02:00.1",
        "0000:03:00.0", "0000:04:00.0", "0000:04:00.1", "0000:41:00.0", "0000:41:00.1",
        "0000:0a:00.0", "10000:01:00.0",
    };
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
        strv_add(p, addrs[i]);
}

static void maps_load(const char *node, pve_mappings_t *maps)
{
    size_t len;
    char *cfg = data_read("pci.cfg", &len);
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_mappings_parse(cfg, len, node, maps, &errs), 0);
    assert_int_equal(errs.n, 0);
    errs_free(&errs);
    free(cfg);
}

static bool any_contains(const strv_t *l, const char *needle)
{
    for (size_t i = 0; i < l->n; i++)
        if (strstr(l->v[i], needle))
            return true;
    return false;
}

static bool errs_contain(const errs_t *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->v[i].what, needle))
            return true;
    return false;
}

static void assert_addrs(const hostpci_t *h, const char *const *want, size_t n)
{
    assert_int_equal(h->addresses.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(h->addresses.v[i], want[i]);
}

/* ---- Proxmox config ---- */

/* Only the part before the first [section] counts: the [PENDING] hostpci2
 * and the snapshot's hostpci0/machine/name must not leak into the VM. */
static void test_pve_live_section_only(void **state)
{
    (void)state;
    size_t len;
    char *conf = data_read("100.conf", &len);
    strv_t present = STRV_INIT;
    present_init(&present);
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;

    assert_int_equal(pve_conf_parse(conf, len, "100", NULL, &present, &vm, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_string_equal(vm.source, "proxmox");
    assert_string_equal(vm.id, "100");
    assert_string_equal(vm.name, "fw01");
    assert_string_equal(vm.machine, "q35");
    assert_int_equal(vm.running, -1);
    assert_int_equal(vm.n_hostpci, 2);

    assert_int_equal(vm.hostpci[0].index, 0);
    assert_true(vm.hostpci[0].pcie);
    assert_string_equal(vm.hostpci[0].raw, "0000:01:00.0,pcie=1");
    assert_null(vm.hostpci[0].mapping);
    const char *const h0[] = {"0000:01:00.0"};
    assert_addrs(&vm.hostpci[0], h0, 1);

    /* "02:00" = every function of the slot that exists, sorted. */
    assert_int_equal(vm.hostpci[1].index, 1);
    const char *const h1[] = {"0000:02:00.0", "0000:02:00.1", "0000:02:00.3"};
    assert_addrs(&vm.hostpci[1], h1, 3);

    assert_false(vm.migratable);
    assert_true(any_contains(&vm.reasons, "hostpci0 passes through host device 0000:01:00.0: a VM with a "
                                          "passed-through PCI device cannot live-migrate"));
    assert_true(any_contains(&vm.reasons, "hostpci1 passes through host devices 0000:02:00.0, "
                                          "0000:02:00.1, 0000:02:00.3"));
    assert_true(any_contains(&vm.reasons, "live-migration-capable"));
    assert_false(any_contains(&vm.reasons, "0000:03:00.0"));
    assert_false(any_contains(&vm.reasons, "0000:05:00.0"));

    vm_clear(&vm);
    errs_free(&errs);
    strv_free(&present);
    free(conf);
}

/* A config without machine: machine is NULL (Proxmox's i440fx default), and
 * a VM without hostpci is migratable with no reasons. */
static void test_pve_no_passthrough(void **state)
{
    (void)state;
    size_t len;
    char *conf = data_read("102.conf", &len);
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_conf_parse(conf, len, "102", NULL, NULL, &vm, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_null(vm.machine);
    assert_string_equal(vm.name, "dns1");
    assert_int_equal(vm.n_hostpci, 0);
    assert_true(vm.migratable);
    assert_int_equal(vm.reasons.n, 0);
    vm_clear(&vm);
    free(conf);
}

/* Every ID spelling Proxmox accepts expands to full lowercase addresses. */
static void test_hostpci_id_spellings(void **state)
{
    (void)state;
    strv_t present = STRV_INIT;
    present_init(&present);
    static const struct {
        const char *value;
        const char *want[4];
        size_t n;
    } cases[] = {
        {"01:00.0", {"0000:01:00.0"}, 1},
        {"0000:01:00.0", {"0000:01:00.0"}, 1},
        {"host=0000:01:00.1", {"0000:01:00.1"}, 1},
        {"01:00", {"0000:01:00.0", "0000:01:00.1"}, 2},
        {"0000:02:00", {"0000:02:00.0", "0000:02:00.1", "0000:02:00.3"}, 3},
        {"0000:0A:00.0", {"0000:0a:00.0"}, 1},
        {"10000:01:00.0", {"10000:01:00.0"}, 1},
        {"01:00.0;02:00.1", {"0000:01:00.0", "0000:02:00.1"}, 2},
        {"host=04:00;0000:01:00.1,pcie=1", {"0000:04:00.0", "0000:04:00.1", "0000:01:00.1"}, 3},
        {"01:00.0;0000:01:00.0", {"0000:01:00.0"}, 1}, /* duplicates collapse */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hostpci_t h = {0};
        char *err = NULL;
        int rc = pve_hostpci_parse(cases[i].value, NULL, &present, &h, &err);
        if (rc != 0)
            fail_msg("'%s': %s", cases[i].value, err ? err : "?");
        assert_null(err);
        assert_string_equal(h.raw, cases[i].value);
        assert_addrs(&h, cases[i].want, cases[i].n);
        assert_int_equal(h.problems.n, 0);
        hostpci_free(&h);
    }
    strv_free(&present);
}

/* Options are read (pcie), accepted (the documented ones, quoted values) or
 * refused with a sentence; a refused value still names its devices. */
static void test_hostpci_options(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool pcie;
    } good[] = {
        {"01:00.0,pcie=1", true},
        {"01:00.0,pcie=on", true},
        {"01:00.0,pcie=0", false},
        {"01:00.0", false},
        {"01:00.0,x-vga=1,rombar=0,romfile=gtx1080.rom,pcie=1", true},
        {"01:00.0,driver=keep", false},
        {"01:00.0,device-id=0x10f6,vendor-id=0x8086,sub-device-id=0x0000,sub-vendor-id=0x0000", false},
        {"00:02.0,legacy-igd=1", false},
        {"00:02.0,mdev=i915-GVTg_V5_4", false},
        {"01:00.0,romfile=\"a,b.rom\",pcie=1", true},
        {"01:00.0,", false},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        hostpci_t h = {0};
        char *err = NULL;
        int rc = pve_hostpci_parse(good[i].value, NULL, NULL, &h, &err);
        if (rc != 0)
            fail_msg("'%s' refused: %s", good[i].value, err ? err : "?");
        assert_int_equal(h.pcie, good[i].pcie);
        hostpci_free(&h);
    }

    static const struct {
        const char *value;
        const char *err_part;
    } bad[] = {
        {"", "empty"},
        {"01:00.0,pcie=maybe", "pcie wants 0 or 1"},
        {"01:00.0,foo=1", "unknown option 'foo'"},
        {"zz:00.0", "not a PCI ID"},
        {"01:20.0", "not a PCI ID"},     /* slot above 1f */
        {"01:00.8", "not a PCI ID"},     /* function above 7 */
        {"1:00.0", "not a PCI ID"},      /* bus needs two digits */
        {"000:01:00.0", "not a PCI ID"}, /* domain needs four */
        {"01:00.0;", "not a PCI ID"},
        {"01:00.0,02:00.0", "given twice"},
        {"host=01:00.0,mapping=nic", "both"},
        {"pcie=1", "neither"},
        {"01:00.0,driver=nvidia", "driver wants vfio or keep"},
        {"01:00.0,romfile=\"open", "closing quote"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hostpci_t h = {0};
        char *err = NULL;
        int rc = pve_hostpci_parse(bad[i].value, NULL, NULL, &h, &err);
        if (rc != -EINVAL)
            fail_msg("'%s' accepted (rc %d)", bad[i].value, rc);
        assert_non_null(err);
        if (!strstr(err, bad[i].err_part))
            fail_msg("'%s': error '%s' lacks '%s'", bad[i].value, err, bad[i].err_part);
        assert_string_equal(h.raw, bad[i].value);
        free(err);
        hostpci_free(&h);
    }

    /* A bad option does not hide the device from the inventory. */
    hostpci_t h = {0};
    char *err = NULL;
    assert_int_equal(pve_hostpci_parse("0000:01:00.0,bogus=1", NULL, NULL, &h, &err), -EINVAL);
    const char *const want[] = {"0000:01:00.0"};
    assert_addrs(&h, want, 1);
    free(err);
    hostpci_free(&h);

    assert_int_equal(pve_hostpci_parse("0000:01:00.0,romfile=\"open", NULL, NULL, &h, &err), -EINVAL);
    assert_addrs(&h, want, 1);
    free(err);
    hostpci_free(&h);

    assert_int_equal(pve_hostpci_parse("01:00.0;zz:00.0;02:00.1", NULL, NULL, &h, &err), -EINVAL);
    assert_non_null(strstr(err, "'zz:00.0' is not a PCI ID"));
    const char *const two[] = {"0000:01:00.0", "0000:02:00.1"};
    assert_addrs(&h, two, 2);
    free(err);
    hostpci_free(&h);
}

/* A slot expands against present; with present unknown (NULL) it is
 * function 0; IDs that point at nothing become problems, not silence. */
static void test_hostpci_present(void **state)
{
    (void)state;
    strv_t present = STRV_INIT;
    present_init(&present);
    hostpci_t h = {0};
    char *err = NULL;

    assert_int_equal(pve_hostpci_parse("05:00", NULL, &present, &h, &err), 0);
    assert_int_equal(h.addresses.n, 0);
    assert_int_equal(h.problems.n, 1);
    assert_non_null(strstr(h.problems.v[0], "slot 0000:05:00"));
    hostpci_free(&h);

    assert_int_equal(pve_hostpci_parse("0000:09:00.0", NULL, &present, &h, &err), 0);
    const char *const w9[] = {"0000:09:00.0"};
    assert_addrs(&h, w9, 1); /* still reported: the config claims it */
    assert_int_equal(h.problems.n, 1);
    assert_non_null(strstr(h.problems.v[0], "0000:09:00.0, which does not exist on this node"));
    hostpci_free(&h);

    assert_int_equal(pve_hostpci_parse("02:00", NULL, NULL, &h, &err), 0);
    const char *const w2[] = {"0000:02:00.0"};
    assert_addrs(&h, w2, 1);
    assert_int_equal(h.problems.n, 0);
    hostpci_free(&h);

    /* Through a whole config: the problem becomes a reason on the VM. */
    const char *conf = "name: ghost\nhostpci0: 0000:09:00.0\n";
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_conf_parse(conf, strlen(conf), "120", NULL, &present, &vm, &errs), 0);
    assert_int_equal(errs.n, 0); /* a reason on the VM, not an errs entry */
    assert_true(any_contains(&vm.reasons, "hostpci0 names 0000:09:00.0, which does not exist on this node"));
    vm_clear(&vm);
    strv_free(&present);
}

/* pci.cfg: only this node's map entries are kept; flags are read. */
static void test_mappings_parse(void **state)
{
    (void)state;
    pve_mappings_t maps = PVE_MAPPINGS_INIT;
    maps_load("pve1", &maps);
    assert_int_equal(maps.n, 3);

    const pve_mapping_t *x = pve_mappings_find(&maps, "x710-port");
    assert_non_null(x);
    assert_int_equal(x->n_alts, 2);
    assert_int_equal(x->n_other, 1);
    assert_string_equal(x->alts[0].ids.v[0], "0000:41:00.0");
    assert_string_equal(x->alts[0].id, "8086:1572");
    assert_string_equal(x->alts[0].subsystem_id, "8086:0007");
    assert_int_equal(x->alts[0].iommugroup, 40);
    assert_false(x->live_migration_capable);

    const pve_mapping_t *g = pve_mappings_find(&maps, "gpu");
    assert_non_null(g);
    assert_int_equal(g->n_alts, 0); /* only on pve2 */
    assert_int_equal(g->n_other, 1);

    const pve_mapping_t *vf = pve_mappings_find(&maps, "vf-pool");
    assert_non_null(vf);
    assert_true(vf->live_migration_capable);
    assert_int_equal(vf->n_alts, 2);
    assert_int_equal(vf->alts[1].ids.n, 2); /* one alternative = an ID list */
    assert_int_equal(vf->alts[1].iommugroup, -1);

    assert_null(pve_mappings_find(&maps, "nope"));
    pve_mappings_free(&maps);

    /* Malformed lines: errs entries, the rest still read. */
    const char *bad = "ok-map\n"
                      "\tmap node=pve1,path=0000:01:00.0,id=8086:1533\n"
                      "\tmap node=pve1,path=nonsense\n"
                      "\tmap path=0000:02:00.0\n"
                      "\tfrobnicate 1\n"
                      "\n"
                      "9bad\n"
                      "\tmap node=pve1,path=0000:03:00.0\n"
                      "\n"
                      "\torphan 1\n"
                      "ok-map\n";
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_mappings_parse(bad, strlen(bad), "pve1", &maps, &errs), -EINVAL);
    assert_int_equal(maps.n, 1);
    assert_int_equal(maps.v[0].n_alts, 1);
    assert_true(errs_contain(&errs, "line 3"));
    assert_true(errs_contain(&errs, "needs node= and path="));
    assert_true(errs_contain(&errs, "unknown property 'frobnicate'"));
    assert_true(errs_contain(&errs, "'9bad' is not a mapping name"));
    assert_true(errs_contain(&errs, "outside any mapping"));
    assert_true(errs_contain(&errs, "defined twice"));
    assert_string_equal(errs.v[0].where, "/etc/pve/mapping/pci.cfg");
    errs_free(&errs);
    pve_mappings_free(&maps);
}

/* mapping=NAME resolves to this node's first alternative whose devices are
 * present; another node's entry is ignored; unknown names are reasons and errs. */
static void test_mapping_resolution(void **state)
{
    (void)state;
    strv_t present = STRV_INIT;
    present_init(&present);
    pve_mappings_t pve1 = PVE_MAPPINGS_INIT, pve2 = PVE_MAPPINGS_INIT;
    maps_load("pve1", &pve1);
    maps_load("pve2", &pve2);
    hostpci_t h = {0};
    char *err = NULL;

    /* pve1: first alternative present. */
    assert_int_equal(pve_hostpci_parse("mapping=x710-port,pcie=1", &pve1, &present, &h, &err), 0);
    assert_string_equal(h.mapping, "x710-port");
    assert_true(h.pcie);
    const char *const a0[] = {"0000:41:00.0"};
    assert_addrs(&h, a0, 1);
    assert_false(h.live_migration_capable);
    hostpci_free(&h);

    /* pve1 with 41:00.0 gone: the next alternative of the pool. */
    strv_t fewer = STRV_INIT;
    for (size_t i = 0; i < present.n; i++)
        if (strcmp(present.v[i], "0000:41:00.0") != 0)
            strv_add(&fewer, present.v[i]);
    assert_int_equal(pve_hostpci_parse("mapping=x710-port", &pve1, &fewer, &h, &err), 0);
    const char *const a1[] = {"0000:41:00.1"};
    assert_addrs(&h, a1, 1);
    assert_int_equal(h.problems.n, 0);
    hostpci_free(&h);
    strv_free(&fewer);

    /* pve2: its own entry (81:00.0), which this test node lacks. */
    assert_int_equal(pve_hostpci_parse("mapping=x710-port", &pve2, &present, &h, &err), 0);
    const char *const a2[] = {"0000:81:00.0"};
    assert_addrs(&h, a2, 1);
    assert_int_equal(h.problems.n, 1);
    assert_non_null(strstr(h.problems.v[0], "none of its 1 device path for this node exists"));
    hostpci_free(&h);

    /* A pool alternative that is an ID list: 06:00.2 missing, so 04:00.0;04:00.1. */
    assert_int_equal(pve_hostpci_parse("mapping=vf-pool", &pve1, &present, &h, &err), 0);
    const char *const a3[] = {"0000:04:00.0", "0000:04:00.1"};
    assert_addrs(&h, a3, 2);
    assert_true(h.live_migration_capable);
    hostpci_free(&h);

    /* The mapping exists, but only for pve2. */
    assert_int_equal(pve_hostpci_parse("mapping=gpu", &pve1, &present, &h, &err), -ENOENT);
    assert_non_null(strstr(err, "no entry for this node"));
    assert_non_null(strstr(h.problems.v[0], "no device for this node"));
    free(err);
    hostpci_free(&h);

    /* Unknown mapping. */
    assert_int_equal(pve_hostpci_parse("mapping=nope", &pve1, &present, &h, &err), -ENOENT);
    assert_string_equal(h.mapping, "nope");
    assert_int_equal(h.addresses.n, 0);
    assert_non_null(strstr(err, "unknown mapping 'nope'"));
    free(err);
    hostpci_free(&h);

    /* In a config: a live-migration-capable mapping keeps the VM migratable;
     * an ordinary mapping does not. */
    size_t len;
    char *conf = data_read("101.conf", &len);
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_conf_parse(conf, len, "101", &pve1, &present, &vm, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_int_equal(vm.n_hostpci, 2); /* the cloudinit section's hostpci0 does not count */
    assert_int_equal(vm.hostpci[0].index, 0);
    assert_string_equal(vm.hostpci[0].mapping, "x710-port");
    assert_int_equal(vm.hostpci[1].index, 3);
    assert_false(vm.migratable);
    assert_int_equal(vm.reasons.n, 1);
    assert_non_null(strstr(vm.reasons.v[0], "hostpci0 passes through host device 0000:41:00.0 via mapping "
                                            "'x710-port', which is not marked live-migration-capable"));
    vm_clear(&vm);

    const char *only_vf = "name: mover\nhostpci0: mapping=vf-pool\n";
    assert_int_equal(pve_conf_parse(only_vf, strlen(only_vf), "130", &pve1, &present, &vm, &errs), 0);
    assert_true(vm.migratable);
    assert_int_equal(vm.reasons.n, 0);
    vm_clear(&vm);

    /* Unknown mapping in a config: a reason on the VM and an errs entry. */
    const char *unk = "name: lost\nhostpci0: mapping=nope,pcie=1\n";
    assert_int_equal(pve_conf_parse(unk, strlen(unk), "131", &pve1, &present, &vm, &errs), -EINVAL);
    assert_false(vm.migratable);
    assert_true(any_contains(&vm.reasons, "hostpci0 uses mapping 'nope', which /etc/pve/mapping/pci.cfg "
                                          "does not define"));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].where, "/etc/pve/qemu-server/131.conf");
    assert_true(errs_contain(&errs, "line 2: hostpci0: unknown mapping 'nope'"));
    vm_clear(&vm);
    errs_free(&errs);

    free(conf);
    pve_mappings_free(&pve1);
    pve_mappings_free(&pve2);
    strv_free(&present);
}

/* A config cut mid-line: errs names the line, everything before is kept. */
static void test_pve_truncated(void **state)
{
    (void)state;
    size_t len;
    char *conf = data_read("100.conf", &len);
    const char *cut = strstr(conf, "hostpci1: 02:00,pcie=1");
    assert_non_null(cut);
    size_t at = (size_t)(cut - conf) + strlen("hostpci1: 02:0"); /* "02:0": not an ID */
    strv_t present = STRV_INIT;
    present_init(&present);
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_conf_parse(conf, at, "100", NULL, &present, &vm, &errs), -EINVAL);
    assert_true(errs_contain(&errs, "line 11 ends without a newline: the file looks truncated"));
    assert_true(errs_contain(&errs, "line 11: hostpci1: '02:0' is not a PCI ID"));
    assert_string_equal(errs.v[0].where, "/etc/pve/qemu-server/100.conf");
    assert_int_equal(vm.n_hostpci, 2);
    const char *const h0[] = {"0000:01:00.0"};
    assert_addrs(&vm.hostpci[0], h0, 1);
    assert_true(any_contains(&vm.reasons, "hostpci1 is not valid"));
    assert_false(vm.migratable);
    assert_null(vm.name); /* "name:" came after the cut */
    vm_clear(&vm);
    errs_free(&errs);

    /* Cut right after a complete line but before its newline. */
    at = (size_t)(cut - conf) - 1; /* the '\n' ending hostpci0's line */
    assert_int_equal(pve_conf_parse(conf, at, "100", NULL, &present, &vm, &errs), -EINVAL);
    assert_int_equal(errs.n, 1);
    assert_int_equal(vm.n_hostpci, 1);
    vm_clear(&vm);
    errs_free(&errs);
    strv_free(&present);
    free(conf);
}

/* Lines that are not "key: value" are recorded and skipped, the rest read;
 * hostpci16 is beyond Proxmox's range; a repeated key keeps the later value. */
static void test_pve_bad_lines(void **state)
{
    (void)state;
    const char conf[] = "name: vm-a\n"
                        "this line has no colon\n"
                        ": no key\n"
                        "hostpci16: 01:00.0\n"
                        "Hostpci0: 01:00.0\n"
                        "hostpci2: 01:00.1\n"
                        "hostpci2: 01:00.0\n"
                        "bin\001ary: \377\376\n"
                        "nul\0byte: x\n"
                        "machine: pc-i440fx-8.0\n";
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_conf_parse(conf, sizeof(conf) - 1, "140", NULL, NULL, &vm, &errs), -EINVAL);
    assert_string_equal(vm.name, "vm-a");
    assert_string_equal(vm.machine, "pc-i440fx-8.0");
    assert_int_equal(vm.n_hostpci, 1);
    assert_int_equal(vm.hostpci[0].index, 2);
    assert_string_equal(vm.hostpci[0].addresses.v[0], "0000:01:00.0");
    assert_true(errs_contain(&errs, "line 2 is not 'key: value' ('this line has no colon')"));
    assert_true(errs_contain(&errs, "line 3 is not 'key: value'"));
    assert_true(errs_contain(&errs, "line 4: hostpci16 is not a Proxmox setting"));
    assert_true(errs_contain(&errs, "line 5 is not 'key: value'"));
    assert_true(errs_contain(&errs, "line 7 sets hostpci2 again"));
    assert_true(errs_contain(&errs, "line 8 is not 'key: value' ('bin?ary: ?" "?')"));
    assert_true(errs_contain(&errs, "line 9 contains a NUL byte"));
    assert_int_equal(errs.n, 7);
    vm_clear(&vm);
    errs_free(&errs);
}

/* Pseudo-random bytes and mutations of a real config never crash or leak
 * (the sanitizer build and valgrind check the second half of that). */
static void test_pve_garbage(void **state)
{
    (void)state;
    size_t len;
    char *conf = data_read("100.conf", &len);
    char *cfg = data_read("pci.cfg", &len);
    pve_mappings_t maps = PVE_MAPPINGS_INIT;
    errs_t errs = ERRS_INIT;
    assert_int_equal(pve_mappings_parse(cfg, strlen(cfg), "pve1", &maps, &errs), 0);
    strv_t present = STRV_INIT;
    present_init(&present);
    unsigned long seed = 12345;
    size_t clen = strlen(conf);
    char *work = xmalloc(clen);
    for (int round = 0; round < 2000; round++) {
        size_t n;
        if (round % 2) {
            n = (size_t)(seed % 300);
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005UL + 1442695040888963407UL;
                work[i] = (char)(seed >> 56);
            }
        } else {
            memcpy(work, conf, clen);
            n = clen;
            for (int k = 0; k < 8; k++) {
                seed = seed * 6364136223846793005UL + 1442695040888963407UL;
                work[(seed >> 33) % clen] = (char)(seed >> 56);
            }
        }
        vm_t vm = {0};
        pve_conf_parse(work, n, "100", &maps, &present, &vm, &errs);
        assert_string_equal(vm.source, "proxmox");
        vm_clear(&vm);
        pve_mappings_t m2 = PVE_MAPPINGS_INIT;
        pve_mappings_parse(work, n, "pve1", &m2, &errs);
        pve_mappings_free(&m2);
        vm_t lv = {0};
        libvirt_domain_parse(work, n, &lv, &errs);
        vm_clear(&lv);
        errs_free(&errs);
    }
    free(work);
    pve_mappings_free(&maps);
    strv_free(&present);
    free(conf);
    free(cfg);
}

/* ---- libvirt ---- */

/* Two PCI hostdevs are read with their host (source) addresses, not the
 * guest addresses; the USB hostdev is ignored. */
static void test_libvirt_hostdevs(void **state)
{
    (void)state;
    size_t len;
    char *xml = data_read("web1.xml", &len);
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    assert_int_equal(libvirt_domain_parse(xml, len, &vm, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_string_equal(vm.source, "libvirt");
    assert_string_equal(vm.id, "web1");
    assert_string_equal(vm.name, "web1");
    assert_string_equal(vm.machine, "pc-q35-8.2");
    assert_int_equal(vm.running, -1);
    assert_int_equal(vm.n_hostpci, 2);
    assert_int_equal(vm.hostpci[0].index, 0);
    assert_int_equal(vm.hostpci[1].index, 1);
    const char *const a0[] = {"0000:06:02.0"};
    const char *const a1[] = {"0000:41:00.1"};
    assert_addrs(&vm.hostpci[0], a0, 1);
    assert_addrs(&vm.hostpci[1], a1, 1);
    assert_non_null(strstr(vm.hostpci[0].raw, "bus=\"0x06\""));
    assert_null(vm.hostpci[0].mapping);
    assert_false(vm.migratable);
    assert_int_equal(vm.reasons.n, 2);
    assert_non_null(strstr(vm.reasons.v[0], "hostdev 0 passes through host device 0000:06:02.0: a VM with "
                                            "a passed-through PCI device cannot live-migrate"));
    vm_clear(&vm);
    free(xml);

    /* <interface type='hostdev'> (an SR-IOV VF) is PCI passthrough too. */
    xml = data_read("sriov1.xml", &len);
    assert_int_equal(libvirt_domain_parse(xml, len, &vm, &errs), 0);
    assert_int_equal(vm.n_hostpci, 1);
    assert_string_equal(vm.hostpci[0].addresses.v[0], "0000:3b:02.3");
    assert_string_equal(vm.machine, "q35");
    assert_false(vm.migratable);
    vm_clear(&vm);
    free(xml);

    xml = data_read("plain.xml", &len);
    assert_int_equal(libvirt_domain_parse(xml, len, &vm, &errs), 0);
    assert_int_equal(vm.n_hostpci, 0);
    assert_true(vm.migratable);
    vm_clear(&vm);
    free(xml);
    assert_int_equal(errs.n, 0);
}

/* Runs fn with stderr sent to a temp file; returns how many bytes it printed. */
static long stderr_bytes_during(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    char path[] = "/tmp/pcifleet-stderr.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    return n;
}

static void parse_bad_xml(void *arg)
{
    errs_t *errs = arg;
    static const char *const docs[] = {
        "<domain><name>x</name><devices><hostdev mode='subsystem' type='pci'>",
        "<domain><name>x</nam></domain>",
        "\xff\xfe<\0d\0",
        "<?xml version='1.0' encoding='bogus-8'?><domain/>",
        "<?xml version='1.0' encoding='ISO-8859-1'?><domain><name>caf\xe9</name></domain>",
        "not xml at all",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        vm_t vm = {0};
        libvirt_domain_parse(docs[i], strlen(docs[i]) + (i == 2 ? 3 : 0), &vm, errs);
        vm_clear(&vm);
    }
}

/* Malformed XML: an errs entry, no crash, and libxml2 prints nothing. */
static void test_libvirt_malformed(void **state)
{
    (void)state;
    errs_t errs = ERRS_INIT;
    assert_int_equal(stderr_bytes_during(parse_bad_xml, &errs), 0);
    assert_true(errs.n >= 4);
    assert_true(errs_contain(&errs, "malformed XML at line 1"));
    errs_free(&errs);

    vm_t vm = {0};
    const char *trunc = "<domain type='kvm'>\n  <name>cut</name>\n  <devices>\n    <hostdev mode='subsys";
    assert_int_equal(libvirt_domain_parse_at(trunc, strlen(trunc), "/etc/libvirt/qemu/cut.xml", &vm, &errs),
                     -EINVAL);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].where, "/etc/libvirt/qemu/cut.xml");
    assert_string_equal(vm.source, "libvirt");
    vm_clear(&vm);
    errs_free(&errs);

    const char *notdom = "<network><name>default</name></network>";
    assert_int_equal(libvirt_domain_parse(notdom, strlen(notdom), &vm, &errs), -EINVAL);
    assert_true(errs_contain(&errs, "not <domain>"));
    vm_clear(&vm);
    errs_free(&errs);

    /* Entity tricks are refused before libxml2 sees them. */
    const char *laughs = "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaaaaaa'>"
                         "<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><domain><name>&b;</name></domain>";
    assert_int_equal(libvirt_domain_parse(laughs, strlen(laughs), &vm, &errs), -EINVAL);
    assert_true(errs_contain(&errs, "DOCTYPE"));
    assert_null(vm.name);
    vm_clear(&vm);
    errs_free(&errs);

    /* A hostdev with a nonsense address: reported, still counted. */
    const char *badaddr = "<domain><name>b</name><devices>"
                          "<hostdev mode='subsystem' type='pci'><source>"
                          "<address domain='0x0000' bus='0x100' slot='0x00' function='0x0'/>"
                          "</source></hostdev>"
                          "<hostdev mode='subsystem' type='pci'><source/></hostdev>"
                          "</devices></domain>";
    assert_int_equal(libvirt_domain_parse(badaddr, strlen(badaddr), &vm, &errs), -EINVAL);
    assert_int_equal(vm.n_hostpci, 2);
    assert_int_equal(vm.hostpci[0].addresses.n, 0);
    assert_false(vm.migratable);
    assert_true(any_contains(&vm.reasons, "hostdev 0 has an invalid host PCI address"));
    assert_true(any_contains(&vm.reasons, "hostdev 1 has no host PCI address"));
    assert_int_equal(errs.n, 2);
    vm_clear(&vm);
    errs_free(&errs);
}

/* ---- the walk over a root ---- */

static void write_data(const char *root, const char *rel, const char *name)
{
    char *d = data_read(name, NULL);
    tu_write(root, rel, d);
    free(d);
}

static const vm_t *find_vm(const vms_t *v, const char *source, const char *id)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->v[i].source, source) == 0 && strcmp(v->v[i].id, id) == 0)
            return &v->v[i];
    return NULL;
}

static char *make_root(void)
{
    char *dir = tu_tmpdir();
    write_data(dir, "etc/pve/qemu-server/100.conf", "100.conf");
    write_data(dir, "etc/pve/qemu-server/101.conf", "101.conf");
    write_data(dir, "etc/pve/qemu-server/102.conf", "102.conf");
    tu_write(dir, "etc/pve/qemu-server/99.conf", "name: early\nhostpci0: mapping=nope\n");
    tu_write(dir, "etc/pve/qemu-server/notes.txt", "not a config\n");
    tu_write(dir, "etc/pve/qemu-server/abc.conf", "name: not-a-vmid\n");
    write_data(dir, "etc/pve/mapping/pci.cfg", "pci.cfg");
    write_data(dir, "etc/libvirt/qemu/web1.xml", "web1.xml");
    write_data(dir, "etc/libvirt/qemu/plain.xml", "plain.xml");
    tu_write(dir, "etc/libvirt/qemu/broken.xml", "<domain><name>broken</name>");
    tu_write(dir, "etc/libvirt/qemu/networks/default.xml", "<network/>");
    /* 100 runs: pid file and a live process. */
    tu_write(dir, "run/qemu-server/100.pid", "4242\n");
    tu_write(dir, "proc/4242/cmdline", "/usr/bin/kvm\0-id\0100");
    /* 101: stale pid file (no proc/5151). 102: no pid file at all. */
    tu_write(dir, "run/qemu-server/101.pid", "5151\n");
    /* 99: pid file under var/run only. */
    tu_write(dir, "var/run/qemu-server/99.pid", "4243\n");
    tu_write(dir, "proc/4243/stat", "4243 (kvm) S\n");
    /* web1 runs (libvirt's status file), plain is defined but stopped. */
    tu_write(dir, "run/libvirt/qemu/web1.xml", "<domstatus state='running'/>");
    tu_write(dir, "etc/hostname", "pve1.example.org\n");
    return dir;
}

/* vms_probe finds both hypervisors' VMs under a fixture root, orders Proxmox
 * VMs by VMID, decides running from pid files and proc/PID, resolves
 * mappings for the node, and records broken files in errs. */
static void test_vms_probe(void **state)
{
    (void)state;
    char *dir = make_root();
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    strv_t present = STRV_INIT;
    present_init(&present);
    vms_t vms = VMS_INIT;
    errs_t errs = ERRS_INIT;

    assert_int_equal(vms_probe(root, "pve1", &present, &vms, &errs), -EINVAL);
    assert_int_equal(vms.n, 4 + 3);
    assert_string_equal(vms.v[0].id, "99");
    assert_string_equal(vms.v[1].id, "100");
    assert_string_equal(vms.v[2].id, "101");
    assert_string_equal(vms.v[3].id, "102");
    assert_string_equal(vms.v[4].source, "libvirt");

    const vm_t *v100 = find_vm(&vms, "proxmox", "100");
    assert_int_equal(v100->running, 1);
    assert_int_equal(v100->n_hostpci, 2);
    assert_int_equal(find_vm(&vms, "proxmox", "101")->running, 0); /* stale pid file */
    assert_int_equal(find_vm(&vms, "proxmox", "102")->running, 0);
    assert_int_equal(find_vm(&vms, "proxmox", "99")->running, 1);
    const vm_t *v101 = find_vm(&vms, "proxmox", "101");
    assert_string_equal(v101->hostpci[0].addresses.v[0], "0000:41:00.0");

    const vm_t *web1 = find_vm(&vms, "libvirt", "web1");
    assert_non_null(web1);
    assert_int_equal(web1->running, 1);
    assert_int_equal(web1->n_hostpci, 2);
    const vm_t *plain = find_vm(&vms, "libvirt", "plain");
    assert_non_null(plain);
    assert_int_equal(plain->running, 0);
    const vm_t *broken = find_vm(&vms, "libvirt", "broken"); /* named after its file */
    assert_non_null(broken);

    bool saw_broken = false, saw_unknown = false;
    for (size_t i = 0; i < errs.n; i++) {
        if (strcmp(errs.v[i].where, "/etc/libvirt/qemu/broken.xml") == 0)
            saw_broken = true;
        if (strcmp(errs.v[i].where, "/etc/pve/qemu-server/99.conf") == 0 &&
            strstr(errs.v[i].what, "unknown mapping 'nope'"))
            saw_unknown = true;
    }
    assert_true(saw_broken);
    assert_true(saw_unknown);
    assert_int_equal(errs.n, 2);
    vms_free(&vms);
    errs_free(&errs);

    /* node NULL: the short host name from etc/hostname (pve1). */
    assert_int_equal(vms_probe(root, NULL, &present, &vms, &errs), -EINVAL);
    assert_string_equal(find_vm(&vms, "proxmox", "101")->hostpci[0].addresses.v[0], "0000:41:00.0");
    vms_free(&vms);
    errs_free(&errs);

    /* Another node: the x710-port mapping resolves to pve2's device. */
    assert_int_equal(vms_probe(root, "pve2", &present, &vms, &errs), -EINVAL);
    assert_string_equal(find_vm(&vms, "proxmox", "101")->hostpci[0].addresses.v[0], "0000:81:00.0");
    vms_free(&vms);
    errs_free(&errs);

    /* An empty root is no error: the node has neither hypervisor. */
    char *empty = tu_tmpdir();
    root_t *eroot = NULL;
    assert_int_equal(root_new(empty, &eroot), 0);
    assert_int_equal(vms_probe(eroot, "pve1", &present, &vms, &errs), 0);
    assert_int_equal(vms.n, 0);
    assert_int_equal(errs.n, 0);
    root_destroy(&eroot);
    tu_rm_rf(empty);
    free(empty);

    strv_free(&present);
    root_destroy(&root);
    tu_rm_rf(dir);
    free(dir);
}

/* A pid file with garbage gives running -1 (unknown) and an errs entry. */
static void test_vms_probe_bad_pidfile(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/pve/qemu-server/200.conf", "name: x\n");
    tu_write(dir, "run/qemu-server/200.pid", "not-a-pid\n");
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    vms_t vms = VMS_INIT;
    errs_t errs = ERRS_INIT;
    assert_int_equal(vms_probe(root, "pve1", NULL, &vms, &errs), 0);
    assert_int_equal(vms.n, 1);
    assert_int_equal(vms.v[0].running, -1);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].where, "/run/qemu-server/200.pid");
    vms_free(&vms);
    errs_free(&errs);
    root_destroy(&root);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- JSON ---- */

/* The JSON has exactly the agreed field names and null where unknown. */
static void test_vms_json(void **state)
{
    (void)state;
    char *dir = make_root();
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    strv_t present = STRV_INIT;
    present_init(&present);
    vms_t vms = VMS_INIT;
    errs_t errs = ERRS_INIT;
    vms_probe(root, "pve1", &present, &vms, &errs);
    /* one VM with unknown running state */
    vm_t *u = vms_push(&vms);
    u->source = "proxmox";
    u->id = xstrdup("999");

    json_t *j = json_new(0);
    json_obj_open(j, NULL);
    vms_to_json(j, "vms", &vms);
    json_obj_close(j);
    const char *t = json_text(j, NULL);

    assert_non_null(strstr(t, "{\"vms\":[{\"source\":\"proxmox\",\"id\":\"99\",\"name\":\"early\","
                              "\"machine\":null,\"running\":true,\"hostpci\":[{\"index\":0,"
                              "\"addresses\":[],\"mapping\":\"nope\",\"pcie\":false,"
                              "\"raw\":\"mapping=nope\"}],\"migratable\":false,\"reasons\":[\""));
    assert_non_null(strstr(t, "{\"source\":\"proxmox\",\"id\":\"100\",\"name\":\"fw01\",\"machine\":\"q35\","
                              "\"running\":true,\"hostpci\":[{\"index\":0,\"addresses\":[\"0000:01:00.0\"],"
                              "\"mapping\":null,\"pcie\":true,\"raw\":\"0000:01:00.0,pcie=1\"},{\"index\":1,"
                              "\"addresses\":[\"0000:02:00.0\",\"0000:02:00.1\",\"0000:02:00.3\"],"
                              "\"mapping\":null,\"pcie\":true,\"raw\":\"02:00,pcie=1,rombar=0\"}],"
                              "\"migratable\":false,\"reasons\":["));
    assert_non_null(strstr(t, "\"id\":\"102\",\"name\":\"dns1\",\"machine\":null,\"running\":false,"
                              "\"hostpci\":[],\"migratable\":true,\"reasons\":[]}"));
    assert_non_null(strstr(t, "{\"source\":\"libvirt\",\"id\":\"web1\",\"name\":\"web1\","
                              "\"machine\":\"pc-q35-8.2\",\"running\":true,\"hostpci\":[{\"index\":0,"
                              "\"addresses\":[\"0000:06:02.0\"],\"mapping\":null,\"pcie\":false,\"raw\":"));
    assert_non_null(strstr(t, "\"id\":\"999\",\"name\":null,\"machine\":null,\"running\":null,"
                              "\"hostpci\":[],\"migratable\":true,\"reasons\":[]}]}"));

    /* Nothing else: every key in the output is one of the agreed names. */
    static const char *const keys[] = {"vms", "source", "id", "name", "machine", "running", "hostpci",
                                       "index", "addresses", "mapping", "pcie", "raw", "migratable",
                                       "reasons"};
    for (const char *p = strstr(t, "\":"); p; p = strstr(p + 1, "\":")) {
        const char *q = p - 1;
        while (q > t && *q != '"')
            q--;
        size_t kl = (size_t)(p - q - 1);
        bool known = false;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strlen(keys[k]) == kl && strncmp(q + 1, keys[k], kl) == 0)
                known = true;
        if (!known && (q == t || q[-1] == ',' || q[-1] == '{'))
            fail_msg("unexpected key '%.*s'", (int)kl, q + 1);
    }

    json_destroy(&j);
    vms_free(&vms);
    vms_free(&vms); /* twice is harmless */
    errs_free(&errs);
    strv_free(&present);
    root_destroy(&root);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pve_live_section_only),
        cmocka_unit_test(test_pve_no_passthrough),
        cmocka_unit_test(test_hostpci_id_spellings),
        cmocka_unit_test(test_hostpci_options),
        cmocka_unit_test(test_hostpci_present),
        cmocka_unit_test(test_mappings_parse),
        cmocka_unit_test(test_mapping_resolution),
        cmocka_unit_test(test_pve_truncated),
        cmocka_unit_test(test_pve_bad_lines),
        cmocka_unit_test(test_pve_garbage),
        cmocka_unit_test(test_libvirt_hostdevs),
        cmocka_unit_test(test_libvirt_malformed),
        cmocka_unit_test(test_vms_probe),
        cmocka_unit_test(test_vms_probe_bad_pidfile),
        cmocka_unit_test(test_vms_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
