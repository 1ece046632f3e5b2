/* Tests of the command runner (agent/runner.c), the node simulator
 * (agent/sim.c), the config editor (agent/pve_edit.c) and atomic_replace
 * (agent/atomic.c).
 *
 * Proves: REAL mode reports exit status, signal deaths and exec failures,
 * keeps stdout and stderr, bounds output and time (killing the command's
 * whole group), and passes no agent descriptor on — using only /bin/sh,
 * sleep and head, never a command with effects; command lines are quoted
 * for pasting; SIMULATE refuses the live root. The simulator, on a copy of
 * a fixture host: `qm set --hostpciN` adds in Proxmox's sorted place, a
 * second add goes beside the first, `--delete` removes, every other line and
 * the [PENDING] and snapshot sections stay byte for byte; an unknown VMID
 * gets qm's message and exit 2; programs, subcommands, options and values
 * it does not understand are refused and change nothing; no temporary file
 * is left behind, the file mode is kept, and a symbolic link is not
 * replaced. */
#include "testutil.h"

#include "atomic.h"
#include "buf.h"
#include "pve_edit.h"
#include "root.h"
#include "runner.h"
#include "sim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIXTURE "pve-intel-sdboot-i225"
#define CONFDIR "etc/pve/nodes/pve-intel-sdboot-i225/qemu-server"

static char *slurp(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
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
    return buf_steal(&b);
}

static int run(runner_t *r, runner_result_t *res, const char *const *argv)
{
    return runner_run(r, argv, res);
}

/* ---- REAL ---- */

static void test_real_status_and_output(void **state)
{
    (void)state;
    runner_t *r = NULL;
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_REAL, NULL, &r, &err), 0);
    assert_int_equal(runner_mode(r), RUNNER_REAL);
    runner_result_t res = RUNNER_RESULT_INIT;
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "echo out; echo err >&2; exit 3", NULL}), 0);
    assert_int_equal(res.status, 3);
    assert_false(res.timed_out);
    assert_false(res.truncated);
    assert_non_null(strstr(res.output, "out\n"));
    assert_non_null(strstr(res.output, "err\n"));
    assert_int_equal(res.len, strlen(res.output));

    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "kill -9 $$", NULL}), 0);
    assert_int_equal(res.status, 128 + 9);

    assert_int_equal(run(r, &res, (const char *const[]){"/nonexistent/pcifleet-no-such-program", NULL}), 0);
    assert_int_equal(res.status, 127);
    assert_non_null(strstr(res.output, "cannot execute /nonexistent/pcifleet-no-such-program"));

    /* stdin is /dev/null: a command reading it ends at once. */
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "cat; echo done", NULL}), 0);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.output, "done\n");
    runner_result_clear(&res);
    runner_destroy(&r);
    assert_null(r);
    runner_destroy(&r); /* NULL-safe */
}

static void test_real_bounds(void **state)
{
    (void)state;
    runner_t *r = NULL;
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_REAL, "/", &r, &err), 0);
    runner_result_t res = RUNNER_RESULT_INIT;
    /* Output beyond the bound is read and dropped: the command finishes. */
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "head -c 300000 /dev/zero | tr '\\000' x; exit 0",
                                                        NULL}),
                     0);
    assert_int_equal(res.status, 0);
    assert_true(res.truncated);
    assert_int_equal(res.len, RUNNER_OUTPUT_MAX);

    /* A command that outlives its bound is killed with what it started. */
    runner_set_timeout(r, 300);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "echo started; sleep 30 & sleep 30", NULL}), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(res.timed_out);
    assert_int_equal(res.status, RUNNER_STATUS_TIMEOUT);
    assert_non_null(strstr(res.output, "started"));
    assert_non_null(strstr(res.output, "killed after 0.3 s"));
    assert_true(took < 5.0);

    /* A command that exits while something it started keeps the output
     * open is done when it exits, not when the pipe closes. */
    runner_set_timeout(r, 20000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", "sleep 3 & echo bye", NULL}), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(res.status, 0);
    assert_false(res.timed_out);
    assert_true(took < 2.5);
    runner_result_clear(&res);
    runner_destroy(&r);
}

static void test_real_no_inherited_fds(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(fd > 2);
    runner_t *r = NULL;
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_REAL, NULL, &r, &err), 0);
    runner_result_t res = RUNNER_RESULT_INIT;
    char *script = xasprintf("test -e /proc/self/fd/%d && echo inherited || echo closed", fd);
    assert_int_equal(run(r, &res, (const char *const[]){"sh", "-c", script, NULL}), 0);
    assert_string_equal(res.output, "closed\n");
    free(script);
    close(fd);
    runner_result_clear(&res);
    runner_destroy(&r);
}

