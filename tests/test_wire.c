/* Tests of the wire codec (common/wire.c).
 *
 * Proves: every body survives encode -> decode with its fields, and encode
 * always stamps the current version; each refusal has its code and a
 * sentence: garbage bytes, an empty frame, a frame over the limit, protocol
 * versions 0 and 2 (also when a version-2 peer uses a layout we cannot
 * read), an envelope carrying only an unknown field number, an envelope
 * with no body, more than 65,536 entries in a repeated field, a frame whose
 * decoded form would take too much memory, overlong strings, strings that
 * are not UTF-8 or hold NUL, a field given twice, two bodies, a wrong wire
 * type, a cut-off length and a hash of the wrong size. The admin request
 * and reply decoders get the same treatment. Hostile frames are built byte
 * by byte here, because our own encoder cannot produce them. */
#include "testutil.h"

#include "buf.h"
#include "wire.h"

#include <string.h>

#define C_MALFORMED PCIFLEET__ERROR__CODE__CODE_MALFORMED
#define C_TOO_LARGE PCIFLEET__ERROR__CODE__CODE_TOO_LARGE
#define C_UNKNOWN PCIFLEET__ERROR__CODE__CODE_UNKNOWN_MESSAGE
#define C_BAD_VERSION PCIFLEET__ERROR__CODE__CODE_BAD_VERSION

/* ---- raw protobuf writing ---- */

static void put_varint(buf_t *b, uint64_t v)
{
    do {
        uint8_t c = v & 0x7F;
        v >>= 7;
        if (v)
            c |= 0x80;
        buf_append(b, &c, 1);
    } while (v);
}

static void put_tag(buf_t *b, unsigned field, unsigned wt)
{
    put_varint(b, ((uint64_t)field << 3) | wt);
}

static void put_bytes(buf_t *b, unsigned field, const void *data, size_t n)
{
    put_tag(b, field, 2);
    put_varint(b, n);
    buf_append(b, data, n);
}

static void put_uint(buf_t *b, unsigned field, uint64_t v)
{
    put_tag(b, field, 0);
    put_varint(b, v);
}

/* Decodes and expects a refusal with code and a message holding needle. */
static void expect(const void *data, size_t len, size_t max, int code, const char *needle)
{
    Pcifleet__Envelope *env = (Pcifleet__Envelope *)1;
    char *err = NULL;
    int rc = wire_decode(data, len, max, &env, &err);
    if (rc != code || !err || (needle && !strstr(err, needle))) {
        fprintf(stderr, "wanted code %d with '%s', got %d: %s\n", code, needle ? needle : "", rc,
                err ? err : "(no message)");
        fail();
    }
    assert_null(env);
    free(err);
}

static Pcifleet__Envelope *roundtrip(Pcifleet__Envelope *env)
{
    uint8_t *buf = NULL;
    size_t n = wire_encode(env, &buf);
    Pcifleet__Envelope *out = NULL;
    char *err = NULL;
    int rc = wire_decode(buf, n, 0, &out, &err);
    if (rc)
        fprintf(stderr, "decode failed: %s\n", err);
    assert_int_equal(rc, 0);
    assert_null(err);
    free(buf);
    return out;
}

/* Every body comes back as it went; encode stamps version 1 whatever the
 * caller had set. */
