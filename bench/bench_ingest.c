/* bench_ingest — the controller under a fleet's load, over real sockets.
 *
 * Starts a real pcifleetd on a scratch directory (its own database, keys and
 * admin socket), opens one CURVE-encrypted DEALER connection per simulated
 * agent, each with its own accepted key, and measures:
 *   1. full reports: every node sends Hello and an Inventory of --devices
 *      PCI functions; the clock runs from the first send to the last Ack;
 *   2. heartbeats: --rounds rounds of one unchanged Heartbeat per node; the
 *      clock runs until the controller's `status` counts all of them;
 *   3. queries: --queries runs of `pcifleet --admin EP nics --free --json`
 *      as an operator runs it (a new process each time, output read to the
 *      end), reporting p50/p99/max.
 * The figures go to stdout; docs/BENCHMARKS.md records them with the command.
 * Nothing here is a test: it asserts only that the run itself worked (every
 * Ack came back, every heartbeat was counted, every query exited 0).
 *
 * Usage: bench_ingest [--nodes N] [--devices D] [--rounds R] [--queries Q]
 *                     [--workers W] [--pcifleetd PATH] [--pcifleet PATH] [--keep DIR]
 *                     [--reuse] [--ack-log FILE] [--query-log FILE]
 * The programs default to the ones built next to this benchmark.
 *
 * For the fault tests (tests/fault_ingest_kill.sh): the controller's pid is
 * printed first ("controller: pid N"); --ack-log FILE appends one line
 * "NODE DEVICES SHA256HEX" per Inventory the controller acknowledged, written
 * as the Ack arrives (one write each, so a kill of the benchmark leaves whole
 * lines); --reuse lets --keep DIR hold the database of an earlier run.
 * --query-log FILE writes each query's start (ms after the first) and
 * latency in run order, to see when in the run the slow ones came. */
#include "buf.h"
#include "bench_fleet.h"
#include "keys.h"
#include "report_pb.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    unsigned nodes, devices, rounds, queries;
    char pcifleetd[PATH_MAX], pcifleet[PATH_MAX];
    const char *keep, *ack_log, *query_log;
    bool reuse;
    size_t report_bytes;
} opts_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the controller this run started: a failing run stops it too */
static pid_t controller_pid;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    if (controller_pid > 0)
        kill(controller_pid, SIGTERM);
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_ingest: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- the controller under test ---- */

