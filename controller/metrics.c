/* metrics — see metrics.h. */
#include "metrics.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

http_status_t http_parse(const char *buf, size_t len, http_req_t *req)
{
    memset(req, 0, sizeof *req);
    size_t lim = len < METRICS_MAX_REQUEST ? len : METRICS_MAX_REQUEST;
    size_t end = 0;
    bool found = false;
    for (size_t i = 0; i + 3 < lim; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = i;
            found = true;
            break;
        }
    }
    /* the request line alone is already checkable: refuse garbage early */
    size_t line = 0;
    while (line < lim && buf[line] != '\r' && buf[line] != '\n')
        line++;
    size_t i = 0, m = 0;
    while (i < line && buf[i] >= 'A' && buf[i] <= 'Z' && m + 1 < sizeof req->method)
        req->method[m++] = buf[i++];
    if (i == line && line == lim && !found)
        return len >= METRICS_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
    if (m == 0 || i >= line || buf[i] != ' ') {
        req->why = "the request line must be METHOD SP PATH SP HTTP/1.x";
        return HTTP_BAD;
    }
    i++;
    if (i == line && line == lim && !found)
        return len >= METRICS_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
    if (i >= line || buf[i] != '/') {
        req->why = "the path must start with /";
        return HTTP_BAD;
    }
    size_t p = 0;
    bool query = false;
    while (i < line && buf[i] != ' ') {
        unsigned char c = (unsigned char)buf[i];
        if (c <= 0x20 || c >= 0x7f) {
            req->why = "the path has a control or non-ASCII byte";
            return HTTP_BAD;
        }
        if (c == '?')
            query = true;
        if (!query) {
            if (p + 1 >= sizeof req->path) {
                req->why = "the path is too long";
                return HTTP_BAD;
            }
            req->path[p++] = (char)c;
        }
        i++;
    }
    if (i >= line) {
        if (line == lim && !found)
            return len >= METRICS_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
        req->why = "the request line has no HTTP version";
        return HTTP_BAD;
    }
    i++;
    if (line - i < 8 && line == lim && !found && memcmp(buf + i, "HTTP/1.", line - i < 7 ? line - i : 7) == 0)
        return len >= METRICS_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
    if (line - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0 || buf[i + 7] < '0' || buf[i + 7] > '1') {
        req->why = "the version must be HTTP/1.0 or HTTP/1.1";
        return HTTP_BAD;
    }
    req->minor = buf[i + 7] - '0';
    if (line < lim && buf[line] != '\r') {
        req->why = "lines must end with CRLF";
        return HTTP_BAD;
    }
    if (!found)
        return len >= METRICS_MAX_REQUEST ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
    for (size_t k = line; k < end; k++) {
        unsigned char c = (unsigned char)buf[k];
        if (c == 0 || (c == '\n' && buf[k - 1] != '\r')) {
            req->why = "a header line is malformed";
            return HTTP_BAD;
        }
    }
    return HTTP_OK;
}

void metrics_escape_label(buf_t *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            buf_puts(out, "\\\\");
        else if (*s == '"')
            buf_puts(out, "\\\"");
        else if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *s);
    }
}

static void head(buf_t *o, const char *name, const char *type, const char *help)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Runs sql and writes one sample per row: the leading columns are the
 * label values for labels[], the last is the value. */
