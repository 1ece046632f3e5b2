/* pf_sendraw — sends hostile or hand-made frames to a pcifleet controller,
 * for tests (tests/e2e_fleet.sh) and for poking a controller by hand.
 *
 * usage: pf_sendraw --controller EP --controller-key FILE --key FILE
 *                   [--node NAME] [--timeout MS] [--count N] [--seq N] WHAT
 * WHAT is one of:
 *   --file FILE        the bytes of FILE as one frame
 *   --garbage N        N pseudo-random bytes (fixed seed: the same every run)
 *   --hello            a valid Hello envelope naming --node
 *   --heartbeat        a valid Heartbeat envelope naming --node (zero hash)
 *   --bad-version V    a Hello envelope with protocol version V
 *   --no-body          an envelope without a body
 *   --resend           an envelope carrying Resend, which agents do not send
 *   --two-frames       a valid Hello split over two frames (plus an extra one)
 * --seq sets the envelope's seq (default: the wall clock in microseconds,
 * as agents start); --count N sends the same frame N times, so every copy
 * after the first is a replay.
 * Each reply is printed as one line: "error <code-name>: <message>",
 * "ack <seq>", "resend: <reason>", or "other <body>". Exit status: 0 a reply
 * came for every frame, 1 bad usage or local failure, 3 no reply within
 * --timeout (default 3000 ms) — which is what a frame dropped by ZeroMQ's
 * size limit gives. */
#include "buf.h"
#include "keys.h"
#include "wire.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: pf_sendraw --controller EP --controller-key FILE --key FILE [--node NAME]\n"
          "                  [--timeout MS] [--count N] [--seq N]\n"
          "                  (--file FILE | --garbage N | --hello | --heartbeat | --bad-version V |\n"
          "                   --no-body | --resend | --two-frames)\n",
          f);
}

static size_t read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "pf_sendraw: cannot open %s\n", path);
        exit(1);
    }
    buf_t b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    size_t len = b.len;
    *out = (uint8_t *)buf_steal(&b);
    return len;
}

static size_t envelope(const char *node, uint32_t version, int kind, uint64_t seq, uint8_t **out)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Hello hello = PCIFLEET__HELLO__INIT;
    Pcifleet__Heartbeat hb = PCIFLEET__HEARTBEAT__INIT;
    Pcifleet__Resend resend = PCIFLEET__RESEND__INIT;
    static uint8_t zero_hash[WIRE_HASH_LEN];
    env.seq = seq;
    env.node = (char *)node;
    hello.agent_version = (char *)"pf_sendraw";
    hello.boot_id = (char *)"00000000-0000-0000-0000-000000000000";
    switch (kind) {
    case 'h':
        env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
        env.hello = &hello;
        break;
    case 'b':
        hb.inventory_hash.data = zero_hash;
        hb.inventory_hash.len = sizeof zero_hash;
        hb.boot_id = hello.boot_id;
        env.body_case = PCIFLEET__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
        break;
    case 'r':
        resend.reason = (char *)"not from an agent";
        env.body_case = PCIFLEET__ENVELOPE__BODY_RESEND;
        env.resend = &resend;
        break;
    default: break; /* no body */
    }
    size_t n = wire_encode(&env, out);
    if (version != PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
        /* wire_encode sets the current version: pack by hand instead. */
        free(*out);
        env.version = version;
        n = pcifleet__envelope__get_packed_size(&env);
        *out = xmalloc(n ? n : 1);
        pcifleet__envelope__pack(&env, *out);
    }
    return n;
}

