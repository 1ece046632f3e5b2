/* bench_claims — claims under contention and drain plans on a large fleet.
 *
 * Builds a database of --nodes servers (bench_fleet.h: 64 functions, six
 * NICs, four VMs each) through the store, starts a real pcifleetd on it,
 * then:
 *   1. --clients processes, each with its own admin connection, race to
 *      claim the same --hot free NICs (node i's 0000:02:00.0 for its VM
 *      103), every client asking for every device in its own order: the
 *      figure is admin requests answered per second, and the run checks
 *      that exactly --hot claims exist afterwards;
 *   2. --plans runs of `plan drain node00000 --json` over the admin socket
 *      (p50/p99/max), each VM's passthrough NIC having an equivalent free
 *      port on every other node;
 *   3. as many runs of `plan drain node00001 --json`, whose two passed-
 *      through ports are of a model (8086:1522) no other node has: the
 *      worst case, where every node of the fleet is looked at and none
 *      found.
 * Figures go to stdout; docs/BENCHMARKS.md records them with the command.
 *
 * Usage: bench_claims [--nodes N] [--clients C] [--hot H] [--plans P]
 *                     [--pcifleetd PATH] [--keep DIR] */
#include "bench_fleet.h"
#include "keys.h"
#include "store.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_claims: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static unsigned num(const char *opt, const char *s, unsigned min, unsigned max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || v < min || v > max)
        die("%s wants a whole number from %u to %u, not '%s'", opt, min, max, s);
    return (unsigned)v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One admin request over sock; returns the reply's status (-1: none within
 * 30 s). The body, when wanted, is appended to out (inline or chunked). */
static int ask(void *sock, int argc, char **argv, bool json, buf_t *out)
{
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.argv = argv;
    req.n_argv = (size_t)argc;
    req.json = json;
    uint8_t *buf;
    size_t n = wire_encode_admin_request(&req, &buf);
    zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, buf, n, 0);
    free(buf);
    int status = -1;
    uint32_t chunks = 0;
    for (uint32_t got = 0; got <= chunks; got++) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 30000) != 1)
            return -1;
        zmq_msg_t m;
        zmq_msg_init(&m);
        do { /* [delim][payload] */
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            zmq_msg_recv(&m, sock, 0);
        } while (zmq_msg_more(&m));
        if (got == 0) {
            Pcifleet__AdminReply *r = NULL;
            char *err = NULL;
            if (wire_decode_admin_reply(zmq_msg_data(&m), zmq_msg_size(&m), 0, &r, &err) == 0) {
                status = r->status;
                chunks = r->body_chunks;
                if (out && r->body)
                    buf_puts(out, r->body);
            }
            free(err);
            wire_admin_reply_free(&r);
        } else if (out) {
            buf_append(out, zmq_msg_data(&m), zmq_msg_size(&m));
        }
        zmq_msg_close(&m);
    }
    return status;
}

static void *admin_socket(void *ctx, const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, ep) != 0)
        die("connect %s: %s", ep, zmq_strerror(errno));
    return s;
}

