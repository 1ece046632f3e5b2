/* Tests for agent/probe/corosync.c: the fixture cluster file, members named
 * by ring0_addr when they have no name, comments, and what is refused
 * (unbalanced braces, deep nesting, NUL bytes), keeping nothing then. */
#include "testutil.h"

#include "buf.h"
#include "corosync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void parse_ok(const char *text, const char *name, const char *members)
{
    cluster_t c;
    char *why = NULL;
    if (corosync_parse(text, strlen(text), &c, &why) != 0)
        fail_msg("refused: %s", why);
    assert_string_equal(c.name ? c.name : "(none)", name);
    char *got = strv_join(&c.members, ",");
    assert_string_equal(got, members);
    free(got);
    cluster_free(&c);
}

static void parse_bad(const char *text, size_t len, const char *want)
{
    cluster_t c;
    char *why = NULL;
    assert_int_equal(corosync_parse(text, len, &c, &why), -EINVAL);
    if (!why || !strstr(why, want))
        fail_msg("'%s' does not say '%s'", why ? why : "", want);
    assert_null(c.name);
    assert_int_equal(c.members.n, 0);
    free(why);
}

static void test_fixture(void **state)
{
    (void)state;
    char *dir = tu_fixture_src("pve-intel-sdboot-i225");
    char *path = xasprintf("%s/etc/pve/corosync.conf", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char text[8192];
    size_t len = fread(text, 1, sizeof text, fp);
    fclose(fp);
    free(dir);
    cluster_t c;
    char *why = NULL;
    assert_int_equal(corosync_parse(text, len, &c, &why), 0);
    assert_string_equal(c.name, "lab");
    char *got = strv_join(&c.members, ",");
    assert_string_equal(got, "amd-default-on,pve-intel-sdboot-i225,sriov-82599");
    free(got);
    cluster_free(&c);
    free(path);
}

static void test_shapes(void **state)
{
    (void)state;
    parse_ok("totem {\n cluster_name: c1 # the name\n}\nnodelist {\n node {\n  ring0_addr: 10.0.0.2\n }\n"
             " node {\n  name: b\n  ring0_addr: 10.0.0.1\n }\n node {\n  name: b\n }\n}\n",
             "c1", "10.0.0.2,b");
    parse_ok("# only a comment\n", "(none)", "");
    parse_ok("nodelist {\n  node {\n    name: x\n  }\n}\n", "", "x"); /* members without a cluster name */
    parse_ok("logging {\n  debug: off\n  sub { inner: 1 }\n}\n", "(none)", "");
}

static void test_refusals(void **state)
{
    (void)state;
    parse_bad("nodelist {\n node {\n  name: a\n", strlen("nodelist {\n node {\n  name: a\n"), "ends inside the block 'node'");
    parse_bad("}\n", 2, "closes no block");
    char deep[200] = "";
    for (int i = 0; i < 17; i++)
        strcat(deep, "a {\n");
    parse_bad(deep, strlen(deep), "nested deeper than 16");
    parse_bad("totem {\n cluster_name: a\0b\n}\n", 28, "NUL byte");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
