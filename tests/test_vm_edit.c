/* Tests of the VmDeviceEdit step (agent/vmedit.c) and the step-id memory
 * (agent/stepmem.c), without sockets: vmedit_handle with a runner in
 * SIMULATE mode (wrapped in a counting runner) on a copy of a fixture host.
 *
 * Proves: an add runs `qm set VMID --hostpciN ADDR[,pcie=1]` and the config
 * then holds it (DONE, index, command); the same id again gives the stored
 * result without running anything; a new id for an entry already there is
 * UNCHANGED with that entry's index (also when the config writes the
 * address without its domain); the proposed index is used when free, else
 * the lowest index neither the live section nor [PENDING] uses; pcie=1
 * only when asked; several addresses become one ';' entry; removal deletes
 * exactly the entry holding the addresses, and a removal of what is not
 * there is UNCHANGED; the local policy refuses without reading or running;
 * a failing command is FAILED with its status and output; malformed steps
 * and unknown VMs are FAILED without running; the memory forgets the
 * oldest result beyond its bound. */
#include "testutil.h"

#include "buf.h"
#include "root.h"
#include "runner.h"
#include "stepmem.h"
#include "vmedit.h"

#include <errno.h>

#define FIXTURE "pve-intel-sdboot-i225"
#define CONFDIR "etc/pve/qemu-server"

typedef Pcifleet__StepResult__Outcome outcome_t;
#define DONE PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE
#define UNCHANGED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED
#define REFUSED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED
#define FAILED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED

/* A runner that counts, remembers the last command, and hands it to the
 * simulator, or fails it as told. */
typedef struct {
    runner_t *sim;
    int calls;
    char *last;
    int fail_status; /* non-zero: answer this status and "boom" */
} counting_t;

static int counting_run(void *ctx, const char *const *argv, runner_result_t *res)
{
    counting_t *c = ctx;
    c->calls++;
    free(c->last);
    c->last = runner_command_line(argv);
    if (c->fail_status) {
        res->status = c->fail_status;
        res->output = xstrdup("boom: \xff not utf-8\n");
        res->len = strlen(res->output);
        return 0;
    }
    return runner_run(c->sim, argv, res);
}

typedef struct {
    char *dir;
    root_t *root;
    counting_t count;
    runner_t *runner;
    stepmem_t *mem;
    vmedit_policy_t policy;
} fix_t;