static void test_roundtrip(void **state)
{
    (void)state;
    uint8_t hash[32];
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(i * 7 + 1);

    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Hello hello = PCIFLEET__HELLO__INIT;
    hello.agent_version = "0.1.0";
    hello.boot_id = "3c1e8a2e-1111-2222-3333-444455556666";
    hello.inventory_hash.data = hash;
    hello.inventory_hash.len = 32;
    env.version = 7;
    env.seq = 42;
    env.node = "pve-01";
    env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    Pcifleet__Envelope *out = roundtrip(&env);
    assert_int_equal(env.version, 1);
    assert_int_equal(out->version, 1);
    assert_int_equal(out->seq, 42);
    assert_string_equal(out->node, "pve-01");
    assert_int_equal(out->body_case, PCIFLEET__ENVELOPE__BODY_HELLO);
    assert_string_equal(out->hello->agent_version, "0.1.0");
    assert_string_equal(out->hello->boot_id, hello.boot_id);
    assert_int_equal(out->hello->inventory_hash.len, 32);
    assert_memory_equal(out->hello->inventory_hash.data, hash, 32);
    assert_string_equal(wire_body_name(out), "Hello");
    wire_free(&out);
    assert_null(out);
    wire_free(&out); /* NULL-safe */

    Pcifleet__Heartbeat hb = PCIFLEET__HEARTBEAT__INIT;
    hb.inventory_hash.data = hash;
    hb.inventory_hash.len = 32;
    hb.boot_id = "b";
    env.body_case = PCIFLEET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    out = roundtrip(&env);
    assert_memory_equal(out->heartbeat->inventory_hash.data, hash, 32);
    assert_string_equal(out->heartbeat->boot_id, "b");
    wire_free(&out);

    Pcifleet__Inventory inv = PCIFLEET__INVENTORY__INIT;
    Pcifleet__Device dev = PCIFLEET__DEVICE__INIT;
    Pcifleet__Device *devs[] = {&dev};
    dev.address = "0000:01:00.0";
    dev.vendor_id = 0x8086;
    dev.iommu_group = -1;
    dev.numa_node = -1;
    inv.n_devices = 1;
    inv.devices = devs;
    inv.cpu_vendor = "intel";
    inv.cpu_virtualization = PCIFLEET__TRI__TRI_TRUE;
    env.body_case = PCIFLEET__ENVELOPE__BODY_INVENTORY;
    env.inventory = &inv;
    out = roundtrip(&env);
    assert_int_equal(out->inventory->n_devices, 1);
    assert_string_equal(out->inventory->devices[0]->address, "0000:01:00.0");
    assert_int_equal(out->inventory->devices[0]->vendor_id, 0x8086);
    assert_int_equal(out->inventory->devices[0]->iommu_group, -1);
    assert_int_equal(out->inventory->devices[0]->numa_node, -1);
    assert_int_equal(out->inventory->cpu_virtualization, PCIFLEET__TRI__TRI_TRUE);
    assert_int_equal(out->inventory->hash.len, 0);
    wire_free(&out);

    /* The helpers. */
    uint8_t *buf = NULL;
    size_t n = wire_encode_ack(99, &buf);
    char *err = NULL;
    assert_int_equal(wire_decode(buf, n, 0, &out, &err), 0);
    assert_int_equal(out->body_case, PCIFLEET__ENVELOPE__BODY_ACK);
    assert_int_equal(out->ack->seq, 99);
    wire_free(&out);
    free(buf);

    n = wire_encode_resend("hash differs", &buf);
    assert_int_equal(wire_decode(buf, n, 0, &out, &err), 0);
    assert_string_equal(out->resend->reason, "hash differs");
    wire_free(&out);
    free(buf);

    /* An error sentence with bytes that are not UTF-8 still makes a frame
     * the peer can decode: they become U+FFFD. */
    n = wire_encode_error(7, PCIFLEET__ERROR__CODE__CODE_WRONG_NODE, "node \xff is not yours", &buf);
    assert_int_equal(wire_decode(buf, n, 0, &out, &err), 0);
    assert_int_equal(out->error->code, PCIFLEET__ERROR__CODE__CODE_WRONG_NODE);
    assert_int_equal(out->error->seq, 7);
    assert_string_equal(out->error->message, "node \xEF\xBF\xBD is not yours");
    wire_free(&out);
    free(buf);
}

