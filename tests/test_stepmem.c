/* Tests of the step-id memory (agent/stepmem.c).
 *
 * Proves: an opened stepmem gives back, after being closed and opened again
 * (an agent restart), every field of the results it was given; the file
 * keeps only the last `cap` results, oldest forgotten first, and a repeated
 * id replaces its result; an oversized diff is cut, not refused; a
 * truncated or damaged file keeps the records before the damage and says
 * so; the folder is created; a memory-only stepmem writes nothing. */
#include "testutil.h"

#include "buf.h"
#include "stepmem.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static void result(Pcifleet__StepResult *r, const char *id, const char *diff)
{
    pcifleet__step_result__init(r);
    r->step_id = (char *)id;
    r->outcome = PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE;
    r->detail = (char *)"added intel_iommu=on";
    r->command = (char *)"update-grub";
    r->diff = (char *)diff;
    static char *backups[] = {(char *)"/etc/default/grub.pcifleet-s1.bak", (char *)"/etc/modules.bak"};
    r->backups = backups;
    r->n_backups = 2;
    r->boot_id = (char *)"0b6f3c2a-8e41-4d7b-9a65-2f1c7e9d3b40";
    r->verdict = (char *)"ready";
}

static stepmem_t *open_ok(const char *dir, size_t cap, char **warn)
{
    stepmem_t *m = NULL;
    char *err = NULL;
    assert_int_equal(stepmem_open(dir, cap, &m, warn, &err), 0);
    assert_null(err);
    return m;
}

static void test_survives_reopen(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir();
    char *dir = xasprintf("%s/var/lib/pcifleet", tmp);
    char *warn = NULL;
    stepmem_t *m = open_ok(dir, 0, &warn);
    assert_null(warn);
    Pcifleet__StepResult r;
    result(&r, "r1-n1-1", "--- a/etc/default/grub\n+++ b/etc/default/grub\n");
    char *err = NULL;
    assert_int_equal(stepmem_put_err(m, &r, &err), 0);
    result(&r, "r1-n1-2", "");
    r.outcome = PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED;
    r.n_backups = 0;
    stepmem_put(m, &r);
    stepmem_destroy(&m);
    assert_null(m);

    m = open_ok(dir, 0, &warn);
    assert_null(warn);
    assert_int_equal(stepmem_count(m), 2);
    const Pcifleet__StepResult *got = stepmem_find(m, "r1-n1-1");
    assert_non_null(got);
    assert_int_equal(got->outcome, PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE);
    assert_string_equal(got->detail, "added intel_iommu=on");
    assert_string_equal(got->command, "update-grub");
    assert_string_equal(got->diff, "--- a/etc/default/grub\n+++ b/etc/default/grub\n");
    assert_int_equal(got->n_backups, 2);
    assert_string_equal(got->backups[1], "/etc/modules.bak");
    assert_string_equal(got->boot_id, "0b6f3c2a-8e41-4d7b-9a65-2f1c7e9d3b40");
    assert_string_equal(got->verdict, "ready");
    got = stepmem_find(m, "r1-n1-2");
    assert_int_equal(got->outcome, PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED);
    assert_null(stepmem_find(m, "r1-n1-3"));
    /* A deep copy handed out is freed by its holder. */
    Pcifleet__StepResult copy;
    step_result_copy(&copy, got);
    step_result_clear(&copy);
    stepmem_destroy(&m);
    free(dir);
    tu_rm_rf(tmp);
    free(tmp);
}

static void test_bounded(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *warn = NULL;
    stepmem_t *m = open_ok(dir, 4, &warn);
    Pcifleet__StepResult r;
    char id[32];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "s-%d", i);
        result(&r, id, "");
        stepmem_put(m, &r);
    }
    result(&r, "s-8", "again");
    stepmem_put(m, &r); /* same id: replaced, nothing forgotten */
    /* One huge diff is cut so the record stays bounded. */
    char *huge = xmalloc(STEPMEM_RESULT_MAX * 2);
    memset(huge, 'x', STEPMEM_RESULT_MAX * 2 - 1);
    huge[STEPMEM_RESULT_MAX * 2 - 1] = '\0';
    result(&r, "s-10", huge);
    stepmem_put(m, &r);
    free(huge);
    stepmem_destroy(&m);

    m = open_ok(dir, 4, &warn);
    assert_null(warn);
    assert_int_equal(stepmem_count(m), 4);
    assert_null(stepmem_find(m, "s-6"));
    assert_non_null(stepmem_find(m, "s-7"));
    assert_string_equal(stepmem_find(m, "s-8")->diff, "again");
    const Pcifleet__StepResult *big = stepmem_find(m, "s-10");
    assert_non_null(big);
    assert_true(strlen(big->diff) < STEPMEM_RESULT_MAX);
    assert_non_null(strstr(big->diff, "[... cut"));
    stepmem_destroy(&m);
    char *path = xasprintf("%s/%s", dir, STEPMEM_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((size_t)st.st_size <= 4 * (STEPMEM_RESULT_MAX + 4));
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void test_damaged(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *warn = NULL;
    stepmem_t *m = open_ok(dir, 0, &warn);
    Pcifleet__StepResult r;
    result(&r, "a", "");
    stepmem_put(m, &r);
    result(&r, "b", "");
    stepmem_put(m, &r);
    stepmem_destroy(&m);
    char *path = xasprintf("%s/%s", dir, STEPMEM_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* Cut the last record in half: the first survives. */
    assert_int_equal(truncate(path, st.st_size - 10), 0);
    m = open_ok(dir, 0, &warn);
    assert_non_null(warn);
    assert_non_null(strstr(warn, "kept the 1 results"));
    free(warn);
    assert_non_null(stepmem_find(m, "a"));
    assert_null(stepmem_find(m, "b"));
    stepmem_destroy(&m);
    /* Garbage from the first byte: nothing kept, still usable. */
    tu_write(dir, STEPMEM_FILE, "\xff\xff\xff\x7fjunk");
    m = open_ok(dir, 0, &warn);
    assert_non_null(warn);
    free(warn);
    assert_int_equal(stepmem_count(m), 0);
    stepmem_destroy(&m);
    /* A state "folder" that is a file cannot be used. */
    char *err = NULL;
    assert_true(stepmem_open(path, 0, &m, &warn, &err) < 0);
    assert_non_null(err);
    free(err);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
