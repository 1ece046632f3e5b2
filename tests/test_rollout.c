/* Tests for controller/rollout.c: the IOMMU rollout state machine, driven
 * with a fake agent connection that records every step sent, on a
 * hand-built fleet:
 *   a1, a2, a5: Intel, GRUB, IOMMU off (needs-kernel-args)
 *   b-ready:    already ready (skipped)
 *   c-fw:       needs a firmware change (skipped with the reason)
 *   d-pinned:   IOMMU off with a running VM that cannot live-migrate (refused)
 * It proves the order, the skips, one node at a time with batch 1, the
 * reboot wait for a new boot id, verification, the halt at the first
 * failure, that a restarted controller sends the step in flight again under
 * the same id (and nothing new), batches and quorum, awaiting-reboot when
 * the agent may not reboot, the reboot timeout, and pause/resume/abort. */
#include "testutil.h"

#include "buf.h"
#include "inv_builder.h"
#include "rollout.h"
#include "store.h"
#include "strv.h"
#include "wire.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

typedef struct {
    strv_t sent; /* "node step_id kind" */
    strv_t last_id;
} agents_t;

static int fake_send(void *arg, const char *node, const uint8_t *frame, size_t len)
{
    agents_t *a = arg;
    Pcifleet__Envelope *e = NULL;
    char *err = NULL;
    if (wire_decode(frame, len, 0, &e, &err) != 0)
        fail_msg("the controller sent an undecodable step: %s", err);
    assert_int_equal(e->body_case, PCIFLEET__ENVELOPE__BODY_SETUP_STEP);
    assert_string_equal(e->node, node);
    const Pcifleet__SetupStep *s = e->setup_step;
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s %s %d", node, s->step_id, (int)s->kind);
    if (s->grub_variable && *s->grub_variable)
        buf_printf(&b, " @%s", s->grub_variable);
    for (size_t i = 0; i < s->n_add_args; i++)
        buf_printf(&b, " +%s", s->add_args[i]);
    for (size_t i = 0; i < s->n_remove_args; i++)
        buf_printf(&b, " -%s", s->remove_args[i]);
    if (s->dry_run)
        buf_puts(&b, " dry");
    strv_take(&a->sent, buf_steal(&b));
    wire_free(&e);
    return 0;
}

typedef struct {
    char *dir, *path;
    store_t *s;
    rollout_ctx_t *r;
    agents_t a;
    int64_t now;
} fx_t;

static ib_t *node_inv(const char *verdict, const char *boot, bool pinned_vm)
{
    ib_t *b = ib_new(verdict, "grub");
    b->inv.boot_id = ib_str(b, boot);
    ib_device(b, "0000:02:00.0", 0x0200, 0x8086, 0x15f3, strcmp(verdict, "ready") ? -1 : 2, "I225", "igc");
    if (pinned_vm)
        ib_vm(b, "900", "pinned", PCIFLEET__TRI__TRI_TRUE, "0000:02:00.0", "hostpci0 passes through 0000:02:00.0");
    if (!strcmp(verdict, "needs-firmware")) {
        b->iommu.firmware = ib_str(b, "");
        ib_reason(b, "No ACPI DMAR table: enable VT-d in the firmware setup");
    }
    return b;
}

static void ingest(fx_t *f, const char *node, ib_t *b)
{
    char *err = NULL;
    if (store_ingest_inventory(f->s, node, &b->inv, f->now, &err))
        fail_msg("ingest %s: %s", node, err);
    ib_free(&b);
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->path = xasprintf("%s/fleet.db", f->dir);
    f->now = NOW;
    char *err = NULL;
    if (store_open(f->path, &f->s, &err))
        fail_msg("%s", err);
    ingest(f, "a1", node_inv("needs-kernel-args", "boot-a1", false));
    ingest(f, "a2", node_inv("needs-kernel-args", "boot-a2", false));
    ingest(f, "a5", node_inv("needs-kernel-args", "boot-a5", false));
    ingest(f, "b-ready", node_inv("ready", "boot-b", false));
    ingest(f, "c-fw", node_inv("needs-firmware", "boot-c", false));
    ingest(f, "d-pinned", node_inv("needs-kernel-args", "boot-d", true));
    f->r = rollout_new(f->s, fake_send, &f->a);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    rollout_destroy(&f->r);
    store_close(&f->s);
    strv_free(&f->a.sent);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static char *q_text(fx_t *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_db(f->s), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(store_db(f->s)));
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            buf_printf(&b, "%s%s", c ? "|" : "", v ? v : "NULL");
        }
        buf_putc(&b, '\n');
    }
    sqlite3_finalize(st);
    return buf_steal(&b);
}

