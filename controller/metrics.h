/* metrics — Prometheus metrics of the controller over a small HTTP server.
 *
 * Contract: metrics_new binds a non-blocking TCP listener on ADDR:PORT
 * (IPv4; loopback only unless allow_public) and metrics_attach puts it in
 * the daemon's zloop. It never blocks that loop: every socket is
 * non-blocking, a request is at most METRICS_MAX_REQUEST bytes, at most
 * METRICS_MAX_CONNS connections are open (more are closed at once), one
 * that has not sent a whole request within METRICS_READ_TIMEOUT_MS is
 * closed, and every connection is closed after its one response.
 * GET /metrics answers the text exposition format 0.0.4; GET / a pointer;
 * anything else 400, 404 or 405 with a one-line body saying why.
 * Gauges are read from the store's read-only connection at scrape time;
 * counters come from ingest_stats. The store and ingest are borrowed and
 * must outlive the metrics_t.
 *
 * http_parse and metrics_render are exposed for tests and the fuzzer. */
#ifndef PCIFLEET_METRICS_H
#define PCIFLEET_METRICS_H

#include "buf.h"
#include "ingest.h"
#include "store.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_REQUEST 8192
#define METRICS_MAX_CONNS 16
#define METRICS_READ_TIMEOUT_MS 5000
#define METRICS_DEFAULT_PORT 9469

typedef enum {
    HTTP_INCOMPLETE = 0, /* no end of headers yet: read more */
    HTTP_OK = 1,         /* a whole request line and headers */
    HTTP_BAD = -1,       /* not an HTTP/1.x request: 400 */
    HTTP_TOO_LARGE = -2, /* no end of headers within METRICS_MAX_REQUEST: 431 */
} http_status_t;

typedef struct {
    char method[16];
    char path[256]; /* without the query string */
    int minor;      /* HTTP/1.minor */
    const char *why; /* for HTTP_BAD: what was wrong (static string) */
} http_req_t;

/* Parses the start of a request in buf[0..len). Does not need a NUL. */
http_status_t http_parse(const char *buf, size_t len, http_req_t *req);

/* Appends s as a Prometheus label value (without quotes): \ " and newline escaped. */
void metrics_escape_label(buf_t *out, const char *s);

/* The whole exposition for one scrape. Returns 0, or -1 with *err set when
 * the database could not be read (the caller answers 500). */
int metrics_render(buf_t *out, struct sqlite3 *db, const ingest_stats_t *st, const char *version,
                   int64_t started, char **err);

/* "IP:PORT" (IPv4 dotted quad, or "localhost"). Returns 0 or -1 with *err
 * naming what was wrong; a non-loopback IP is refused unless allow_public. */
int metrics_addr_parse(const char *s, bool allow_public, uint32_t *ip_be, uint16_t *port, char **err);

typedef struct metrics metrics_t;

metrics_t *metrics_new(const char *addr, bool allow_public, store_t *store, const ingest_t *ig,
                       const char *version, int64_t started, char **err);
/* Registers the listener and a timeout timer with loop. */
int metrics_attach(metrics_t *m, zloop_t *loop);
/* The port actually bound (useful with port 0). */
uint16_t metrics_port(const metrics_t *m);
/* Closes every socket and unregisters it from the loop it was attached to. */
void metrics_destroy(metrics_t **m);

#endif
