/* The agent daemon carrying out SetupStep envelopes (agent/daemon.c), seen
 * from a stand-in controller: a CURVE ROUTER socket in this test, with the
 * real pcifleet-agent (PCIFLEET_AGENT) run --simulate on a copy of
 * intel-grub-vtd-off.
 *
 * Proves: the steps of an IOMMU enablement (kernel arguments, modules, boot
 * refresh, initramfs, reboot, verify) each come back as a StepResult with
 * the step's id and the agent's node; a REBOOT is refused without
 * --allow-reboot; with it, the simulated boot happens, the agent goes
 * silent for the profile's boot_delay_ms and comes back with Hello carrying
 * a new boot id and a full Inventory; VERIFY then says ready; a repeated
 * step id is answered with the stored result and runs nothing — also after
 * the agent was stopped and started again (results in ROOT/var/lib/pcifleet);
 * with boot_fails in the profile the agent stays silent until the profile
 * is fixed, then boots the tree and comes back with a new boot id. */
#include "testutil.h"

#include "buf.h"
#include "keys.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *tmp, *root;
    zsock_t *router;
    int port;
    pid_t agent;
    zframe_t *peer; /* the agent's routing id */
    uint64_t seq;
} ctl_t;

static char *slurp(const char *dir, const char *rel)
{
    char *path = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f)
        return NULL;
    buf_t b = BUF_INIT;
    buf_reset(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b);
}

static void start_agent(ctl_t *c, bool allow_reboot)
{
    const char *agent = getenv("PCIFLEET_AGENT");
    assert_non_null(agent);
    char *ep = xasprintf("tcp://127.0.0.1:%d", c->port);
    char *ckey = xasprintf("%s/controller.key", c->tmp);
    char *akey = xasprintf("%s/n1.key_secret", c->tmp);
    char *log = xasprintf("%s/agent.log", c->tmp);
    char *conf = xasprintf("%s/agent.conf", c->tmp);
    tu_write(c->tmp, "agent.conf", "# empty: this host's /etc/pcifleet/agent.conf must not count\n");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl(agent, agent, "run", "--controller", ep, "--controller-key", ckey, "--key", akey, "--node", "n1",
              "--root", c->root, "--simulate", "--interval", "0.3", "--config", conf, "--log-level", "debug",
              allow_reboot ? "--allow-reboot" : NULL, NULL);
        _exit(127);
    }
    c->agent = pid;
    free(ep);
    free(ckey);
    free(akey);
    free(log);
    free(conf);
}

static void stop_agent(ctl_t *c)
{
    if (c->agent > 0) {
        kill(c->agent, SIGTERM);
        int st;
        waitpid(c->agent, &st, 0);
        c->agent = 0;
    }
    zframe_destroy(&c->peer);
}

/* The next envelope of the given body from the agent within ms, skipping
 * heartbeats and others; NULL on timeout. */
static Pcifleet__Envelope *expect(ctl_t *c, Pcifleet__Envelope__BodyCase want, int ms)
{
    int64_t until = zclock_mono() + ms;
    zpoller_t *p = zpoller_new(c->router, NULL);
    Pcifleet__Envelope *got = NULL;
    while (!got) {
        int64_t left = until - zclock_mono();
        if (left <= 0 || !zpoller_wait(p, (int)left))
            break;
        zmsg_t *m = zmsg_recv(c->router);
        if (!m)
            break;
        zframe_t *id = zmsg_pop(m);
        zframe_t *data = zmsg_pop(m);
        zframe_destroy(&c->peer);
        c->peer = id;
        Pcifleet__Envelope *env = NULL;
        char *err = NULL;
        if (data && wire_decode(zframe_data(data), zframe_size(data), WIRE_MAX_FRAME, &env, &err) == 0) {
            /* Answer like a controller, so the agent has no reason to say
             * Hello again on its own. */
            uint8_t *ack = NULL;
            size_t an = wire_encode_ack(env->seq, &ack);
            zmsg_t *r = zmsg_new();
            zmsg_append(r, &(zframe_t *){zframe_dup(id)});
            zmsg_addmem(r, ack, an);
            free(ack);
            zmsg_send(&r, c->router);
            if (env->body_case == want)
                got = env;
            else
                wire_free(&env);
        }
        free(err);
        zframe_destroy(&data);
        zmsg_destroy(&m);
    }
    zpoller_destroy(&p);
    return got;
}

