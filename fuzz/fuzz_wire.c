/* Fuzzes what the controller does with bytes from the network: the same
 * input goes to wire_decode (an agent's Envelope), wire_decode_admin_request
 * (the admin socket), wire_decode_admin_reply (the CLI's side), and then
 * through ingest_handle, the whole path a frame takes in pcifleetd, against
 * a real store (SQLite in memory) and a real key folder (a temporary
 * directory, removed at exit) in which the key of node "fuzz-node" is
 * accepted. Each frame is handled three times: with that accepted key, with
 * a key nobody accepted (the pending path) and with no key at all.
 *
 * What must hold, beyond "no crash, no leak, no sanitizer report":
 *   - a decoder returns 0 with a message and no error, or an Error code
 *     (pcifleet.proto, 1..7) with a sentence and no message;
 *   - whatever a decoder accepts re-encodes to bytes it accepts again, and
 *     encoding that second message gives the same bytes (nothing a decoder
 *     admits is lost or changed by a round trip);
 *   - every reply ingest_handle sends is one the agent's decoder accepts;
 *   - the store only ever holds the accepted node.
 *
 * The seeds in corpus/fuzz_wire/ are envelopes an agent sends (hello,
 * heartbeat, small and fixture-sized inventories for "fuzz-node", another
 * node's hello) and the admin socket's requests and replies, made with
 * wire_encode / wire_encode_admin_request / wire_encode_admin_reply. */
#include "buf.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "store.h"
#include "wire.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NODE "fuzz-node"
#define FUZZ_MAX_FRAME (1024u * 1024)

static struct {
    char *dir;
    keystore_t *ks;
    store_t *store;
    ingest_t *ig;
    FILE *devnull;
    char key_ok[KEY_Z85_LEN + 1];      /* accepted for FUZZ_NODE */
    char key_unknown[KEY_Z85_LEN + 1]; /* never accepted */
    int64_t now;
} G;

