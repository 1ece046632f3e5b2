/* Tests of the config file reader (common/config.c) and of the agent's
 * option parsing on top of it (agent/daemon.c).
 *
 * Proves: "key = value" lines, comments, blank lines, quotes and CRLF are
 * read as the contract says; every malformed file (unknown key, no '=',
 * a key given twice, an unclosed quote, text after a quote, an empty value,
 * a NUL byte) is refused with a message naming the file and line, and
 * leaves the output untouched; config_load refuses what is not a regular
 * file; the agent's options get their defaults and their range checks. */
#include "testutil.h"

#include "buf.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static const char *const known[] = {"controller", "controller-key", "key", "interval", "root", NULL};

static int parse(const char *text, config_t *c, char **err)
{
    return config_parse(text, strlen(text), "agent.conf", known, c, err);
}

/* A well-formed file: comments, blank lines, spaces, tabs, quotes, CRLF, a
 * '#' inside a value and a BOM at the start all read as meant. */
static void test_parse_ok(void **state)
{
    (void)state;
    const char *text = "\xEF\xBB\xBF# pcifleet agent\n"
                       "\n"
                       "controller = tcp://10.0.0.1:7300\r\n"
                       "   controller-key\t=\t/etc/pcifleet/controller.key   \n"
                       "key = \"/etc/pcifleet/my \\\"agent\\\" \\\\ key\"\n"
                       "  # indented comment\n"
                       "root=/srv/fixture#1\n"
                       "interval = \"\"";
    config_t c = CONFIG_INIT;
    char *err = NULL;
    assert_int_equal(parse(text, &c, &err), 0);
    assert_null(err);
    assert_int_equal(c.keys.n, 5);
    assert_string_equal(config_get(&c, "controller"), "tcp://10.0.0.1:7300");
    assert_string_equal(config_get(&c, "controller-key"), "/etc/pcifleet/controller.key");
    assert_string_equal(config_get(&c, "key"), "/etc/pcifleet/my \"agent\" \\ key");
    assert_string_equal(config_get(&c, "root"), "/srv/fixture#1");
    assert_string_equal(config_get(&c, "interval"), "");
    assert_null(config_get(&c, "node"));
    config_free(&c);
    assert_int_equal(c.keys.n, 0);

    /* An empty file and a comments-only file are valid and set nothing. */
    assert_int_equal(parse("", &c, &err), 0);
    assert_int_equal(parse("# nothing\n\n   \n", &c, &err), 0);
    assert_int_equal(c.keys.n, 0);
    config_free(&c);
}

static void expect_refusal(const char *text, const char *needle)
{
    config_t c = CONFIG_INIT;
    strv_add(&c.keys, "root");
    strv_add(&c.values, "/before");
    char *err = NULL;
    size_t len = strlen(text);
    if (strcmp(needle, "NUL byte") == 0)
        len += 8; /* the test text carries a NUL in the middle: see below */
    int rc = config_parse(text, len, "agent.conf", known, &c, &err);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(err);
    if (!strstr(err, needle) || !strstr(err, "agent.conf:")) {
        fprintf(stderr, "message was: %s (wanted '%s')\n", err, needle);
        fail();
    }
    /* Nothing of a refused file is kept: the output is as it was. */
    assert_int_equal(c.keys.n, 1);
    assert_string_equal(config_get(&c, "root"), "/before");
    free(err);
    config_free(&c);
}

/* Every kind of malformed file is refused, naming the line. */
static void test_parse_refusals(void **state)
{
    (void)state;
    expect_refusal("controller = a\nbogus = 1\n", "agent.conf:2: unknown key 'bogus'");
    expect_refusal("controller = a\nbogus = 1\n", "known keys: controller, controller-key");
    expect_refusal("controller tcp://x\n", "agent.conf:1: expected \"key = value\" but found no '='");
    expect_refusal("# c\ncontroller = a\ncontroller = b\n", "agent.conf:3: 'controller' is set twice");
    expect_refusal("key = \"unclosed\n", "agent.conf:1: the value of 'key' has a quote that is not closed");
    expect_refusal("key = \"a\" b\n", "has text after the closing quote");
    expect_refusal("key = \"a\\nb\"\n", "has a backslash");
    expect_refusal("key =   \n", "agent.conf:1: 'key' has no value");
    expect_refusal("= value\n", "agent.conf:1: has no key before '='");
    expect_refusal("Key Name = value\n", "is not a key");
    expect_refusal("key = a\0b\nroot = x\n", "NUL byte");
}