static void send_step(ctl_t *c, const char *id, Pcifleet__SetupStep__Kind kind, char **add, size_t n_add)
{
    Pcifleet__SetupStep s = PCIFLEET__SETUP_STEP__INIT;
    s.step_id = (char *)id;
    s.kind = kind;
    s.add_args = add;
    s.n_add_args = n_add;
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    env.seq = ++c->seq;
    env.node = (char *)"controller";
    env.body_case = PCIFLEET__ENVELOPE__BODY_SETUP_STEP;
    env.setup_step = &s;
    uint8_t *buf = NULL;
    size_t n = wire_encode(&env, &buf);
    assert_non_null(c->peer);
    zmsg_t *m = zmsg_new();
    zmsg_append(m, &(zframe_t *){zframe_dup(c->peer)});
    zmsg_addmem(m, buf, n);
    free(buf);
    assert_int_equal(zmsg_send(&m, c->router), 0);
}

/* Sends a step and waits for its result; returns the envelope (wire_free). */
static Pcifleet__Envelope *step(ctl_t *c, const char *id, Pcifleet__SetupStep__Kind kind, char **add, size_t n_add)
{
    send_step(c, id, kind, add, n_add);
    Pcifleet__Envelope *e = expect(c, PCIFLEET__ENVELOPE__BODY_STEP_RESULT, 20000);
    assert_non_null(e);
    assert_string_equal(e->node, "n1");
    assert_string_equal(e->step_result->step_id, id);
    return e;
}

static int setup(void **state)
{
    ctl_t *c = xcalloc(1, sizeof(*c));
    c->tmp = tu_tmpdir();
    c->root = tu_fixture_copy("intel-grub-vtd-off");
    char *err = NULL;
    assert_int_equal(keys_generate(c->tmp, "controller", &err), 0);
    assert_int_equal(keys_generate(c->tmp, "n1", &err), 0);
    char *sec = xasprintf("%s/controller.key_secret", c->tmp);
    zcert_t *cert = keys_load_cert(sec, &err);
    free(sec);
    assert_non_null(cert);
    c->router = zsock_new(ZMQ_ROUTER);
    zcert_apply(cert, c->router);
    zcert_destroy(&cert);
    zsock_set_curve_server(c->router, 1);
    c->port = zsock_bind(c->router, "tcp://127.0.0.1:*");
    assert_true(c->port > 0);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctl_t *c = *state;
    stop_agent(c);
    zsock_destroy(&c->router);
    if (getenv("PCIFLEET_KEEP"))
        fprintf(stderr, "kept %s and %s\n", c->tmp, c->root);
    else {
        tu_rm_rf(c->tmp);
        tu_rm_rf(c->root);
    }
    free(c->tmp);
    free(c->root);
    free(c);
    return 0;
}

#define DONE PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE
#define K(x) PCIFLEET__SETUP_STEP__KIND__KIND_##x

