/* metrics: the HTTP request parser, label escaping, the loopback rule and
 * the exposition rendered from a real store. Each test states what it proves. */
#include "testutil.h"

#include "buf.h"
#include "metrics.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static http_status_t parse(const char *s, http_req_t *r)
{
    return http_parse(s, strlen(s), r);
}

/* A whole GET is parsed into method, path (query dropped) and version. */
static void test_good(void **state)
{
    (void)state;
    http_req_t r;
    assert_int_equal(parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", &r), HTTP_OK);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.minor, 1);
    assert_int_equal(parse("HEAD / HTTP/1.0\r\n\r\n", &r), HTTP_OK);
    assert_string_equal(r.method, "HEAD");
    assert_int_equal(r.minor, 0);
}

/* Every proper prefix of a good request asks for more, never refuses. */
static void test_partial(void **state)
{
    (void)state;
    const char *full = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    http_req_t r;
    for (size_t n = 0; n < strlen(full); n++)
        assert_int_equal(http_parse(full, n, &r), HTTP_INCOMPLETE);
    assert_int_equal(http_parse(full, strlen(full), &r), HTTP_OK);
}

/* Headers without an end within 8 KiB are too large. */
static void test_oversized(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_puts(&b, "GET / HTTP/1.1\r\n");
    while (b.len < METRICS_MAX_REQUEST + 10)
        buf_puts(&b, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    http_req_t r;
    assert_int_equal(http_parse(b.p, b.len, &r), HTTP_TOO_LARGE);
    buf_free(&b);
}

/* A POST parses (the server answers 405); garbage and bad versions are 400 with a reason. */
static void test_bad(void **state)
{
    (void)state;
    http_req_t r;
    assert_int_equal(parse("POST /metrics HTTP/1.1\r\n\r\n", &r), HTTP_OK);
    assert_string_equal(r.method, "POST");
    const char *bad[] = {"garbage\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n",
                         "get / HTTP/1.1\r\n\r\n", "GET /\x01 HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\n\n",
                         "\x16\x03\x01\x02\x00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &r), HTTP_BAD);
        assert_non_null(r.why);
    }
}

/* Backslash, quote and newline are escaped in label values. */
static void test_escape(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_reset(&b);
    metrics_escape_label(&b, "a\\b\"c\nd");
    assert_string_equal(b.p, "a\\\\b\\\"c\\nd");
    buf_free(&b);
}

/* Loopback addresses are taken; others only when allowed; junk is refused. */
static void test_addr(void **state)
{
    (void)state;
    uint32_t ip;
    uint16_t port;
    char *err = NULL;
    assert_int_equal(metrics_addr_parse("127.0.0.1:9469", false, &ip, &port, &err), 0);
    assert_int_equal(port, 9469);
    assert_int_equal(metrics_addr_parse("localhost:0", false, &ip, &port, &err), 0);
    assert_int_equal(metrics_addr_parse("10.1.2.3:80", false, &ip, &port, &err), -1);
    assert_non_null(strstr(err, "loopback"));
    free(err);
    err = NULL;
    assert_int_equal(metrics_addr_parse("10.1.2.3:80", true, &ip, &port, &err), 0);
    const char *bad[] = {"9469", ":9469", "127.0.0.1:", "127.0.0.1:70000", "nohost:1", "127.0.0.1:x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(metrics_addr_parse(bad[i], false, &ip, &port, &err), -1);
        assert_non_null(err);
        free(err);
        err = NULL;
    }
}

/* On a fresh store the exposition has HELP/TYPE for each family, the
 * counters from the stats and the build info. */
static void test_render(void **state)
{
    (void)state;
    store_t *s = NULL;
    char *err = NULL;
    assert_int_equal(store_open(":memory:", &s, &err), 0);
    bool known, hm;
    assert_int_equal(store_heartbeat(s, "n1", NULL, 0, "b1", 100, &known, &hm, &err), 0);
    store_flush(s, &err);
    ingest_stats_t st = {.frames = 7, .inventories = 3, .heartbeats = 4, .refused = 2};
    st.refused_by_code[5] = 2;
    buf_t b = BUF_INIT;
    assert_int_equal(metrics_render(&b, store_db(s), &st, "1.2\"3", 42, &err), 0);
    assert_non_null(strstr(b.p, "pcifleet_build_info{version=\"1.2\\\"3\"} 1\n"));
    assert_non_null(strstr(b.p, "# TYPE pcifleet_nodes gauge\n"));
    assert_non_null(strstr(b.p, "pcifleet_ingest_inventories_total 3\n"));
    assert_non_null(strstr(b.p, "pcifleet_ingest_heartbeats_total 4\n"));
    assert_non_null(strstr(b.p, "pcifleet_ingest_refused_total{reason=\"wrong_node\"} 2\n"));
    assert_non_null(strstr(b.p, "pcifleet_process_start_time_seconds 42\n"));
    assert_non_null(strstr(b.p, "pcifleet_nics{state=\"free\"} 0\n"));
    assert_non_null(strstr(b.p, "pcifleet_nodes_online 1\n"));
    assert_non_null(strstr(b.p, "pcifleet_nodes{verdict=\"unknown\"} 1\n"));
    buf_free(&b);
    free(err);
    store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),   cmocka_unit_test(test_partial), cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_bad),    cmocka_unit_test(test_escape),  cmocka_unit_test(test_addr),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
