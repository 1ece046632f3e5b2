/* kargs_edit: the GRUB, /etc/kernel/cmdline and modules editors on the
 * shapes real files have. Every edit is also applied a second time to its
 * own output, which must change nothing (a node must never loop). */
#include "testutil.h"

#include "boot.h"
#include "buf.h"
#include "kargs_edit.h"
#include "udiff.h"

#include <errno.h>

#define ADD(...) ((const char *const[]){__VA_ARGS__})

/* Edits text, checks the result is want and that editing again is a no-op. */
static void grub_is(const char *text, const char *var, const char *const *add, size_t n_add,
                    const char *const *rm, size_t n_rm, const char *want)
{
    kargs_change_t ch = {add, n_add, rm, n_rm};
    char *out = NULL, *err = NULL;
    size_t len;
    bool changed;
    int rc = kargs_edit_grub(text, strlen(text), var, &ch, &out, &len, &changed, &err);
    if (rc < 0)
        fail_msg("edit failed: %s", err);
    if (strcmp(out, want) != 0)
        fail_msg("got:\n%s\nwant:\n%s", out, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(changed, strcmp(text, want) != 0);
    char *again = NULL;
    size_t len2;
    assert_int_equal(kargs_edit_grub(out, len, var, &ch, &again, &len2, &changed, &err), 0);
    assert_false(changed);
    assert_string_equal(again, out);
    free(again);
    free(out);
}

static void cmdline_is(const char *text, const char *const *add, size_t n_add, const char *const *rm,
                       size_t n_rm, const char *want)
{
    kargs_change_t ch = {add, n_add, rm, n_rm};
    char *out = NULL, *err = NULL;
    size_t len;
    bool changed;
    if (kargs_edit_cmdline_file(text, strlen(text), &ch, &out, &len, &changed, &err) < 0)
        fail_msg("edit failed: %s", err);
    if (strcmp(out, want) != 0)
        fail_msg("got:\n%s\nwant:\n%s", out, want);
    assert_int_equal(changed, strcmp(text, want) != 0);
    char *again = NULL;
    assert_int_equal(kargs_edit_cmdline_file(out, len, &ch, &again, &len, &changed, &err), 0);
    assert_false(changed);
    assert_string_equal(again, out);
    free(again);
    free(out);
}

static const char *const DEBIAN =
    "# If you change this file, run 'update-grub' afterwards to update\n"
    "GRUB_DEFAULT=0\n"
    "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
    "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
    "GRUB_CMDLINE_LINUX=\"\"\n"
    "#GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=off\"\n";

/* The common case: added to _DEFAULT, inside its quotes; every other line,
 * the comment that looks like an assignment included, byte for byte. */
static void test_grub_add_default(void **state)
{
    (void)state;
    grub_is(DEBIAN, NULL, ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0,
            "# If you change this file, run 'update-grub' afterwards to update\n"
            "GRUB_DEFAULT=0\n"
            "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt\"\n"
            "GRUB_CMDLINE_LINUX=\"\"\n"
            "#GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=off\"\n");
    /* The operator's choice: GRUB_CMDLINE_LINUX (recovery boots too). */
    grub_is(DEBIAN, "GRUB_CMDLINE_LINUX", ADD("intel_iommu=on"), 1, NULL, 0,
            "# If you change this file, run 'update-grub' afterwards to update\n"
            "GRUB_DEFAULT=0\n"
            "GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
            "GRUB_CMDLINE_LINUX=\"intel_iommu=on\"\n"
            "#GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=off\"\n");
}

/* Present in either variable: nothing to add; options as tokens. */
static void test_grub_already_present(void **state)
{
    (void)state;
    const char *t = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"intel_iommu=on,sm_on iommu=pt\"\n";
    grub_is(t, NULL, ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0, t);
    /* Never substrings: xintel_iommu=on and intel_iommu=onx do not count. */
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"xintel_iommu=on intel_iommu=onx\"\n", NULL, ADD("intel_iommu=on"), 1,
            NULL, 0, "GRUB_CMDLINE_LINUX_DEFAULT=\"xintel_iommu=on intel_iommu=onx intel_iommu=on\"\n");
    /* Kernel-level quotes around the token. */
    const char *q = "GRUB_CMDLINE_LINUX_DEFAULT='quiet \"intel_iommu=on\"'\n";
    grub_is(q, NULL, ADD("intel_iommu=on"), 1, NULL, 0, q);
}

