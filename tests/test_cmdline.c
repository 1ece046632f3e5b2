/* cmdline: the kernel command line is read as tokens, never substrings.
 * Each test states the property it proves and asserts it. */
#include "testutil.h"

#include "cmdline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void parse(const char *s, kargs_t *a)
{
    assert_int_equal(kargs_parse(s, strlen(s), a), 0);
}

/* A real Proxmox /proc/cmdline splits into its tokens, with '=' splitting
 * key from value only at the first '=' (root=ZFS=rpool/... keeps its value
 * whole), and tokens without '=' have a NULL value. */
static void test_real_cmdline(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("BOOT_IMAGE=/boot/vmlinuz-6.8.12-4-pve root=ZFS=rpool/ROOT/pve-1 boot=zfs ro quiet "
          "intel_iommu=on iommu=pt\n",
          &a);
    assert_int_equal(a.n, 7);
    assert_string_equal(a.v[0].key, "BOOT_IMAGE");
    assert_string_equal(a.v[0].value, "/boot/vmlinuz-6.8.12-4-pve");
    assert_string_equal(a.v[1].key, "root");
    assert_string_equal(a.v[1].value, "ZFS=rpool/ROOT/pve-1");
    assert_string_equal(a.v[3].key, "ro");
    assert_null(a.v[3].value);
    assert_string_equal(kargs_find_last(&a, "iommu")->value, "pt");
    kargs_free(&a);
    assert_int_equal(a.n, 0);
    assert_null(a.v);
}

/* Options are compared whole: intel_iommu=on,sm_on has "on" and "sm_on" but
 * not "sm" or "o"; intel_iommu=off does not have "on"; a key without value
 * has no options. */
static void test_options(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("intel_iommu=on,sm_on iommu=off quiet", &a);
    const karg_t *k = kargs_find_last(&a, "intel_iommu");
    assert_non_null(k);
    assert_true(karg_has_option(k, "on"));
    assert_true(karg_has_option(k, "sm_on"));
    assert_false(karg_has_option(k, "sm"));
    assert_false(karg_has_option(k, "o"));
    assert_false(karg_has_option(kargs_find_last(&a, "iommu"), "on"));
    assert_true(karg_has_option(kargs_find_last(&a, "iommu"), "off"));
    assert_false(karg_has_option(kargs_find_last(&a, "quiet"), "quiet"));
    assert_false(karg_has_option(NULL, "on"));
    kargs_free(&a);

    parse("intel_iommu=off", &a);
    assert_false(karg_has_option(kargs_find_last(&a, "intel_iommu"), "on"));
    assert_true(karg_has_option(kargs_find_last(&a, "intel_iommu"), "off"));
    kargs_free(&a);
}

/* A key that merely contains another is a different key: xintel_iommu=on
 * and intel_iommu_foo=on are not intel_iommu. */
static void test_no_substrings(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("xintel_iommu=on intel_iommu_foo=on amd_iommu=on", &a);
    assert_null(kargs_find_last(&a, "intel_iommu"));
    assert_null(kargs_find_last(&a, "iommu"));
    assert_non_null(kargs_find_last(&a, "xintel_iommu"));
    kargs_free(&a);
}

/* The kernel honours the last occurrence: find_last gives it. */
static void test_last_wins(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("intel_iommu=on quiet intel_iommu=off", &a);
    assert_string_equal(kargs_find_last(&a, "intel_iommu")->value, "off");
    kargs_free(&a);
}

/* Quotes group whitespace into one token and are removed, both in
 * key="x y" and "key=x y" form; tabs and newlines separate tokens; an
 * empty value stays "" (not NULL); a token of only quotes is dropped. */
static void test_quotes_and_whitespace(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("dyndbg=\"file drivers/vfio/* +p\"\t\"acpi_osi=Windows 2020\"\nfoo= \"\" bar", &a);
    assert_int_equal(a.n, 4);
    assert_string_equal(a.v[0].key, "dyndbg");
    assert_string_equal(a.v[0].value, "file drivers/vfio/* +p");
    assert_string_equal(a.v[1].key, "acpi_osi");
    assert_string_equal(a.v[1].value, "Windows 2020");
    assert_string_equal(a.v[2].key, "foo");
    assert_string_equal(a.v[2].value, "");
    assert_string_equal(a.v[3].key, "bar");
    assert_null(a.v[3].value);
    kargs_free(&a);

    /* An unterminated quote runs to the end, as in the kernel. */
    parse("a=\"b c", &a);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.v[0].value, "b c");
    kargs_free(&a);
}

/* kargs_parse appends to what is already there (GRUB's LINUX then
 * LINUX_DEFAULT make one list). */
static void test_appends(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("root=/dev/sda1", &a);
    parse("quiet", &a);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.v[1].key, "quiet");
    kargs_free(&a);
}

/* NUL bytes are garbage: -EINVAL, yet the text around them is still parsed
 * (a NUL separates tokens). Empty input gives no tokens. */
static void test_nul_bytes(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    const char in[] = "quiet\0iommu=pt";
    assert_int_equal(kargs_parse(in, sizeof(in) - 1, &a), -EINVAL);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.v[1].key, "iommu");
    kargs_free(&a);
    assert_int_equal(kargs_parse("", 0, &a), 0);
    assert_int_equal(a.n, 0);
    kargs_free(&a);
}

/* kargs_to_string quotes values with whitespace and round-trips: parsing
 * its output gives the same tokens. An empty list prints as "". */
static void test_to_string(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("quiet acpi_osi=\"Windows 2020\" \"odd key=v w\" iommu=pt e=", &a);
    char *s = kargs_to_string(&a);
    assert_string_equal(s, "quiet acpi_osi=\"Windows 2020\" \"odd key=v w\" iommu=pt e=");
    kargs_t b = KARGS_INIT;
    parse(s, &b);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.v[i].key, b.v[i].key);
        if (a.v[i].value)
            assert_string_equal(a.v[i].value, b.v[i].value);
        else
            assert_null(b.v[i].value);
    }
    free(s);
    kargs_free(&a);
    kargs_free(&b);
    s = kargs_to_string(&a);
    assert_string_equal(s, "");
    free(s);
}

/* kargs_add and kargs_remove edit a list the way a step would: remove every
 * intel_iommu, add the wanted one. */
static void test_edit(void **state)
{
    (void)state;
    kargs_t a = KARGS_INIT;
    parse("quiet intel_iommu=off iommu=pt intel_iommu=igfx_off", &a);
    assert_int_equal(kargs_remove(&a, "intel_iommu"), 2);
    kargs_add(&a, "intel_iommu", "on");
    kargs_add(&a, "nomodeset", NULL);
    char *s = kargs_to_string(&a);
    assert_string_equal(s, "quiet iommu=pt intel_iommu=on nomodeset");
    free(s);
    kargs_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_cmdline),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_no_substrings),
        cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_quotes_and_whitespace),
        cmocka_unit_test(test_appends),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_to_string),
        cmocka_unit_test(test_edit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