/* Bytes that are not an envelope, and the empty frame. */
static void test_garbage(void **state)
{
    (void)state;
    expect("\xff\xff\xff\xff\xff", 5, 0, C_MALFORMED, NULL);
    expect("hello world, this is not protobuf", 33, 0, C_MALFORMED, NULL);
    expect("", 0, 0, C_MALFORMED, "the frame is empty");
    /* A length that runs past the end. */
    buf_t b = BUF_INIT;
    put_uint(&b, 1, 1);
    put_tag(&b, 10, 2);
    put_varint(&b, 100);
    buf_append(&b, "ab", 2);
    expect(b.p, b.len, 0, C_MALFORMED, "claims more bytes than the frame holds");
    buf_free(&b);
    /* A group wire type (3) is not protobuf 3. */
    expect("\x08\x01\x1b", 3, 0, C_MALFORMED, "wire type 3");
    /* A varint that never ends. */
    expect("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, 0, C_MALFORMED, "cut off");
    /* Field number 0. */
    expect("\x00\x01", 2, 0, C_MALFORMED, "numbered 0");
}

/* Deeply nested messages cannot exhaust the stack: 10,000 levels of
 * length-delimited fields, once in a field this schema does not know (kept
 * as raw bytes, never descended into) and once in the Inventory body with
 * the same unknown field inside each level, are answered like any other
 * frame (an unknown body; an Inventory that fails its checks) and nothing
 * crashes (the ASan build runs this with its small-stack checks). */
static buf_t nested(unsigned outer, unsigned inner, int depth)
{
    buf_t cur = BUF_INIT, next = BUF_INIT;
    for (int i = 0; i < depth; i++) {
        buf_reset(&next);
        put_bytes(&next, inner, cur.p ? cur.p : "", cur.len);
        buf_t t = cur;
        cur = next;
        next = t;
    }
    buf_t env = BUF_INIT;
    put_uint(&env, 1, 1);
    put_bytes(&env, outer, cur.p ? cur.p : "", cur.len);
    buf_free(&cur);
    buf_free(&next);
    return env;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    buf_t b = nested(99, 99, 10000);
    assert_true(b.len > 20000 && b.len < 65536);
    expect(b.p, b.len, 0, C_UNKNOWN, NULL);
    buf_free(&b);
    /* deeper still, an unknown field over 64 KiB is refused as too large */
    b = nested(99, 99, 20000);
    expect(b.p, b.len, 0, C_TOO_LARGE, "Envelope field 99 is");
    buf_free(&b);
    b = nested(11, 99, 10000);
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    int code = wire_decode((const uint8_t *)b.p, b.len, 0, &env, &err);
    /* either refused as malformed or decoded as an Inventory carrying an
     * unknown field: both are bounded answers */
    assert_true(code == 0 || code == C_MALFORMED);
    if (code == 0)
        assert_int_equal(env->body_case, PCIFLEET__ENVELOPE__BODY_INVENTORY);
    free(err);
    wire_free(&env);
    buf_free(&b);
}

/* Over the caller's limit, and over the default one. */
static void test_too_large(void **state)
{
    (void)state;
    uint8_t small[200];
    memset(small, 0, sizeof(small));
    expect(small, sizeof(small), 100, C_TOO_LARGE, "the frame is 200 bytes, over the limit of 100 bytes");
    expect(small, (size_t)WIRE_MAX_FRAME + 1, 0, C_TOO_LARGE, "over the limit of 16777216 bytes");
}

/* Versions 0 and 2 are refused as such, even when a version-2 peer's frame
 * does not parse with this schema. */
static void test_versions(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    put_uint(&b, 1, 2);
    put_bytes(&b, 15, "", 0); /* an empty Resend */
    expect(b.p, b.len, 0, C_BAD_VERSION, "speaks protocol version 2; this program speaks version 1");
    buf_reset(&b);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_BAD_VERSION, "names no protocol version");
    buf_reset(&b);
    put_uint(&b, 1, 2);
    put_uint(&b, 3, 5); /* node as a number: not our layout */
    expect(b.p, b.len, 0, C_BAD_VERSION, "version 2");
    buf_free(&b);
}

/* A body this program does not know: protobuf-c keeps the unknown field
 * and leaves body_case unset. */
static void test_unknown_body(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    put_uint(&b, 1, 1);
    put_bytes(&b, 42, "\x08\x01", 2);
    expect(b.p, b.len, 0, C_UNKNOWN, "a message this program does not know (field 42)");
    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_uint(&b, 2, 5);
    expect(b.p, b.len, 0, C_UNKNOWN, "carries no message");
    buf_free(&b);

    /* Unknown fields next to a known body are fine (a newer peer's extra). */
    b = (buf_t)BUF_INIT;
    put_uint(&b, 1, 1);
    put_bytes(&b, 13, "\x08\x05", 2); /* Ack seq 5 */
    put_bytes(&b, 99, "x", 1);
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode((const uint8_t *)b.p, b.len, 0, &env, &err), 0);
    assert_int_equal(env->ack->seq, 5);
    wire_free(&env);
    buf_free(&b);
}