static int setup(void **state)
{
    fix_t *f = xcalloc(1, sizeof(*f));
    f->dir = tu_fixture_copy(FIXTURE);
    assert_int_equal(root_new(f->dir, &f->root), 0);
    char *err = NULL;
    assert_int_equal(runner_new(RUNNER_SIMULATE, f->dir, &f->count.sim, &err), 0);
    f->runner = runner_new_custom(counting_run, &f->count);
    f->mem = stepmem_new(0);
    f->policy.allow_vm_edits = true;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    stepmem_destroy(&f->mem);
    assert_null(f->mem);
    runner_destroy(&f->runner);
    runner_destroy(&f->count.sim);
    free(f->count.last);
    root_destroy(&f->root);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *conf(fix_t *f, const char *vmid)
{
    char *rel = xasprintf("%s/%s.conf", CONFDIR, vmid);
    char *text = NULL;
    assert_int_equal(root_read(f->root, rel, ROOT_READ_MAX, &text, NULL), 0);
    free(rel);
    return text;
}

/* Runs one step; returns the outcome, leaves the result in *r. */
static outcome_t step(fix_t *f, const char *id, const char *vmid, bool remove, unsigned index, bool pcie,
                      const char *const *addrs, Pcifleet__StepResult *r, bool *repeated)
{
    Pcifleet__VmDeviceEdit e = PCIFLEET__VM_DEVICE_EDIT__INIT;
    e.step_id = (char *)id;
    e.vm_id = (char *)vmid;
    e.remove = remove;
    e.index = index;
    e.pcie = pcie;
    size_t n = 0;
    while (addrs && addrs[n])
        n++;
    e.n_addresses = n;
    e.addresses = (char **)addrs;
    bool rep = false;
    vmedit_handle(f->mem, f->root, f->runner, &e, &f->policy, r, &rep);
    if (repeated)
        *repeated = rep;
    assert_string_equal(r->step_id, id ? id : "");
    return r->outcome;
}

static void test_add_then_repeat_then_unchanged(void **state)
{
    fix_t *f = *state;
    Pcifleet__StepResult r;
    bool rep = true;
    const char *const a[] = {"0000:03:00.0", NULL};
    assert_int_equal(step(f, "s1", "102", false, 0, true, a, &r, &rep), DONE);
    assert_false(rep);
    assert_int_equal(r.index, 0);
    assert_string_equal(r.command, "qm set 102 --hostpci0 0000:03:00.0,pcie=1");
    assert_non_null(strstr(r.detail, "added hostpci0"));
    assert_null(strstr(r.detail, "pending"));
    assert_int_equal(f->count.calls, 1);
    char *c = conf(f, "102");
    assert_non_null(strstr(c, "\nhostpci0: 0000:03:00.0,pcie=1\nide2:"));
    free(c);
    step_result_clear(&r);

    /* The same id: the stored answer, nothing run. */
    assert_int_equal(step(f, "s1", "102", false, 0, true, a, &r, &rep), DONE);
    assert_true(rep);
    assert_int_equal(f->count.calls, 1);
    assert_string_equal(r.command, "qm set 102 --hostpci0 0000:03:00.0,pcie=1");
    step_result_clear(&r);

    /* A new id for what is already there: UNCHANGED, its index, nothing run.
     * The address in another spelling is the same address. */
    const char *const upper[] = {"03:00.0", NULL};
    assert_int_equal(step(f, "s2", "102", false, 5, false, upper, &r, &rep), UNCHANGED);
    assert_false(rep);
    assert_int_equal(r.index, 0);
    assert_string_equal(r.command, "");
    assert_non_null(strstr(r.detail, "already passes through 0000:03:00.0 as hostpci0"));
    assert_non_null(strstr(r.detail, "with pcie=1"));
    assert_int_equal(f->count.calls, 1);
    step_result_clear(&r);

    /* VM 101 writes its entry without the domain ("02:00.0"). */
    const char *const w[] = {"0000:02:00.0", NULL};
    assert_int_equal(step(f, "s3", "101", false, 0, true, w, &r, NULL), UNCHANGED);
    assert_int_equal(r.index, 0);
    step_result_clear(&r);
    assert_int_equal(f->count.calls, 1);
    assert_int_equal(stepmem_count(f->mem), 3);
}

static void test_index_choice_and_flags(void **state)
{
    fix_t *f = *state;
    Pcifleet__StepResult r;
    /* VM 100: live hostpci0, and hostpci1 waiting in [PENDING]. */
    const char *const a[] = {"0000:05:00.0", NULL};
    assert_int_equal(step(f, "i1", "100", false, 0, false, a, &r, NULL), DONE);
    assert_int_equal(r.index, 2);
    assert_string_equal(r.command, "qm set 100 --hostpci2 0000:05:00.0");
    step_result_clear(&r);

    /* A free proposed index is taken as is; two addresses make one entry. */
    const char *const two[] = {"0000:04:00.0", "0000:01:00.0", NULL};
    assert_int_equal(step(f, "i2", "100", false, 7, true, two, &r, NULL), DONE);
    assert_int_equal(r.index, 7);
    assert_string_equal(r.command, "qm set 100 --hostpci7 '0000:04:00.0;0000:01:00.0,pcie=1'");
    step_result_clear(&r);
    /* An index out of range is only a proposal too. */
    const char *const b[] = {"0000:00:14.0", NULL};
    assert_int_equal(step(f, "i3", "100", false, 99, false, b, &r, NULL), DONE);
    assert_int_equal(r.index, 3);
    step_result_clear(&r);

    char *c = conf(f, "100");
    const char *pend = strstr(c, "[PENDING]");
    assert_non_null(pend);
    const char *h2 = strstr(c, "hostpci2: 0000:05:00.0\n");
    const char *h7 = strstr(c, "hostpci7: 0000:04:00.0;0000:01:00.0,pcie=1\n");
    assert_true(h2 && h2 < pend);
    assert_true(h7 && h7 < pend);
    free(c);

    /* The same set in another order is the same entry. */
    const char *const swapped[] = {"0000:01:00.0", "0000:04:00.0", "0000:04:00.0", NULL};
    assert_int_equal(step(f, "i4", "100", false, 0, true, swapped, &r, NULL), UNCHANGED);
    assert_int_equal(r.index, 7);
    step_result_clear(&r);
}

static void test_remove(void **state)
{
    fix_t *f = *state;
    Pcifleet__StepResult r;
    char *before = conf(f, "100");
    const char *const a[] = {"0000:02:00.0", NULL};
    assert_int_equal(step(f, "r1", "100", true, 9, false, a, &r, NULL), DONE);
    assert_int_equal(r.index, 0);
    assert_string_equal(r.command, "qm set 100 --delete hostpci0");
    assert_non_null(strstr(r.detail, "removed hostpci0"));
    step_result_clear(&r);
    char *after = conf(f, "100");
    const char *live_end = strstr(after, "[PENDING]");
    const char *h0 = strstr(after, "hostpci0:");
    assert_true(h0 > live_end); /* only the snapshot's copy is left */
    assert_string_equal(live_end, strstr(before, "[PENDING]"));
    free(after);
    free(before);

    /* Nothing holds it any more: UNCHANGED, nothing run. */
    int calls = f->count.calls;
    assert_int_equal(step(f, "r2", "100", true, 0, false, a, &r, NULL), UNCHANGED);
    assert_int_equal(f->count.calls, calls);
    assert_non_null(strstr(r.detail, "no hostpci entry of VM 100 holds exactly 0000:02:00.0"));
    step_result_clear(&r);
}

static void test_refused_and_failed(void **state)
{
    fix_t *f = *state;
    Pcifleet__StepResult r;
    const char *const a[] = {"0000:03:00.0", NULL};
    char *before = conf(f, "102");

    f->policy.allow_vm_edits = false;
    assert_int_equal(step(f, "p1", "102", false, 0, true, a, &r, NULL), REFUSED);
    assert_non_null(strstr(r.detail, "allow-vm-edits"));
    step_result_clear(&r);
    f->policy.refuse_reason = "fixture root without --simulate";
    assert_int_equal(step(f, "p2", "102", false, 0, true, a, &r, NULL), REFUSED);
    assert_string_equal(r.detail, "fixture root without --simulate");
    step_result_clear(&r);
    /* A refusal is remembered like any result. */
    f->policy.allow_vm_edits = true;
    bool rep = false;
    assert_int_equal(step(f, "p1", "102", false, 0, true, a, &r, &rep), REFUSED);
    assert_true(rep);
    step_result_clear(&r);
    assert_int_equal(f->count.calls, 0);

    /* The command fails: FAILED with the command, its status and output
     * (made fit for the wire). */
    f->count.fail_status = 255;
    assert_int_equal(step(f, "f1", "102", false, 0, true, a, &r, NULL), FAILED);
    assert_string_equal(r.command, "qm set 102 --hostpci0 0000:03:00.0,pcie=1");
    assert_non_null(strstr(r.detail, "exited with status 255: boom: \xEF\xBF\xBD not utf-8"));
    assert_int_equal(f->count.calls, 1);
    step_result_clear(&r);
    f->count.fail_status = 0;

    /* Malformed steps and unknown VMs: FAILED, nothing run. */
    const char *const bad[] = {"0000:03:00", NULL};
    const char *const bad2[] = {"0000:03:20.0", NULL};
    assert_int_equal(step(f, "m1", "102", false, 0, false, bad, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "is not a PCI address"));
    step_result_clear(&r);
    assert_int_equal(step(f, "m2", "102", false, 0, false, bad2, &r, NULL), FAILED);
    step_result_clear(&r);
    assert_int_equal(step(f, "m3", "102", false, 0, false, NULL, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "no PCI address"));
    step_result_clear(&r);
    assert_int_equal(step(f, "m4", "1x2", false, 0, false, a, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "is not a Proxmox VMID"));
    step_result_clear(&r);
    assert_int_equal(step(f, "", "102", false, 0, false, a, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "no step_id"));
    step_result_clear(&r);
    assert_int_equal(step(f, "m5", "999", false, 0, false, a, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "VM 999 has no config on this node"));
    assert_string_equal(r.command, "");
    step_result_clear(&r);
    assert_int_equal(f->count.calls, 1);

    /* Every index taken: FAILED, nothing run. */
    buf_t full = BUF_INIT;
    buf_puts(&full, "name: full\n");
    for (int i = 0; i < 16; i++)
        buf_printf(&full, "hostpci%d: 0000:00:%02x.0\n", i, i + 1);
    tu_write(f->dir, CONFDIR "/105.conf", full.p);
    buf_free(&full);
    assert_int_equal(step(f, "m6", "105", false, 0, false, a, &r, NULL), FAILED);
    assert_non_null(strstr(r.detail, "every hostpci index"));
    step_result_clear(&r);
    assert_int_equal(f->count.calls, 1);

    char *after = conf(f, "102");
    assert_string_equal(after, before);
    free(after);
    free(before);
}

/* Without runner: refused by policy never needs one; allowed fails cleanly. */
static void test_no_runner(void **state)
{
    fix_t *f = *state;
    Pcifleet__VmDeviceEdit e = PCIFLEET__VM_DEVICE_EDIT__INIT;
    char *addrs[] = {"0000:03:00.0"};
    e.step_id = "n1";
    e.vm_id = "102";
    e.n_addresses = 1;
    e.addresses = addrs;
    Pcifleet__StepResult r;
    assert_false(vmedit_apply(f->root, NULL, &e, &f->policy, &r));
    assert_int_equal(r.outcome, FAILED);
    assert_non_null(strstr(r.detail, "no command runner"));
    step_result_clear(&r);
    assert_false(vmedit_apply(f->root, NULL, &e, NULL, &r));
    assert_int_equal(r.outcome, REFUSED);
    step_result_clear(&r);
}

static void test_stepmem_bound(void **state)
{
    (void)state;
    stepmem_t *m = stepmem_new(2);
    Pcifleet__StepResult r = PCIFLEET__STEP_RESULT__INIT;
    r.outcome = DONE;
    r.step_id = "a";
    r.detail = "first";
    stepmem_put(m, &r);
    r.step_id = "b";
    stepmem_put(m, &r);
    r.step_id = "a"; /* same id: replaced in place, nothing forgotten */
    r.detail = "again";
    stepmem_put(m, &r);
    assert_int_equal(stepmem_count(m), 2);
    assert_string_equal(stepmem_find(m, "a")->detail, "again");
    r.step_id = "c";
    stepmem_put(m, &r); /* forgets the oldest slot */
    assert_int_equal(stepmem_count(m), 2);
    assert_null(stepmem_find(m, "a"));
    assert_non_null(stepmem_find(m, "b"));
    assert_non_null(stepmem_find(m, "c"));
    r.step_id = ""; /* not stored */
    stepmem_put(m, &r);
    assert_null(stepmem_find(m, ""));
    assert_null(stepmem_find(m, NULL));
    assert_string_equal(step_outcome_name(UNCHANGED), "unchanged");
    stepmem_destroy(&m);
    stepmem_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_then_repeat_then_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_choice_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_and_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_runner, setup, teardown),
        cmocka_unit_test(test_stepmem_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