/* intel_iommu=off is replaced in place, not joined; iommu=off against
 * iommu=pt too; a duplicate off elsewhere goes. igfx_off is not off. */
static void test_grub_replace_off(void **state)
{
    (void)state;
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=off splash\"\n", NULL, ADD("intel_iommu=on"), 1, NULL,
            0, "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on splash\"\n");
    grub_is("GRUB_CMDLINE_LINUX=\"intel_iommu=off iommu=off\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=off quiet\"\n",
            NULL, ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0,
            "GRUB_CMDLINE_LINUX=\"intel_iommu=on iommu=pt\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=igfx_off\"\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=igfx_off intel_iommu=on\"\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"iommu=nopt\"\n", NULL, ADD("iommu=pt"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n");
}

/* Removal by key or exact token, from both variables, spacing tidy. */
static void test_grub_remove(void **state)
{
    (void)state;
    grub_is("GRUB_CMDLINE_LINUX=\"amd_iommu=off\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"amd_iommu=off quiet iommu=off\"\n",
            NULL, NULL, 0, ADD("amd_iommu=off", "iommu"), 2,
            "GRUB_CMDLINE_LINUX=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"a b amd_iommu=pgtbl_v2 c\"\n", NULL, NULL, 0, ADD("amd_iommu=off"), 1,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"a b amd_iommu=pgtbl_v2 c\"\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"x y z\"\n", NULL, NULL, 0, ADD("x", "y"), 2,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"z\"\n");
}

/* Quoting styles kept: single quotes, none; an unquoted value that needs
 * a blank gets double quotes. */
static void test_grub_quoting(void **state)
{
    (void)state;
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT='quiet splash'\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT='quiet splash intel_iommu=on'\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=intel_iommu=off\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=intel_iommu=on\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=intel_iommu=on\n");
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=quiet # the default\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\" # the default\n");
    grub_is("export GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"; GRUB_TIMEOUT=5\n", NULL, ADD("iommu=pt"), 1, NULL, 0,
            "export GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"; GRUB_TIMEOUT=5\n");
}

/* Continuation lines inside the quotes stay; the token goes after the last
 * token, before the closing quote. */
static void test_grub_continuation(void **state)
{
    (void)state;
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\\n    splash \\\n    intel_iommu=off\"\nGRUB_TIMEOUT=5\n", NULL,
            ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet \\\n    splash \\\n    intel_iommu=on iommu=pt\"\nGRUB_TIMEOUT=5\n");
    /* A multi-line double-quoted value without backslashes. */
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n  splash\"\n", NULL, ADD("iommu=pt"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n  splash iommu=pt\"\n");
}

/* Several assignments: the last one counts and gets the addition; a
 * "$VAR" expansion carries earlier tokens; += works; if-blocks are edited. */
static void test_grub_several_assignments(void **state)
{
    (void)state;
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"splash\"\n", NULL,
            ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"splash intel_iommu=on\"\n");
    const char *exp = "GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on\"\n"
                      "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT quiet\"\n";
    grub_is(exp, NULL, ADD("intel_iommu=on"), 1, NULL, 0, exp);
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT+=\" splash\"\n", NULL,
            ADD("iommu=pt"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX_DEFAULT+=\" splash iommu=pt\"\n");
    grub_is("if [ -e /x ]; then GRUB_CMDLINE_LINUX=\"intel_iommu=off\"; fi\n", NULL, ADD("intel_iommu=on"), 1, NULL,
            0, "if [ -e /x ]; then GRUB_CMDLINE_LINUX=\"intel_iommu=on\"; fi\n");
    /* Replaced inside a dead assignment would not count: added where it does. */
    grub_is("GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=off\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n", NULL,
            ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\n");
}

/* Missing variable: a new line at the end (after a newline if missing);
 * GRUB_CMDLINE_LINUX only is enough to find a token. */
static void test_grub_missing_variable(void **state)
{
    (void)state;
    grub_is("GRUB_TIMEOUT=5", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on\"\n");
    grub_is("", NULL, ADD("intel_iommu=on"), 1, NULL, 0, "GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on\"\n");
    const char *only = "GRUB_CMDLINE_LINUX=\"quiet intel_iommu=on\"\n";
    grub_is(only, NULL, ADD("intel_iommu=on"), 1, NULL, 0, only);
    grub_is(only, NULL, ADD("iommu=pt"), 1, NULL, 0,
            "GRUB_CMDLINE_LINUX=\"quiet intel_iommu=on\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"iommu=pt\"\n");
}

/* CRLF files keep their line ends, new lines get CRLF too. */
static void test_grub_crlf(void **state)
{
    (void)state;
    grub_is("GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\r\n", NULL, ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\r\n");
    grub_is("GRUB_TIMEOUT=5\r\n", "GRUB_CMDLINE_LINUX", ADD("intel_iommu=on"), 1, NULL, 0,
            "GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX=\"intel_iommu=on\"\r\n");
}

/* Refused, nothing given back: unterminated quotes, mixed quoting, NUL
 * bytes, tokens the shell would read differently, unknown variable. */
static void test_grub_refusals(void **state)
{
    (void)state;
    struct {
        const char *text;
        size_t len;
        const char *var;
        const char *tok;
    } cases[] = {
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n", 0, NULL, "intel_iommu=on"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"' splash'\n", 0, NULL, "intel_iommu=on"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"$(cat /x)\"\n", 0, NULL, "intel_iommu=on"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"q\0uiet\"\n", 36, NULL, "intel_iommu=on"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n", 0, NULL, "a=$(reboot)"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n", 0, NULL, "a b"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n", 0, NULL, ""},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"\"\n", 0, "GRUB_TIMEOUT", "intel_iommu=on"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *add[] = {cases[i].tok};
        kargs_change_t ch = {add, 1, NULL, 0};
        char *out = (char *)1, *err = NULL;
        size_t len;
        bool changed = true;
        size_t tl = cases[i].len ? cases[i].len : strlen(cases[i].text);
        assert_int_equal(kargs_edit_grub(cases[i].text, tl, cases[i].var, &ch, &out, &len, &changed, &err), -EINVAL);
        assert_null(out);
        assert_false(changed);
        assert_non_null(err);
        free(err);
    }
}

/* Every fixture's /etc/default/grub: the edit gives what the probe's
 * parser reads as enabled, and a second edit changes nothing. */
static void test_grub_fixtures(void **state)
{
    (void)state;
    const char *names[] = {"amd-default-on", "intel-grub-vtd-off", "no-firmware-table", "old-shared-group",
                           "pve-intel-sdboot-i225", "sriov-82599"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *src = tu_fixture_src(names[i]);
        char *path = xasprintf("%s/etc/default/grub", src);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char text[8192];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        kargs_change_t ch = {ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0};
        char *out, *err = NULL, *def = NULL;
        size_t len;
        bool changed;
        assert_int_equal(kargs_edit_grub(text, n, NULL, &ch, &out, &len, &changed, &err), 0);
        assert_true(changed);
        assert_int_equal(grub_defaults_parse(out, len, NULL, &def, &err), 0);
        kargs_t a = KARGS_INIT;
        kargs_parse(def, strlen(def), &a);
        assert_true(karg_has_option(kargs_find_last(&a, "intel_iommu"), "on"));
        assert_true(karg_has_option(kargs_find_last(&a, "iommu"), "pt"));
        kargs_free(&a);
        free(def);
        /* Exactly one line differs. */
        char *d = udiff("a", text, n, "b", out, len);
        size_t minus = 0;
        for (char *p = d; (p = strstr(p, "\n-")); p++)
            minus++;
        assert_int_equal(minus, 1);
        free(d);
        free(out);
        free(path);
        free(src);
    }
}

/* /etc/kernel/cmdline: the line edited in place, comments kept. */
static void test_cmdline_file(void **state)
{
    (void)state;
    cmdline_is("root=ZFS=rpool/ROOT/pve-1 boot=zfs\n", ADD("intel_iommu=on", "iommu=pt"), 2, NULL, 0,
               "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n");
    cmdline_is("root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n", ADD("intel_iommu=on", "iommu=pt"), 2,
               NULL, 0, "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n");
    cmdline_is("# written by hand\n\nroot=ZFS=rpool intel_iommu=off quiet  \n", ADD("intel_iommu=on"), 1, NULL, 0,
               "# written by hand\n\nroot=ZFS=rpool intel_iommu=on quiet  \n");
    cmdline_is("root=x amd_iommu=off\r\n", NULL, 0, ADD("amd_iommu=off"), 1, "root=x\r\n");
    cmdline_is("root=x", ADD("iommu=pt"), 1, NULL, 0, "root=x iommu=pt");
    cmdline_is("", ADD("iommu=pt"), 1, NULL, 0, "iommu=pt\n");
    cmdline_is("# only a comment", ADD("iommu=pt"), 1, NULL, 0, "# only a comment\niommu=pt\n");
    cmdline_is("root=x \"dyndbg=file a.c +p\" intel_iommu=on,sm_on\n", ADD("intel_iommu=on"), 1, NULL, 0,
               "root=x \"dyndbg=file a.c +p\" intel_iommu=on,sm_on\n");
}

/* Modules: only what no file configures yet; a new file gets a header. */
static void test_modules(void **state)
{
    (void)state;
    const char *mods[] = {"vfio", "vfio_iommu_type1", "vfio-pci"};
    strv_t already = STRV_INIT;
    strv_add(&already, "vfio");
    char *out, *err = NULL;
    size_t len;
    bool changed;
    assert_int_equal(modules_conf_edit("", 0, mods, 3, &already, &out, &len, &changed, &err), 0);
    assert_true(changed);
    assert_non_null(strstr(out, "pcifleet"));
    assert_non_null(strstr(out, "\nvfio_iommu_type1\nvfio_pci\n"));
    assert_null(strstr(out, "\nvfio\n"));
    char *again;
    assert_int_equal(modules_conf_edit(out, len, mods, 3, &already, &again, &len, &changed, &err), 0);
    assert_false(changed);
    assert_string_equal(again, out);
    free(again);
    free(out);
    assert_int_equal(modules_conf_edit("vfio_pci", 8, mods, 3, NULL, &out, &len, &changed, &err), 0);
    assert_string_equal(out, "vfio_pci\nvfio\nvfio_iommu_type1\n");
    free(out);
    const char *bad[] = {"vfio;reboot"};
    assert_int_equal(modules_conf_edit("", 0, bad, 1, NULL, &out, &len, &changed, &err), -EINVAL);
    assert_null(out);
    free(err);
    strv_free(&already);
}

/* The diff generator: headers, hunks, context, missing last newline. */
static void test_udiff(void **state)
{
    (void)state;
    char *d = udiff("a", "x\n", 2, "b", "x\n", 2);
    assert_string_equal(d, "");
    free(d);
    d = udiff("a/f", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", 18, "b/f", "1\n2\n3\n4\nV\n6\n7\n8\n9\n", 18);
    assert_string_equal(d, "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+V\n 6\n 7\n 8\n");
    free(d);
    d = udiff("a", "", 0, "b", "x\n", 2);
    assert_string_equal(d, "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n");
    free(d);
    d = udiff("a", "x", 1, "b", "x\ny\n", 4);
    assert_string_equal(d, "--- a\n+++ b\n@@ -1,1 +1,2 @@\n-x\n\\ No newline at end of file\n+x\n+y\n");
    free(d);
    /* Two changes far apart: two hunks. */
    d = udiff("a", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", 27, "b", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n", 26);
    assert_string_equal(d, "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grub_add_default),    cmocka_unit_test(test_grub_already_present),
        cmocka_unit_test(test_grub_replace_off),    cmocka_unit_test(test_grub_remove),
        cmocka_unit_test(test_grub_quoting),        cmocka_unit_test(test_grub_continuation),
        cmocka_unit_test(test_grub_several_assignments), cmocka_unit_test(test_grub_missing_variable),
        cmocka_unit_test(test_grub_crlf),           cmocka_unit_test(test_grub_refusals),
        cmocka_unit_test(test_grub_fixtures),       cmocka_unit_test(test_cmdline_file),
        cmocka_unit_test(test_modules),             cmocka_unit_test(test_udiff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
