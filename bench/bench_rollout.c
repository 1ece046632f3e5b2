/* bench_rollout — what a rollout costs the controller per node.
 *
 * A fleet of --nodes servers (bench_fleet.h) whose IOMMU is off is rolled
 * out with --batch nodes at a time through controller/rollout.c and the
 * store, with agents that answer at once and reboot instantly: every step
 * sent is answered DONE on the spot, and a reboot is followed by the
 * node's new inventory (new boot id, verdict ready) going through
 * store_ingest_inventory, as pcifleetd would take it. Everything timed is
 * controller work: the ticks, the answers, the post-reboot inventories.
 * The figures go to docs/BENCHMARKS.md with the command.
 *
 * Usage: bench_rollout [--nodes N] [--batch B] */
#include "bench_fleet.h"
#include "rollout.h"
#include "store.h"
#include "wire.h"

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

typedef struct {
    char node[32];
    char step_id[96];
    int kind;
} sent_t;

typedef struct {
    sent_t *v;
    size_t n, cap;
    size_t steps;
} queue_t;

static int fake_send(void *arg, const char *node, const uint8_t *frame, size_t len)
{
    queue_t *q = arg;
    Pcifleet__Envelope *e = NULL;
    char *err = NULL;
    if (wire_decode(frame, len, 0, &e, &err) != 0) {
        fprintf(stderr, "bench_rollout: undecodable step: %s\n", err);
        exit(1);
    }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 256;
        q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
    }
    sent_t *s = &q->v[q->n++];
    snprintf(s->node, sizeof s->node, "%s", node);
    snprintf(s->step_id, sizeof s->step_id, "%s", e->setup_step->step_id);
    s->kind = (int)e->setup_step->kind;
    q->steps++;
    wire_free(&e);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned nodes = 1000, batch = 50;
    static const struct option lo[] = {{"nodes", 1, 0, 'n'}, {"batch", 1, 0, 'b'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': nodes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h':
            puts("usage: bench_rollout [--nodes N] [--batch B]\n"
                 "Rolls the IOMMU out over N nodes, B at a time, with agents that answer at once and\n"
                 "reboot instantly; prints the controller's time per node. Defaults: 1000 nodes, batch 50.");
            return 0;
        default: return 2;
        }
    }
    if (nodes < 1 || nodes > 100000 || batch < 1 || batch > nodes) {
        fprintf(stderr, "bench_rollout: --nodes 1-100000 and --batch 1-N\n");
        return 2;
    }
    char tmpl[] = "/tmp/bench_rollout.XXXXXX";
    if (!mkdtemp(tmpl))
        return 1;
    char *db = xasprintf("%s/fleet.db", tmpl);
    store_t *s = NULL;
    char *err = NULL;
    if (store_open(db, &s, &err) < 0) {
        fprintf(stderr, "bench_rollout: %s\n", err);
        return 1;
    }
    int64_t now = 1700000000;
    store_batch_begin(s);
    for (unsigned i = 0; i < nodes; i++) {
        char name[32];
        snprintf(name, sizeof name, "node%05u", i);
        ib_t *b = bench_make_node(i, 64);
        b->iommu.verdict = ib_str(b, "needs-kernel-args");
        b->inv.vms[0]->running = PCIFLEET__TRI__TRI_FALSE; /* no pinned VM running */
        if (store_ingest_inventory(s, name, &b->inv, now, &err) < 0) {
            fprintf(stderr, "bench_rollout: %s\n", err);
            return 1;
        }
        ib_free(&b);
    }
    store_batch_end(s, &err);

    queue_t q = {0};
    rollout_ctx_t *r = rollout_new(s, fake_send, &q);
    char *bs = xasprintf("%u", batch);
    char *args[] = {"rollout", "start", "iommu", "--all", "--batch", bs};
    buf_t out = BUF_INIT;
    double t0 = now_s(), ingest_s = 0;
    if (rollout_admin(r, 6, args, false, now, &out, &err) != 0) {
        fprintf(stderr, "bench_rollout: %s\n", err);
        return 1;
    }
    size_t done = 0, reboots = 0;
    for (size_t guard = 0; guard < (size_t)nodes * 20 + 100; guard++) {
        if (!q.n) {
            now++;
            rollout_tick(r, now);
            if (!q.n)
                break;
        }
        sent_t st = q.v[--q.n];
        Pcifleet__StepResult res = PCIFLEET__STEP_RESULT__INIT;
        res.step_id = st.step_id;
        res.outcome = PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE;
        res.detail = "ok";
        rollout_step_result(r, st.node, &res, now);
        if (st.kind == PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT) {
            /* the instant reboot: the node's new inventory */
            unsigned i = (unsigned)strtoul(st.node + 4, NULL, 10);
            ib_t *b = bench_make_node(i, 64);
            char boot[64];
            snprintf(boot, sizeof boot, "boot-after-%u", i);
            b->inv.boot_id = ib_str(b, boot);
            b->inv.vms[0]->running = PCIFLEET__TRI__TRI_FALSE;
            double a = now_s();
            store_ingest_inventory(s, st.node, &b->inv, now, &err);
            ingest_s += now_s() - a;
            ib_free(&b);
            reboots++; /* pcifleetd's next tick (once a second) sees the new boot id */
        } else if (st.kind == PCIFLEET__SETUP_STEP__KIND__KIND_VERIFY) {
            done++;
        }
    }
    double total = now_s() - t0;
    buf_reset(&out);
    char *sargv[] = {"rollout", "status"};
    rollout_admin(r, 2, sargv, true, now, &out, &err);
    bool ok = strstr(out.p, "\"state\":\"done\"") != NULL;
    printf("rollout of %u nodes, batch %u: %s; %zu steps sent, %zu reboots, %zu verified; %.2f s in all, "
           "%.2f ms of controller time per node (%.2f ms of it the post-reboot inventory)\n",
           nodes, batch, ok ? "done" : "NOT DONE", q.steps, reboots, done, total, total * 1000 / nodes,
           ingest_s * 1000 / nodes);
    buf_free(&out);
    free(bs);
    free(q.v);
    rollout_destroy(&r);
    store_close(&s);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpl);
    free(cmd);
    free(db);
    return ok ? 0 : 1;
}
