/* ingest and admin: what the controller does with each frame an agent sends
 * and each admin request, without sockets. The store, key folder and
 * inventory are real (a fixture host scanned by the agent's code). Each test
 * states what it proves. */
#include "testutil.h"

#include "admin.h"
#include "buf.h"
#include "ingest.h"
#include "inventory.h"
#include "inv_builder.h"
#include "keyfp.h"
#include "keys.h"
#include "log.h"
#include "report_pb.h"
#include "store.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FRAME (256u * 1024)

typedef struct {
    char *dir;
    keystore_t *ks;
    store_t *store;
    ingest_t *ig;
    char key_a[KEY_Z85_LEN + 1]; /* accepted for node-a */
    char key_b[KEY_Z85_LEN + 1]; /* unknown */
    Pcifleet__Inventory *inv;   /* node-a's inventory */
} fx_t;

static void load_pub(const char *dir, const char *name, char out[KEY_Z85_LEN + 1])
{
    char *err = NULL;
    char *path = xasprintf("%s/%s.key", dir, name);
    assert_int_equal(keys_load_public(path, out, &err), 0);
    free(path);
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    char *err = NULL;
    f->dir = tu_tmpdir();
    char *keys = xasprintf("%s/keys", f->dir), *ak = xasprintf("%s/ak", f->dir);
    assert_int_equal(keys_generate(ak, "node-a", &err), 0);
    assert_int_equal(keys_generate(ak, "node-b", &err), 0);
    load_pub(ak, "node-a", f->key_a);
    load_pub(ak, "node-b", f->key_b);
    assert_int_equal(keystore_open(keys, &f->ks, &err), 0);
    /* node-a is accepted the way an operator copies a key in. */
    char *cmd = xasprintf("cp '%s/node-a.key' '%s/agents/node-a.key'", ak, keys);
    int st;
    free(tu_run(cmd, &st));
    assert_int_equal(st, 0);
    free(cmd);
    assert_int_equal(keystore_reload(f->ks, &err), 0);
    assert_string_equal(keystore_node_for(f->ks, f->key_a), "node-a");

    char *db = xasprintf("%s/fleet.db", f->dir);
    assert_int_equal(store_open(db, &f->store, &err), 0);
    f->ig = ingest_new(f->store, f->ks, MAX_FRAME);

    char *root = tu_fixture_src("amd-default-on"); /* only read */
    scan_opts_t so = {root, "node-a", NULL};
    inventory_t *inv = NULL;
    assert_int_equal(inventory_scan(&so, &inv, &err), 0);
    assert_int_equal(report_to_pb(inv, &f->inv), 0);
    inventory_destroy(&inv);
    free(root);
    free(db);
    free(keys);
    free(ak);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    report_pb_free(&f->inv);
    ingest_destroy(&f->ig);
    assert_null(f->ig);
    store_close(&f->store);
    keystore_destroy(&f->ks);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* An envelope for node with one body: 'h' Hello, 'b' Heartbeat, 'i'
 * Inventory; hash (may be NULL) goes into Hello/Heartbeat. */
static size_t frame(fx_t *f, const char *node, int kind, uint64_t seq, const uint8_t *hash, uint8_t **out)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Hello hello = PCIFLEET__HELLO__INIT;
    Pcifleet__Heartbeat hb = PCIFLEET__HEARTBEAT__INIT;
    env.seq = seq;
    env.node = (char *)node;
    if (kind == 'h') {
        hello.agent_version = (char *)"test";
        hello.boot_id = (char *)"boot-1";
        if (hash) {
            hello.inventory_hash.data = (uint8_t *)hash;
            hello.inventory_hash.len = WIRE_HASH_LEN;
        }
        env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
        env.hello = &hello;
    } else if (kind == 'b') {
        hb.boot_id = (char *)"boot-1";
        if (hash) {
            hb.inventory_hash.data = (uint8_t *)hash;
            hb.inventory_hash.len = WIRE_HASH_LEN;
        }
        env.body_case = PCIFLEET__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
    } else {
        env.body_case = PCIFLEET__ENVELOPE__BODY_INVENTORY;
        env.inventory = f->inv;
    }
    return wire_encode(&env, out);
}

