/* klog: IOMMU facts from real kernel logs in the shapes operators save them
 * in. Each test states what it proves. */
#include "testutil.h"

#include "buf.h"
#include "klog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *data_file(const char *name, size_t *len)
{
    const char *src = getenv("PCIFLEET_SOURCE");
    assert_non_null(src);
    char *path = xasprintf("%s/tests/data/klog/%s", src, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    buf_reserve(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    free(path);
    *len = b.len;
    return buf_steal(&b);
}

static void parse_file(const char *name, klog_facts_t *f)
{
    size_t len;
    char *text = data_file(name, &len);
    assert_int_equal(klog_parse(text, len, f), 0);
    free(text);
}

static bool evidence_is(const klog_facts_t *f, const char *line)
{
    for (size_t i = 0; i < f->evidence.n; i++)
        if (strcmp(f->evidence.v[i], line) == 0)
            return true;
    return false;
}

static bool evidence_has(const klog_facts_t *f, const char *part)
{
    for (size_t i = 0; i < f->evidence.n; i++)
        if (strstr(f->evidence.v[i], part))
            return true;
    return false;
}

/* Intel, Proxmox 6.8 with intel_iommu=on: table, enabled, IR on; the
 * evidence lines have no "[    0.104021] " timestamps; many "Adding to iommu group" lines
 * leave one line of evidence, and the DMAR table lines do not crowd out
 * the IR and "Intel(R) Virtualization Technology" lines. */
static void test_intel_enabled(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("intel-iommu-on.txt", &f);
    assert_true(f.dmar_table);
    assert_false(f.ivrs_table);
    assert_true(f.iommu_enabled);
    assert_false(f.iommu_disabled);
    assert_int_equal(f.ir_enabled, 1);
    assert_true(evidence_is(&f, "DMAR: IOMMU enabled"));
    assert_true(evidence_is(&f, "DMAR-IR: Enabled IRQ remapping in x2apic mode"));
    assert_true(evidence_is(&f, "DMAR: Intel(R) Virtualization Technology for Directed I/O"));
    assert_true(evidence_has(&f, "ACPI: DMAR 0x000000007A3E0000"));
    size_t groups = 0;
    for (size_t i = 0; i < f.evidence.n; i++) {
        assert_true(f.evidence.v[i][0] != '[');
        if (strstr(f.evidence.v[i], "Adding to iommu group"))
            groups++;
    }
    assert_int_equal(groups, 1);
    assert_true(f.evidence.n <= KLOG_EVIDENCE_MAX);
    klog_facts_free(&f);
    assert_int_equal(f.evidence.n, 0);
    assert_int_equal(f.ir_enabled, -1);
}

/* The classic "I enabled VT-d and it still says no IOMMU": DMAR table lines
 * but no "IOMMU enabled" (Debian 6.1 without intel_iommu=on). IR is still
 * on: "Enabled IRQ remapping in xapic mode" wins over the x2apic lines that
 * say "disabled" / "doesn't support X2APIC mode". */
static void test_intel_vtd_but_kernel_off(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("intel-vtd-kernel-off.txt", &f);
    assert_true(f.dmar_table);
    assert_false(f.iommu_enabled);
    assert_false(f.iommu_disabled);
    assert_int_equal(f.ir_enabled, 1);
    assert_true(evidence_is(&f, "DMAR-IR: Enabled IRQ remapping in xapic mode"));
    klog_facts_free(&f);
}

/* intel_iommu=off with "<6>[…]" prefixes (dmesg -r): table yes, disabled
 * yes, enabled no; the BIOS erratum message that spans indented lines sets
 * IR to 0; "[Firmware Bug]: …" is not mistaken for a timestamp. */
static void test_intel_disabled_ir_erratum(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("intel-iommu-off.txt", &f);
    assert_true(f.dmar_table);
    assert_true(f.iommu_disabled);
    assert_false(f.iommu_enabled);
    assert_int_equal(f.ir_enabled, 0);
    assert_true(evidence_is(&f, "DMAR: IOMMU disabled"));
    assert_true(evidence_has(&f, "interrupt remapping is being disabled"));
    klog_facts_free(&f);

    const char *x2 = "[    0.437815] x2apic: IRQ remapping doesn't support X2APIC mode\n";
    assert_int_equal(klog_parse(x2, strlen(x2), &f), 0);
    assert_int_equal(f.ir_enabled, 0);
    klog_facts_free(&f);
}

/* AMD EPYC with dmesg -T timestamps: IVRS table, enabled (Found IOMMU,
 * IOMMUv2 loaded), IR on. */
static void test_amd(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("amd-epyc.txt", &f);
    assert_true(f.ivrs_table);
    assert_false(f.dmar_table);
    assert_true(f.iommu_enabled);
    assert_false(f.iommu_disabled);
    assert_int_equal(f.ir_enabled, 1);
    assert_true(evidence_is(&f, "AMD-Vi: Interrupt remapping enabled"));
    assert_true(evidence_is(&f, "pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40"));
    klog_facts_free(&f);
}

/* journalctl/syslog lines ("Nov 12 09:14:01 pve1 kernel: ", ISO dates) are
 * stripped to the message. */
static void test_amd_journal(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("amd-journal.txt", &f);
    assert_true(f.ivrs_table);
    assert_true(f.iommu_enabled);
    assert_int_equal(f.ir_enabled, 1);
    assert_true(evidence_is(&f, "AMD-Vi: Interrupt remapping enabled"));
    assert_true(evidence_is(&f, "pci 0000:0a:00.0: Adding to iommu group 14"));
    klog_facts_free(&f);
}

/* /dev/kmsg records ("6,541,601232,-;") with amd_iommu=off: IVRS table,
 * disabled, not enabled, IR unknown. */
static void test_amd_disabled_kmsg(void **state)
{
    (void)state;
    klog_facts_t f;
    parse_file("amd-off.txt", &f);
    assert_true(f.ivrs_table);
    assert_true(f.iommu_disabled);
    assert_false(f.iommu_enabled);
    assert_int_equal(f.ir_enabled, -1);
    assert_true(evidence_is(&f, "AMD-Vi: AMD IOMMU disabled"));
    klog_facts_free(&f);
}

/* A log with nothing relevant, an empty buffer and NULL are all "nothing
 * known"; lines that mention IOMMU words in passing ("AMD IOMMUv2 driver",
 * "iommu: Default domain type") prove nothing. */
static void test_nothing(void **state)
{
    (void)state;
    klog_facts_t f;
    const char *t = "[    0.1] iommu: Default domain type: Translated\n"
                    "[    0.2] AMD IOMMUv2 driver by Joerg Roedel <jroedel@suse.de>\n"
                    "[    0.3] AMD IOMMUv2 functionality not available on this system\n";
    assert_int_equal(klog_parse(t, strlen(t), &f), 0);
    assert_false(f.dmar_table || f.ivrs_table || f.iommu_enabled || f.iommu_disabled);
    assert_int_equal(f.ir_enabled, -1);
    assert_int_equal(f.evidence.n, 0);
    klog_facts_free(&f);
    assert_int_equal(klog_parse("", 0, &f), 0);
    klog_facts_free(&f);
    assert_int_equal(klog_parse(NULL, 0, &f), 0);
    klog_facts_free(&f);
}

/* Binary junk, NULs and control bytes inside a matching line are safe and
 * shown as '?' in evidence; a 1 MiB line without newline is cut to the
 * evidence line limit; 10000 matching lines keep at most 16. */
static void test_hostile(void **state)
{
    (void)state;
    klog_facts_t f;
    const char junk[] = "[ 1.0] DMAR: IOMMU enabled\x01\x7f\xff\0tail\n\0\0\0<6>[\n[";
    assert_int_equal(klog_parse(junk, sizeof(junk) - 1, &f), 0);
    assert_true(f.iommu_enabled);
    assert_true(evidence_is(&f, "DMAR: IOMMU enabled????tail"));
    klog_facts_free(&f);

    buf_t b = BUF_INIT;
    buf_puts(&b, "DMAR: IOMMU enabled ");
    for (int i = 0; i < 1024 * 1024; i++)
        buf_putc(&b, 'x');
    assert_int_equal(klog_parse(b.p, b.len, &f), 0);
    assert_int_equal(f.evidence.n, 1);
    assert_int_equal(strlen(f.evidence.v[0]), KLOG_EVIDENCE_LINE_MAX);
    klog_facts_free(&f);
    buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        buf_printf(&b, "[ %d.0] %s %d\n", i,
                   i % 2 ? "pci 0000:00:00.0: Adding to iommu group" : "DMAR: dmar0: Using Queued invalidation", i);
    assert_int_equal(klog_parse(b.p, b.len, &f), 0);
    assert_true(f.evidence.n <= KLOG_EVIDENCE_MAX);
    klog_facts_free(&f);
    buf_free(&b);
}

/* klog_read on a fixture root reads ROOT/dmesg.txt; a root without one is
 * -ENOENT with an error at /dmesg.txt; a 1 GB sparse dmesg.txt is -EFBIG
 * with an error. */
static void test_read_fixture(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    errs_t errs = ERRS_INIT;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(klog_read(root, &buf, &len, &errs), -ENOENT);
    assert_null(buf);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.v[0].where, "/dmesg.txt");
    errs_free(&errs);

    tu_write(dir, "dmesg.txt", "[    0.1] DMAR: IOMMU enabled\n");
    assert_int_equal(klog_read(root, &buf, &len, &errs), 0);
    assert_int_equal(errs.n, 0);
    assert_int_equal(len, strlen("[    0.1] DMAR: IOMMU enabled\n"));
    klog_facts_t f;
    klog_parse(buf, len, &f);
    assert_true(f.iommu_enabled);
    klog_facts_free(&f);
    free(buf);

    char *cmd = xasprintf("truncate -s 1G '%s/dmesg.txt'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    assert_int_equal(klog_read(root, &buf, &len, &errs), -EFBIG);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.v[0].what, "larger than"));
    errs_free(&errs);
    root_destroy(&root);
    tu_rm_rf(dir);
    free(dir);
}

/* On the live root klog_read uses the kernel buffer and only reads it: it
 * either succeeds or fails with a negative errno and one error entry
 * (EPERM in an unprivileged container) — never a crash. */
static void test_read_live(void **state)
{
    (void)state;
    root_t *root = NULL;
    assert_int_equal(root_new("/", &root), 0);
    errs_t errs = ERRS_INIT;
    char *buf = NULL;
    size_t len = 0;
    int rc = klog_read(root, &buf, &len, &errs);
    if (rc == 0) {
        assert_non_null(buf);
        assert_int_equal(errs.n, 0);
        klog_facts_t f;
        klog_parse(buf, len, &f);
        klog_facts_free(&f);
    } else {
        assert_true(rc < 0);
        assert_null(buf);
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.v[0].where, "kernel log");
    }
    free(buf);
    errs_free(&errs);
    root_destroy(&root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intel_enabled),
        cmocka_unit_test(test_intel_vtd_but_kernel_off),
        cmocka_unit_test(test_intel_disabled_ir_erratum),
        cmocka_unit_test(test_amd),
        cmocka_unit_test(test_amd_journal),
        cmocka_unit_test(test_amd_disabled_kmsg),
        cmocka_unit_test(test_nothing),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_read_fixture),
        cmocka_unit_test(test_read_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