static int samples(buf_t *o, sqlite3 *db, const char *name, const char *const *labels, int nl, const char *sql,
                   char **err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        *err = xasprintf("%s: %s", name, sqlite3_errmsg(db));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        buf_puts(o, name);
        if (nl) {
            buf_putc(o, '{');
            for (int i = 0; i < nl; i++) {
                const char *v = (const char *)sqlite3_column_text(st, i);
                buf_printf(o, "%s%s=\"", i ? "," : "", labels[i]);
                metrics_escape_label(o, v ? v : "unknown");
                buf_putc(o, '"');
            }
            buf_putc(o, '}');
        }
        buf_printf(o, " %lld\n", (long long)sqlite3_column_int64(st, nl));
    }
    if (rc != SQLITE_DONE)
        *err = xasprintf("%s: %s", name, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static const char *const code_names[WIRE_ERROR_CODES] = {
    "unspecified", "malformed", "too_large", "unknown_message", "bad_version",
    "wrong_node", "key_not_accepted", "internal", "replayed"};

int metrics_render(buf_t *o, sqlite3 *db, const ingest_stats_t *st, const char *version, int64_t started,
                   char **err)
{
    static const char *const verdict[] = {"verdict"};
    static const char *const state[] = {"state"};
    static const char *const rstate[] = {"rollout", "state"};
    head(o, "pcifleet_build_info", "gauge", "Version of the running controller (always 1).");
    buf_puts(o, "pcifleet_build_info{version=\"");
    metrics_escape_label(o, version);
    buf_puts(o, "\"} 1\n");
    head(o, "pcifleet_process_start_time_seconds", "gauge", "Start time of the controller, unix seconds.");
    buf_printf(o, "pcifleet_process_start_time_seconds %lld\n", (long long)started);

    head(o, "pcifleet_nodes", "gauge", "Nodes by IOMMU verdict (unknown: no inventory yet).");
    if (samples(o, db, "pcifleet_nodes", verdict, 1,
                "SELECT coalesce(verdict, 'unknown'), count(*) FROM v_nodes GROUP BY 1 ORDER BY 1", err) < 0)
        return -1;
    head(o, "pcifleet_nodes_online", "gauge", "Nodes heard from within --offline-after.");
    if (samples(o, db, "pcifleet_nodes_online", NULL, 0, "SELECT count(*) FROM nodes WHERE online", err) < 0)
        return -1;
    head(o, "pcifleet_nodes_offline", "gauge", "Nodes not heard from within --offline-after.");
    if (samples(o, db, "pcifleet_nodes_offline", NULL, 0, "SELECT count(*) FROM nodes WHERE NOT online", err) < 0)
        return -1;
    head(o, "pcifleet_nics", "gauge",
         "NICs by state: free as in `pcifleet nics --free`, claimed/applying/applied from the claims, "
         "other for the rest.");
    if (samples(o, db, "pcifleet_nics", state, 1,
                "SELECT 'free', count(*) FROM v_nics WHERE free "
                "UNION ALL SELECT s, (SELECT count(*) FROM claims k JOIN nics c ON c.node = k.node "
                "AND c.address = k.address WHERE k.state = s) FROM (SELECT 'claimed' AS s UNION ALL "
                "SELECT 'applying' UNION ALL SELECT 'applied') "
                "UNION ALL SELECT 'other', count(*) FROM v_nics WHERE NOT free AND claimed_by IS NULL",
                err) < 0)
        return -1;
    head(o, "pcifleet_rollouts", "gauge", "Rollouts by state.");
    if (samples(o, db, "pcifleet_rollouts", state, 1,
                "SELECT state, count(*) FROM rollouts GROUP BY 1 ORDER BY 1", err) < 0)
        return -1;
    head(o, "pcifleet_rollout_nodes", "gauge",
         "Nodes of each active rollout and of the 10 most recent ones, by node state.");
    if (samples(o, db, "pcifleet_rollout_nodes", rstate, 2,
                "SELECT CAST(n.rollout AS TEXT), n.state, count(*) FROM rollout_nodes n WHERE n.rollout IN "
                "(SELECT id FROM rollouts WHERE state IN ('running', 'paused', 'halted') UNION "
                "SELECT id FROM (SELECT id FROM rollouts ORDER BY id DESC LIMIT 10)) "
                "GROUP BY n.rollout, n.state ORDER BY n.rollout, n.state",
                err) < 0)
        return -1;

    head(o, "pcifleet_ingest_frames_total", "counter", "Agent frames handled.");
    buf_printf(o, "pcifleet_ingest_frames_total %llu\n", (unsigned long long)st->frames);
    head(o, "pcifleet_ingest_inventories_total", "counter", "Inventories stored.");
    buf_printf(o, "pcifleet_ingest_inventories_total %llu\n", (unsigned long long)st->inventories);
    head(o, "pcifleet_ingest_heartbeats_total", "counter", "Hellos and heartbeats recorded.");
    buf_printf(o, "pcifleet_ingest_heartbeats_total %llu\n", (unsigned long long)st->heartbeats);
    head(o, "pcifleet_ingest_step_results_total", "counter", "Step results received from agents.");
    buf_printf(o, "pcifleet_ingest_step_results_total %llu\n", (unsigned long long)st->step_results);
    head(o, "pcifleet_ingest_refused_total", "counter", "Agent frames answered with an Error, by reason.");
    for (int i = 0; i < WIRE_ERROR_CODES; i++)
        buf_printf(o, "pcifleet_ingest_refused_total{reason=\"%s\"} %llu\n", code_names[i],
                   (unsigned long long)st->refused_by_code[i]);
    return 0;
}

int metrics_addr_parse(const char *s, bool allow_public, uint32_t *ip_be, uint16_t *port, char **err)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || !colon[1]) {
        *err = xasprintf("--metrics wants IP:PORT (e.g. 127.0.0.1:%d), not '%s'", METRICS_DEFAULT_PORT,
                         s ? s : "");
        return -1;
    }
    char *host = xstrndup(s, (size_t)(colon - s));
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 0 || p > 65535) {
        *err = xasprintf("--metrics: the port must be 0 to 65535, not '%s'", colon + 1);
        free(host);
        return -1;
    }
    struct in_addr a;
    if (strcmp(host, "localhost") == 0) {
        a.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, host, &a) != 1) {
        *err = xasprintf("--metrics: '%s' is not an IPv4 address", host);
        free(host);
        return -1;
    }
    if (!allow_public && (ntohl(a.s_addr) >> 24) != 127) {
        *err = xasprintf("--metrics: %s is not a loopback address; the metrics have no authentication, "
                         "add --metrics-public to serve them there anyway",
                         host);
        free(host);
        return -1;
    }
    free(host);
    *ip_be = a.s_addr;
    *port = (uint16_t)p;
    return 0;
}