/* Sends one frame through ingest and decodes the reply (NULL: none). */
static Pcifleet__Envelope *handle(fx_t *f, const char *key, const uint8_t *buf, size_t len)
{
    uint8_t *reply = NULL;
    size_t n = ingest_handle(f->ig, key, "192.0.2.1", buf, len, 1700000000, &reply);
    if (n == 0) {
        assert_null(reply);
        return NULL;
    }
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode(reply, n, 0, &env, &err), 0);
    free(reply);
    return env;
}

static Pcifleet__Envelope *send_kind(fx_t *f, const char *key, const char *node, int kind, uint64_t seq,
                                     const uint8_t *hash)
{
    uint8_t *buf = NULL;
    size_t len = frame(f, node, kind, seq, hash, &buf);
    Pcifleet__Envelope *r = handle(f, key, buf, len);
    free(buf);
    return r;
}

static void assert_error(Pcifleet__Envelope *r, int code, const char *contains)
{
    assert_non_null(r);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ERROR);
    assert_int_equal(r->error->code, code);
    if (contains && !strstr(r->error->message, contains))
        fail_msg("error message '%s' lacks '%s'", r->error->message, contains);
}

static int64_t count(fx_t *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_db(f->store), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* An unknown key is refused with the command to run, recorded as pending
 * for the node it names, and nothing is stored for it. */
static void test_unknown_key_is_pending(void **state)
{
    fx_t *f = *state;
    Pcifleet__Envelope *r = send_kind(f, f->key_b, "node-b", 'i', 7, NULL);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED, "run `pcifleet keys accept node-b`");
    assert_int_equal(r->error->seq, 7);
    wire_free(&r);
    assert_string_equal(keystore_pending_key(f->ks, "node-b"), f->key_b);
    assert_int_equal(count(f, "SELECT count(*) FROM nodes"), 0);
    /* Again: same answer, still one pending key, still nothing stored. */
    r = send_kind(f, f->key_b, "node-b", 'h', 8, NULL);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED, "pending");
    wire_free(&r);
    assert_int_equal(count(f, "SELECT count(*) FROM nodes"), 0);
    /* A connection without a CURVE key is refused the same way, and no
     * pending key is invented for it. */
    r = send_kind(f, NULL, "node-c", 'h', 9, NULL);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED, NULL);
    wire_free(&r);
    assert_null(keystore_pending_key(f->ks, "node-c"));
}

/* The accepted path: Hello of an unknown node asks for the inventory; the
 * inventory is stored and acknowledged by seq; a heartbeat with the stored
 * hash costs no reply, one with another hash asks again; Hello with the
 * stored hash is acknowledged. */
static void test_report_cycle(void **state)
{
    fx_t *f = *state;
    Pcifleet__Envelope *r = send_kind(f, f->key_a, "node-a", 'h', 1, f->inv->hash.data);
    assert_non_null(r);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_RESEND);
    wire_free(&r);

    r = send_kind(f, f->key_a, "node-a", 'i', 2, NULL);
    assert_non_null(r);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    assert_int_equal(r->ack->seq, 2);
    wire_free(&r);
    assert_int_equal(count(f, "SELECT count(*) FROM devices WHERE node = 'node-a'"), (int64_t)f->inv->n_devices);
    assert_int_equal(count(f, "SELECT online FROM nodes WHERE name = 'node-a'"), 1);

    r = send_kind(f, f->key_a, "node-a", 'b', 3, f->inv->hash.data);
    assert_null(r);

    uint8_t other[WIRE_HASH_LEN];
    memset(other, 0xa5, sizeof other);
    r = send_kind(f, f->key_a, "node-a", 'b', 4, other);
    assert_non_null(r);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_RESEND);
    wire_free(&r);

    r = send_kind(f, f->key_a, "node-a", 'h', 5, f->inv->hash.data);
    assert_non_null(r);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    assert_int_equal(r->ack->seq, 5);
    wire_free(&r);

    const ingest_stats_t *st = ingest_stats(f->ig);
    assert_int_equal(st->inventories, 1);
    assert_int_equal(st->refused, 0);
}

/* An accepted key cannot speak for another node: WRONG_NODE, nothing
 * stored under either name, and the real node's data stays intact. */