static pid_t spawn(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs pcifleet with args; its stdout is read to the end into *out, or
 * only counted into *count when out is NULL (a script reading the answer
 * as it comes, without this process's copying in the measurement).
 * Returns the exit status (-1 when it did not exit normally). */
static int run_cli(const opts_t *o, const char *admin, const char *const *args, buf_t *out, size_t *count,
                   bool quiet)
{
    const char *argv[16];
    int k = 0;
    argv[k++] = o->pcifleet;
    argv[k++] = "--admin";
    argv[k++] = admin;
    for (int i = 0; args[i] && k < 15; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    /* posix_spawn (a vfork underneath) rather than fork: the child does not
     * copy this process's page tables, nor does this process then take a
     * copy-on-write fault for every page it touches, which on this VM is
     * part of what the query's time would show. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    extern char **environ;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0)
        die("cannot run %s: %s", argv[0], strerror(e));
    close(p[1]);
    char chunk[65536];
    ssize_t r;
    while ((r = read(p[0], chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && out)
            buf_append(out, chunk, (size_t)r);
        else if (r > 0 && count)
            *count += (size_t)r;
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A number from `pcifleet status --json`'s flat object, or -1. */
static long long status_field(const opts_t *o, const char *admin, const char *field)
{
    buf_t out = BUF_INIT;
    const char *args[] = {"status", "--json", NULL};
    long long v = -1;
    if (run_cli(o, admin, args, &out, NULL, true) == 0 && out.p) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", field);
        const char *p = strstr(out.p, key);
        if (p)
            v = strtoll(p + strlen(key), NULL, 10);
    }
    buf_free(&out);
    return v;
}

/* A loopback port nobody listens on now (the kernel picks it). */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        die("cannot find a free loopback port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the simulated agents ---- */

/* Agents' seqs start here, as real agents start from the wall clock in
 * microseconds: the controller refuses a seq not above the last one it
 * accepted from a node, and --reuse meets nodes an earlier run reported. */
static uint64_t seq_base;

typedef struct {
    void *sock;
    char node[32];
    uint8_t hash[WIRE_HASH_LEN];
    char boot[32];
    uint64_t seq;
    bool acked;
} agent_t;

static size_t encode_env(agent_t *a, Pcifleet__Envelope *env, uint8_t **out)
{
    env->seq = ++a->seq;
    env->node = a->node;
    return wire_encode(env, out);
}

static void send_frame(agent_t *a, uint8_t *f, size_t n)
{
    /* Blocking send: the benchmark wants every frame delivered, and ZeroMQ
     * blocks only while the connection's queue is full. */
    while (zmq_send(a->sock, f, n, 0) < 0) {
        if (errno != EINTR)
            die("send from %s: %s", a->node, zmq_strerror(errno));
    }
    free(f);
}

/* One "NODE DEVICES SHA256HEX" line for an acknowledged Inventory. */
static void log_ack(int fd, const agent_t *a, unsigned devices)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%s %u ", a->node, devices);
    for (size_t i = 0; i < WIRE_HASH_LEN && n + 3 < (int)sizeof line; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, "%02x", a->hash[i]);
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) != n)
        die("cannot write the ack log: %s", strerror(errno));
}

/* Takes every reply waiting on agent i; counts the first of kind body (an
 * Ack must name ack_seq) and logs each Ack to ack_fd (when >= 0). */
static unsigned drain_replies(agent_t *a, Pcifleet__Envelope__BodyCase body, uint64_t ack_seq, int ack_fd,
                              unsigned devices)
{
    unsigned got = 0;
    uint8_t rb[4096];
    int n, ev;
    size_t evl;
    do {
        while ((n = zmq_recv(a->sock, rb, sizeof rb, ZMQ_DONTWAIT)) >= 0) {
            Pcifleet__Envelope *r = NULL;
            char *e = NULL;
            if ((size_t)n > sizeof rb || wire_decode(rb, (size_t)n, 0, &r, &e) != 0)
                die("%s: undecodable reply: %s", a->node, e ? e : "too long");
            if (r->body_case == PCIFLEET__ENVELOPE__BODY_ERROR)
                die("%s: error from the controller: %s", a->node, r->error->message);
            if (r->body_case == body && !a->acked &&
                (body != PCIFLEET__ENVELOPE__BODY_ACK || r->ack->seq == ack_seq)) {
                a->acked = true;
                got++;
                if (ack_fd >= 0 && body == PCIFLEET__ENVELOPE__BODY_ACK)
                    log_ack(ack_fd, a, devices);
            }
            wire_free(&r);
        }
        /* reading ZMQ_EVENTS takes the socket's pending commands, which is
         * what rearms its ZMQ_FD (zmq_getsockopt(3)); a reply that came in
         * with them is read now, since the descriptor will not signal it */
        ev = 0;
        evl = sizeof ev;
    } while (zmq_getsockopt(a->sock, ZMQ_EVENTS, &ev, &evl) == 0 && (ev & ZMQ_POLLIN));
    return got;
}

/* Waits until every agent got a reply of kind body (an Ack must name seq
 * ack_seq); an Error reply ends the benchmark. Bounded by 600 s.
 * The load generator shares the CPUs with the controller, so it must not
 * spend them looking at idle sockets: zmq_poll over 5,000 sockets costs
 * two ZMQ_EVENTS reads (each a syscall) per socket per wakeup. Instead an
 * epoll set holds every socket's ZMQ_FD and only the ones it reports are
 * read; a full sweep runs first and after any quiet second, so a wakeup
 * the edge-style ZMQ_FD did not give cannot stall the run. */
static void await_replies(agent_t *ag, int ep, unsigned nodes, Pcifleet__Envelope__BodyCase body, uint64_t ack_seq,
                          const char *log_path, int ack_fd, unsigned devices)
{
    for (unsigned i = 0; i < nodes; i++)
        ag[i].acked = false;
    unsigned got = 0;
    double start = now_s();
    bool sweep = true;
    struct epoll_event evs[256];
    while (got < nodes) {
        if (now_s() - start > 600)
            die("only %u of %u agents got an answer after 600 s; see %s", got, nodes, log_path);
        if (sweep) {
            for (unsigned i = 0; i < nodes; i++)
                got += drain_replies(&ag[i], body, ack_seq, ack_fd, devices);
            sweep = false;
            continue;
        }
        int k = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), 1000);
        if (k < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        if (k <= 0) {
            sweep = true;
            continue;
        }
        for (int j = 0; j < k; j++)
            got += drain_replies(&ag[evs[j].data.u32], body, ack_seq, ack_fd, devices);
    }
}

