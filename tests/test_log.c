/* Tests for common/log.c: the line format a person reads on a terminal, the
 * "<PRIO>" format the systemd journal files by priority when stderr is the
 * stream JOURNAL_STREAM names, level filtering, and one event per line. */
#include "testutil.h"

#include "log.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Everything written to f so far, as a string (caller frees). */
static char *contents(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    assert_true(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static char *stream_id(FILE *f)
{
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    char *s = NULL;
    assert_true(asprintf(&s, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino) > 0);
    return s;
}

static void test_words_when_not_journal(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    unsetenv("JOURNAL_STREAM");
    log_init("/usr/sbin/pcifleetd", LOG_LEVEL_INFO);
    log_set_output(f);
    log_info("node %s is online", "pve1");
    log_debug("not shown at info");
    log_warn("line\nbreak");
    char *s = contents(f);
    assert_string_equal(s, "INFO pcifleetd: node pve1 is online\nWARN pcifleetd: line\\x0abreak\n");
    free(s);
    log_set_output(NULL);
    fclose(f);
}

static void test_priorities_when_journal(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    char *id = stream_id(f);
    assert_true(log_stream_is_journal(f, id));
    setenv("JOURNAL_STREAM", id, 1);
    log_init("pcifleet-agent", LOG_LEVEL_DEBUG);
    log_set_output(f);
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    char *s = contents(f);
    assert_string_equal(s, "<3>pcifleet-agent: e\n<4>pcifleet-agent: w\n<6>pcifleet-agent: i\n<7>pcifleet-agent: d\n");
    free(s);
    unsetenv("JOURNAL_STREAM");
    log_set_output(NULL);
    free(id);
    fclose(f);
}

/* A JOURNAL_STREAM inherited by a child whose stderr was redirected names
 * another file: that child must keep the words. Malformed values never match. */
static void test_journal_stream_must_match(void **state)
{
    (void)state;
    FILE *f = tmpfile(), *g = tmpfile();
    assert_non_null(f);
    assert_non_null(g);
    char *id = stream_id(g);
    assert_false(log_stream_is_journal(f, id));
    assert_true(log_stream_is_journal(g, id));
    static const char *const bad[] = {"", ":", "12", "12:", ":34", "a:b", "12:34x", "12 34"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(log_stream_is_journal(g, bad[i]));
    assert_false(log_stream_is_journal(g, NULL));
    free(id);
    fclose(f);
    fclose(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_when_not_journal),
        cmocka_unit_test(test_priorities_when_journal),
        cmocka_unit_test(test_journal_stream_must_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