static void test_rollout_steps(void **state)
{
    ctl_t *c = *state;
    tu_write(c->root, "sim-profile.conf", "boot_delay_ms = 800\n");
    start_agent(c, false);
    Pcifleet__Envelope *hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
    assert_non_null(hello);
    char *boot0 = xstrdup(hello->hello->boot_id);
    wire_free(&hello);

    /* Without --allow-reboot the reboot is refused and nothing boots. */
    Pcifleet__Envelope *e = step(c, "r-n1-0", K(REBOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED);
    wire_free(&e);
    char *id = slurp(c->root, "proc/sys/kernel/random/boot_id");
    assert_non_null(strstr(id, boot0));
    free(id);
    stop_agent(c);

    start_agent(c, true);
    hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
    assert_non_null(hello);
    wire_free(&hello);
    /* The refusal was kept across the restart: the same id gets it again. */
    e = step(c, "r-n1-0", K(REBOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED);
    wire_free(&e);

    char *add[] = {(char *)"intel_iommu=on"};
    e = step(c, "r-n1-1", K(SET_KERNEL_ARGS), add, 1);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    char *grub1 = slurp(c->root, "etc/default/grub");
    assert_non_null(strstr(grub1, "intel_iommu=on"));
    e = step(c, "r-n1-2", K(ENSURE_MODULES), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    e = step(c, "r-n1-3", K(REFRESH_BOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    e = step(c, "r-n1-4", K(REFRESH_INITRAMFS), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);

    e = step(c, "r-n1-5", K(REBOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    int64_t t0 = zclock_mono();
    for (;;) {
        hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
        assert_non_null(hello);
        if (strcmp(hello->hello->boot_id, boot0) != 0)
            break;
        wire_free(&hello); /* one sent before the reboot */
    }
    assert_true(zclock_mono() - t0 >= 700); /* silent for boot_delay_ms */
    char *boot1 = xstrdup(hello->hello->boot_id);
    wire_free(&hello);
    Pcifleet__Envelope *inv = expect(c, PCIFLEET__ENVELOPE__BODY_INVENTORY, 20000);
    assert_non_null(inv);
    wire_free(&inv);

    e = step(c, "r-n1-6", K(VERIFY), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    assert_string_equal(e->step_result->verdict, "ready");
    wire_free(&e);

    /* Repeats run nothing: the file stays, the boot id stays. */
    e = step(c, "r-n1-1", K(SET_KERNEL_ARGS), add, 1);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    stop_agent(c);
    start_agent(c, true);
    hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
    assert_non_null(hello);
    assert_string_equal(hello->hello->boot_id, boot1);
    wire_free(&hello);
    e = step(c, "r-n1-5", K(REBOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    /* No second boot: no new Hello within a second, same boot id on disk. */
    hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 1200);
    if (hello)
        assert_string_equal(hello->hello->boot_id, boot1);
    wire_free(&hello);
    id = slurp(c->root, "proc/sys/kernel/random/boot_id");
    assert_non_null(strstr(id, boot1));
    free(id);
    char *grub2 = slurp(c->root, "etc/default/grub");
    assert_string_equal(grub1, grub2);
    char *statef = xasprintf("%s/var/lib/pcifleet/steps.pb", c->root);
    assert_int_equal(access(statef, F_OK), 0);
    free(statef);
    free(grub1);
    free(grub2);
    free(boot0);
    free(boot1);
}

/* boot_fails: the node stays down (silent) until the profile is fixed,
 * then it boots and comes back by itself. */
static void test_boot_fails(void **state)
{
    ctl_t *c = *state;
    tu_write(c->root, "sim-profile.conf", "boot_fails = true\n");
    start_agent(c, true);
    Pcifleet__Envelope *hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
    assert_non_null(hello);
    char *boot0 = xstrdup(hello->hello->boot_id);
    wire_free(&hello);
    Pcifleet__Envelope *e = step(c, "f-n1-1", K(REBOOT), NULL, 0);
    assert_int_equal(e->step_result->outcome, DONE);
    wire_free(&e);
    /* Down: not a single message for a while. */
    Pcifleet__Envelope *any = expect(c, PCIFLEET__ENVELOPE__BODY_HEARTBEAT, 1500);
    assert_null(any);
    char *id = slurp(c->root, "proc/sys/kernel/random/boot_id");
    assert_non_null(strstr(id, boot0));
    free(id);
    tu_write(c->root, "sim-profile.conf", "# fixed\n");
    for (;;) {
        hello = expect(c, PCIFLEET__ENVELOPE__BODY_HELLO, 20000);
        assert_non_null(hello);
        if (strcmp(hello->hello->boot_id, boot0) != 0)
            break;
        wire_free(&hello);
    }
    wire_free(&hello);
    free(boot0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollout_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boot_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
