/* pcifleetd — the pcifleet controller.
 *
 * One czmq loop (zloop) serves:
 *   - the agents: a ROUTER bound to --listen, CURVE server with the
 *     controller's key pair; the ZAP handler (zap.c) tags every frame with
 *     its sender's public key and ingest.c decides what it may do;
 *   - the admin socket: a ROUTER bound to --admin (ipc:// mode 0600, or
 *     loopback tcp://) answering `pcifleet` (admin.c, query.c);
 *   - a one-second timer marking nodes offline after --offline-after seconds
 *     without a heartbeat, and picking up keys copied into DIR/agents/.
 * SIGTERM/SIGINT stop it cleanly; every ingest is its own committed
 * transaction, so even SIGKILL loses nothing already acknowledged.
 *
 * Exit status: 0 stopped on a signal, 1 bad usage or config, 2 could not
 * start (database, keys, endpoints). */
#include "admin.h"
#include "assign.h"
#include "ctlclock.h"
#include "rollout.h"
#include "buf.h"
#include "config.h"
#include "ingest.h"
#include "keyfp.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "query.h"
#include "store.h"
#include "strv.h"
#include "wire.h"
#include "zap.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PCIFLEET_VERSION
#define PCIFLEET_VERSION "0.0.0"
#endif

#define DEFAULT_CONFIG "/etc/pcifleet/pcifleetd.conf"
#define DEFAULT_DB "/var/lib/pcifleet/pcifleet.db"
#define DEFAULT_KEYS "/etc/pcifleet/keys"
#define DEFAULT_LISTEN "tcp://*:7450"
#define DEFAULT_ADMIN "ipc:///run/pcifleet/admin.sock"
#define DEFAULT_OFFLINE_AFTER 15 /* three missed 5-second heartbeats */
/* zmq drops frames above max-frame + this at the transport (and closes the
 * connection); frames between max-frame and that get a TOO_LARGE Error. */
#define MAXMSG_SLACK (64 * 1024)
/* Messages read per wakeup before other sockets get their turn. */
#define BATCH 256

/* Options, in the order of --help. Every one can come from the config file
 * under its long name. */
enum { O_DB, O_LISTEN, O_ADMIN, O_KEYS, O_OFFLINE, O_MAXFRAME, O_SQLTIME, O_SQLROWS, O_LOGLEVEL, O_METRICS,
       O_METRICS_PUBLIC, O_COUNT };
static const char *const opt_names[] = {"db",        "listen",         "admin",        "keys",      "offline-after",
                                        "max-frame", "sql-time-limit", "sql-max-rows", "log-level", "metrics",
                                        "metrics-public", NULL};
static const char *const opt_defaults[] = {DEFAULT_DB, DEFAULT_LISTEN, DEFAULT_ADMIN, DEFAULT_KEYS, "15",
                                           NULL,       "2000",         "10000",       "info",
                                           NULL,       NULL};

typedef struct {
    const char *db, *listen, *admin, *keys, *metrics;
    bool metrics_public;
    int64_t offline_after;
    size_t max_frame;
    query_opts_t query;
} settings_t;

typedef struct {
    settings_t set;
    store_t *store;
    keystore_t *keys;
    buf_t admin_body; /* a long answer's body, sent in chunks after the reply */
    ingest_t *ingest;
    admin_ctx_t admin;
    zhashx_t *routes; /* node -> zframe_t*: the ROUTER identity its agent last spoke from */
    zsock_t *agents;
    zsock_t *adm;
    char *agents_dir;
    struct timespec agents_mtime;
    metrics_t *metrics; /* NULL without --metrics */
    bool admin_bound; /* we made the ipc socket file: remove it on the way out */
} daemon_t;

static volatile sig_atomic_t reload_keys = 0;