/* config_load reads a file, refuses a folder and a missing file. */
static void test_load(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "agent.conf", "controller = tcp://127.0.0.1:1\nkey = /k\n");
    char *path = xasprintf("%s/agent.conf", dir);
    config_t c = CONFIG_INIT;
    char *err = NULL;
    assert_int_equal(config_load(path, known, &c, &err), 0);
    assert_string_equal(config_get(&c, "key"), "/k");
    config_free(&c);

    assert_int_equal(config_load(dir, known, &c, &err), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    free(err);

    char *missing = xasprintf("%s/none.conf", dir);
    assert_int_equal(config_load(missing, known, &c, &err), -ENOENT);
    assert_non_null(strstr(err, "cannot open config file"));
    free(err);

    /* Errors name the file's path. */
    tu_write(dir, "bad.conf", "\n\nnode = x\n");
    char *bad = xasprintf("%s/bad.conf", dir);
    assert_int_equal(config_load(bad, known, &c, &err), -EINVAL);
    char *want = xasprintf("%s:3: unknown key 'node'", bad);
    assert_non_null(strstr(err, want));
    free(want);
    free(err);

    free(bad);
    free(missing);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

static void set(config_t *c, const char *k, const char *v)
{
    strv_add(&c->keys, k);
    strv_add(&c->values, v);
}

/* The agent's options: required ones, defaults, seconds with fractions and
 * their ranges, node names and log levels. */
static void test_agent_opts(void **state)
{
    (void)state;
    agent_daemon_opts_t o;
    char *err = NULL;
    config_t c = CONFIG_INIT;
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), -EINVAL);
    assert_non_null(strstr(err, "--controller is required"));
    free(err);

    set(&c, "controller", "tcp://127.0.0.1:7300");
    set(&c, "controller-key", "/k/controller.key");
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), -EINVAL);
    assert_non_null(strstr(err, "--key is required"));
    free(err);

    set(&c, "key", "/k/n1.key_secret");
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), 0);
    assert_int_equal(o.interval_ms, 5000);
    assert_int_equal(o.rescan_ms, 60000);
    assert_int_equal(o.log_level, LOG_LEVEL_INFO);
    assert_null(o.node);
    assert_null(o.root);
    assert_null(o.allow_steps); /* every step kind by default */
    config_free(&c);

    /* allow-steps: only step kinds; a typo is refused, naming it */
    set(&c, "controller", "tcp://127.0.0.1:7300");
    set(&c, "controller-key", "/k/controller.key");
    set(&c, "key", "/k/n1.key_secret");
    set(&c, "allow-steps", "set-kernel-args, ensure-modules,verify");
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), 0);
    assert_string_equal(o.allow_steps, "set-kernel-args, ensure-modules,verify");
    config_free(&c);
    set(&c, "controller", "tcp://127.0.0.1:7300");
    set(&c, "controller-key", "/k/controller.key");
    set(&c, "key", "/k/n1.key_secret");
    set(&c, "allow-steps", "set-kernel-args,rebot");
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), -EINVAL);
    assert_non_null(strstr(err, "allow-steps names 'rebot', which is not a step"));
    free(err);
    config_free(&c);

    set(&c, "controller", "tcp://127.0.0.1:7300");
    set(&c, "controller-key", "/k/controller.key");
    set(&c, "key", "/k/n1.key_secret");
    set(&c, "interval", "0.25");
    set(&c, "rescan", "2");
    set(&c, "log-level", "debug");
    set(&c, "node", "pve-01.lab");
    assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), 0);
    assert_int_equal(o.interval_ms, 250);
    assert_int_equal(o.rescan_ms, 2000);
    assert_int_equal(o.log_level, LOG_LEVEL_DEBUG);
    assert_string_equal(o.node, "pve-01.lab");
    config_free(&c);

    unsigned ms = 0;
    assert_int_equal(agent_parse_seconds("5", 50, 3600000, &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(agent_parse_seconds("0.05", 50, 3600000, &ms), 0);
    assert_int_equal(ms, 50);
    const char *bad[] = {"", "0", "0.01", "-1", "1.", ".5", "1.2345", "5s", "3601", " 5", "1e3", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(agent_parse_seconds(bad[i], 50, 3600000, &ms), -EINVAL);

    const char *opts_bad[][2] = {{"interval", "0"}, {"rescan", "1x"}, {"log-level", "loud"}, {"node", "-bad"}};
    for (size_t i = 0; i < 4; i++) {
        set(&c, "controller", "tcp://127.0.0.1:7300");
        set(&c, "controller-key", "/k/controller.key");
        set(&c, "key", "/k/n1.key_secret");
        set(&c, opts_bad[i][0], opts_bad[i][1]);
        assert_int_equal(agent_daemon_opts_parse(&c, &o, &err), -EINVAL);
        char *want = xasprintf("--%s", opts_bad[i][0]);
        assert_non_null(strstr(err, want));
        free(want);
        free(err);
        config_free(&c);
    }
}

/* Log lines have one shape, honour the level, and a newline inside a
 * message cannot start a second line. */
static void test_log_lines(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *path = xasprintf("%s/log", dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    log_set_output(f);
    log_init("/usr/bin/pcifleetd", LOG_LEVEL_INFO);
    log_info("node %s is online", "pve1");
    log_debug("not shown");
    log_warn("evil\nINFO forged: line");
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("shown");
    log_set_output(NULL);
    rewind(f);
    char text[512] = {0};
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_string_equal(text, "INFO pcifleetd: node pve1 is online\n"
                              "WARN pcifleetd: evil\\x0aINFO forged: line\n"
                              "DEBUG pcifleetd: shown\n");
    assert_int_equal(log_level_parse("warn"), LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("error"), LOG_LEVEL_ERROR);
    assert_int_equal(log_level_parse("verbose"), -1);
    log_set_level(LOG_LEVEL_INFO);
    free(path);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),   cmocka_unit_test(test_parse_refusals), cmocka_unit_test(test_load),
        cmocka_unit_test(test_agent_opts), cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
