/* privs: the agent keeps only the capabilities its policy needs. Each test
 * drops privileges in a forked child (dropping cannot be undone) and the
 * child reports by its exit status which check failed; the parent asserts
 * it was none. Needs root with CAP_SETPCAP (CI runs as root); skipped
 * otherwise, saying so. */
#include "testutil.h"

#include "buf.h"
#include "privs.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(c) ((uint64_t)1 << (c))

/* A "CapXxx:" or "NoNewPrivs:" line of /proc/self/status, as a number. */
static uint64_t status_field(const char *name, int base)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return UINT64_MAX;
    char line[256];
    uint64_t v = UINT64_MAX;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, base);
    fclose(f);
    return v;
}

static bool can_test(void)
{
    if (geteuid() != 0 || !(status_field("CapEff", 16) & BIT(CAP_SETPCAP))) {
        fprintf(stderr, "skipped: needs root with CAP_SETPCAP to drop capabilities\n");
        return false;
    }
    return true;
}

/* The sets are compared with what the test had to begin with: a container
 * may hold fewer capabilities than a host's root. */

/* Runs fn in a child and asserts it exited 0 (its nonzero status names the
 * failed check). */
static void in_child(int (*fn)(const char *dir), const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(dir));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("check %d failed in the child", WEXITSTATUS(st));
}

/* Probe level: no_new_privs is set; the effective, permitted and bounding
 * sets are exactly the probe mask, inheritable empty; a dropped capability
 * really is gone (chown to another user fails with EPERM), and a command
 * the agent runs gets no more than the mask either. */
static int child_probe(const char *dir)
{
    uint64_t mask = privs_mask(PRIVS_PROBE, false) & status_field("CapPrm", 16), eff = 0;
    char *err = NULL;
    if (privs_restrict(mask, &eff, &err) < 0)
        return 2;
    if (eff != mask)
        return 3;
    if (status_field("NoNewPrivs", 10) != 1)
        return 4;
    if (status_field("CapEff", 16) != mask || status_field("CapPrm", 16) != mask ||
        status_field("CapBnd", 16) != mask || status_field("CapInh", 16) != 0)
        return 5;
    char *path = xasprintf("%s/owned", dir);
    int rc = chown(path, 4242, 4242);
    int e = errno;
    free(path);
    if (rc == 0 || e != EPERM)
        return 6;
    /* What an exec'd step command would hold. */
    FILE *p = popen("sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status", "r");
    if (!p)
        return 7;
    char line[64] = "";
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    pclose(p);
    uint64_t child = strtoull(line, NULL, 16);
    if (!line[0] || (child & ~mask) != 0)
        return 8;
    return 0;
}

static void test_probe_level(void **state)
{
    (void)state;
    if (!can_test())
        skip();
    char *dir = tu_tmpdir();
    tu_write(dir, "owned", "x");
    in_child(child_probe, dir);
    struct stat st;
    char *path = xasprintf("%s/owned", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, 0); /* the child's chown changed nothing */
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

/* Edit level keeps what replacing another user's file needs: the same
 * chown succeeds, and rebooting is still not possible (no CAP_SYS_BOOT). */
static int child_edit(const char *dir)
{
    uint64_t mask = privs_mask(PRIVS_EDIT, true) & status_field("CapPrm", 16), eff = 0;
    char *err = NULL;
    if (privs_restrict(mask, &eff, &err) < 0)
        return 2;
    if (eff != mask || (eff & BIT(CAP_SYS_BOOT)))
        return 3;
    char *path = xasprintf("%s/owned", dir);
    int rc = chown(path, 4242, 4242);
    free(path);
    return rc == 0 ? 0 : 4;
}

static void test_edit_level(void **state)
{
    (void)state;
    if (!can_test())
        skip();
    char *dir = tu_tmpdir();
    tu_write(dir, "owned", "x");
    in_child(child_edit, dir);
    struct stat st;
    char *path = xasprintf("%s/owned", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, 4242);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

/* Dropping twice (a restarted daemon loop) works and can only narrow. */
static int child_twice(const char *dir)
{
    (void)dir;
    char *err = NULL;
    uint64_t eff = 0, had = status_field("CapPrm", 16);
    if (privs_restrict(privs_mask(PRIVS_TOOLS, false), &eff, &err) < 0)
        return 2;
    if (privs_restrict(privs_mask(PRIVS_TOOLS, true), &eff, &err) < 0)
        return 3;
    if (eff != (privs_mask(PRIVS_TOOLS, false) & had)) /* CAP_SYS_BOOT does not come back */
        return 4;
    if (privs_restrict(privs_mask(PRIVS_PROBE, false), &eff, &err) < 0 ||
        eff != (privs_mask(PRIVS_PROBE, false) & had))
        return 5;
    return 0;
}

static void test_drop_twice(void **state)
{
    (void)state;
    if (!can_test())
        skip();
    in_child(child_twice, NULL);
}

/* The masks nest, only the tools level may reboot, and nothing the agent
 * never needs is in any of them (module loading, raw I/O, ptrace, ...). */
static void test_masks(void **state)
{
    (void)state;
    uint64_t probe = privs_mask(PRIVS_PROBE, true), edit = privs_mask(PRIVS_EDIT, true);
    uint64_t tools = privs_mask(PRIVS_TOOLS, false), boot = privs_mask(PRIVS_TOOLS, true);
    assert_true((probe & edit) == probe && (edit & tools) == edit && (tools & boot) == tools);
    assert_int_equal(probe, BIT(CAP_SYS_ADMIN) | BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_SYSLOG));
    assert_false(edit & BIT(CAP_SYS_BOOT));
    assert_false(tools & BIT(CAP_SYS_BOOT));
    assert_true(boot & BIT(CAP_SYS_BOOT));
    uint64_t never = BIT(CAP_SYS_MODULE) | BIT(CAP_SYS_RAWIO) | BIT(CAP_SYS_PTRACE) | BIT(CAP_NET_RAW) |
                     BIT(CAP_SETPCAP) | BIT(CAP_SETFCAP) | BIT(CAP_SYS_TIME) | BIT(CAP_MAC_ADMIN) | BIT(CAP_BPF);
    assert_int_equal(boot & never, 0);
    buf_t b = BUF_INIT;
    privs_describe(probe, &b);
    assert_string_equal(b.p, "cap_dac_read_search,cap_sys_admin,cap_syslog");
    buf_reset(&b);
    privs_describe(0, &b);
    assert_string_equal(b.p, "none");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_probe_level),
        cmocka_unit_test(test_edit_level),
        cmocka_unit_test(test_drop_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