static void test_command_line_and_modes(void **state)
{
    (void)state;
    char *s = runner_command_line((const char *const[]){"qm", "set", "100", "--hostpci0",
                                                         "0000:02:00.0;0000:02:00.1,pcie=1", "it's", "", NULL});
    assert_string_equal(s, "qm set 100 --hostpci0 '0000:02:00.0;0000:02:00.1,pcie=1' 'it'\\''s' ''");
    free(s);
    runner_t *r = NULL;
    char *err = NULL;
    /* The simulator never works on the host's own files. */
    assert_int_equal(runner_new(RUNNER_SIMULATE, "/", &r, &err), -EPERM);
    assert_null(r);
    assert_non_null(strstr(err, "fixture"));
    free(err);
    assert_int_equal(runner_new(RUNNER_SIMULATE, "/nonexistent-pcifleet-root", &r, &err), -ENOENT);
    free(err);
    assert_int_equal(runner_new(RUNNER_CUSTOM, NULL, &r, &err), -EINVAL);
    free(err);
    assert_string_equal(runner_mode_name(RUNNER_SIMULATE), "simulate");
    assert_string_equal(runner_mode_name(RUNNER_REAL), "real");
}

/* ---- pve_edit ---- */

static void test_pve_edit(void **state)
{
    (void)state;
    const char *c = "#desc\nboot: order=scsi0\nmemory: 2048\nname: x\n\n[PENDING]\nhostpci1: 01:00.0\n";
    size_t n = strlen(c);
    buf_t b = BUF_INIT;
    assert_int_equal(pve_edit_live_end(c, n), strlen("#desc\nboot: order=scsi0\nmemory: 2048\nname: x\n\n"));
    assert_int_equal(pve_edit_set(c, n, "hostpci0", "0000:02:00.0", &b), 0);
    assert_string_equal(b.p, "#desc\nboot: order=scsi0\nhostpci0: 0000:02:00.0\nmemory: 2048\nname: x\n\n"
                             "[PENDING]\nhostpci1: 01:00.0\n");
    /* A key sorting after everything goes after the last non-blank line. */
    buf_free(&b);
    assert_int_equal(pve_edit_set(c, n, "vga", "std", &b), 0);
    assert_string_equal(b.p, "#desc\nboot: order=scsi0\nmemory: 2048\nname: x\nvga: std\n\n"
                             "[PENDING]\nhostpci1: 01:00.0\n");
    buf_free(&b);
    /* Replacing keeps the place and drops a later duplicate. */
    const char *d = "hostpci0: a\nmemory: 1\nhostpci0: b\nhostpci10: c\n";
    assert_int_equal(pve_edit_set(d, strlen(d), "hostpci0", "z", &b), 0);
    assert_string_equal(b.p, "hostpci0: z\nmemory: 1\nhostpci10: c\n");
    buf_free(&b);
    assert_int_equal(pve_edit_delete(d, strlen(d), "hostpci0", &b), 2);
    assert_string_equal(b.p, "memory: 1\nhostpci10: c\n");
    buf_free(&b);
    assert_int_equal(pve_edit_delete(c, n, "hostpci1", &b), 0); /* only in [PENDING]: not live */
    assert_string_equal(b.p, c);
    buf_free(&b);
    /* A truncated last line gets its newline before the new line. */
    assert_int_equal(pve_edit_set("name: x", 7, "vga", "std", &b), 0);
    assert_string_equal(b.p, "name: x\nvga: std\n");
    buf_free(&b);
    assert_int_equal(pve_edit_set("", 0, "vga", "std", &b), 0);
    assert_string_equal(b.p, "vga: std\n");
    buf_free(&b);
    assert_int_equal(pve_edit_set(c, n, "Bad", "x", &b), -EINVAL);
    assert_int_equal(pve_edit_set(c, n, "vga", "a\nb: c", &b), -EINVAL);
    assert_int_equal(pve_edit_set(c, n, "vga", "", &b), -EINVAL);
    assert_null(b.p);
    assert_true(pve_edit_has_key(c, n, "PENDING", "hostpci1"));
    assert_false(pve_edit_has_key(c, n, NULL, "hostpci1"));
    assert_true(pve_edit_has_key(c, n, NULL, "memory"));
    assert_false(pve_edit_has_key(c, n, "PENDING", "memory"));
    assert_false(pve_edit_has_key(c, n, "PEND", "hostpci1"));
}

