/* bench_store — the controller's store alone, without sockets.
 *
 * Ingests --nodes inventories (the same servers bench_ingest sends) into a
 * new database through store.h in batches of --batch (pcifleetd's group
 * commit), then --rounds rounds of unchanged heartbeats, then times
 * --queries runs of the `nics --free --json` query (query.h). It separates
 * what SQLite and the store cost from what the transport costs; the figures
 * are in docs/BENCHMARKS.md.
 *
 * Usage: bench_store [--nodes N] [--devices D] [--batch B] [--rounds R]
 *                    [--queries Q] [--db FILE] */
#include "bench_fleet.h"
#include "query.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned num(const char *opt, const char *s, unsigned min, unsigned max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "bench_store: %s wants a whole number from %u to %u, not '%s'\n", opt, min, max, s);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    unsigned nodes = 10000, devices = 64, batch = 256, rounds = 5, queries = 50;
    const char *db = NULL;
    static const struct option lo[] = {{"nodes", 1, 0, 'n'},   {"devices", 1, 0, 'd'}, {"batch", 1, 0, 'b'},
                                       {"rounds", 1, 0, 'r'},  {"queries", 1, 0, 'q'}, {"db", 1, 0, 'f'},
                                       {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': nodes = num("--nodes", optarg, 1, 1000000); break;
        case 'd': devices = num("--devices", optarg, 8, IB_MAX); break;
        case 'b': batch = num("--batch", optarg, 1, 100000); break;
        case 'r': rounds = num("--rounds", optarg, 1, 1000); break;
        case 'q': queries = num("--queries", optarg, 1, 100000); break;
        case 'f': db = optarg; break;
        case 'h':
            puts("usage: bench_store [--nodes N] [--devices D] [--batch B] [--rounds R] [--queries Q] [--db FILE]\n"
                 "Stores N inventories of D functions in batches of B, R rounds of unchanged heartbeats,\n"
                 "then times Q runs of the nics --free --json query. --db names a new database file\n"
                 "(default: a temporary one, removed afterwards).");
            return 0;
        default: return 2;
        }
    }
    char tmpl[] = "/tmp/bench_store.XXXXXX";
    char path[64];
    if (!db) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/fleet.db", tmpl);
        db = path;
    } else if (access(db, F_OK) == 0) {
        fprintf(stderr, "bench_store: %s exists; give a new file\n", db);
        return 2;
    }
    store_t *s = NULL;
    char *err = NULL;
    if (store_open(db, &s, &err) < 0) {
        fprintf(stderr, "bench_store: %s\n", err);
        return 1;
    }
    /* build every inventory first: the agent's work is not measured */
    ib_t **inv = xcalloc(nodes, sizeof *inv);
    char (*name)[32] = xcalloc(nodes, sizeof *name);
    for (unsigned i = 0; i < nodes; i++) {
        inv[i] = bench_make_node(i, devices);
        ib_set_hash(inv[i], (uint8_t)(i * 7 + 1));
        inv[i]->hash[0] = (uint8_t)i, inv[i]->hash[1] = (uint8_t)(i >> 8), inv[i]->hash[2] = (uint8_t)(i >> 16);
        snprintf(name[i], sizeof name[i], "node%05u", i);
    }
    int64_t now = (int64_t)time(NULL);
    double t0 = now_s();
    for (unsigned i = 0; i < nodes; i += batch) {
        store_batch_begin(s);
        for (unsigned k = i; k < nodes && k < i + batch; k++)
            if (store_ingest_inventory(s, name[k], &inv[k]->inv, now, &err) < 0) {
                fprintf(stderr, "bench_store: %s\n", err);
                return 1;
            }
        if (store_batch_end(s, &err) < 0) {
            fprintf(stderr, "bench_store: %s\n", err);
            return 1;
        }
    }
    double t1 = now_s();
    printf("store: %u inventories of %u devices in batches of %u: %.2f s, %.0f reports/s\n", nodes, devices, batch,
           t1 - t0, nodes / (t1 - t0));
    for (unsigned r = 0; r < rounds; r++) {
        store_batch_begin(s);
        for (unsigned i = 0; i < nodes; i++) {
            bool known, match;
            if (store_heartbeat(s, name[i], inv[i]->hash, sizeof inv[i]->hash, inv[i]->inv.boot_id, now + 1 + r,
                                &known, &match, &err) < 0 ||
                !match) {
                fprintf(stderr, "bench_store: heartbeat of %s: %s\n", name[i], err ? err : "hash did not match");
                return 1;
            }
        }
        store_batch_end(s, &err);
    }
    double t2 = now_s();
    printf("store: %u unchanged heartbeats: %.2f s, %.0f heartbeats/s\n", rounds * nodes, t2 - t1,
           rounds * nodes / (t2 - t1));
    query_opts_t qo = {.sql_time_limit_ms = 2000, .sql_max_rows = 10000};
    double *lat = xcalloc(queries, sizeof *lat);
    size_t bytes = 0;
    for (unsigned q = 0; q < queries; q++) {
        char *args[] = {"nics", "--free", NULL};
        buf_t out = BUF_INIT;
        double a = now_s();
        if (query_run(s, &qo, 2, args, true, &out, &err) != 0) {
            fprintf(stderr, "bench_store: query: %s\n", err);
            return 1;
        }
        lat[q] = (now_s() - a) * 1000;
        bytes = out.len;
        buf_free(&out);
    }
    qsort(lat, queries, sizeof *lat, cmp_double);
    printf("query nics --free --json (in process): %zu bytes: p50 %.1f ms, p99 %.1f ms\n", bytes, lat[queries / 2],
           lat[(size_t)((queries - 1) * 0.99 + 0.5)]);
    free(lat);
    store_close(&s);
    for (unsigned i = 0; i < nodes; i++)
        ib_free(&inv[i]);
    free(inv);
    free(name);
    if (db == path) {
        unlink(path);
        char side[80];
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
        rmdir(tmpl);
    }
    return 0;
}