int main(int argc, char **argv)
{
    unsigned nodes = 10000, clients = 8, hot = 100, plans = 50;
    const char *keep = NULL;
    char pcifleetd[PATH_MAX];
    {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            die("cannot read /proc/self/exe");
        self[n] = '\0';
        snprintf(pcifleetd, sizeof pcifleetd, "%s/pcifleetd", dirname(dirname(self)));
    }
    static const struct option lo[] = {{"nodes", 1, 0, 'n'}, {"clients", 1, 0, 'c'}, {"hot", 1, 0, 'H'},
                                       {"plans", 1, 0, 'p'}, {"pcifleetd", 1, 0, 'D'}, {"keep", 1, 0, 'k'},
                                       {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': nodes = num("--nodes", optarg, 2, 100000); break;
        case 'c': clients = num("--clients", optarg, 1, 4096); break;
        case 'H': hot = num("--hot", optarg, 1, 100000); break;
        case 'p': plans = num("--plans", optarg, 1, 100000); break;
        case 'D': snprintf(pcifleetd, sizeof pcifleetd, "%s", optarg); break;
        case 'k': keep = optarg; break;
        case 'h':
            puts("usage: bench_claims [--nodes N] [--clients C] [--hot H] [--plans P] [--pcifleetd PATH] [--keep DIR]\n"
                 "Builds a fleet of N nodes, then C client processes race to claim H NICs through a\n"
                 "real pcifleetd (exactly H claims must result), then P drain plans are timed.\n"
                 "Defaults: 10000 nodes, 8 clients, 100 hot NICs, 50 plans.");
            return 0;
        default: return 2;
        }
    }
    if (hot > nodes)
        hot = nodes;
    if (access(pcifleetd, X_OK) != 0)
        die("need %s (build it, or say where with --pcifleetd)", pcifleetd);
    signal(SIGPIPE, SIG_IGN);

    char tmpl[] = "/tmp/bench_claims.XXXXXX";
    const char *dir = keep;
    if (dir)
        mkdir(dir, 0700);
    else if (!(dir = mkdtemp(tmpl)))
        die("mkdtemp: %s", strerror(errno));
    char *db = xasprintf("%s/fleet.db", dir), *keys = xasprintf("%s/keys", dir);
    char *admin = xasprintf("ipc://%s/admin.sock", dir), *log_path = xasprintf("%s/pcifleetd.log", dir);
    if (access(db, F_OK) == 0)
        die("%s already holds a database; --keep wants a new directory", dir);

    /* the fleet, straight through the store */
    double t0 = now_s();
    store_t *s = NULL;
    char *err = NULL;
    if (store_open(db, &s, &err) < 0)
        die("%s", err);
    int64_t now = (int64_t)time(NULL);
    for (unsigned i = 0; i < nodes; i += 256) {
        store_batch_begin(s);
        for (unsigned k = i; k < nodes && k < i + 256; k++) {
            char name[32];
            snprintf(name, sizeof name, "node%05u", k);
            ib_t *b = bench_make_node(k, 64);
            if (k == 1)
                for (size_t d = 0; d < b->inv.n_devices; d++)
                    if (b->inv.devices[d]->device_id == 0x1521 &&
                        strncmp(b->inv.devices[d]->address, "0000:03:00.", 11) == 0)
                        b->inv.devices[d]->device_id = 0x1522;
            if (store_ingest_inventory(s, name, &b->inv, now, &err) < 0)
                die("%s", err);
            ib_free(&b);
        }
        if (store_batch_end(s, &err) < 0)
            die("%s", err);
    }
    store_close(&s);
    fprintf(stderr, "built %u nodes in %.1f s in %s\n", nodes, now_s() - t0, dir);

    if (keys_generate(keys, "controller", &err) < 0)
        die("%s", err);
    char *dargv[] = {pcifleetd, "--db", db, "--listen", "tcp://127.0.0.1:0", "--admin", admin, "--keys", keys,
                     "--log-level", "warn", "--offline-after", "3600", NULL};
    pid_t dpid = fork();
    if (dpid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 1), dup2(fd, 2), close(fd);
        execv(dargv[0], dargv);
        _exit(127);
    }
    void *ctx = zmq_ctx_new();
    void *sock = admin_socket(ctx, admin);
    {
        char *st[] = {"status"};
        double w = now_s();
        while (ask(sock, 1, st, false, NULL) != 0) {
            if (now_s() - w > 60)
                die("pcifleetd did not answer within 60 s; see %s", log_path);
            usleep(100000);
            zmq_close(sock);
            sock = admin_socket(ctx, admin);
        }
    }

    /* 1. claims under contention */
    /* One pipe for every client: each writes one short line (atomic under
     * PIPE_BUF), so a thousand clients need two descriptors, not 2,000. */
    int pfd[2];
    if (pipe(pfd) != 0)
        die("pipe: %s", strerror(errno));
    pid_t *kids = xcalloc(clients, sizeof *kids);
    double t1 = now_s();
    for (unsigned k = 0; k < clients; k++) {
        if ((kids[k] = fork()) == 0) {
            close(pfd[0]);
            void *cx = zmq_ctx_new();
            void *cs = admin_socket(cx, admin);
            unsigned ok = 0, refused = 0, other = 0;
            for (unsigned j = 0; j < hot; j++) {
                unsigned i = (j * 7919u + k * 104729u) % hot; /* every client its own order */
                char node[32];
                snprintf(node, sizeof node, "node%05u", i);
                char *a[] = {"assign", node, "0000:02:00.0", "103"};
                int st = ask(cs, 4, a, false, NULL);
                if (st == 0)
                    ok++;
                else if (st == 1)
                    refused++;
                else
                    other++;
            }
            dprintf(pfd[1], "%u %u %u\n", ok, refused, other);
            zmq_close(cs);
            zmq_ctx_term(cx);
            _exit(0);
        }
        if (kids[k] < 0)
            die("fork: %s", strerror(errno));
    }
    close(pfd[1]);
    unsigned ok = 0, refused = 0, other = 0, answered = 0;
    FILE *from = fdopen(pfd[0], "r");
    char line[64];
    while (from && fgets(line, sizeof line, from)) {
        unsigned a = 0, b = 0, x = 0;
        if (sscanf(line, "%u %u %u", &a, &b, &x) != 3)
            die("a client wrote '%s'", line);
        ok += a, refused += b, other += x;
        answered++;
    }
    if (from)
        fclose(from);
    for (unsigned k = 0; k < clients; k++) {
        int st;
        waitpid(kids[k], &st, 0);
    }
    free(kids);
    if (answered != clients)
        die("%u of %u clients failed", clients - answered, clients);
    double t2 = now_s();
    buf_t out = BUF_INIT;
    char *q[] = {"sql", "SELECT count(*) AS n FROM v_claims"};
    ask(sock, 2, q, true, &out);
    unsigned stored = 0;
    const char *p = out.p ? strstr(out.p, "\"n\":") : NULL;
    if (p)
        stored = (unsigned)strtoul(p + 4, NULL, 10);
    buf_free(&out);
    if (ok != hot || stored != hot || other)
        die("%u clients x %u assigns: %u claimed, %u refused, %u failed, %u stored: want exactly %u claims", clients,
            hot, ok, refused, other, stored, hot);
    printf("claims: %u clients raced for %u NICs (%u requests): %u claimed, %u refused, %u stored; %.2f s, %.0f "
           "assign requests/s\n",
           clients, hot, clients * hot, ok, refused, stored, t2 - t1, clients * hot / (t2 - t1));
    fflush(stdout);

    /* 2. drain plans, 3. the same with no equivalent anywhere */
    for (int worst = 0; worst < 2; worst++) {
        double *lat = xcalloc(plans, sizeof *lat);
        size_t bytes = 0;
        char *node = worst ? "node00001" : "node00000";
        const char *expect = worst ? "\"action\":\"stop\"" : "\"action\":\"stop-and-move\"";
        for (unsigned i = 0; i < plans; i++) {
            buf_t o = BUF_INIT;
            char *a[] = {"plan", "drain", node};
            double s0 = now_s();
            if (ask(sock, 3, a, true, &o) != 0)
                die("plan drain failed: %s", o.p ? o.p : "");
            lat[i] = (now_s() - s0) * 1000;
            if (!o.p || !strstr(o.p, expect))
                die("plan drain %s: no %s in %s", node, expect, o.p ? o.p : "");
            if (worst && strstr(o.p, "\"action\":\"stop-and-move\""))
                die("plan drain %s found a target for a model no other node has: %s", node, o.p);
            bytes = o.len;
            buf_free(&o);
        }
        qsort(lat, plans, sizeof *lat, cmp_double);
        printf("plan drain %s --json on %u nodes%s: %u runs, %zu bytes: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               node, nodes, worst ? " (no equivalent anywhere)" : "", plans, bytes, lat[plans / 2],
               lat[(size_t)((plans - 1) * 0.99 + 0.5)], lat[plans - 1]);
        free(lat);
    }

    zmq_close(sock);
    zmq_ctx_term(ctx);
    kill(dpid, SIGTERM);
    int st;
    waitpid(dpid, &st, 0);
    if (!keep) {
        char *cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
        free(cmd);
    }
    free(db);
    free(keys);
    free(admin);
    free(log_path);
    return 0;
}