/* ---- the simulator ---- */

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".pcifleet-"))
            n++;
    closedir(d);
    return n;
}

typedef struct {
    char *root;
    runner_t *r;
    char *confdir;
} simfix_t;

static int sim_setup(void **state)
{
    simfix_t *f = xcalloc(1, sizeof(*f));
    f->root = tu_fixture_copy(FIXTURE);
    f->confdir = xasprintf("%s/%s", f->root, CONFDIR);
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_SIMULATE, f->root, &f->r, &err), 0);
    assert_int_equal(runner_mode(f->r), RUNNER_SIMULATE);
    *state = f;
    return 0;
}

static int sim_teardown(void **state)
{
    simfix_t *f = *state;
    runner_destroy(&f->r);
    tu_rm_rf(f->root);
    free(f->root);
    free(f->confdir);
    free(f);
    return 0;
}

/* orig with `line` inserted before the first occurrence of `before`. */
static char *inserted(const char *orig, const char *before, const char *line)
{
    const char *at = strstr(orig, before);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - orig), orig, line, at);
}

static void test_sim_add_add_delete(void **state)
{
    simfix_t *f = *state;
    char *orig = slurp(f->confdir, "102.conf");
    char *path = xasprintf("%s/102.conf", f->confdir);
    assert_int_equal(chmod(path, 0640), 0);
    runner_result_t res = RUNNER_RESULT_INIT;

    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "102", "--hostpci0", "0000:03:00.0,pcie=1",
                                                           NULL}),
                     0);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.output, "");
    char *now = slurp(f->confdir, "102.conf");
    char *want = inserted(orig, "ide2:", "hostpci0: 0000:03:00.0,pcie=1\n");
    assert_string_equal(now, want);
    free(now);
    free(want);

    /* The second add sorts right after the first. */
    assert_int_equal(run(f->r, &res, (const char *const[]){"/usr/sbin/qm", "set", "102", "--hostpci1",
                                                           "0000:04:00.0;0000:05:00.0", NULL}),
                     0);
    assert_int_equal(res.status, 0);
    now = slurp(f->confdir, "102.conf");
    want = inserted(orig, "ide2:", "hostpci0: 0000:03:00.0,pcie=1\nhostpci1: 0000:04:00.0;0000:05:00.0\n");
    assert_string_equal(now, want);
    free(now);
    free(want);

    /* Delete both in one call: back to the original bytes. */
    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "102", "--delete", "hostpci1,hostpci0", NULL}),
                     0);
    assert_int_equal(res.status, 0);
    now = slurp(f->confdir, "102.conf");
    assert_string_equal(now, orig);
    free(now);

    /* Deleting what is not there warns as qm does and writes nothing. */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "102", "--delete", "hostpci3", NULL}), 0);
    assert_int_equal(res.status, 0);
    assert_non_null(strstr(res.output, "cannot delete 'hostpci3' - not set in current configuration!"));
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);

    /* Atomic replacement: no temp file left, the mode kept. */
    assert_int_equal(count_temp_files(f->confdir), 0);
    assert_int_equal(after.st_mode & 07777, 0640);
    runner_result_clear(&res);
    free(path);
    free(orig);
}

static void test_sim_sections_untouched(void **state)
{
    simfix_t *f = *state;
    char *orig = slurp(f->confdir, "100.conf");
    const char *sect = strstr(orig, "[PENDING]");
    assert_non_null(sect);
    runner_result_t res = RUNNER_RESULT_INIT;
    /* Replace the live hostpci0 (the snapshot has its own hostpci0 and
     * [PENDING] a hostpci1: neither may change). */
    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "100", "--hostpci0", "0000:05:00.0", NULL}), 0);
    assert_int_equal(res.status, 0);
    char *now = slurp(f->confdir, "100.conf");
    const char *nsect = strstr(now, "[PENDING]");
    assert_non_null(nsect);
    assert_string_equal(nsect, sect);
    char *want_live = xasprintf("%.*s", (int)(sect - orig), orig);
    char *p = strstr(want_live, "hostpci0: 0000:02:00.0,pcie=1\n");
    assert_non_null(p);
    char *want = xasprintf("%.*shostpci0: 0000:05:00.0\n%s%s", (int)(p - want_live), want_live,
                           p + strlen("hostpci0: 0000:02:00.0,pcie=1\n"), sect);
    assert_string_equal(now, want);
    free(want);
    free(want_live);
    free(now);

    /* Deleting hostpci1 touches nothing: it is only a pending change. */
    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "100", "--delete", "hostpci1", NULL}), 0);
    now = slurp(f->confdir, "100.conf");
    assert_string_equal(strstr(now, "[PENDING]"), sect);
    assert_non_null(strstr(res.output, "not set in current configuration"));
    free(now);
    assert_int_equal(count_temp_files(f->confdir), 0);
    runner_result_clear(&res);
    free(orig);
}