static void test_wrong_node(void **state)
{
    fx_t *f = *state;
    Pcifleet__Envelope *r = send_kind(f, f->key_a, "node-a", 'i', 1, NULL);
    wire_free(&r);
    int64_t devices = count(f, "SELECT count(*) FROM devices");
    r = send_kind(f, f->key_a, "node-b", 'i', 2, NULL);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_WRONG_NODE, "belongs to node node-a");
    wire_free(&r);
    r = send_kind(f, f->key_a, "", 'h', 3, NULL);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_WRONG_NODE, "names no node");
    wire_free(&r);
    assert_int_equal(count(f, "SELECT count(*) FROM nodes WHERE name = 'node-b'"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM devices"), devices);
}

/* A frame whose seq is not above the last one accepted from its node is
 * refused as REPLAYED, naming that floor, and not applied: an old inventory
 * sent again does not roll the node back, a duplicate is not stored twice.
 * The floor survives a controller restart (store_flush, close, reopen), and
 * seq 0 (unset) is malformed. */
static void test_replay(void **state)
{
    fx_t *f = *state;
    char *err = NULL;
    uint8_t *old_frame = NULL, *new_frame = NULL;
    size_t old_len = frame(f, "node-a", 'i', 100, NULL, &old_frame);
    Pcifleet__Envelope *r = handle(f, f->key_a, old_frame, old_len);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    wire_free(&r);

    /* The node changes: a newer inventory (another kernel, another hash). */
    assert_true(f->inv->kernel_release && *f->inv->kernel_release && f->inv->hash.len == WIRE_HASH_LEN);
    f->inv->kernel_release[0] = 'X';
    f->inv->hash.data[0] ^= 0xff;
    size_t new_len = frame(f, "node-a", 'i', 101, NULL, &new_frame);
    r = handle(f, f->key_a, new_frame, new_len);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    wire_free(&r);
    int64_t devices = count(f, "SELECT count(*) FROM devices WHERE node = 'node-a'");
    assert_int_equal(count(f, "SELECT count(*) FROM nodes WHERE name = 'node-a' AND kernel LIKE 'X%'"), 1);

    /* The old frame again, byte for byte: refused, the newer data stays. */
    r = handle(f, f->key_a, old_frame, old_len);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_REPLAYED, "not above 101");
    assert_int_equal(r->error->seq, 100);
    assert_int_equal(r->error->accepted_seq, 101);
    wire_free(&r);
    assert_int_equal(count(f, "SELECT count(*) FROM nodes WHERE name = 'node-a' AND kernel LIKE 'X%'"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM devices WHERE node = 'node-a'"), devices);
    /* A duplicate of the newest frame is refused too. */
    r = handle(f, f->key_a, new_frame, new_len);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_REPLAYED, NULL);
    wire_free(&r);
    /* seq 0 is not a sequence number. */
    r = send_kind(f, f->key_a, "node-a", 'b', 0, f->inv->hash.data);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_MALFORMED, "seq 0");
    wire_free(&r);
    const ingest_stats_t *st = ingest_stats(f->ig);
    assert_int_equal(st->refused_by_code[PCIFLEET__ERROR__CODE__CODE_REPLAYED], 2);
    assert_int_equal(st->inventories, 2);

    /* A heartbeat above the floor raises it; the floor outlives a restart. */
    r = send_kind(f, f->key_a, "node-a", 'b', 102, f->inv->hash.data);
    assert_null(r);
    assert_int_equal(store_flush(f->store, &err), 0);
    assert_int_equal(count(f, "SELECT last_seq FROM nodes WHERE name = 'node-a'"), 102);
    ingest_destroy(&f->ig);
    store_close(&f->store);
    char *db = xasprintf("%s/fleet.db", f->dir);
    assert_int_equal(store_open(db, &f->store, &err), 0);
    free(db);
    f->ig = ingest_new(f->store, f->ks, MAX_FRAME);
    r = handle(f, f->key_a, new_frame, new_len);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_REPLAYED, "not above 102");
    assert_int_equal(r->error->accepted_seq, 102);
    wire_free(&r);
    r = send_kind(f, f->key_a, "node-a", 'h', 103, f->inv->hash.data);
    assert_int_equal(r->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    wire_free(&r);
    free(old_frame);
    free(new_frame);
}

/* Frames the decoder refuses get its code, over-size frames are refused
 * before decoding, and a frame split over several parts is malformed. */