static void states_are(fx_t *f, const char *want)
{
    char *got = q_text(f, "SELECT node, state FROM rollout_nodes ORDER BY pos");
    if (strcmp(got, want))
        fail_msg("--- got ---\n%s--- want ---\n%s", got, want);
    free(got);
}

static char *rollout_state(fx_t *f) { return q_text(f, "SELECT state FROM rollouts ORDER BY id DESC LIMIT 1"); }

/* The step_id of the last step sent to node (caller frees), or fails. */
static char *last_step(fx_t *f, const char *node, int *kind)
{
    for (size_t i = f->a.sent.n; i-- > 0;) {
        char n[64], id[128];
        int k;
        if (sscanf(f->a.sent.v[i], "%63s %127s %d", n, id, &k) == 3 && !strcmp(n, node)) {
            if (kind)
                *kind = k;
            return xstrdup(id);
        }
    }
    fail_msg("nothing was sent to %s", node);
    return NULL;
}

static void answer(fx_t *f, const char *node, Pcifleet__StepResult__Outcome outcome, const char *detail)
{
    char *id = last_step(f, node, NULL);
    Pcifleet__StepResult r = PCIFLEET__STEP_RESULT__INIT;
    r.step_id = id;
    r.outcome = outcome;
    r.detail = (char *)detail;
    assert_true(rollout_step_result(f->r, node, &r, f->now));
    free(id);
}

#define DONE PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE
#define FAILED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED
#define REFUSED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED
#define K_REBOOT PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT
#define K_VERIFY PCIFLEET__SETUP_STEP__KIND__KIND_VERIFY

/* Answers node's steps DONE up to and including the reboot. */
static void steps_until_reboot(fx_t *f, const char *node)
{
    for (int i = 0; i < 5; i++) {
        int kind;
        char *id = last_step(f, node, &kind);
        free(id);
        answer(f, node, DONE, "ok");
        if (kind == K_REBOOT)
            return;
    }
    fail_msg("%s was never asked to reboot", node);
}

/* The node comes back with a new boot id and the given verdict. */
static void reboots(fx_t *f, const char *node, const char *verdict)
{
    char boot[64];
    snprintf(boot, sizeof boot, "boot-%s-2", node);
    f->now += 5;
    ingest(f, node, node_inv(verdict, boot, false));
    rollout_tick(f->r, f->now);
}

static int64_t start(fx_t *f, const char *args)
{
    strv_t w = STRV_INIT;
    strv_add(&w, "rollout");
    strv_add(&w, "start");
    strv_add(&w, "iommu");
    char *copy = xstrdup(args), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save))
        strv_add(&w, t);
    free(copy);
    buf_t out = BUF_INIT;
    char *err = NULL;
    int rc = rollout_admin(f->r, (int)w.n, w.v, false, f->now, &out, &err);
    if (rc)
        fail_msg("rollout start %s: %d %s", args, rc, err ? err : "");
    int64_t id = strtoll(out.p, NULL, 10);
    assert_true(id > 0);
    buf_free(&out);
    strv_free(&w);
    return id;
}