static void envelope_with_inventory(buf_t *out, const buf_t *inv)
{
    put_uint(out, 1, 1);
    put_bytes(out, 3, "n1", 2);
    put_bytes(out, 11, inv->p, inv->len);
}

/* Counts: 65,536 devices pass, 65,537 are refused; a frame whose decoded
 * form would take hundreds of MiB (empty nested entries cost two bytes on
 * the wire and ~80 in memory) is refused before protobuf-c allocates it. */
static void test_huge_counts(void **state)
{
    (void)state;
    buf_t inv = BUF_INIT, env = BUF_INIT;
    for (unsigned i = 0; i < WIRE_MAX_REPEATED; i++)
        put_bytes(&inv, 11, "", 0);
    envelope_with_inventory(&env, &inv);
    Pcifleet__Envelope *e = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode((const uint8_t *)env.p, env.len, 0, &e, &err), 0);
    assert_int_equal(e->inventory->n_devices, WIRE_MAX_REPEATED);
    wire_free(&e);

    put_bytes(&inv, 11, "", 0);
    buf_reset(&env);
    envelope_with_inventory(&env, &inv);
    expect(env.p, env.len, 0, C_TOO_LARGE, "Inventory.devices has more than 65536 entries");

    /* 120 VMs with 60,000 empty hostpci entries each: 14 MB on the wire. */
    buf_t vm = BUF_INIT;
    for (int i = 0; i < 60000; i++)
        put_bytes(&vm, 6, "", 0);
    buf_reset(&inv);
    for (int i = 0; i < 120; i++)
        put_bytes(&inv, 14, vm.p, vm.len);
    buf_reset(&env);
    envelope_with_inventory(&env, &inv);
    assert_true(env.len < WIRE_MAX_FRAME);
    expect(env.p, env.len, 0, C_TOO_LARGE, "MiB of memory");

    /* More than 65,536 unknown fields in one message. */
    buf_reset(&env);
    put_uint(&env, 1, 1);
    put_bytes(&env, 15, "", 0);
    for (unsigned i = 0; i <= WIRE_MAX_REPEATED; i++)
        put_uint(&env, 77, 1);
    expect(env.p, env.len, 0, C_TOO_LARGE, "unknown fields");

    buf_free(&vm);
    buf_free(&inv);
    buf_free(&env);
}

/* Strings: length, UTF-8, NUL; a field twice; two bodies; wrong wire type;
 * a hash of the wrong size. */
static void test_field_checks(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    char *big = xmalloc(WIRE_MAX_STRING + 1);
    memset(big, 'a', WIRE_MAX_STRING + 1);
    put_uint(&b, 1, 1);
    put_bytes(&b, 3, big, WIRE_MAX_STRING + 1);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_TOO_LARGE, "Envelope.node is 65537 bytes, over the limit of 65536 bytes");
    free(big);

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_bytes(&b, 3, "n\xc3\x28", 3);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_MALFORMED, "Envelope.node is not valid UTF-8");

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_bytes(&b, 3, "a\0b", 3);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_MALFORMED, "Envelope.node holds a NUL byte");

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_uint(&b, 1, 1);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_MALFORMED, "Envelope.version appears twice");

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_bytes(&b, 13, "", 0);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_MALFORMED, "carries both ack and resend");

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_uint(&b, 3, 1);
    put_bytes(&b, 15, "", 0);
    expect(b.p, b.len, 0, C_MALFORMED, "Envelope.node has the wrong wire type");

    buf_reset(&b);
    put_uint(&b, 1, 1);
    put_bytes(&b, 12, "\x0a\x05" "12345", 7); /* Heartbeat with a 5-byte hash */
    expect(b.p, b.len, 0, C_MALFORMED, "5-byte inventory hash");

    /* Nested: a Device's vendor name that is not UTF-8. */
    buf_t dev = BUF_INIT, inv = BUF_INIT;
    put_bytes(&dev, 7, "\xed\xa0\x80", 3); /* a UTF-16 surrogate */
    put_bytes(&inv, 11, dev.p, dev.len);
    buf_reset(&b);
    envelope_with_inventory(&b, &inv);
    expect(b.p, b.len, 0, C_MALFORMED, "Device.vendor_name is not valid UTF-8");
    buf_free(&dev);
    buf_free(&inv);
    buf_free(&b);
}