static void usage(FILE *f)
{
    fputs("usage: bench_ingest [--nodes N] [--devices D] [--rounds R] [--queries Q]\n"
          "                    [--workers W] [--pcifleetd PATH] [--pcifleet PATH] [--keep DIR]\n"
          "                    [--reuse] [--ack-log FILE] [--query-log FILE]\n"
          "Drives a real pcifleetd with N simulated agents over CURVE sockets on loopback:\n"
          "full inventories of D functions, R rounds of unchanged heartbeats, then Q runs of\n"
          "`pcifleet nics --free --json`. Defaults: 10000 nodes, 64 devices, 5 rounds, 1000 queries.\n"
          "The agents are spread over W worker processes (default: as few as the descriptor\n"
          "limit allows, at least 2). --keep DIR works in the new directory DIR and keeps it;\n"
          "with --reuse DIR may hold an earlier run's database. --ack-log FILE appends\n"
          "\"NODE DEVICES SHA256HEX\" for each acknowledged inventory as its Ack arrives.\n"
          "--query-log FILE writes \"START_MS LATENCY_MS\" for each query in run order.\n",
          f);
}

static unsigned parse_uint(const char *opt, const char *s, unsigned min, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s wants a whole number from %u to %u, not '%s'", opt, min, max, s);
    return (unsigned)v;
}

static void beside_self(char *out, const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        die("cannot read /proc/self/exe");
    self[n] = '\0';
    /* built as build/bench/bench_ingest; the programs are in build/ */
    char *dir = dirname(dirname(self));
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

/* ---- worker processes ----
 *
 * One ZeroMQ socket costs a client two descriptors (the connection and the
 * socket's mailbox) and this machine's hard limit is 20,000, so the agents
 * are spread over worker processes, each a slice of the fleet. The parent
 * sends each worker a one-letter command on a pipe and waits for its 'k':
 *   H  every agent says Hello and waits for the controller's Resend
 *   I  every agent sends its Inventory and waits for the Ack
 *   B  every agent sends `rounds` unchanged Heartbeats (no reply expected)
 *   C  check that no heartbeat drew a reply
 *   Q  close the sockets and exit */
typedef struct {
    agent_t *ag;
    unsigned n;
    uint8_t **inv_frame;
    size_t *inv_len;
    int ep; /* epoll set of the agents' ZMQ_FDs, data.u32 = index */
    unsigned rounds, devices;
    const char *log_path;
    int ack_fd;
} slice_t;

static void worker_hellos(slice_t *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        agent_t *a = &w->ag[i];
        Pcifleet__Hello h = PCIFLEET__HELLO__INIT;
        h.agent_version = "bench";
        h.boot_id = a->boot;
        h.inventory_hash.data = a->hash;
        h.inventory_hash.len = sizeof a->hash;
        Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
        env.body_case = PCIFLEET__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        uint8_t *f;
        a->seq = seq_base;
        size_t n = encode_env(a, &env, &f);
        send_frame(a, f, n);
    }
    await_replies(w->ag, w->ep, w->n, PCIFLEET__ENVELOPE__BODY_RESEND, 0, w->log_path, -1, 0);
}

static void worker_inventories(slice_t *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        w->ag[i].seq = seq_base + 2;
        send_frame(&w->ag[i], w->inv_frame[i], w->inv_len[i]);
        w->inv_frame[i] = NULL;
    }
    await_replies(w->ag, w->ep, w->n, PCIFLEET__ENVELOPE__BODY_ACK, seq_base + 2, w->log_path, w->ack_fd,
                  w->devices);
}

static void worker_heartbeats(slice_t *w)
{
    for (unsigned r = 0; r < w->rounds; r++) {
        for (unsigned i = 0; i < w->n; i++) {
            agent_t *a = &w->ag[i];
            Pcifleet__Heartbeat hb = PCIFLEET__HEARTBEAT__INIT;
            hb.inventory_hash.data = a->hash;
            hb.inventory_hash.len = sizeof a->hash;
            hb.boot_id = a->boot;
            Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
            env.body_case = PCIFLEET__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            uint8_t *f;
            size_t n = encode_env(a, &env, &f);
            send_frame(a, f, n);
        }
    }
}