static void print_reply(zmsg_t *msg)
{
    zframe_t *f = zmsg_last(msg);
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    if (!f || wire_decode(zframe_data(f), zframe_size(f), 0, &env, &err) != 0) {
        printf("unreadable reply: %s\n", err ? err : "no frame");
        free(err);
        return;
    }
    switch (env->body_case) {
    case PCIFLEET__ENVELOPE__BODY_ERROR:
        printf("error %s: %s\n", wire_code_name(env->error->code), env->error->message);
        break;
    case PCIFLEET__ENVELOPE__BODY_ACK: printf("ack %llu\n", (unsigned long long)env->ack->seq); break;
    case PCIFLEET__ENVELOPE__BODY_RESEND: printf("resend: %s\n", env->resend->reason); break;
    default: printf("other %s\n", wire_body_name(env)); break;
    }
    wire_free(&env);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"controller", required_argument, NULL, 'c'}, {"controller-key", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'},        {"node", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},    {"count", required_argument, NULL, 'N'},
        {"file", required_argument, NULL, 'f'},       {"garbage", required_argument, NULL, 'g'},
        {"hello", no_argument, NULL, 'h'},            {"heartbeat", no_argument, NULL, 'b'},
        {"bad-version", required_argument, NULL, 'v'}, {"no-body", no_argument, NULL, '0'},
        {"resend", no_argument, NULL, 'r'},           {"two-frames", no_argument, NULL, '2'},
        {"seq", required_argument, NULL, 's'},        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *ep = NULL, *ckey = NULL, *key = NULL, *node = "pf-sendraw", *file = NULL;
    int timeout = 3000, count = 1, what = 0;
    long garbage = 0;
    uint64_t seq = (uint64_t)zclock_time() * 1000u;
    uint32_t version = PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ep = optarg; break;
        case 'C': ckey = optarg; break;
        case 'k': key = optarg; break;
        case 'n': node = optarg; break;
        case 't': timeout = atoi(optarg); break;
        case 'N': count = atoi(optarg); break;
        case 's': seq = strtoull(optarg, NULL, 10); break;
        case 'f': file = optarg; what = 'f'; break;
        case 'g': garbage = atol(optarg); what = 'g'; break;
        case 'v': version = (uint32_t)strtoul(optarg, NULL, 10); what = 'h'; break;
        case 'h': case 'b': case '0': case 'r': case '2': what = c; break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!ep || !ckey || !key || !what || optind != argc || count < 1 || timeout < 1 ||
        (what == 'g' && (garbage < 1 || garbage > 1024L * 1024 * 1024))) {
        usage(stderr);
        return 1;
    }
    char cpub[KEY_Z85_LEN + 1], pub[KEY_Z85_LEN + 1], sec[KEY_Z85_LEN + 1];
    char *err = NULL;
    if (keys_load_public(ckey, cpub, &err) < 0 || keys_load_pair(key, pub, sec, &err) < 0) {
        fprintf(stderr, "pf_sendraw: %s\n", err ? err : "cannot load keys");
        free(err);
        return 1;
    }

    uint8_t *data = NULL;
    size_t len = 0;
    if (what == 'f') {
        len = read_file(file, &data);
    } else if (what == 'g') {
        len = (size_t)garbage;
        data = xmalloc(len);
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            data[i] = (uint8_t)x;
        }
    } else {
        len = envelope(node, version, what == '2' ? 'h' : what, seq, &data);
    }

    zsys_handler_set(NULL);
    zsock_t *s = zsock_new(ZMQ_DEALER);
    zsock_set_linger(s, 1000);
    zsock_set_curve_serverkey(s, cpub);
    zsock_set_curve_publickey(s, pub);
    zsock_set_curve_secretkey(s, sec);
    if (zsock_connect(s, "%s", ep) < 0) {
        fprintf(stderr, "pf_sendraw: cannot connect to %s\n", ep);
        zsock_destroy(&s);
        free(data);
        return 1;
    }
    int status = 0;
    for (int i = 0; i < count && status == 0; i++) {
        zmsg_t *m = zmsg_new();
        if (what == '2') {
            zmsg_addmem(m, data, len / 2);
            zmsg_addmem(m, data + len / 2, len - len / 2);
            zmsg_addstr(m, "extra");
        } else {
            zmsg_addmem(m, data, len);
        }
        zmsg_send(&m, s);
        zpoller_t *p = zpoller_new(s, NULL);
        if (zpoller_wait(p, timeout)) {
            zmsg_t *r = zmsg_recv(s);
            print_reply(r);
            zmsg_destroy(&r);
        } else {
            printf("no reply within %d ms\n", timeout);
            status = 3;
        }
        zpoller_destroy(&p);
    }
    fflush(stdout);
    zsock_destroy(&s);
    free(data);
    return status;
}