/* ---- the server ---- */

typedef struct {
    int fd; /* -1: free slot */
    char in[METRICS_MAX_REQUEST];
    size_t n;
    char *out; /* response being written */
    size_t out_len, out_off;
    int64_t opened_ms;
} conn_t;

struct metrics {
    int lfd;
    uint16_t port;
    store_t *store;
    const ingest_t *ig;
    char *version;
    int64_t started;
    zloop_t *loop;
    int timer;
    conn_t conns[METRICS_MAX_CONNS];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(metrics_t *m, conn_t *c)
{
    if (c->fd < 0)
        return;
    if (m->loop) {
        zmq_pollitem_t it = {.socket = NULL, .fd = c->fd};
        zloop_poller_end(m->loop, &it);
    }
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->n = c->out_len = c->out_off = 0;
}

static int on_conn(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static void set_response(metrics_t *m, conn_t *c, int code, const char *reason, const char *type,
                         const char *body, size_t blen)
{
    (void)m;
    buf_t o = BUF_INIT;
    buf_printf(&o,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
               "%s\r\n",
               code, reason, type, blen, code == 405 ? "Allow: GET, HEAD\r\n" : "");
    buf_append(&o, body, blen);
    c->out_len = o.len;
    c->out = buf_steal(&o);
    c->out_off = 0;
}

static void respond(metrics_t *m, conn_t *c, http_status_t st, const http_req_t *req)
{
    static const char text[] = "text/plain; charset=utf-8";
    char *msg = NULL;
    if (st == HTTP_TOO_LARGE) {
        msg = xasprintf("request headers over %d bytes\n", METRICS_MAX_REQUEST);
        set_response(m, c, 431, "Request Header Fields Too Large", text, msg, strlen(msg));
    } else if (st == HTTP_BAD) {
        msg = xasprintf("bad request: %s\n", req->why ? req->why : "malformed");
        set_response(m, c, 400, "Bad Request", text, msg, strlen(msg));
    } else if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        msg = xasprintf("method %s not allowed: only GET and HEAD\n", req->method);
        set_response(m, c, 405, "Method Not Allowed", text, msg, strlen(msg));
    } else if (strcmp(req->path, "/metrics") == 0) {
        buf_t b = BUF_INIT;
        char *err = NULL;
        sqlite3 *db = store_reader(m->store, &err);
        if (!db) {
            free(err);
            err = NULL;
            db = store_db(m->store);
        }
        if (metrics_render(&b, db, ingest_stats(m->ig), m->version, m->started, &err) < 0) {
            msg = xasprintf("cannot read the database: %s\n", err ? err : "?");
            log_warn("metrics scrape failed: %s", err ? err : "?");
            set_response(m, c, 500, "Internal Server Error", text, msg, strlen(msg));
        } else {
            set_response(m, c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "",
                         strcmp(req->method, "HEAD") == 0 ? 0 : b.len);
        }
        free(err);
        buf_free(&b);
    } else if (strcmp(req->path, "/") == 0) {
        msg = xstrdup("pcifleetd: Prometheus metrics are at /metrics\n");
        set_response(m, c, 200, "OK", text, msg, strlen(msg));
    } else {
        msg = xasprintf("not found: %s (metrics are at /metrics)\n", req->path);
        set_response(m, c, 404, "Not Found", text, msg, strlen(msg));
    }
    free(msg);
}

/* Writes what the socket takes; closes when done or on error. */
static void flush_out(metrics_t *m, conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* the poller (POLLOUT) calls again */
        if (w <= 0) {
            conn_close(m, c);
            return;
        }
        c->out_off += (size_t)w;
    }
    shutdown(c->fd, SHUT_WR);
    conn_close(m, c);
}