static void on_sighup(int sig)
{
    (void)sig;
    reload_keys = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: pcifleetd [OPTIONS]\n"
            "\n"
            "The pcifleet controller: takes inventories and heartbeats from agents over\n"
            "CURVE-encrypted ZeroMQ, keeps the fleet in SQLite and answers `pcifleet`.\n"
            "\n"
            "  --db FILE               fleet database (default %s)\n"
            "  --listen EP             endpoint agents connect to (default %s)\n"
            "  --admin EP              admin socket for `pcifleet`: ipc://PATH or tcp://127.0.0.1:PORT\n"
            "                          (default %s, directory 0700, socket 0600)\n"
            "  --keys DIR              key folder: controller.key[_secret] (made on first start),\n"
            "                          agents/NODE.key accepted, pending/NODE.key waiting (default %s)\n"
            "  --offline-after SECONDS a node without heartbeat for this long is offline (default %d)\n"
            "  --max-frame BYTES       largest agent frame taken (default %u); larger ones get a\n"
            "                          TOO_LARGE error, giants over BYTES+64KiB are dropped by ZeroMQ\n"
            "  --sql-time-limit MS     time limit of `pcifleet sql` queries (default 2000)\n"
            "  --sql-max-rows N        row limit of `pcifleet sql` answers (default 10000)\n"
            "  --config FILE           read options from FILE (\"name = value\" lines with the long\n"
            "                          option names); default %s, only if it exists.\n"
            "                          Command-line options override the file.\n"
            "  --metrics IP:PORT       serve Prometheus metrics over HTTP at http://IP:PORT/metrics\n"
            "                          (default off; e.g. 127.0.0.1:9469). Loopback only: the\n"
            "                          metrics have no authentication\n"
            "  --metrics-public yes    allow a non-loopback --metrics address\n"
            "  --log-level LEVEL       error, warn, info (default) or debug\n"
            "  -h, --help              show this help\n"
            "  -V, --version           print the version\n"
            "\n"
            "SIGTERM or SIGINT stops it cleanly; SIGHUP re-reads the accepted keys (also\n"
            "picked up within a second when DIR/agents/ changes).\n"
            "Exit status: 0 stopped by a signal, 1 bad usage or config, 2 could not start.\n",
            DEFAULT_DB, DEFAULT_LISTEN, DEFAULT_ADMIN, DEFAULT_KEYS, DEFAULT_OFFLINE_AFTER, WIRE_MAX_FRAME,
            DEFAULT_CONFIG);
}