static void worker_check_quiet(slice_t *w)
{
    /* a matching heartbeat draws no reply: anything that came back is a
     * Resend or an Error, which would mean the hash did not match */
    unsigned replies = 0;
    for (unsigned i = 0; i < w->n; i++) {
        uint8_t rb[4096];
        while (zmq_recv(w->ag[i].sock, rb, sizeof rb, ZMQ_DONTWAIT) >= 0)
            replies++;
    }
    if (replies)
        die("%u heartbeats drew a reply: the controller did not take them as unchanged", replies);
}

static void build_frames(slice_t *w, unsigned first, unsigned devices)
{
    for (unsigned i = 0; i < w->n; i++) {
        agent_t *a = &w->ag[i];
        ib_t *b = bench_make_node(first + i, devices);
        Pcifleet__Inventory *pi = &b->inv;
        /* the hash the agent computes (report_pb.h) */
        report_hash(pi, a->hash);
        memcpy(b->hash, a->hash, sizeof b->hash);
        pi->hash.data = b->hash;
        pi->hash.len = sizeof b->hash;
        snprintf(a->boot, sizeof a->boot, "%s", pi->boot_id);
        Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
        env.body_case = PCIFLEET__ENVELOPE__BODY_INVENTORY;
        env.inventory = pi;
        a->seq = seq_base + 1; /* seq_base + 1 is the Hello */
        w->inv_len[i] = encode_env(a, &env, &w->inv_frame[i]);
        ib_free(&b);
    }
}

static void worker_main(slice_t *w, unsigned first, unsigned devices, const char *endpoint,
                        const char *server_pub, char (*pub)[KEY_Z85_LEN + 1], char (*sec)[KEY_Z85_LEN + 1],
                        int cmd_fd, int done_fd)
{
    build_frames(w, first, devices);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, (int)w->n + 64);
    if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1: %s", strerror(errno));
    for (unsigned i = 0; i < w->n; i++) {
        agent_t *a = &w->ag[i];
        if (!(a->sock = zmq_socket(ctx, ZMQ_DEALER)))
            die("zmq_socket (%u): %s", first + i, zmq_strerror(errno));
        int zero = 0, hwm = 1000;
        zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(a->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(a->sock, ZMQ_CURVE_SERVERKEY, server_pub, KEY_Z85_LEN);
        zmq_setsockopt(a->sock, ZMQ_CURVE_PUBLICKEY, pub[first + i], KEY_Z85_LEN);
        zmq_setsockopt(a->sock, ZMQ_CURVE_SECRETKEY, sec[first + i], KEY_Z85_LEN);
        if (zmq_connect(a->sock, endpoint) != 0)
            die("connect %s: %s", endpoint, zmq_strerror(errno));
        int fd;
        size_t fdl = sizeof fd;
        if (zmq_getsockopt(a->sock, ZMQ_FD, &fd, &fdl) != 0)
            die("ZMQ_FD (%u): %s", first + i, zmq_strerror(errno));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll_ctl (%u): %s", first + i, strerror(errno));
    }
    if (write(done_fd, "k", 1) != 1)
        die("worker: lost the parent");
    for (;;) {
        char cmd;
        ssize_t r = read(cmd_fd, &cmd, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1 || cmd == 'Q')
            break;
        switch (cmd) {
        case 'H': worker_hellos(w); break;
        case 'I': worker_inventories(w); break;
        case 'B': worker_heartbeats(w); break;
        case 'C': worker_check_quiet(w); break;
        default: die("worker: unknown command '%c'", cmd);
        }
        if (write(done_fd, "k", 1) != 1)
            die("worker: lost the parent");
    }
    for (unsigned i = 0; i < w->n; i++) {
        zmq_close(w->ag[i].sock);
        free(w->inv_frame[i]);
    }
    zmq_ctx_term(ctx);
    close(w->ep);
}

typedef struct {
    pid_t pid;
    int cmd, done;
} worker_t;

/* Sends cmd to every worker and waits for all of them (bounded: a worker
 * that fails exits, and its pipe's end tells us). */
static void command(worker_t *wk, unsigned nw, char cmd)
{
    for (unsigned i = 0; i < nw; i++)
        if (write(wk[i].cmd, &cmd, 1) != 1)
            die("worker %u is gone", i);
    for (unsigned i = 0; i < nw; i++) {
        char k;
        ssize_t r;
        while ((r = read(wk[i].done, &k, 1)) < 0 && errno == EINTR)
            ;
        if (r != 1)
            die("worker %u failed during '%c'", i, cmd);
    }
}