static void test_bad_frames(void **state)
{
    fx_t *f = *state;
    uint8_t garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 37 + 11);
    Pcifleet__Envelope *r = handle(f, f->key_a, garbage, sizeof garbage);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_MALFORMED, NULL);
    wire_free(&r);

    uint8_t *big = xcalloc(1, MAX_FRAME + 1);
    r = handle(f, f->key_a, big, MAX_FRAME + 1);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_TOO_LARGE, "limit");
    wire_free(&r);
    free(big);

    /* A Hello with protocol version 2, packed by hand. */
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Hello hello = PCIFLEET__HELLO__INIT;
    env.version = 2;
    env.node = (char *)"node-a";
    env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    uint8_t buf[256];
    size_t n = pcifleet__envelope__pack(&env, buf);
    r = handle(f, f->key_a, buf, n);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_BAD_VERSION, NULL);
    wire_free(&r);

    uint8_t *reply = NULL;
    n = ingest_refuse_frames(f->ig, f->key_a, "192.0.2.1", 3, 1700000000, &reply);
    assert_true(n > 0);
    assert_int_equal(wire_decode(reply, n, 0, &r, &(char *){NULL}), 0);
    assert_error(r, PCIFLEET__ERROR__CODE__CODE_MALFORMED, "exactly one frame");
    wire_free(&r);
    free(reply);

    assert_int_equal(ingest_stats(f->ig)->refused, 4);
    assert_int_equal(count(f, "SELECT count(*) FROM nodes"), 0);
    ingest_tick(f->ig, 1700000000 + 3600); /* forgets the limiter state */
}

/* admin: one AdminRequest in, one AdminReply out. */
static Pcifleet__AdminReply *admin(fx_t *f, bool json, int argc, ...)
{
    char *argv[8];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.argv = argv;
    req.n_argv = (size_t)argc;
    req.json = json;
    uint8_t *buf = NULL;
    size_t len = wire_encode_admin_request(&req, &buf);
    admin_ctx_t ctx = {f->store, f->ks, f->ig, {2000, 10000, NULL}, "tcp://*:7450", "test", 1700000000, 15, NULL, NULL, 0};
    uint8_t *out = NULL;
    size_t n = admin_handle(&ctx, buf, len, 1700000001, &out);
    free(buf);
    Pcifleet__AdminReply *r = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode_admin_reply(out, n, 0, &r, &err), 0);
    free(out);
    return r;
}

/* `keys` lists accepted and pending keys with fingerprints (table and
 * JSON); `keys accept NODE` moves a pending key in, after which the key's
 * messages are taken; mistakes get status 1 or 2 with a sentence. */
static void test_admin_keys(void **state)
{
    fx_t *f = *state;
    Pcifleet__Envelope *e = send_kind(f, f->key_b, "node-b", 'h', 1, NULL);
    wire_free(&e);
    char fp_b[KEYFP_LEN + 1];
    assert_int_equal(keyfp_of(f->key_b, fp_b), 0);

    Pcifleet__AdminReply *r = admin(f, false, 1, "keys");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->body, "node-a"));
    assert_non_null(strstr(r->body, "accepted"));
    assert_non_null(strstr(r->body, fp_b));
    wire_admin_reply_free(&r);

    r = admin(f, false, 2, "keys", "--json");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->body, "\"pending\""));
    assert_non_null(strstr(r->body, "\"node\": \"node-b\""));
    wire_admin_reply_free(&r);

    r = admin(f, false, 3, "keys", "accept", "node-b");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->body, fp_b));
    wire_admin_reply_free(&r);
    assert_string_equal(keystore_node_for(f->ks, f->key_b), "node-b");
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'key-accepted' AND node = 'node-b'"), 1);
    e = send_kind(f, f->key_b, "node-b", 'h', 2, NULL);
    assert_non_null(e);
    assert_int_equal(e->body_case, PCIFLEET__ENVELOPE__BODY_RESEND);
    wire_free(&e);

    r = admin(f, false, 3, "keys", "accept", "node-z");
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->error, "node-z"));
    wire_admin_reply_free(&r);
    r = admin(f, false, 3, "keys", "accept", "../x");
    assert_int_equal(r->status, 2);
    wire_admin_reply_free(&r);
    r = admin(f, false, 2, "keys", "frob");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->error, "frob"));
    wire_admin_reply_free(&r);
    r = admin(f, false, 0);
    assert_int_equal(r->status, 2);
    wire_admin_reply_free(&r);
    r = admin(f, true, 1, "status");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->body, "\"accepted_keys\": 2"));
    wire_admin_reply_free(&r);
}