static void test_rollout_all(void **state)
{
    fx_t *f = *state;
    start(f, "--all");
    /* name order; the precheck settles the ones that need nothing or cannot */
    states_are(f, "a1|stepping\na2|waiting\na5|waiting\nb-ready|skipped\nc-fw|skipped\nd-pinned|refused\n");
    char *d = q_text(f, "SELECT detail FROM rollout_nodes WHERE node IN ('b-ready', 'c-fw', 'd-pinned') ORDER BY pos");
    assert_non_null(strstr(d, "already ready"));
    assert_non_null(strstr(d, "needs a firmware change pcifleet cannot make"));
    assert_non_null(strstr(d, "enable VT-d"));
    assert_non_null(strstr(d, "VM 900 runs and cannot live-migrate"));
    free(d);
    /* a1's first step: intel_iommu=on */
    assert_int_equal(f->a.sent.n, 1);
    assert_non_null(strstr(f->a.sent.v[0], "a1 ro1-a1-0 1 +intel_iommu=on -iommu=off"));

    steps_until_reboot(f, "a1");
    states_are(f, "a1|rebooting\na2|waiting\na5|waiting\nb-ready|skipped\nc-fw|skipped\nd-pinned|refused\n");
    size_t sent = f->a.sent.n;
    f->now += 1;
    rollout_tick(f->r, f->now); /* same boot id: still rebooting, nothing new */
    assert_int_equal(f->a.sent.n, sent);
    reboots(f, "a1", "ready");
    int kind;
    char *id = last_step(f, "a1", &kind);
    assert_int_equal(kind, K_VERIFY);
    free(id);
    answer(f, "a1", DONE, "ready");
    /* a1 done, a2 started (batch 1: only now) */
    states_are(f, "a1|done\na2|stepping\na5|waiting\nb-ready|skipped\nc-fw|skipped\nd-pinned|refused\n");
    steps_until_reboot(f, "a2");
    reboots(f, "a2", "ready");
    answer(f, "a2", DONE, "ready");
    steps_until_reboot(f, "a5");
    reboots(f, "a5", "needs-kernel-args");
    answer(f, "a5", FAILED, "the IOMMU is still off after the reboot");
    states_are(f, "a1|done\na2|done\na5|failed\nb-ready|skipped\nc-fw|skipped\nd-pinned|refused\n");
    char *st = rollout_state(f);
    assert_string_equal(st, "halted\n");
    free(st);
    char *reason = q_text(f, "SELECT reason FROM rollouts");
    assert_non_null(strstr(reason, "a5: step verify failed: the IOMMU is still off after the reboot"));
    free(reason);
    /* status for people and scripts */
    buf_t out = BUF_INIT;
    char *err = NULL;
    char *sargv[] = {"rollout", "status"};
    assert_int_equal(rollout_admin(f->r, 2, sargv, false, f->now, &out, &err), 0);
    assert_non_null(strstr(out.p, "rollout 1 (iommu): halted, batch 1"));
    assert_non_null(strstr(out.p, "nodes: 5 done or skipped, 0 in progress, 0 waiting, 1 failed"));
    buf_reset(&out);
    assert_int_equal(rollout_admin(f->r, 2, sargv, true, f->now, &out, &err), 0);
    assert_non_null(strstr(out.p, "\"state\":\"halted\""));
    assert_non_null(strstr(out.p, "{\"node\":\"a5\",\"state\":\"failed\""));
    buf_free(&out);
}

/* A controller killed with a step in flight sends the same step again under
 * the same id after the restart, and no new one; the answer to it moves on. */
