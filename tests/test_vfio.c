/* vfio: which VFIO modules a kernel needs, and whether they are loaded and
 * configured. Each test states what it proves. */
#include "testutil.h"

#include "buf.h"
#include "vfio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const PROC_MODULES_68 =
    "vfio_pci 16384 0 - Live 0x0000000000000000\n"
    "vfio_pci_core 86016 1 vfio_pci, Live 0x0000000000000000\n"
    "irqbypass 12288 2 vfio_pci_core,kvm, Live 0x0000000000000000\n"
    "vfio_iommu_type1 49152 0 - Live 0x0000000000000000\n"
    "vfio 65536 3 vfio_pci_core,vfio_iommu_type1,vfio_pci, Live 0x0000000000000000\n"
    "iommufd 94208 1 vfio, Live 0x0000000000000000\n";

static const char *const ETC_MODULES_PVE =
    "# /etc/modules: kernel modules to load at boot time.\n"
    "#\n"
    "# This file contains the names of kernel modules that should be loaded\n"
    "# at boot time, one per line. Lines beginning with \"#\" are ignored.\n"
    "# Parameters can be specified after the module name.\n"
    "\n"
    "vfio\n"
    "vfio_iommu_type1\n"
    "vfio-pci ids=8086:1533\n"
    "; an old-style comment: vfio_virqfd\n"
    "  vfio_virqfd   \n";

static bool list_is(const strv_t *l, const char *const *want, size_t n)
{
    if (l->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(l->v[i], want[i]) != 0)
            return false;
    return true;
}

#define LIST_IS(l, ...)                                                                            \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__};                                                 \
        assert_true(list_is(&(l), want_, sizeof(want_) / sizeof(want_[0])));                       \
    } while (0)

static void probe(const char *dir, const char *release, vfio_info_t *v, errs_t *errs)
{
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    assert_int_equal(vfio_probe(root, release, v, errs), 0);
    root_destroy(&root);
}

/* /etc/modules: comments ('#' and ';') skipped, arguments after the name
 * dropped, '-' normalised to '_', surrounding blanks ignored. */
static void test_modules_list_parse(void **state)
{
    (void)state;
    strv_t l = STRV_INIT;
    assert_int_equal(modules_list_parse(ETC_MODULES_PVE, strlen(ETC_MODULES_PVE), &l), 0);
    LIST_IS(l, "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_virqfd");
    strv_free(&l);
    const char nul[] = "vfio\0\nvfio_pci";
    assert_int_equal(modules_list_parse(nul, sizeof(nul) - 1, &l), -EINVAL);
    LIST_IS(l, "vfio", "vfio_pci");
    strv_free(&l);
}

/* /proc/modules: the first field of each line. */
static void test_proc_modules_parse(void **state)
{
    (void)state;
    strv_t l = STRV_INIT;
    assert_int_equal(proc_modules_parse(PROC_MODULES_68, strlen(PROC_MODULES_68), &l), 0);
    LIST_IS(l, "vfio_pci", "vfio_pci_core", "irqbypass", "vfio_iommu_type1", "vfio", "iommufd");
    strv_free(&l);
}

/* Release comparison on real release strings; garbage is false. */
static void test_kernel_release(void **state)
{
    (void)state;
    assert_true(kernel_release_at_least("6.8.12-4-pve", 6, 2));
    assert_false(kernel_release_at_least("6.1.0-18-amd64", 6, 2));
    assert_true(kernel_release_at_least("6.2.0", 6, 2));
    assert_false(kernel_release_at_least("5.15.0", 6, 2));
    assert_true(kernel_release_at_least("5.15.0-91-generic", 5, 4));
    assert_true(kernel_release_at_least("10.0", 6, 2));
    assert_false(kernel_release_at_least("6", 6, 0));
    assert_false(kernel_release_at_least("v6.8", 6, 0));
    assert_false(kernel_release_at_least("", 0, 0));
    assert_false(kernel_release_at_least(NULL, 0, 0));
    assert_false(kernel_release_at_least("99999999999999999999.1", 6, 2));
}

/* The same /etc/modules on two kernels: 6.8 needs no vfio_virqfd (merged
 * into vfio in 6.2), 6.1 does. Everything required that the file lists is
 * configured (sources names it); nothing is missing. */
static void test_probe_68_vs_61(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/modules", ETC_MODULES_PVE);
    vfio_info_t v;
    errs_t errs = ERRS_INIT;
    probe(dir, "6.8.12-4-pve", &v, &errs);
    assert_int_equal(errs.n, 0);
    LIST_IS(v.required, "vfio", "vfio_iommu_type1", "vfio_pci");
    LIST_IS(v.configured, "vfio", "vfio_iommu_type1", "vfio_pci");
    LIST_IS(v.sources, "/etc/modules");
    assert_int_equal(v.loaded.n, 0);
    assert_int_equal(v.missing.n, 0);
    vfio_info_free(&v);
    assert_int_equal(v.required.n, 0);

    probe(dir, "6.1.0-18-amd64", &v, &errs);
    assert_int_equal(errs.n, 0);
    LIST_IS(v.required, "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_virqfd");
    LIST_IS(v.configured, "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_virqfd");
    assert_int_equal(v.missing.n, 0);
    vfio_info_free(&v);
    tu_rm_rf(dir);
    free(dir);
}