static void test_admin(void **state)
{
    (void)state;
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    char *argv[] = {"nics", "--free"};
    req.argv = argv;
    req.n_argv = 2;
    req.json = 1;
    uint8_t *buf = NULL;
    size_t n = wire_encode_admin_request(&req, &buf);
    Pcifleet__AdminRequest *out = NULL;
    char *err = NULL;
    assert_int_equal(wire_decode_admin_request(buf, n, 0, &out, &err), 0);
    assert_int_equal(out->version, 1);
    assert_int_equal(out->n_argv, 2);
    assert_string_equal(out->argv[1], "--free");
    assert_true(out->json);
    wire_admin_request_free(&out);
    assert_null(out);
    free(buf);

    buf_t b = BUF_INIT;
    put_bytes(&b, 2, "nodes", 5);
    assert_int_equal(wire_decode_admin_request((const uint8_t *)b.p, b.len, 0, &out, &err), C_BAD_VERSION);
    assert_non_null(strstr(err, "admin request names no protocol version"));
    free(err);
    buf_reset(&b);
    put_uint(&b, 1, 1);
    for (int i = 0; i < WIRE_MAX_ADMIN_ARGS + 1; i++)
        put_bytes(&b, 2, "x", 1);
    assert_int_equal(wire_decode_admin_request((const uint8_t *)b.p, b.len, 0, &out, &err), C_TOO_LARGE);
    assert_non_null(strstr(err, "257 arguments"));
    free(err);
    assert_int_equal(wire_decode_admin_request((const uint8_t *)"\xff\xff", 2, 0, &out, &err), C_MALFORMED);
    free(err);
    assert_int_equal(wire_decode_admin_request((const uint8_t *)"\x08\x01", 2, 1, &out, &err), C_TOO_LARGE);
    free(err);
    assert_null(out);

    /* A reply's body may be far longer than a request's strings. */
    Pcifleet__AdminReply rep = PCIFLEET__ADMIN_REPLY__INIT;
    char *body = xmalloc(300000);
    memset(body, 'x', 299999);
    body[299999] = '\0';
    rep.body = body;
    rep.status = 1;
    rep.error = "refused";
    n = wire_encode_admin_reply(&rep, &buf);
    Pcifleet__AdminReply *r = NULL;
    assert_int_equal(wire_decode_admin_reply(buf, n, 0, &r, &err), 0);
    assert_int_equal(strlen(r->body), 299999);
    assert_int_equal(r->status, 1);
    assert_string_equal(r->error, "refused");
    wire_admin_reply_free(&r);
    free(buf);
    free(body);
    assert_int_equal(wire_decode_admin_reply((const uint8_t *)"\x1a\x05" "ab", 4, 0, &r, &err), C_MALFORMED);
    free(err);
    buf_free(&b);
}

/* A long answer's body travels in chunks after the reply (AdminReply
 * body_length, body_chunks): the decoder takes a consistent announcement and
 * refuses one the chunks could not hold, or that comes with a body too; the
 * chunks wire_admin_chunk_len cuts cover the body exactly, fit the limit and
 * end on UTF-8 character boundaries. */