static void test_sim_refuses(void **state)
{
    simfix_t *f = *state;
    char *orig = slurp(f->confdir, "102.conf");
    runner_result_t res = RUNNER_RESULT_INIT;

    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "999", "--hostpci0", "0000:03:00.0", NULL}), 0);
    assert_int_equal(res.status, 2);
    assert_string_equal(res.output,
                        "Configuration file 'nodes/pve-intel-sdboot-i225/qemu-server/999.conf' does not exist\n");

    const char *const *const refused[] = {
        (const char *const[]){"grub-install", NULL},
        (const char *const[]){"qm", "start", "102", NULL},
        (const char *const[]){"qm", NULL},
        (const char *const[]){"qm", "set", NULL},
        (const char *const[]){"qm", "set", "102", NULL},
        (const char *const[]){"qm", "set", "abc", "--hostpci0", "0000:03:00.0", NULL},
        (const char *const[]){"qm", "set", "102", "--memory", "4096", NULL},
        (const char *const[]){"qm", "set", "102", "--hostpci16", "0000:03:00.0", NULL},
        (const char *const[]){"qm", "set", "102", "--hostpci0", "not-an-address", NULL},
        (const char *const[]){"qm", "set", "102", "--hostpci0", NULL},
        (const char *const[]){"qm", "set", "102", "--delete", "memory", NULL},
        (const char *const[]){"qm", "set", "102", "--delete", "", NULL},
        (const char *const[]){"qm", "set", "102", "extra", NULL},
        /* One bad option spoils the whole call: nothing is half-done. */
        (const char *const[]){"qm", "set", "102", "--hostpci0", "0000:03:00.0", "--cores", "8", NULL},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(run(f->r, &res, refused[i]), 0);
        assert_int_not_equal(res.status, 0);
        assert_true(res.len > 0);
        char *now = slurp(f->confdir, "102.conf");
        assert_string_equal(now, orig);
        free(now);
    }
    assert_int_equal(run(f->r, &res, refused[0]), 0);
    assert_int_equal(res.status, 127);
    assert_non_null(strstr(res.output, "not simulated"));
    assert_int_equal(run(f->r, &res, refused[6]), 0);
    assert_int_equal(res.status, 255);
    assert_non_null(strstr(res.output, "'--memory' is not simulated"));

    /* The config is a link: replacing it would cut the link, so no. */
    char *path = xasprintf("%s/102.conf", f->confdir);
    char *moved = xasprintf("%s/102.real", f->confdir);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(symlink("102.real", path), 0);
    assert_int_equal(run(f->r, &res, (const char *const[]){"qm", "set", "102", "--hostpci0", "0000:03:00.0", NULL}), 0);
    assert_int_equal(res.status, 1);
    assert_non_null(strstr(res.output, "symbolic link"));
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(count_temp_files(f->confdir), 0);
    free(path);
    free(moved);
    runner_result_clear(&res);
    free(orig);
}

static void test_atomic_replace(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    char *err = NULL;
    assert_int_equal(atomic_replace(root, "etc/new.conf", "x", 1, &err), -ENOENT); /* no folder */
    assert_non_null(strstr(err, "temporary file"));
    free(err);
    tu_write(dir, "etc/a.conf", "old\n");
    assert_int_equal(atomic_replace(root, "/etc/a.conf", "new\n", 4, &err), 0);
    assert_null(err);
    char *now = slurp(dir, "etc/a.conf");
    assert_string_equal(now, "new\n");
    free(now);
    assert_int_equal(atomic_replace(root, "etc/b.conf", "b", 1, &err), 0);
    char *bp = xasprintf("%s/etc/b.conf", dir);
    struct stat st;
    assert_int_equal(stat(bp, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    free(bp);
    char *etc = xasprintf("%s/etc", dir);
    assert_int_equal(count_temp_files(etc), 0);
    free(etc);
    root_destroy(&root);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_status_and_output),
        cmocka_unit_test(test_real_bounds),
        cmocka_unit_test(test_real_no_inherited_fds),
        cmocka_unit_test(test_command_line_and_modes),
        cmocka_unit_test(test_pve_edit),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test_setup_teardown(test_sim_add_add_delete, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_sections_untouched, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_refuses, sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