/* Kernel 5.15 also needs vfio_virqfd; when neither configured nor loaded it
 * is missing. The kernel release is read from proc/sys/kernel/osrelease
 * under the root when none is given. */
static void test_probe_515(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/modules", "vfio\nvfio_iommu_type1\nvfio_pci\n");
    tu_write(dir, "proc/sys/kernel/osrelease", "5.15.0-91-generic\n");
    vfio_info_t v;
    errs_t errs = ERRS_INIT;
    probe(dir, NULL, &v, &errs);
    assert_int_equal(errs.n, 0);
    LIST_IS(v.required, "vfio", "vfio_iommu_type1", "vfio_pci", "vfio_virqfd");
    LIST_IS(v.missing, "vfio_virqfd");
    vfio_info_free(&v);

    /* Loaded now (but not configured) is not missing. */
    tu_write(dir, "proc/modules", "vfio_virqfd 16384 1 vfio_pci, Live 0x0000000000000000\n");
    probe(dir, "5.15.0", &v, &errs);
    LIST_IS(v.loaded, "vfio_virqfd");
    assert_int_equal(v.missing.n, 0);
    vfio_info_free(&v);
    tu_rm_rf(dir);
    free(dir);
}

/* modules-load.d: *.conf files count ('-' names normalised), a .conf
 * symlinked to /dev/null masks itself, a non-.conf file is not read,
 * modules.conf -> ../modules is read once, an absolute symlink resolves
 * inside the root, and /usr/lib/modules-load.d (the packages') is ignored. */
static void test_probe_modules_load_d(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/modules", "# nothing here\nvfio\n");
    tu_write(dir, "etc/modules-load.d/vfio.conf", "# passthrough\nvfio-pci\n");
    tu_write(dir, "etc/modules-load.d/README", "vfio_iommu_type1\n");
    tu_write(dir, "etc/vfio-extra", "vfio_iommu_type1\n");
    tu_write(dir, "usr/lib/modules-load.d/pkg.conf", "vfio_virqfd\n");
    char *p = xasprintf("%s/etc/modules-load.d/modules.conf", dir);
    assert_int_equal(symlink("../modules", p), 0);
    free(p);
    p = xasprintf("%s/etc/modules-load.d/masked.conf", dir);
    assert_int_equal(symlink("/dev/null", p), 0);
    free(p);
    p = xasprintf("%s/etc/modules-load.d/zz-abs.conf", dir);
    assert_int_equal(symlink("/etc/vfio-extra", p), 0);
    free(p);
    vfio_info_t v;
    errs_t errs = ERRS_INIT;
    probe(dir, "5.4.0-150-generic", &v, &errs);
    assert_int_equal(errs.n, 0);
    LIST_IS(v.configured, "vfio", "vfio_iommu_type1", "vfio_pci");
    LIST_IS(v.sources, "/etc/modules", "/etc/modules-load.d/vfio.conf", "/etc/vfio-extra");
    LIST_IS(v.missing, "vfio_virqfd");
    vfio_info_free(&v);
    tu_rm_rf(dir);
    free(dir);
}

/* Built-in modules have no proc/modules line but a sys/module/NAME folder:
 * they count as loaded. */
static void test_probe_builtin(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n");
    tu_write(dir, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n");
    tu_write(dir, "proc/modules", PROC_MODULES_68);
    vfio_info_t v;
    errs_t errs = ERRS_INIT;
    probe(dir, "6.8.12-4-pve", &v, &errs);
    assert_int_equal(errs.n, 0);
    LIST_IS(v.loaded, "vfio", "vfio_iommu_type1", "vfio_pci");
    assert_int_equal(v.configured.n, 0);
    assert_int_equal(v.missing.n, 0);
    vfio_info_free(&v);
    tu_rm_rf(dir);
    free(dir);
}

/* A kernel version that cannot be read is an error and vfio_virqfd is not
 * required; a 1 GB /etc/modules is an error at /etc/modules, not a crash. */
static void test_probe_damaged(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/modules", "");
    char *p = xasprintf("%s/etc/modules", dir);
    assert_int_equal(truncate(p, 1024L * 1024 * 1024), 0);
    free(p);
    vfio_info_t v;
    errs_t errs = ERRS_INIT;
    probe(dir, NULL, &v, &errs);
    assert_int_equal(errs.n, 2);
    assert_string_equal(errs.v[0].where, "/proc/sys/kernel/osrelease");
    assert_string_equal(errs.v[1].where, "/etc/modules");
    assert_non_null(strstr(errs.v[1].what, "larger than"));
    assert_int_equal(v.required.n, 3);
    LIST_IS(v.missing, "vfio", "vfio_iommu_type1", "vfio_pci");
    vfio_info_free(&v);
    errs_free(&errs);

    probe(dir, "garbage", &v, &errs);
    assert_string_equal(errs.v[0].where, "kernel release");
    assert_int_equal(v.required.n, 3);
    vfio_info_free(&v);
    errs_free(&errs);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modules_list_parse),
        cmocka_unit_test(test_proc_modules_parse),
        cmocka_unit_test(test_kernel_release),
        cmocka_unit_test(test_probe_68_vs_61),
        cmocka_unit_test(test_probe_515),
        cmocka_unit_test(test_probe_modules_load_d),
        cmocka_unit_test(test_probe_builtin),
        cmocka_unit_test(test_probe_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