/* Bytes that are not an AdminRequest get status 2, not a crash. */
static void test_admin_garbage(void **state)
{
    fx_t *f = *state;
    admin_ctx_t ctx = {f->store, f->ks, f->ig, {2000, 10000, NULL}, "tcp://*:7450", "test", 0, 15, NULL, NULL, 0};
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x0f, 0x12, 0x80};
    uint8_t *out = NULL;
    size_t n = admin_handle(&ctx, junk, sizeof junk, 1, &out);
    Pcifleet__AdminReply *r = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode_admin_reply(out, n, 0, &r, &err), 0);
    free(out);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->error, "bad admin request"));
    wire_admin_reply_free(&r);
}

/* Only ipc:// paths and loopback tcp:// are admin endpoints. */
static void test_admin_endpoints(void **state)
{
    (void)state;
    static const char *const good[] = {"ipc:///run/pcifleet/admin.sock", "ipc://rel.sock", "tcp://127.0.0.1:7451",
                                       "tcp://127.9.8.7:1", "tcp://localhost:7451", "tcp://[::1]:7451"};
    static const char *const bad[] = {"tcp://0.0.0.0:7451", "tcp://*:7451",    "tcp://10.0.0.1:7451",
                                      "tcp://127.0.0.1",    "tcp://eth0:7451", "ipc://@abstract",
                                      "ipc://",             "inproc://x",      "tcp://127.0.0.1.evil:1"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char *err = NULL;
        if (admin_endpoint_check(good[i], &err) != 0)
            fail_msg("%s refused: %s", good[i], err);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *err = NULL;
        if (admin_endpoint_check(bad[i], &err) == 0)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(err);
        free(err);
    }
}

/* Fingerprints are stable and refuse what is not a key. */
static void test_keyfp(void **state)
{
    fx_t *f = *state;
    char a[KEYFP_LEN + 1], b[KEYFP_LEN + 1];
    assert_int_equal(keyfp_of(f->key_a, a), 0);
    assert_int_equal(keyfp_of(f->key_a, b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), KEYFP_LEN);
    assert_int_equal(strncmp(a, "sha256:", 7), 0);
    assert_int_not_equal(keyfp_of("short", a), 0);
    assert_int_not_equal(keyfp_of(NULL, a), 0);
}

/* A long answer through admin_handle_chunked (what pcifleetd sends): the
 * reply announces the body, the body stays in the caller's buffer, and it
 * is exactly the body admin_handle puts inside its reply; a short answer
 * stays inside the reply. */
static void test_admin_chunked(void **state)
{
    fx_t *f = *state;
    char *argv[] = {"sql", "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 4000)"
                           " SELECT i, printf('%.120c', 'x') AS pad FROM r"};
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.argv = argv;
    req.n_argv = 2;
    uint8_t *buf = NULL;
    size_t len = wire_encode_admin_request(&req, &buf);
    admin_ctx_t ctx = {f->store, f->ks, f->ig, {2000, 10000, NULL}, "tcp://*:7450", "test", 1700000000, 15, NULL, NULL, 0};

    uint8_t *inline_reply = NULL;
    size_t n = admin_handle(&ctx, buf, len, 1700000001, &inline_reply);
    Pcifleet__AdminReply *whole = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode_admin_reply(inline_reply, n, 0, &whole, &err), 0);
    assert_int_equal(whole->status, 0);
    size_t want = strlen(whole->body);
    assert_true(want > WIRE_ADMIN_INLINE_MAX);
    assert_int_equal(whole->body_chunks, 0);

    buf_t body = BUF_INIT;
    uint8_t *head = NULL;
    bool deferred = true;
    blob_t *kept = NULL;
    n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, &kept, NULL, &deferred);
    assert_null(kept); /* sql answers are never kept */
    Pcifleet__AdminReply *r = NULL;
    assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &err), 0);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->body, "");
    assert_int_equal(r->body_length, want);
    assert_int_equal(body.len, want);
    assert_memory_equal(body.p, whole->body, want);
    uint32_t chunks = 0;
    for (size_t off = 0, c; (c = wire_admin_chunk_len(body.p, body.len, off)) > 0; off += c)
        chunks++;
    assert_int_equal(r->body_chunks, chunks);
    assert_true(chunks >= 2);
    assert_false(deferred);
    wire_admin_reply_free(&r);
    free(head);
    free(buf);

    /* short: inside the reply, nothing left in the buffer */
    char *argv2[] = {"status"};
    req.argv = argv2;
    req.n_argv = 1;
    len = wire_encode_admin_request(&req, &buf);
    n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, &kept, NULL, &deferred);
    assert_null(kept);
    assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &err), 0);
    assert_non_null(strstr(r->body, "controller"));
    assert_int_equal(r->body_chunks, 0);
    assert_int_equal(body.len, 0);
    wire_admin_reply_free(&r);
    wire_admin_reply_free(&whole);
    free(head);
    free(inline_reply);
    free(buf);
    buf_free(&body);
}