static void test_admin_chunks(void **state)
{
    (void)state;
    struct {
        const char *body;
        uint64_t length;
        uint32_t chunks;
        bool ok;
    } cases[] = {
        {"", 1000000, 4, true},
        {"", WIRE_ADMIN_CHUNK, 1, true},
        {"", WIRE_ADMIN_CHUNK + 1, 1, false},     /* one chunk cannot hold it */
        {"", 3, 4, false},                        /* more chunks than bytes */
        {"", 0, 2, false},                        /* chunks of nothing */
        {"", 10, 0, false},                       /* a length without chunks */
        {"text", 10, 1, false},                   /* a body and chunks */
        {"", (uint64_t)WIRE_ADMIN_MAX_BODY + 1, 4000, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Pcifleet__AdminReply rep = PCIFLEET__ADMIN_REPLY__INIT;
        rep.body = (char *)cases[i].body;
        rep.body_length = cases[i].length;
        rep.body_chunks = cases[i].chunks;
        uint8_t *buf;
        size_t n = wire_encode_admin_reply(&rep, &buf);
        Pcifleet__AdminReply *r = NULL;
        char *err = NULL;
        int rc = wire_decode_admin_reply(buf, n, 0, &r, &err);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(r->body_length, cases[i].length);
            assert_int_equal(r->body_chunks, cases[i].chunks);
        } else {
            if (rc != C_MALFORMED)
                fail_msg("case %zu: got %d", i, rc);
            assert_null(r);
            assert_non_null(strstr(err, "admin reply"));
        }
        wire_admin_reply_free(&r);
        free(err);
        free(buf);
    }

    /* 2.5 chunks of text whose 3- and 4-byte characters fall across the
     * chunk size */
    size_t len = WIRE_ADMIN_CHUNK * 5 / 2;
    char *body = xmalloc(len + 1);
    for (size_t i = 0; i < len;) {
        static const char *pieces[] = {"a", "\xc3\xbc", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
        const char *p = pieces[(i / 7) % 4];
        size_t pl = strlen(p);
        if (i + pl > len)
            p = "a", pl = 1;
        memcpy(body + i, p, pl);
        i += pl;
    }
    body[len] = '\0';
    assert_true(wire_utf8_valid(body, len));
    size_t off = 0, chunks = 0, c;
    while ((c = wire_admin_chunk_len(body, len, off)) > 0) {
        assert_true(c <= WIRE_ADMIN_CHUNK);
        assert_true(c > WIRE_ADMIN_CHUNK - 4 || off + c == len);
        if (!wire_utf8_valid(body + off, c))
            fail_msg("chunk %zu at %zu (%zu bytes) cuts a character", chunks, off, c);
        off += c;
        chunks++;
    }
    assert_int_equal(off, len);
    assert_int_equal(chunks, 3);
    assert_int_equal(wire_admin_chunk_len(body, len, len), 0);
    free(body);
}

static void test_text(void **state)
{
    (void)state;
    assert_true(wire_utf8_valid("plain ascii", 11));
    /* the eight-bytes-at-a-time ASCII path: a bad byte after it, inside
     * it, and a good character right after a run of ASCII */
    assert_false(wire_utf8_valid("0123456789abcdef\xff", 17));
    assert_false(wire_utf8_valid("0123\x80" "56789abcdef", 16));
    assert_true(wire_utf8_valid("0123456789abcdef\xc3\xbc", 18));
    assert_false(wire_utf8_valid("0123456789abcdef\xc3", 17));
    assert_true(wire_utf8_valid("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(wire_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(wire_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(wire_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(wire_utf8_valid("\xe2\x82", 2));         /* cut */
    /* wire_text_valid: the same, and a NUL anywhere is refused, in the
     * eight-byte path and around it; 0x01 bytes (a borrow's neighbour) pass */
    char t[40];
    for (size_t n = 1; n <= sizeof t; n++)
        for (size_t z = 0; z <= n; z++) {
            memset(t, 'x', sizeof t);
            t[(z + 3) % n] = '\x01';
            if (z < n)
                t[z] = '\0';
            if (wire_text_valid(t, n) != (z == n))
                fail_msg("wire_text_valid, %zu bytes, NUL at %zu: wrong answer", n, z);
        }
    assert_true(wire_text_valid("0123456789abcdef\xc3\xbc", 18));
    assert_false(wire_text_valid("0123456789abcdef\xc3\xbc\0", 19));
    assert_false(wire_text_valid("0123456789abcdef\xff", 17));
    assert_true(wire_utf8_valid("ab\0cd", 5)); /* NUL is UTF-8; only text refuses it */
    char *s = wire_text_dup("a\xff" "b\xe2\x82\xac", 100);
    assert_string_equal(s, "a\xEF\xBF\xBD" "b\xe2\x82\xac");
    free(s);
    s = wire_text_dup("ab\xe2\x82\xac", 4); /* the euro sign does not fit whole */
    assert_string_equal(s, "ab");
    free(s);
    s = wire_text_dup(NULL, 10);
    assert_string_equal(s, "");
    free(s);
    assert_string_equal(wire_code_name(PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED), "key-not-accepted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_garbage), cmocka_unit_test(test_deep_nesting),      cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_versions),     cmocka_unit_test(test_unknown_body), cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_field_checks), cmocka_unit_test(test_admin), cmocka_unit_test(test_admin_chunks),        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