int main(int argc, char **argv)
{
    /* 1000 queries: the p99 of 200 is their third slowest, and the first
     * run (the one that builds the answer) is always one of those, so it
     * said as much about two runs as about the other 198 (docs/BENCHMARKS.md) */
    opts_t o = {.nodes = 10000, .devices = 64, .rounds = 5, .queries = 1000};
    unsigned workers = 0;
    seq_base = (uint64_t)zclock_time() * 1000u;
    beside_self(o.pcifleetd, "pcifleetd");
    beside_self(o.pcifleet, "pcifleet");
    static const struct option lo[] = {{"nodes", 1, 0, 'n'},     {"devices", 1, 0, 'd'},  {"rounds", 1, 0, 'r'},
                                       {"queries", 1, 0, 'q'},   {"pcifleetd", 1, 0, 'D'}, {"pcifleet", 1, 0, 'C'},
                                       {"keep", 1, 0, 'k'},      {"workers", 1, 0, 'w'},   {"help", 0, 0, 'h'},
                                       {"reuse", 0, 0, 'R'},     {"ack-log", 1, 0, 'A'},
                                       {"query-log", 1, 0, 'L'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': o.nodes = parse_uint("--nodes", optarg, 1, 100000); break;
        case 'd': o.devices = parse_uint("--devices", optarg, 8, IB_MAX); break;
        case 'r': o.rounds = parse_uint("--rounds", optarg, 1, 1000); break;
        case 'q': o.queries = parse_uint("--queries", optarg, 1, 100000); break;
        case 'w': workers = parse_uint("--workers", optarg, 1, 64); break;
        case 'D': snprintf(o.pcifleetd, sizeof o.pcifleetd, "%s", optarg); break;
        case 'C': snprintf(o.pcifleet, sizeof o.pcifleet, "%s", optarg); break;
        case 'k': o.keep = optarg; break;
        case 'R': o.reuse = true; break;
        case 'A': o.ack_log = optarg; break;
        case 'L': o.query_log = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (access(o.pcifleetd, X_OK) != 0 || access(o.pcifleet, X_OK) != 0)
        die("need %s and %s (build them, or say where with --pcifleetd/--pcifleet)", o.pcifleetd, o.pcifleet);

    /* Descriptors: the controller needs one per agent, a worker two per
     * agent of its slice. Raise the soft limit to the hard one (inherited by
     * the controller) and size the workers to fit. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    rlim_t fds = rl.rlim_max == RLIM_INFINITY ? 1u << 20 : rl.rlim_max;
    if (fds < (rlim_t)o.nodes + 256)
        die("the controller needs %u file descriptors for %u agents; the limit is %llu", o.nodes + 256, o.nodes,
            (unsigned long long)fds);
    unsigned per_worker = (unsigned)((fds - 256) / 2);
    if (!workers)
        workers = (o.nodes + per_worker - 1) / per_worker < 2 ? 2 : (o.nodes + per_worker - 1) / per_worker;
    if ((o.nodes + workers - 1) / workers > per_worker)
        die("%u workers cannot hold %u agents within %llu file descriptors each", workers, o.nodes,
            (unsigned long long)fds);
    if (workers > o.nodes)
        workers = o.nodes;
    signal(SIGPIPE, SIG_IGN);

    char tmpl[] = "/tmp/bench_ingest.XXXXXX";
    const char *dir = o.keep;
    if (dir)
        mkdir(dir, 0700);
    else if (!(dir = mkdtemp(tmpl)))
        die("mkdtemp: %s", strerror(errno));
    char keys[PATH_MAX], agents_dir[PATH_MAX + 8], db[PATH_MAX], admin[PATH_MAX + 8], log_path[PATH_MAX];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(agents_dir, sizeof agents_dir, "%s/keys/agents", dir);
    snprintf(db, sizeof db, "%s/fleet.db", dir);
    snprintf(admin, sizeof admin, "ipc://%s/admin.sock", dir);
    snprintf(log_path, sizeof log_path, "%s/pcifleetd.log", dir);
    if (o.reuse && !o.keep)
        die("--reuse wants --keep DIR");
    if (!o.reuse && access(db, F_OK) == 0)
        die("%s already holds a database; --keep wants a new directory (or --reuse)", dir);
    int ack_fd = -1;
    if (o.ack_log && (ack_fd = open(o.ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
        die("cannot open %s: %s", o.ack_log, strerror(errno));
    char *err = NULL;
    char *ckey = xasprintf("%s/controller.key", keys);
    if (access(ckey, R_OK) != 0 && keys_generate(keys, "controller", &err) != 0)
        die("controller key: %s", err);
    char server_pub[KEY_Z85_LEN + 1];
    if (keys_load_public(ckey, server_pub, &err) != 0)
        die("controller key: %s", err);
    free(ckey);
    mkdir(agents_dir, 0700);

    /* Agents: a key pair each, the public half accepted before the
     * controller starts (as `pcifleet keys accept` would leave it). */
    fprintf(stderr, "preparing %u agents of %u devices in %u workers in %s\n", o.nodes, o.devices, workers, dir);
    agent_t *ag = xcalloc(o.nodes, sizeof *ag);
    char (*pub)[KEY_Z85_LEN + 1] = xcalloc(o.nodes, sizeof *pub);
    char (*sec)[KEY_Z85_LEN + 1] = xcalloc(o.nodes, sizeof *sec);
    for (unsigned i = 0; i < o.nodes; i++) {
        snprintf(ag[i].node, sizeof ag[i].node, "node%05u", i);
        if (zmq_curve_keypair(pub[i], sec[i]) != 0)
            die("zmq_curve_keypair: %s", zmq_strerror(errno));
        char *path = xasprintf("%s/%s.key", agents_dir, ag[i].node);
        uint8_t pb[32], sb[32];
        zmq_z85_decode(pb, pub[i]);
        zmq_z85_decode(sb, sec[i]);
        zcert_t *cert = zcert_new_from(pb, sb);
        if (!cert || zcert_save_public(cert, path) != 0)
            die("cannot write %s", path);
        zcert_destroy(&cert);
        free(path);
    }
    /* the size of one report, as the workers will send it */
    {
        ib_t *b = bench_make_node(0, o.devices);
        Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
        env.body_case = PCIFLEET__ENVELOPE__BODY_INVENTORY;
        env.inventory = &b->inv;
        uint8_t *f;
        ib_set_hash(b, 1);
        agent_t tmp = {.seq = 1};
        snprintf(tmp.node, sizeof tmp.node, "node00000");
        o.report_bytes = encode_env(&tmp, &env, &f);
        free(f);
        ib_free(&b);
    }

    char listen[64];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%u", free_port());
    /* --offline-after: connecting 10,000 agents takes longer than the
     * default, and nodes flapping offline are not what is measured here */
    char *dargv[] = {o.pcifleetd, "--db", db, "--listen", listen, "--admin", admin, "--keys", keys,
                     "--log-level", "warn", "--offline-after", "3600", NULL};
    pid_t dpid = spawn(dargv, log_path);
    controller_pid = dpid;
    printf("controller: pid %d\n", (int)dpid);
    fflush(stdout);
    double t_wait = now_s();
    while (status_field(&o, admin, "accepted_keys") < (long long)o.nodes) {
        int st;
        if (waitpid(dpid, &st, WNOHANG) == dpid)
            die("pcifleetd exited; see %s", log_path);
        if (now_s() - t_wait > 60)
            die("pcifleetd did not answer with %u accepted keys (or more, with --reuse) within 60 s; see %s",
                o.nodes, log_path);
        usleep(50 * 1000);
    }

    worker_t *wk = xcalloc(workers, sizeof *wk);
    for (unsigned k = 0; k < workers; k++) {
        unsigned first = (unsigned)((uint64_t)o.nodes * k / workers);
        unsigned last = (unsigned)((uint64_t)o.nodes * (k + 1) / workers);
        int cp[2], dp[2];
        if (pipe(cp) != 0 || pipe(dp) != 0)
            die("pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(cp[1]);
            close(dp[0]);
            slice_t w = {.ag = ag + first, .n = last - first, .rounds = o.rounds, .devices = o.devices,
                         .log_path = log_path, .ack_fd = ack_fd};
            w.inv_frame = xcalloc(w.n, sizeof *w.inv_frame);
            w.inv_len = xcalloc(w.n, sizeof *w.inv_len);
            worker_main(&w, first, o.devices, listen, server_pub, pub, sec, cp[0], dp[1]);
            free(w.inv_frame);
            free(w.inv_len);
            _exit(0);
        }
        close(cp[0]);
        close(dp[1]);
        wk[k] = (worker_t){.pid = pid, .cmd = cp[1], .done = dp[0]};
    }
    free(pub);
    free(sec);
    /* each worker says 'k' once its frames are built and sockets connecting */
    for (unsigned k = 0; k < workers; k++) {
        char x;
        if (read(wk[k].done, &x, 1) != 1)
            die("worker %u failed to start", k);
    }

    /* 0. connections: CURVE handshake, ZAP, and the first Hello's answer */
    double t0 = now_s();
    command(wk, workers, 'H');
    double t0e = now_s();
    printf("connections: %u agents connected (CURVE + ZAP) and answered in %.2f s: %.0f hellos/s\n", o.nodes,
           t0e - t0, o.nodes / (t0e - t0));
    fflush(stdout);

    /* 1. full reports */
    double t1 = now_s();
    command(wk, workers, 'I');
    double t2 = now_s();
    printf("full reports: %u inventories of %u devices (%.1f KiB each), all acknowledged after %.2f s: "
           "%.0f reports/s\n",
           o.nodes, o.devices, o.report_bytes / 1024.0, t2 - t1, o.nodes / (t2 - t1));
    fflush(stdout);

    /* 2. unchanged heartbeats: sent by the workers, counted by the controller */
    long long base = status_field(&o, admin, "heartbeats");
    if (base < 0)
        die("no status from the controller");
    unsigned long long expect = (unsigned long long)base + (unsigned long long)o.rounds * o.nodes;
    double t3 = now_s();
    command(wk, workers, 'B');
    long long seen;
    while ((seen = status_field(&o, admin, "heartbeats")) < (long long)expect) {
        if (now_s() - t3 > 600)
            die("only %lld of %llu heartbeats counted after 600 s", seen - base, expect - base);
        usleep(2000);
    }
    double t4 = now_s();
    command(wk, workers, 'C');
    printf("heartbeats: %u rounds x %u nodes, all counted after %.2f s: %.0f heartbeats/s\n", o.rounds, o.nodes,
           t4 - t3, (double)o.rounds * o.nodes / (t4 - t3));
    fflush(stdout);

    /* 3. the operator's query */
    double *lat = xcalloc(o.queries, sizeof *lat);
    double *start = xcalloc(o.queries, sizeof *start);
    size_t out_bytes = 0;
    const char *qargs[] = {"nics", "--free", "--json", NULL};
    for (unsigned q = 0; q < o.queries; q++) {
        size_t n = 0;
        double s = now_s();
        int st = run_cli(&o, admin, qargs, NULL, &n, false);
        lat[q] = (now_s() - s) * 1000.0;
        start[q] = s;
        if (st != 0)
            die("pcifleet nics --free --json exited %d", st);
        if (q && n != out_bytes)
            die("pcifleet nics --free --json printed %zu bytes, then %zu: the fleet changed under the benchmark",
                out_bytes, n);
        out_bytes = n;
    }
    if (o.query_log) {
        FILE *f = fopen(o.query_log, "w");
        if (!f)
            die("cannot write %s: %s", o.query_log, strerror(errno));
        for (unsigned q = 0; q < o.queries; q++)
            fprintf(f, "%.3f %.3f\n", (start[q] - start[0]) * 1000.0, lat[q]);
        if (fclose(f) != 0)
            die("cannot write %s: %s", o.query_log, strerror(errno));
    }
    free(start);
    double first = lat[0];
    qsort(lat, o.queries, sizeof *lat, cmp_double);
    size_t p99 = (size_t)((o.queries - 1) * 0.99 + 0.5);
    printf("pcifleet nics --free --json: %u runs, %zu bytes of JSON each: p50 %.1f ms, p99 %.1f ms, max %.1f ms "
           "(the first, which built the answer: %.1f ms)\n",
           o.queries, out_bytes, lat[o.queries / 2], lat[p99], lat[o.queries - 1], first);
    free(lat);

    int st;
    for (unsigned k = 0; k < workers; k++) {
        if (write(wk[k].cmd, "Q", 1) != 1)
            fprintf(stderr, "worker %u is gone\n", k);
        close(wk[k].cmd);
        close(wk[k].done);
        waitpid(wk[k].pid, &st, 0);
    }
    free(wk);
    kill(dpid, SIGTERM);
    waitpid(dpid, &st, 0);
    free(ag);
    if (ack_fd >= 0)
        close(ack_fd);
    if (!o.keep) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