/* n copies of pve1 (pve0000...), enough for a `nics --free` over 256 KiB
 * when n is 1,500. */
static void store_pve_fleet(store_t *s, int n)
{
    char *e = NULL;
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "pve%04d", i);
        ib_t *b = ib_pve1();
        assert_int_equal(store_ingest_inventory(s, name, &b->inv, 1700000000, &e), 0);
        ib_free(&b);
    }
}

/* A long kept answer (nics --free of 1,500 nodes, over 256 KiB) goes out
 * without a copy: admin_handle_chunked hands back a reference to the
 * query cache's blob, the same one on the next ask, and leaves the body
 * buffer empty; the bytes are exactly the answer admin_handle puts inside
 * its reply. The reference stays good after the cache let go of it, as
 * when ZeroMQ still sends it while an inventory changed the answer. */
static void test_admin_kept_answer(void **state)
{
    fx_t *f = *state;
    char *e = NULL;
    store_pve_fleet(f->store, 1500);
    char *argv[] = {"nics", "--free"};
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.argv = argv;
    req.n_argv = 2;
    req.json = true;
    uint8_t *buf = NULL;
    size_t len = wire_encode_admin_request(&req, &buf);
    admin_ctx_t ctx = {f->store, f->ks, f->ig, {2000, 10000, query_cache_new()}, "tcp://*:7450", "test",
                       1700000000, 15, NULL, NULL, 0};

    uint8_t *inline_reply = NULL;
    size_t n = admin_handle(&ctx, buf, len, 1700000001, &inline_reply);
    Pcifleet__AdminReply *whole = NULL;
    assert_int_equal(wire_decode_admin_reply(inline_reply, n, 0, &whole, &e), 0);
    size_t want = strlen(whole->body);
    if (want <= WIRE_ADMIN_INLINE_MAX)
        fail_msg("nics --free is %zu bytes (status %d, %s): too short for this test", want, whole->status,
                 whole->error);
    blob_t *first = NULL, *again = NULL;
    buf_t body = BUF_INIT;
    uint8_t *head = NULL;
    bool deferred = true;
    for (int k = 0; k < 2; k++) {
        blob_t **kept = k ? &again : &first;
        n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, kept, NULL, &deferred);
        Pcifleet__AdminReply *r = NULL;
        assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &e), 0);
        assert_int_equal(r->status, 0);
        assert_string_equal(r->body, "");
        assert_non_null(*kept);
        assert_int_equal(body.len, 0);
        assert_int_equal(r->body_length, want);
        assert_int_equal(blob_len(*kept), want);
        assert_memory_equal(blob_data(*kept), whole->body, want);
        uint32_t chunks = 0;
        for (size_t off = 0, c; (c = wire_admin_chunk_len(blob_data(*kept), want, off)) > 0; off += c)
            chunks++;
        assert_int_equal(r->body_chunks, chunks);
        wire_admin_reply_free(&r);
        free(head);
    }
    assert_ptr_equal(blob_data(first), blob_data(again)); /* one kept copy, shared */
    blob_unref(&again);
    assert_null(again);

    /* a change replaces the kept answer; the old reference still reads */
    ib_t *b = ib_pve1();
    b->inv.n_nics = 0;
    assert_int_equal(store_ingest_inventory(f->store, "pve0000", &b->inv, 1700000002, &e), 0);
    ib_free(&b);
    n = admin_handle_chunked(&ctx, buf, len, 1700000003, &head, &body, &again, NULL, &deferred);
    free(head);
    assert_non_null(again);
    assert_true(blob_len(again) < want);
    query_cache_destroy(&ctx.query.cache);
    assert_memory_equal(blob_data(first), whole->body, want);
    blob_unref(&first);
    blob_unref(&again);
    wire_admin_reply_free(&whole);
    free(inline_reply);
    free(buf);
    buf_free(&body);
}