static void test_restart_resends_same_step(void **state)
{
    fx_t *f = *state;
    start(f, "--nodes a1");
    answer(f, "a1", DONE, "args set");
    char *before = last_step(f, "a1", NULL); /* ro1-a1-1, in flight */
    size_t n = f->a.sent.n;
    rollout_destroy(&f->r);
    store_close(&f->s);
    char *err = NULL;
    assert_int_equal(store_open(f->path, &f->s, &err), 0);
    f->r = rollout_new(f->s, fake_send, &f->a);
    rollout_set_resend(f->r, 1);
    f->now += 2;
    rollout_tick(f->r, f->now);
    assert_int_equal(f->a.sent.n, n + 1);
    char *after = last_step(f, "a1", NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* a late answer to an older id moves nothing */
    Pcifleet__StepResult r = PCIFLEET__STEP_RESULT__INIT;
    r.step_id = "ro1-a1-0";
    r.outcome = DONE;
    assert_true(rollout_step_result(f->r, "a1", &r, f->now));
    char *step = q_text(f, "SELECT step FROM rollout_nodes WHERE node = 'a1'");
    assert_string_equal(step, "1\n");
    free(step);
    /* not ours: left to others */
    r.step_id = "claim-x";
    assert_false(rollout_step_result(f->r, "a1", &r, f->now));
}

/* batch 2: two nodes in flight, never three; a cluster of three keeps two
 * up, so batch 3 takes only one of its members down at a time. */
static void test_batch_and_quorum(void **state)
{
    fx_t *f = *state;
    start(f, "--nodes a1,a2,a5 --batch 2");
    states_are(f, "a1|stepping\na2|stepping\na5|waiting\n");
    answer(f, "a1", DONE, "ok");
    states_are(f, "a1|stepping\na2|stepping\na5|waiting\n");
    char *err = NULL;
    char *ab[] = {"rollout", "abort"};
    buf_t out = BUF_INIT;
    assert_int_equal(rollout_admin(f->r, 2, ab, false, f->now, &out, &err), 0);
    char *st = rollout_state(f);
    assert_string_equal(st, "aborted\n");
    free(st);

    sqlite3_exec(store_db(f->s),
                 "INSERT INTO clusters (node, cluster, member) VALUES ('a1','pve','a1'),('a1','pve','a2'),"
                 "('a1','pve','a5'),('a2','pve','a1'),('a2','pve','a2'),('a2','pve','a5'),('a5','pve','a1'),"
                 "('a5','pve','a2'),('a5','pve','a5')",
                 NULL, NULL, NULL);
    f->now += 10;
    sqlite3_exec(store_db(f->s), "DELETE FROM rollout_nodes", NULL, NULL, NULL);
    start(f, "--nodes a1,a2,a5 --batch 3");
    states_are(f, "a1|stepping\na2|waiting\na5|waiting\n");
    char *d = q_text(f, "SELECT detail FROM rollout_nodes WHERE node = 'a2'");
    assert_non_null(strstr(d, "would lose quorum"));
    free(d);
    buf_free(&out);
}

/* The agent may not reboot: the node waits for the operator, and goes on to
 * verification once it is back with a new boot id. A node that does not
 * come back in time fails and halts the rollout. pause stops starting
 * nodes; resume goes on. */
static void test_awaiting_reboot_timeout_pause(void **state)
{
    fx_t *f = *state;
    start(f, "--nodes a1,a2 --reboot-timeout 60");
    for (int i = 0; i < 4; i++)
        answer(f, "a1", DONE, "ok");
    answer(f, "a1", REFUSED, "allow-reboot is off");
    states_are(f, "a1|awaiting-reboot\na2|waiting\n");
    f->now += 3600; /* no timeout while waiting for the operator */
    rollout_tick(f->r, f->now);
    states_are(f, "a1|awaiting-reboot\na2|waiting\n");
    reboots(f, "a1", "ready");
    states_are(f, "a1|verifying\na2|waiting\n");
    answer(f, "a1", DONE, "ready");
    states_are(f, "a1|done\na2|stepping\n");

    char *err = NULL;
    buf_t out = BUF_INIT;
    char *pause[] = {"rollout", "pause"}, *resume[] = {"rollout", "resume"};
    assert_int_equal(rollout_admin(f->r, 2, pause, false, f->now, &out, &err), 0);
    size_t n = f->a.sent.n;
    f->now += 100;
    rollout_tick(f->r, f->now);
    assert_int_equal(f->a.sent.n, n); /* paused: nothing sent, not even a resend */
    assert_int_equal(rollout_admin(f->r, 2, pause, false, f->now, &out, &err), 1);
    free(err);
    err = NULL;
    assert_int_equal(rollout_admin(f->r, 2, resume, false, f->now, &out, &err), 0);
    steps_until_reboot(f, "a2");
    f->now += 61;
    rollout_tick(f->r, f->now);
    states_are(f, "a1|done\na2|failed\n");
    char *reason = q_text(f, "SELECT reason FROM rollouts");
    assert_non_null(strstr(reason, "a2 did not come back within 60 s of its reboot"));
    free(reason);
    buf_free(&out);
}

/* --dry-run sends every step as a dry run, reboots nothing, and finishes;
 * --pt asks for iommu=pt; a second rollout waits for the first to end. */
static void test_dry_run(void **state)
{
    fx_t *f = *state;
    start(f, "--nodes a1 --dry-run --pt --grub-variable GRUB_CMDLINE_LINUX");
    assert_non_null(strstr(f->a.sent.v[0], "@GRUB_CMDLINE_LINUX +intel_iommu=on +iommu=pt -iommu=off dry"));
    char *err = NULL;
    buf_t out = BUF_INIT;
    char *again[] = {"rollout", "start", "iommu", "--all"};
    assert_int_equal(rollout_admin(f->r, 4, again, false, f->now, &out, &err), 1);
    assert_non_null(strstr(err, "is still running"));
    free(err);
    for (int i = 0; i < 4; i++) {
        int kind;
        char *id = last_step(f, "a1", &kind);
        assert_true(kind != K_REBOOT);
        free(id);
        answer(f, "a1", DONE, "would change");
    }
    states_are(f, "a1|done\n");
    char *st = rollout_state(f);
    assert_string_equal(st, "done\n");
    free(st);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollout_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_resends_same_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_and_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awaiting_reboot_timeout_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