static int parse_num(const char *name, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "pcifleetd: --%s must be a whole number from %lld to %lld, not '%s'\n", name, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Command line, then config file, then defaults. Returns 0, 1 (exit 1) or
 * -1 (exit 0: --help/--version printed). */
static int parse_options(int argc, char **argv, settings_t *set, config_t *cfg, const char **values)
{
    static const struct option lopts[] = {
        {"db", required_argument, NULL, O_DB},
        {"listen", required_argument, NULL, O_LISTEN},
        {"admin", required_argument, NULL, O_ADMIN},
        {"keys", required_argument, NULL, O_KEYS},
        {"offline-after", required_argument, NULL, O_OFFLINE},
        {"max-frame", required_argument, NULL, O_MAXFRAME},
        {"sql-time-limit", required_argument, NULL, O_SQLTIME},
        {"sql-max-rows", required_argument, NULL, O_SQLROWS},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"metrics", required_argument, NULL, O_METRICS},
        {"metrics-public", required_argument, NULL, O_METRICS_PUBLIC},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "hV", lopts, NULL)) != -1) {
        if (c >= 0 && c < O_COUNT) {
            values[c] = optarg;
            continue;
        }
        switch (c) {
        case 'c': config = optarg; break;
        case 'h': usage(stdout); return -1;
        case 'V': printf("pcifleetd %s\n", PCIFLEET_VERSION); return -1;
        default: fputs("Try 'pcifleetd --help'.\n", stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pcifleetd: unexpected argument '%s' (try --help)\n", argv[optind]);
        return 1;
    }

    struct stat st;
    if (!config && stat(DEFAULT_CONFIG, &st) == 0)
        config = DEFAULT_CONFIG;
    if (config) {
        char *err = NULL;
        if (config_load(config, opt_names, cfg, &err) < 0) {
            fprintf(stderr, "pcifleetd: %s\n", err ? err : "cannot read the config file");
            free(err);
            return 1;
        }
        for (int i = 0; i < O_COUNT; i++)
            if (!values[i])
                values[i] = config_get(cfg, opt_names[i]);
    }
    for (int i = 0; i < O_COUNT; i++)
        if (!values[i])
            values[i] = opt_defaults[i];

    set->db = values[O_DB];
    set->listen = values[O_LISTEN];
    set->admin = values[O_ADMIN];
    set->keys = values[O_KEYS];
    long long v;
    if (parse_num("offline-after", values[O_OFFLINE], 1, 86400 * 365, &v) < 0)
        return 1;
    set->offline_after = v;
    set->max_frame = WIRE_MAX_FRAME;
    if (values[O_MAXFRAME]) {
        if (parse_num("max-frame", values[O_MAXFRAME], 1024, INT_MAX - MAXMSG_SLACK, &v) < 0)
            return 1;
        set->max_frame = (size_t)v;
    }
    if (parse_num("sql-time-limit", values[O_SQLTIME], 1, 3600 * 1000, &v) < 0)
        return 1;
    set->query.sql_time_limit_ms = (int)v;
    if (parse_num("sql-max-rows", values[O_SQLROWS], 1, 100000000, &v) < 0)
        return 1;
    set->query.sql_max_rows = (size_t)v;
    int lvl = log_level_parse(values[O_LOGLEVEL]);
    if (lvl < 0) {
        fprintf(stderr, "pcifleetd: --log-level must be error, warn, info or debug, not '%s'\n", values[O_LOGLEVEL]);
        return 1;
    }
    log_set_level((log_level_t)lvl);
    for (int i = 0; i < O_COUNT; i++) {
        if (values[i] && !*values[i]) {
            fprintf(stderr, "pcifleetd: --%s must not be empty\n", opt_names[i]);
            return 1;
        }
    }
    set->metrics = values[O_METRICS];
    set->metrics_public = values[O_METRICS_PUBLIC] && strcmp(values[O_METRICS_PUBLIC], "yes") == 0;
    char *err = NULL;
    if (set->metrics) {
        uint32_t ip;
        uint16_t port;
        if (metrics_addr_parse(set->metrics, set->metrics_public, &ip, &port, &err) < 0) {
            fprintf(stderr, "pcifleetd: %s\n", err);
            free(err);
            return 1;
        }
    }
    if (admin_endpoint_check(set->admin, &err) < 0) {
        fprintf(stderr, "pcifleetd: %s\n", err);
        free(err);
        return 1;
    }
    return 0;
}

/* Every time the daemon hands on (heartbeats, offline marking, rollout and
 * assign timers) comes from one clock that a wall-clock step cannot make
 * jump (ctlclock.h). */
static ctlclock_t clk;

static int64_t now_s(void)
{
    return ctlclock_now(&clk) / 1000;
}

/* ---- agents ---- */

static void route_free(void **item)
{
    zframe_t *f = *item;
    zframe_destroy(&f);
    *item = NULL;
}

/* A reply held back until the batch it answers is committed. */
typedef struct {
    zframe_t *id;
    bool delim;
    uint8_t *reply;
    size_t n;
} held_t;

static void send_reply(daemon_t *d, held_t *h)
{
    zmsg_t *out = zmsg_new();
    zmsg_append(out, &h->id);
    if (h->delim)
        zmsg_addmem(out, NULL, 0);
    zmsg_addmem(out, h->reply, h->n);
    if (zmsg_send(&out, d->agents) < 0)
        log_debug("could not queue a reply: %s", zmq_strerror(zmq_errno()));
    zmsg_destroy(&out);
}

/* Handles one message read from the agents' ROUTER; the reply (if any) is
 * put in *h for sending after the batch commits. */
static void agent_message(daemon_t *d, zmsg_t *msg, held_t *h)
{
    zframe_t *id = zmsg_pop(msg);
    size_t nframes = zmsg_size(msg);
    zframe_t *payload = zmsg_first(msg);
    bool delim = false;
    if (nframes == 2 && zframe_size(payload) == 0) {
        delim = true; /* a REQ-style envelope: [empty][payload] */
        payload = zmsg_next(msg);
        nframes = 1;
    }
    uint8_t *reply = NULL;
    size_t n = 0;
    const char *key = payload ? zframe_meta(payload, "User-Id") : NULL;
    const char *peer = payload ? zframe_meta(payload, "Peer-Address") : NULL;
    if (nframes == 1) {
        n = ingest_handle(d->ingest, key, peer, zframe_data(payload), zframe_size(payload), now_s(), &reply);
        /* where to send this node's steps: the connection its key last
         * spoke from (a reconnect gets a new identity) */
        const char *owner = key ? keystore_node_for(d->keys, key) : NULL;
        if (owner && id) {
            zframe_t *old = zhashx_lookup(d->routes, owner);
            if (!old || !zframe_eq(old, id))
                zhashx_update(d->routes, owner, zframe_dup(id));
        }
    } else {
        n = ingest_refuse_frames(d->ingest, key, peer, nframes, now_s(), &reply);
    }
    *h = (held_t){.id = id, .delim = delim, .reply = reply, .n = n};
}

/* Up to BATCH messages are stored in one transaction (group commit, store.h):
 * one commit per batch instead of one per inventory. Replies wait for the
 * commit, so an Ack always means stored; if the commit fails, every sender
 * of the batch is asked to send again instead. */
static int on_agents(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    daemon_t *d = arg;
    held_t held[BATCH];
    int n = 0;
    store_batch_begin(d->store);
    for (; n < BATCH && (zsock_events(sock) & ZMQ_POLLIN); n++) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            break;
        agent_message(d, msg, &held[n]);
        zmsg_destroy(&msg);
    }
    char *err = NULL;
    bool lost = store_batch_end(d->store, &err) < 0;
    if (lost) {
        log_error("%s; asking the %d agents of the batch to send again", err, n);
        free(err);
    }
    for (int i = 0; i < n; i++) {
        held_t *h = &held[i];
        if (lost && h->id) {
            free(h->reply);
            h->n = wire_encode_resend("the controller could not store what you sent; send it again", &h->reply);
        }
        if (h->n && h->id)
            send_reply(d, h);
        free(h->reply);
        zframe_destroy(&h->id);
    }
    return 0;
}