/* A long kept answer asked for with can_share comes as a SharedAnswer
 * naming this process, a memfd and its length, and nothing follows the
 * reply (no kept reference, empty body). Opened the way the CLI opens it
 * (/proc/PID/fd/FD) the memfd holds exactly the answer and its NUL, is
 * sealed so nobody can change it (a write fails with EPERM), and stays
 * readable through the opened descriptor after the controller dropped the
 * answer. A short answer never comes shared, and without can_share the
 * same long one comes in chunks. */
static void test_admin_shared_answer(void **state)
{
    fx_t *f = *state;
    char *e = NULL;
    store_pve_fleet(f->store, 1500);
    admin_ctx_t ctx = {f->store, f->ks, f->ig, {2000, 10000, query_cache_new()}, "tcp://*:7450", "test",
                       1700000000, 15, NULL, NULL, 0};
    char *argv[] = {"nics", "--free"}, *short_argv[] = {"nics", "--node", "pve0001"};
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.json = true;
    uint8_t *buf = NULL, *head = NULL;
    buf_t body = BUF_INIT;
    blob_t *kept = NULL;
    bool deferred = true;

    /* without can_share: the chunked answer, for comparison */
    req.argv = argv;
    req.n_argv = 2;
    size_t len = wire_encode_admin_request(&req, &buf);
    size_t n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, &kept, NULL, &deferred);
    Pcifleet__AdminReply *r = NULL;
    assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &e), 0);
    assert_null(r->shared);
    assert_non_null(kept);
    size_t want = blob_len(kept);
    assert_true(want > WIRE_ADMIN_INLINE_MAX);
    char *text = malloc(want);
    assert_non_null(text);
    memcpy(text, blob_data(kept), want);
    blob_unref(&kept);
    wire_admin_reply_free(&r);
    free(head);
    free(buf);
    assert_int_equal(ctx.shared_answers, 0);

    req.can_share = true;
    len = wire_encode_admin_request(&req, &buf);
    n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, &kept, NULL, &deferred);
    assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &e), 0);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->body, "");
    assert_int_equal(r->body_chunks, 0);
    assert_null(kept);
    assert_int_equal(body.len, 0);
    assert_non_null(r->shared);
    assert_int_equal(r->shared->pid, (uint32_t)getpid());
    assert_int_equal(r->shared->length, want);
    assert_true(strncmp(r->shared->name, "pcifleet-answer-", 16) == 0);
    assert_int_equal(ctx.shared_answers, 1);

    char path[64], self[64], target[256], expect[256];
    snprintf(path, sizeof path, "/proc/%u/fd/%d", r->shared->pid, r->shared->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    ssize_t tl = readlink(self, target, sizeof target - 1);
    assert_true(tl > 0);
    target[tl] = '\0';
    snprintf(expect, sizeof expect, "/memfd:%s (deleted)", r->shared->name);
    assert_string_equal(target, expect);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, want + 1);
    int seals = fcntl(fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW);
    int wfd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(wfd >= 0);
    assert_int_equal(pwrite(wfd, "X", 1, 0), -1);
    assert_int_equal(errno, EPERM);
    close(wfd);

    /* the controller lets go of the answer; what the CLI opened still reads */
    query_cache_destroy(&ctx.query.cache);
    char *got = malloc(want + 1);
    assert_non_null(got);
    assert_int_equal(pread(fd, got, want + 1, 0), (ssize_t)(want + 1));
    assert_memory_equal(got, text, want);
    assert_int_equal(got[want], '\0');
    close(fd);
    free(got);
    wire_admin_reply_free(&r);
    free(head);
    free(buf);

    /* a short answer is inside the reply even with can_share */
    ctx.query.cache = query_cache_new();
    req.argv = short_argv;
    req.n_argv = 3;
    len = wire_encode_admin_request(&req, &buf);
    n = admin_handle_chunked(&ctx, buf, len, 1700000001, &head, &body, &kept, NULL, &deferred);
    assert_int_equal(wire_decode_admin_reply(head, n, 0, &r, &e), 0);
    assert_int_equal(r->status, 0);
    assert_null(r->shared);
    assert_true(strlen(r->body) > 0);
    assert_null(kept);
    assert_int_equal(ctx.shared_answers, 1);
    wire_admin_reply_free(&r);
    free(head);
    free(buf);
    query_cache_destroy(&ctx.query.cache);
    free(text);
    buf_free(&body);
}

int main(void)
{
    log_init("test_ingest", LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_key_is_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_kept_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_shared_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_garbage, setup, teardown),
        cmocka_unit_test(test_admin_endpoints),
        cmocka_unit_test_setup_teardown(test_keyfp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