static int on_conn(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    metrics_t *m = arg;
    conn_t *c = NULL;
    for (int i = 0; i < METRICS_MAX_CONNS; i++)
        if (m->conns[i].fd == item->fd)
            c = &m->conns[i];
    if (!c)
        return 0;
    if (c->out) {
        flush_out(m, c);
        return 0;
    }
    ssize_t r = recv(c->fd, c->in + c->n, sizeof c->in - c->n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (r <= 0) {
        conn_close(m, c);
        return 0;
    }
    c->n += (size_t)r;
    http_req_t req;
    http_status_t st = http_parse(c->in, c->n, &req);
    if (st == HTTP_INCOMPLETE && c->n == sizeof c->in)
        st = HTTP_TOO_LARGE;
    if (st == HTTP_INCOMPLETE)
        return 0;
    respond(m, c, st, &req);
    /* from now on wait for room to write, not for more input */
    zmq_pollitem_t it = {.socket = NULL, .fd = c->fd, .events = ZMQ_POLLIN};
    zloop_poller_end(loop, &it);
    it.events = ZMQ_POLLOUT;
    if (zloop_poller(loop, &it, on_conn, m) < 0) {
        conn_close(m, c);
        return 0;
    }
    flush_out(m, c);
    return 0;
}

static int on_accept(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)item;
    metrics_t *m = arg;
    for (int k = 0; k < METRICS_MAX_CONNS; k++) { /* bounded: at most a slot's worth per wakeup */
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return 0;
        conn_t *c = NULL;
        for (int i = 0; i < METRICS_MAX_CONNS && !c; i++)
            if (m->conns[i].fd < 0)
                c = &m->conns[i];
        if (!c) {
            log_debug("metrics: %d connections open, closing a new one", METRICS_MAX_CONNS);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->n = 0;
        c->opened_ms = mono_ms();
        zmq_pollitem_t it = {.socket = NULL, .fd = fd, .events = ZMQ_POLLIN};
        if (zloop_poller(loop, &it, on_conn, m) < 0)
            conn_close(m, c);
    }
    return 0;
}

static int on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    metrics_t *m = arg;
    int64_t now = mono_ms();
    for (int i = 0; i < METRICS_MAX_CONNS; i++)
        if (m->conns[i].fd >= 0 && now - m->conns[i].opened_ms > METRICS_READ_TIMEOUT_MS)
            conn_close(m, &m->conns[i]);
    return 0;
}

metrics_t *metrics_new(const char *addr, bool allow_public, store_t *store, const ingest_t *ig,
                       const char *version, int64_t started, char **err)
{
    uint32_t ip;
    uint16_t port;
    if (metrics_addr_parse(addr, allow_public, &ip, &port, err) < 0)
        return NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = xasprintf("metrics: socket: %s", strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        *err = xasprintf("metrics: cannot listen on %s: %s", addr, strerror(errno));
        close(fd);
        return NULL;
    }
    metrics_t *m = xcalloc(1, sizeof *m);
    m->lfd = fd;
    m->port = ntohs(sa.sin_port);
    m->store = store;
    m->ig = ig;
    m->version = xstrdup(version);
    m->started = started;
    m->timer = -1;
    for (int i = 0; i < METRICS_MAX_CONNS; i++)
        m->conns[i].fd = -1;
    return m;
}

int metrics_attach(metrics_t *m, zloop_t *loop)
{
    zmq_pollitem_t it = {.socket = NULL, .fd = m->lfd, .events = ZMQ_POLLIN};
    if (zloop_poller(loop, &it, on_accept, m) < 0)
        return -1;
    m->loop = loop;
    m->timer = zloop_timer(loop, 1000, 0, on_timeout, m);
    return m->timer < 0 ? -1 : 0;
}

uint16_t metrics_port(const metrics_t *m)
{
    return m->port;
}

void metrics_destroy(metrics_t **mp)
{
    metrics_t *m = *mp;
    if (!m)
        return;
    for (int i = 0; i < METRICS_MAX_CONNS; i++)
        conn_close(m, &m->conns[i]);
    if (m->loop) {
        zmq_pollitem_t it = {.socket = NULL, .fd = m->lfd};
        zloop_poller_end(m->loop, &it);
        if (m->timer >= 0)
            zloop_timer_end(m->loop, m->timer);
    }
    close(m->lfd);
    free(m->version);
    free(m);
    *mp = NULL;
}