static void die(const char *what, char *err)
{
    fprintf(stderr, "fuzz_wire: %s: %s\n", what, err ? err : "failed");
    free(err);
    abort();
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void teardown(void)
{
    ingest_destroy(&G.ig);
    store_close(&G.store);
    keystore_destroy(&G.ks);
    if (G.dir) {
        nftw(G.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(G.dir);
        G.dir = NULL;
    }
    if (G.devnull) {
        log_set_output(NULL);
        fclose(G.devnull);
        G.devnull = NULL;
    }
}

static void load_pub(const char *dir, const char *name, char out[KEY_Z85_LEN + 1])
{
    char *err = NULL;
    char *path = xasprintf("%s/%s.key", dir, name);
    if (keys_load_public(path, out, &err) < 0)
        die(path, err);
    free(path);
}

static void setup(void)
{
    char *err = NULL;
    const char *base = getenv("TMPDIR");
    G.dir = xasprintf("%s/fuzz_wire.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(G.dir))
        die("mkdtemp", NULL);
    atexit(teardown);

    /* The refusals are logged on every frame: format them, print nothing. */
    G.devnull = fopen("/dev/null", "w");
    if (G.devnull)
        log_set_output(G.devnull);

    char *ak = xasprintf("%s/ak", G.dir), *keys = xasprintf("%s/keys", G.dir);
    if (keys_generate(ak, FUZZ_NODE, &err) < 0 || keys_generate(ak, "stranger", &err) < 0)
        die("keys_generate", err);
    load_pub(ak, FUZZ_NODE, G.key_ok);
    load_pub(ak, "stranger", G.key_unknown);
    if (keystore_open(keys, &G.ks, &err) < 0)
        die("keystore_open", err);
    /* Accepted the way an operator copies a key in. */
    char *from = xasprintf("%s/%s.key", ak, FUZZ_NODE), *to = xasprintf("%s/agents/%s.key", keys, FUZZ_NODE);
    if (rename(from, to) < 0)
        die("rename", xstrdup(to));
    if (keystore_reload(G.ks, &err) < 0)
        die("keystore_reload", err);
    if (!keystore_node_for(G.ks, G.key_ok))
        die("keystore", xstrdup("the accepted key is not accepted"));
    free(from);
    free(to);
    free(ak);
    free(keys);

    if (store_open(":memory:", &G.store, &err) < 0)
        die("store_open", err);
    store_set_flush_interval(G.store, 0); /* every heartbeat reaches SQLite */
    G.ig = ingest_new(G.store, G.ks, FUZZ_MAX_FRAME);
    G.now = 1700000000;
}

/* A decoder's result keeps its contract. */
static void check_result(int rc, const void *msg, const char *err)
{
    if (rc == 0) {
        if (!msg || err)
            abort();
    } else {
        if (rc < PCIFLEET__ERROR__CODE__CODE_MALFORMED || rc > PCIFLEET__ERROR__CODE__CODE_INTERNAL || msg ||
            !err || !*err)
            abort();
    }
}

static void fuzz_envelope(const uint8_t *data, size_t size)
{
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    int rc = wire_decode(data, size, FUZZ_MAX_FRAME, &env, &err);
    check_result(rc, env, err);
    free(err);
    if (rc == 0) {
        (void)wire_body_name(env);
        uint8_t *a = NULL, *b = NULL;
        size_t na = wire_encode(env, &a);
        Pcifleet__Envelope *again = NULL;
        rc = wire_decode(a, na, FUZZ_MAX_FRAME, &again, &err);
        if (rc != 0) {
            fprintf(stderr, "fuzz_wire: a decoded envelope does not decode once re-encoded: %s\n", err);
            abort();
        }
        size_t nb = wire_encode(again, &b);
        if (na != nb || memcmp(a, b, na) != 0)
            abort();
        free(a);
        free(b);
        wire_free(&again);
    }
    wire_free(&env);
}

static void fuzz_admin_request(const uint8_t *data, size_t size)
{
    Pcifleet__AdminRequest *req = NULL;
    char *err = NULL;
    int rc = wire_decode_admin_request(data, size, FUZZ_MAX_FRAME, &req, &err);
    check_result(rc, req, err);
    free(err);
    if (rc == 0) {
        if (req->n_argv > WIRE_MAX_ADMIN_ARGS)
            abort();
        uint8_t *a = NULL, *b = NULL;
        size_t na = wire_encode_admin_request(req, &a);
        Pcifleet__AdminRequest *again = NULL;
        if (wire_decode_admin_request(a, na, FUZZ_MAX_FRAME, &again, &err) != 0) {
            fprintf(stderr, "fuzz_wire: a decoded admin request does not decode once re-encoded: %s\n", err);
            abort();
        }
        size_t nb = wire_encode_admin_request(again, &b);
        if (na != nb || memcmp(a, b, na) != 0)
            abort();
        free(a);
        free(b);
        wire_admin_request_free(&again);
    }
    wire_admin_request_free(&req);
}

static void fuzz_admin_reply(const uint8_t *data, size_t size)
{
    Pcifleet__AdminReply *rep = NULL;
    char *err = NULL;
    int rc = wire_decode_admin_reply(data, size, FUZZ_MAX_FRAME, &rep, &err);
    check_result(rc, rep, err);
    free(err);
    if (rc == 0) {
        uint8_t *a = NULL, *b = NULL;
        size_t na = wire_encode_admin_reply(rep, &a);
        Pcifleet__AdminReply *again = NULL;
        if (wire_decode_admin_reply(a, na, FUZZ_MAX_FRAME, &again, &err) != 0) {
            fprintf(stderr, "fuzz_wire: a decoded admin reply does not decode once re-encoded: %s\n", err);
            abort();
        }
        size_t nb = wire_encode_admin_reply(again, &b);
        if (na != nb || memcmp(a, b, na) != 0)
            abort();
        free(a);
        free(b);
        wire_admin_reply_free(&again);
    }
    wire_admin_reply_free(&rep);
}

/* One frame through the controller with one key; the reply must be valid. */
static void fuzz_ingest(const char *key, const uint8_t *data, size_t size)
{
    uint8_t *reply = NULL;
    const ingest_stats_t *st = ingest_stats(G.ig);
    uint64_t frames = st->frames;
    size_t n = ingest_handle(G.ig, key, "192.0.2.7", data, size, G.now, &reply);
    if (st->frames != frames + 1)
        abort();
    if (n == 0) {
        if (reply)
            abort();
        return;
    }
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    if (wire_decode(reply, n, 0, &env, &err) != 0) {
        fprintf(stderr, "fuzz_wire: the controller's reply does not decode: %s\n", err);
        abort();
    }
    switch (env->body_case) {
    case PCIFLEET__ENVELOPE__BODY_ACK:
    case PCIFLEET__ENVELOPE__BODY_RESEND:
        if (key != G.key_ok)
            abort(); /* only the accepted key gets anything but an Error */
        break;
    case PCIFLEET__ENVELOPE__BODY_ERROR:
        if (env->error->code == PCIFLEET__ERROR__CODE__CODE_UNSPECIFIED)
            abort();
        break;
    default:
        abort();
    }
    wire_free(&env);
    free(reply);
}

/* Nothing but the accepted node is ever stored. */
static void check_store(void)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = store_db(G.store);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM nodes WHERE name <> '" FUZZ_NODE "'", -1, &st, NULL) !=
        SQLITE_OK)
        abort();
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 0)
        abort();
    sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!G.ig)
        setup();
    G.now++;

    fuzz_envelope(data, size);
    fuzz_admin_request(data, size);
    fuzz_admin_reply(data, size);

    fuzz_ingest(G.key_ok, data, size);
    fuzz_ingest(G.key_unknown, data, size);
    fuzz_ingest(NULL, data, size);
    if (G.now % 64 == 0) {
        char *err = NULL;
        if (store_mark_offline(G.store, G.now, 30, NULL, &err) < 0)
            die("store_mark_offline", err);
        ingest_tick(G.ig, G.now);
    }
    check_store();
    return 0;
}
