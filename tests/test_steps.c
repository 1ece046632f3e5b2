/* steps: SetupSteps carried out on fixture copies with a recording runner
 * (no command is ever executed), and plans on the fixtures. */
#include "testutil.h"

#include "buf.h"
#include "runner.h"
#include "steps.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#define K(x) PCIFLEET__SETUP_STEP__KIND__KIND_##x
#define O(x) PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_##x

typedef struct {
    strv_t lines; /* every command line run */
    int status;   /* what the fake exits with */
} rec_t;

static int record(void *ctx, const char *const *argv, runner_result_t *res)
{
    rec_t *r = ctx;
    strv_take(&r->lines, runner_command_line(argv));
    res->status = r->status;
    res->output = xstrdup(r->status ? "simulated failure" : "");
    res->len = strlen(res->output);
    return 0;
}

static char *slurp(const char *dir, const char *rel)
{
    char *p = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(p, "rb");
    free(p);
    if (!f)
        return NULL;
    buf_t b = BUF_INIT;
    buf_reset(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    return buf_steal(&b);
}

static bool exists(const char *dir, const char *rel)
{
    char *p = xasprintf("%s/%s", dir, rel);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static Pcifleet__SetupStep step(Pcifleet__SetupStep__Kind kind, const char *id)
{
    Pcifleet__SetupStep s;
    pcifleet__setup_step__init(&s);
    s.kind = kind;
    s.step_id = (char *)id;
    return s;
}

/* GRUB: dry run shows the diff and changes nothing; the edit keeps a
 * backup and records it; again is UNCHANGED; restore puts it back. */
static void test_kernel_args_grub(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    char *orig = slurp(root, "etc/default/grub");
    step_policy_t pol = {false, NULL};
    char *add[] = {"intel_iommu=on", "iommu=pt"};
    Pcifleet__SetupStep s = step(K(SET_KERNEL_ARGS), "r1-1");
    s.add_args = add;
    s.n_add_args = 2;
    s.dry_run = true;
    Pcifleet__StepResult res;
    assert_false(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_string_equal(res.step_id, "r1-1");
    assert_non_null(strstr(res.detail, "dry run:"));
    assert_non_null(strstr(res.diff, "--- a/etc/default/grub\n+++ b/etc/default/grub\n@@ "));
    assert_non_null(strstr(res.diff, "\n-GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
                                     "+GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt\"\n"));
    char *now = slurp(root, "etc/default/grub");
    assert_string_equal(now, orig);
    free(now);
    steps_result_clear(&res);

    s.dry_run = false;
    assert_true(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_int_equal(res.n_backups, 1);
    assert_string_equal(res.backups[0], "/etc/default/grub.pcifleet-r1-1.bak");
    assert_non_null(strstr(res.detail, "update-grub"));
    steps_result_clear(&res);
    now = slurp(root, "etc/default/grub");
    assert_non_null(strstr(now, "\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt\"\n"));
    free(now);
    char *bak = slurp(root, "etc/default/grub.pcifleet-r1-1.bak");
    assert_string_equal(bak, orig);
    free(bak);
    char *index = slurp(root, "var/lib/pcifleet/backups");
    assert_string_equal(index, "r1-1\tetc/default/grub\tetc/default/grub.pcifleet-r1-1.bak\n");
    free(index);

    /* A second application, even under a new id, changes nothing. */
    s.step_id = "r2-1";
    assert_false(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(UNCHANGED));
    assert_string_equal(res.diff, "");
    steps_result_clear(&res);

    /* Restore: dry first (a diff back), then for real. */
    Pcifleet__SetupStep rs = step(K(RESTORE_BACKUP), "r1-9");
    rs.restore_of = "r1-1";
    rs.dry_run = true;
    assert_false(steps_apply(root, NULL, &rs, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_non_null(strstr(res.diff, "+GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"));
    steps_result_clear(&res);
    rs.dry_run = false;
    assert_true(steps_apply(root, NULL, &rs, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    steps_result_clear(&res);
    now = slurp(root, "etc/default/grub");
    assert_string_equal(now, orig);
    free(now);
    assert_false(exists(root, "etc/default/grub.pcifleet-r1-1.bak"));
    assert_false(steps_apply(root, NULL, &rs, &pol, &res));
    assert_int_equal(res.outcome, O(UNCHANGED));
    steps_result_clear(&res);
    free(orig);
    tu_rm_rf(root);
    free(root);
}

/* systemd-boot: /etc/kernel/cmdline; intel_iommu=off replaced. */
static void test_kernel_args_sdboot(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("pve-intel-sdboot-i225");
    tu_write(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n");
    step_policy_t pol = {false, NULL};
    char *add[] = {"intel_iommu=on"};
    Pcifleet__SetupStep s = step(K(SET_KERNEL_ARGS), "sd-1");
    s.add_args = add;
    s.n_add_args = 1;
    Pcifleet__StepResult res;
    assert_true(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    steps_result_clear(&res);
    char *now = slurp(root, "etc/kernel/cmdline");
    assert_string_equal(now, "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on\n");
    free(now);
    now = slurp(root, "etc/default/grub");
    assert_null(strstr(now, "intel_iommu")); /* the wrong file stays alone */
    free(now);
    tu_rm_rf(root);
    free(root);
}

/* Modules go into our own file; a second run and modules configured
 * elsewhere change nothing; restore removes the file it created. */
static void test_modules(void **state)
{
    (void)state;
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    step_policy_t pol = {false, NULL};
    Pcifleet__SetupStep s = step(K(ENSURE_MODULES), "m-1");
    Pcifleet__StepResult res;
    assert_true(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_int_equal(res.n_backups, 0);
    assert_non_null(strstr(res.diff, "--- /dev/null\n+++ b/" STEPS_MODULES_FILE "\n"));
    steps_result_clear(&res);
    char *now = slurp(root, STEPS_MODULES_FILE);
    assert_non_null(strstr(now, "\nvfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n"));
    free(now);
    s.step_id = "m-2";
    assert_false(steps_apply(root, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(UNCHANGED));
    steps_result_clear(&res);
    Pcifleet__SetupStep rs = step(K(RESTORE_BACKUP), "m-3");
    rs.restore_of = "";
    assert_true(steps_apply(root, NULL, &rs, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    steps_result_clear(&res);
    assert_false(exists(root, STEPS_MODULES_FILE));

    /* Configured in /etc/modules already: nothing to write. */
    char *other = tu_fixture_copy("sriov-82599");
    s.step_id = "m-4";
    assert_false(steps_apply(other, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(UNCHANGED));
    steps_result_clear(&res);
    assert_false(exists(other, STEPS_MODULES_FILE));
    tu_rm_rf(other);
    free(other);
    tu_rm_rf(root);
    free(root);
}

/* Commands go through the runner only: update-grub for GRUB,
 * proxmox-boot-tool refresh for systemd-boot, update-initramfs; a
 * failing command is FAILED with its output; no runner: REFUSED. */
static void test_commands(void **state)
{
    (void)state;
    rec_t rec = {STRV_INIT, 0};
    runner_t *r = runner_new_custom(record, &rec);
    step_policy_t pol = {false, NULL};
    char *grub = tu_fixture_src("intel-grub-vtd-off"), *sd = tu_fixture_src("pve-intel-sdboot-i225");
    Pcifleet__StepResult res;
    Pcifleet__SetupStep s = step(K(REFRESH_BOOT), "c-1");
    assert_true(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_string_equal(res.command, "update-grub");
    steps_result_clear(&res);
    assert_true(steps_apply(sd, r, &s, &pol, &res));
    assert_string_equal(res.command, "proxmox-boot-tool refresh");
    steps_result_clear(&res);
    s = step(K(REFRESH_INITRAMFS), "c-2");
    assert_true(steps_apply(grub, r, &s, &pol, &res));
    assert_string_equal(res.command, "update-initramfs -u -k all");
    steps_result_clear(&res);
    /* Dry: named, not run. */
    s.dry_run = true;
    assert_false(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_non_null(strstr(res.detail, "dry run: would run `update-initramfs -u -k all`"));
    steps_result_clear(&res);
    s.dry_run = false;
    assert_int_equal(rec.lines.n, 3);
    assert_string_equal(rec.lines.v[0], "update-grub");
    assert_string_equal(rec.lines.v[1], "proxmox-boot-tool refresh");
    rec.status = 1;
    assert_true(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(FAILED));
    assert_non_null(strstr(res.detail, "simulated failure"));
    steps_result_clear(&res);
    rec.status = 0;
    assert_false(steps_apply(grub, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(REFUSED));
    steps_result_clear(&res);

    /* Reboot: refused unless the policy allows it; then systemctl reboot. */
    s = step(K(REBOOT), "c-3");
    size_t before = rec.lines.n;
    assert_false(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(REFUSED));
    assert_non_null(strstr(res.detail, "allow-reboot"));
    steps_result_clear(&res);
    assert_int_equal(rec.lines.n, before);
    pol.allow_reboot = true;
    assert_true(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_string_equal(rec.lines.v[rec.lines.n - 1], "systemctl reboot");
    steps_result_clear(&res);

    /* Malformed: no step id, unknown kind. */
    s = step(K(REBOOT), "");
    assert_false(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(FAILED));
    steps_result_clear(&res);
    s = step((Pcifleet__SetupStep__Kind)42, "c-4");
    assert_false(steps_apply(grub, r, &s, &pol, &res));
    assert_int_equal(res.outcome, O(FAILED));
    steps_result_clear(&res);
    free(grub);
    free(sd);
    runner_destroy(&r);
    strv_free(&rec.lines);
}

/* VERIFY: ready with groups and interrupt remapping, or FAILED with why. */
static void test_verify(void **state)
{
    (void)state;
    step_policy_t pol = {false, NULL};
    Pcifleet__SetupStep s = step(K(VERIFY), "v-1");
    Pcifleet__StepResult res;
    char *amd = tu_fixture_src("amd-default-on"), *off = tu_fixture_src("intel-grub-vtd-off");
    assert_false(steps_apply(amd, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(DONE));
    assert_string_equal(res.verdict, "ready");
    steps_result_clear(&res);
    assert_false(steps_apply(off, NULL, &s, &pol, &res));
    assert_int_equal(res.outcome, O(FAILED));
    assert_string_equal(res.verdict, "needs-kernel-args");
    assert_non_null(strstr(res.detail, "no IOMMU groups"));
    assert_non_null(strstr(res.detail, "intel_iommu=on"));
    steps_result_clear(&res);
    free(amd);
    free(off);
}

static void plan(const char *fixture, bool pt, Pcifleet__SetupStep ***steps, size_t *n, char **why)
{
    char *root = tu_fixture_src(fixture);
    scan_opts_t so = {root, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&so, &inv, &err), 0);
    assert_int_equal(steps_plan(inv, pt, "p", steps, n, why), 0);
    inventory_destroy(&inv);
    free(root);
}

static void test_plan(void **state)
{
    (void)state;
    Pcifleet__SetupStep **s;
    size_t n;
    char *why;
    const char *ready[] = {"amd-default-on", "pve-intel-sdboot-i225"};
    for (size_t i = 0; i < 2; i++) {
        plan(ready[i], false, &s, &n, &why);
        assert_int_equal(n, 0);
        assert_null(s);
        free(why);
    }
    plan("no-firmware-table", false, &s, &n, &why);
    assert_int_equal(n, 0);
    assert_non_null(strstr(why, "needs-firmware"));
    assert_non_null(strstr(why, "VT-d"));
    free(why);

    plan("intel-grub-vtd-off", true, &s, &n, &why);
    assert_int_equal(n, 6);
    Pcifleet__SetupStep__Kind want[] = {K(SET_KERNEL_ARGS), K(ENSURE_MODULES), K(REFRESH_BOOT),
                                        K(REFRESH_INITRAMFS), K(REBOOT), K(VERIFY)};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(s[i]->kind, want[i]);
        char id[32];
        snprintf(id, sizeof(id), "p-%zu", i + 1);
        assert_string_equal(s[i]->step_id, id);
    }
    assert_int_equal(s[0]->n_add_args, 2);
    assert_string_equal(s[0]->add_args[0], "intel_iommu=on");
    assert_string_equal(s[0]->add_args[1], "iommu=pt");
    assert_int_equal(s[1]->n_modules, 4);
    free(why);

    /* Carried out on a copy, the plan's edits make a second plan drop them. */
    char *root = tu_fixture_copy("intel-grub-vtd-off");
    step_policy_t pol = {false, NULL};
    Pcifleet__StepResult res;
    for (size_t i = 0; i < 2; i++) {
        assert_true(steps_apply(root, NULL, s[i], &pol, &res));
        assert_int_equal(res.outcome, O(DONE));
        steps_result_clear(&res);
    }
    steps_plan_free(&s, n);
    assert_null(s);
    scan_opts_t so = {root, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&so, &inv, &err), 0);
    assert_int_equal(steps_plan(inv, true, "q", &s, &n, &why), 0);
    inventory_destroy(&inv);
    assert_int_equal(n, 4); /* refresh boot, refresh initramfs, reboot, verify */
    assert_int_equal(s[0]->kind, K(REFRESH_BOOT));
    assert_int_equal(s[1]->kind, K(REFRESH_INITRAMFS));
    steps_plan_free(&s, n);
    free(why);
    tu_rm_rf(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_args_grub), cmocka_unit_test(test_kernel_args_sdboot),
        cmocka_unit_test(test_modules),          cmocka_unit_test(test_commands),
        cmocka_unit_test(test_verify),           cmocka_unit_test(test_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