/* ---- admin ---- */

static void free_reply(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* One message [id][delim?][data] on the admin ROUTER; data is copied
 * unless owned is set, in which case ZeroMQ frees it once sent. */
static int send_admin_msg(zsock_t *sock, zframe_t *id, bool delim, void *data, size_t n, bool owned)
{
    void *raw = zsock_resolve(sock);
    if (zmq_send(raw, zframe_data(id), zframe_size(id), ZMQ_SNDMORE) < 0 ||
        (delim && zmq_send(raw, "", 0, ZMQ_SNDMORE) < 0)) {
        if (owned)
            free(data);
        return -1;
    }
    int rc;
    if (owned) {
        zmq_msg_t m;
        zmq_msg_init_data(&m, data, n, free_reply, NULL);
        if ((rc = zmq_msg_send(&m, raw, 0)) < 0)
            zmq_msg_close(&m);
    } else {
        rc = zmq_send(raw, data, n, 0);
    }
    return rc < 0 ? -1 : 0;
}

static void unref_chunk(void *data, void *hint)
{
    (void)data;
    blob_t *b = hint;
    blob_unref(&b);
}

/* One chunk of a kept answer: ZeroMQ sends it from the blob and drops the
 * reference it holds once sent (on its I/O thread, blob.h). */
static int send_kept_chunk(zsock_t *sock, zframe_t *id, bool delim, blob_t *kept, size_t off, size_t n)
{
    void *raw = zsock_resolve(sock);
    if (zmq_send(raw, zframe_data(id), zframe_size(id), ZMQ_SNDMORE) < 0 ||
        (delim && zmq_send(raw, "", 0, ZMQ_SNDMORE) < 0))
        return -1;
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, (char *)blob_data(kept) + off, n, unref_chunk, blob_ref(kept)) < 0) {
        blob_unref(&kept); /* the reference just taken: ZeroMQ did not keep it */
        return -1;
    }
    if (zmq_msg_send(&m, raw, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    return 0;
}

/* The reply, then the body's chunks when it has them (admin.h): from kept
 * when it is set (an answer the query cache holds), else from body. The
 * reply can be megabytes: its buffer goes to ZeroMQ instead of being
 * copied. */
static void send_admin(zsock_t *sock, zframe_t *id, bool delim, uint8_t *reply, size_t n, const buf_t *body,
                       blob_t *kept)
{
    if (send_admin_msg(sock, id, delim, reply, n, true) < 0) {
        log_debug("could not send an admin reply: %s", zmq_strerror(zmq_errno()));
        return;
    }
    const char *p = kept ? blob_data(kept) : body->p;
    size_t len = kept ? blob_len(kept) : body->len;
    for (size_t off = 0, c; (c = wire_admin_chunk_len(p, len, off)) > 0; off += c) {
        int rc = kept ? send_kept_chunk(sock, id, delim, kept, off, c)
                      : send_admin_msg(sock, id, delim, body->p + off, c, false);
        if (rc < 0) {
            log_debug("could not send an admin reply's body: %s", zmq_strerror(zmq_errno()));
            return;
        }
    }
}

/* Who asked on the admin socket, kept while an answer waits (assign.h). */
typedef struct {
    zframe_t *id;
    bool delim;
} requester_t;

static void requester_free(void *p)
{
    requester_t *r = p;
    if (!r)
        return;
    zframe_destroy(&r->id);
    free(r);
}

/* A late answer (assign.h) to the requester it waited for. */
static void answer_later(daemon_t *d, requester_t *who, int status, buf_t *out, const char *err)
{
    uint8_t *reply = NULL;
    buf_reset(&d->admin_body);
    size_t n = admin_pack_answer(status, out, err, NULL, &reply);
    if (who && who->id)
        send_admin(d->adm, who->id, who->delim, reply, n, &d->admin_body, NULL);
    else
        free(reply);
    requester_free(who);
}

static void on_step_result(void *arg, const char *node, const Pcifleet__StepResult *r, int64_t now)
{
    daemon_t *d = arg;
    int status = 1;
    buf_t out = BUF_INIT;
    buf_reset(&out);
    char *err = NULL;
    if (rollout_step_result(d->admin.rollout, node, r, now)) {
        buf_free(&out);
        return;
    }
    requester_t *who = assign_step_result(d->admin.assign, node, r, now, &status, &out, &err);
    if (who)
        answer_later(d, who, status, &out, err);
    buf_free(&out);
    free(err);
}

/* assign.h: a VmDeviceEdit to the node's agent, on the connection it last
 * spoke from. */
static int send_to_agent(void *arg, const char *node, const uint8_t *frame, size_t len)
{
    daemon_t *d = arg;
    zframe_t *id = zhashx_lookup(d->routes, node);
    if (!id)
        return -1;
    void *raw = zsock_resolve(d->agents);
    if (zmq_send(raw, zframe_data(id), zframe_size(id), ZMQ_SNDMORE) < 0 || zmq_send(raw, frame, len, 0) < 0) {
        log_warn("could not send a step to %s: %s", node, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static int on_admin(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    daemon_t *d = arg;
    for (int i = 0; i < BATCH && (zsock_events(sock) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(sock);
        if (!msg)
            break;
        zframe_t *id = zmsg_pop(msg);
        zframe_t *body = zmsg_last(msg);
        bool delim = zmsg_size(msg) >= 2 && zframe_size(zmsg_first(msg)) == 0;
        uint8_t *reply = NULL;
        requester_t *who = xcalloc(1, sizeof *who);
        who->id = id;
        who->delim = delim;
        bool deferred = false;
        blob_t *kept = NULL;
        size_t n = admin_handle_chunked(&d->admin, body ? zframe_data(body) : (const uint8_t *)"",
                                        body ? zframe_size(body) : 0, now_s(), &reply, &d->admin_body, &kept, who,
                                        &deferred);
        if (!deferred) {
            if (id)
                send_admin(sock, id, delim, reply, n, &d->admin_body, kept);
            else
                free(reply);
            requester_free(who);
        }
        blob_unref(&kept);
        buf_reset(&d->admin_body);
        zmsg_destroy(&msg);
    }
    return 0;
}

/* ---- timer ---- */

static bool agents_dir_changed(daemon_t *d)
{
    struct stat st;
    if (stat(d->agents_dir, &st) < 0)
        return false;
    bool changed = st.st_mtim.tv_sec != d->agents_mtime.tv_sec || st.st_mtim.tv_nsec != d->agents_mtime.tv_nsec;
    d->agents_mtime = st.st_mtim;
    return changed;
}

static void reload_keystore(daemon_t *d, const char *why)
{
    strv_t before = STRV_INIT, acc = STRV_INIT, pend = STRV_INIT;
    keystore_list(d->keys, &before, NULL);
    char *err = NULL;
    if (keystore_reload(d->keys, &err) < 0) {
        log_error("cannot re-read the accepted keys in %s: %s", d->agents_dir, err ? err : "?");
        free(err);
        strv_free(&before);
        return;
    }
    keystore_list(d->keys, &acc, &pend);
    bool same = before.n == acc.n;
    for (size_t i = 0; same && i < acc.n; i++)
        same = strcmp(before.v[i], acc.v[i]) == 0;
    /* An accept through the admin socket also changes agents/: say nothing
     * then, the accept was logged already. */
    if (!same || strcmp(why, "SIGHUP") == 0)
        log_info("re-read the accepted keys (%s): %zu accepted, %zu pending", why, acc.n, pend.n);
    strv_free(&before);
    strv_free(&acc);
    strv_free(&pend);
}

static int on_tick(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    daemon_t *d = arg;
    int64_t now = now_s();
    strv_t gone = STRV_INIT;
    char *err = NULL;
    if (store_mark_offline(d->store, now, d->set.offline_after, &gone, &err) < 0) {
        log_error("cannot mark silent nodes offline: %s", err ? err : "?");
        free(err);
    }
    for (size_t i = 0; i < gone.n; i++)
        log_warn("node %s went offline: no heartbeat for %lld s", gone.v[i], (long long)d->set.offline_after);
    strv_free(&gone);
    ingest_tick(d->ingest, now);
    rollout_tick(d->admin.rollout, now);
    for (;;) { /* --apply answers that did not come in time */
        int status = 1;
        buf_t out = BUF_INIT;
        buf_reset(&out);
        char *aerr = NULL;
        requester_t *who = assign_expired(d->admin.assign, now, &status, &out, &aerr);
        if (who)
            answer_later(d, who, status, &out, aerr);
        buf_free(&out);
        free(aerr);
        if (!who)
            break;
    }
    if (reload_keys) {
        reload_keys = 0;
        agents_dir_changed(d);
        reload_keystore(d, "SIGHUP");
    } else if (agents_dir_changed(d)) {
        reload_keystore(d, "agents/ changed");
    }
    return 0;
}

/* ---- start and stop ---- */

static int open_keys(daemon_t *d, char pub[KEY_Z85_LEN + 1], char sec[KEY_Z85_LEN + 1])
{
    char *err = NULL;
    char *secret = xasprintf("%s/controller.key_secret", d->set.keys);
    struct stat st;
    int rc = 0;
    if (stat(secret, &st) < 0 && errno == ENOENT) {
        if (keys_generate(d->set.keys, "controller", &err) < 0) {
            log_error("cannot create the controller's key pair in %s: %s", d->set.keys, err ? err : "?");
            rc = -1;
            goto out;
        }
        log_info("created the controller's key pair %s/controller.key and controller.key_secret: give "
                 "controller.key to every agent (--controller-key)",
                 d->set.keys);
    }
    if (keys_load_pair(secret, pub, sec, &err) < 0) {
        log_error("cannot load the controller's key pair: %s", err ? err : secret);
        rc = -1;
        goto out;
    }
    if (keystore_open(d->set.keys, &d->keys, &err) < 0) {
        log_error("cannot open the key folder %s: %s", d->set.keys, err ? err : "?");
        rc = -1;
        goto out;
    }
    d->agents_dir = xasprintf("%s/agents", d->set.keys);
    agents_dir_changed(d);
out:
    free(err);
    free(secret);
    return rc;
}

static int bind_agents(daemon_t *d, const char *secret_key)
{
    d->agents = zsock_new(ZMQ_ROUTER);
    if (!d->agents) {
        log_error("cannot create the agents' socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    zsock_set_zap_domain(d->agents, "pcifleet");
    zsock_set_curve_server(d->agents, 1);
    zsock_set_curve_secretkey(d->agents, secret_key);
    zsock_set_maxmsgsize(d->agents, (int)(d->set.max_frame + MAXMSG_SLACK));
    zsock_set_sndtimeo(d->agents, 0);
    zsock_set_sndhwm(d->agents, 1000);
    zsock_set_rcvhwm(d->agents, 10000);
    /* Half-dead TCP connections are found by TCP keepalive, in the kernel,
     * not by ZMTP heartbeats from this side: libzmq keeps its timers in one
     * ordered map per I/O thread and cancels one by walking it, so with
     * 10,000 agents a ZMTP timeout timer per connection costs the I/O thread
     * more than the traffic (bench/bench_ingest.c measured it). The agents
     * still send ZMTP heartbeats, which is how they notice a dead controller. */
    zsock_set_tcp_keepalive(d->agents, 1);
    zsock_set_tcp_keepalive_idle(d->agents, 60);
    zsock_set_tcp_keepalive_intvl(d->agents, 10);
    zsock_set_tcp_keepalive_cnt(d->agents, 3);
    zsock_set_linger(d->agents, 0);
    if (zsock_bind(d->agents, "%s", d->set.listen) < 0) {
        log_error("cannot listen on %s: %s", d->set.listen, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static int bind_admin(daemon_t *d)
{
    d->adm = zsock_new(ZMQ_ROUTER);
    if (!d->adm) {
        log_error("cannot create the admin socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    zsock_set_maxmsgsize(d->adm, ADMIN_MAX_REQUEST + 4096);
    /* answers run to megabytes (nics --free --json of a large fleet): big
     * socket buffers move them in few system calls */
    zsock_set_sndbuf(d->adm, 4 * 1024 * 1024);
    /* a ROUTER drops what is over its high-water mark: room for the
     * longest answer's chunks (wire.h), many times over */
    zsock_set_sndhwm(d->adm, (int)(8 * (WIRE_ADMIN_MAX_BODY / WIRE_ADMIN_CHUNK)));
    zsock_set_sndtimeo(d->adm, 0);
    zsock_set_linger(d->adm, 0);
    char *err = NULL;
    if (admin_bind(d->adm, d->set.admin, &err) < 0) {
        log_error("%s", err ? err : "cannot bind the admin socket");
        free(err);
        return -1;
    }
    d->admin_bound = true;
    return 0;
}

int main(int argc, char **argv)
{
#ifndef PCIFLEET_JEMALLOC
    /* Every agent message allocates and frees tens of kilobytes (frames,
     * decoded inventories, SQLite pages). glibc would give the top of the
     * heap back to the kernel after each burst and fault it in again on the
     * next; keeping up to 64 MiB of free heap costs nothing real and
     * bench_ingest measured a tenth of the ingest time in those faults.
     * (Linked with jemalloc, see CMakeLists.txt, glibc's heap is unused.) */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
#endif
    log_init("pcifleetd", LOG_LEVEL_INFO);
    ctlclock_start(&clk);
    daemon_t d;
    memset(&d, 0, sizeof d);
    config_t cfg = CONFIG_INIT;
    const char *values[O_COUNT] = {NULL};
    int rc = parse_options(argc, argv, &d.set, &cfg, values);
    if (rc != 0) {
        config_free(&cfg);
        return rc < 0 ? 0 : 1;
    }

    /* czmq catches SIGINT/SIGTERM (zsys_interrupted ends the loop); SIGHUP
     * re-reads the keys; a vanished admin client must not kill us. The
     * signals stay blocked while ZeroMQ's and the ZAP handler's threads are
     * made (they inherit the mask), so they reach this thread and wake the
     * loop at once. */
    sigset_t sigs, oldmask;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &oldmask);
    zsys_init();
    zsys_set_logident("pcifleetd");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 2;
    zactor_t *zap = NULL;
    zloop_t *loop = NULL;
    char pub[KEY_Z85_LEN + 1], sec[KEY_Z85_LEN + 1];
    char *err = NULL;
    if (open_keys(&d, pub, sec) < 0)
        goto out;
    if (store_open(d.set.db, &d.store, &err) < 0) {
        log_error("cannot open the database %s: %s", d.set.db, err ? err : "?");
        goto out;
    }
    if (!(zap = zap_start(&err))) {
        log_error("cannot start the ZAP handler: %s", err ? err : "?");
        goto out;
    }
    if (bind_agents(&d, sec) < 0 || bind_admin(&d) < 0)
        goto out;
    explicit_bzero(sec, sizeof sec);

    d.ingest = ingest_new(d.store, d.keys, d.set.max_frame);
    d.admin.store = d.store;
    d.admin.keys = d.keys;
    d.admin.ingest = d.ingest;
    d.admin.query = d.set.query;
    d.admin.query.cache = query_cache_new();
    d.routes = zhashx_new();
    zhashx_set_destructor(d.routes, route_free);
    d.admin.assign = assign_new(d.store, send_to_agent, &d, requester_free, 30);
    d.admin.rollout = rollout_new(d.store, send_to_agent, &d);
    ingest_set_step_handler(d.ingest, on_step_result, &d);
    d.admin.listen = d.set.listen;
    d.admin.version = PCIFLEET_VERSION;
    d.admin.started = now_s();
    d.admin.offline_after = d.set.offline_after;

    char fp[KEYFP_LEN + 1];
    keyfp_of(pub, fp);
    strv_t acc = STRV_INIT, pend = STRV_INIT;
    keystore_list(d.keys, &acc, &pend);
    log_info("pcifleetd %s: agents on %s (CURVE, controller key %s), admin on %s, database %s (schema %d), "
             "%zu accepted and %zu pending keys, offline after %lld s, frames up to %zu bytes",
             PCIFLEET_VERSION, d.set.listen, fp, d.set.admin, d.set.db, store_schema_version(), acc.n, pend.n,
             (long long)d.set.offline_after, d.set.max_frame);
    strv_free(&acc);
    strv_free(&pend);

    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    loop = zloop_new();
    zloop_reader(loop, d.agents, on_agents, &d);
    zloop_reader(loop, d.adm, on_admin, &d);
    zloop_timer(loop, 1000, 0, on_tick, &d);
    if (d.set.metrics) {
        d.metrics = metrics_new(d.set.metrics, d.set.metrics_public, d.store, d.ingest, PCIFLEET_VERSION,
                                d.admin.started, &err);
        if (!d.metrics || metrics_attach(d.metrics, loop) < 0) {
            log_error("%s", err ? err : "cannot serve the metrics");
            goto out;
        }
        log_info("metrics on http://%s/metrics", d.set.metrics);
    }
    /* zloop_start also returns when any signal interrupts its poll: SIGHUP
     * (re-read the keys) must not stop the controller, so go on unless it
     * was SIGINT/SIGTERM or a handler failed. */
    for (;;) {
        int lr = zloop_start(loop);
        if (lr != 0 || zsys_interrupted)
            break;
        if (reload_keys) {
            reload_keys = 0;
            agents_dir_changed(&d);
            reload_keystore(&d, "SIGHUP");
        }
    }
    log_info("stopping: %llu frames handled, %llu inventories stored, %llu refused",
             (unsigned long long)ingest_stats(d.ingest)->frames,
             (unsigned long long)ingest_stats(d.ingest)->inventories,
             (unsigned long long)ingest_stats(d.ingest)->refused);
    status = 0;

out:
    explicit_bzero(sec, sizeof sec);
    free(err);
    metrics_destroy(&d.metrics);
    zloop_destroy(&loop);
    zsock_destroy(&d.adm);
    /* libzmq leaves the ipc socket file behind; a later start would replace
     * it anyway, but a clean stop leaves nothing that looks alive. */
    if (d.admin_bound && strncmp(d.set.admin, "ipc://", 6) == 0)
        unlink(d.set.admin + 6);
    zsock_destroy(&d.agents);
    zap_stop(&zap);
    ingest_destroy(&d.ingest);
    query_cache_destroy(&d.admin.query.cache);
    assign_destroy(&d.admin.assign);
    rollout_destroy(&d.admin.rollout);
    zhashx_destroy(&d.routes);
    buf_free(&d.admin_body);
    store_close(&d.store);
    keystore_destroy(&d.keys);
    free(d.agents_dir);
    config_free(&cfg);
    if (status == 0)
        log_info("stopped");
    return status;
}
