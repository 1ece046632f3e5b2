/* runner — fork/exec with bounded output and time, or the simulator, or a
 * test's function (see runner.h). */
#include "runner.h"

#include "buf.h"
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct runner {
    runner_mode_t mode;
    unsigned timeout_ms;
    sim_t *sim;       /* SIMULATE */
    runner_fn fn;     /* CUSTOM */
    void *ctx;
};

int runner_new(runner_mode_t mode, const char *root, runner_t **out, char **err)
{
    *out = NULL;
    *err = NULL;
    runner_t *r = xcalloc(1, sizeof(*r));
    r->mode = mode;
    r->timeout_ms = RUNNER_DEFAULT_TIMEOUT_MS;
    if (mode == RUNNER_SIMULATE) {
        int rc = sim_new(root, &r->sim, err);
        if (rc < 0) {
            free(r);
            return rc;
        }
    } else if (mode != RUNNER_REAL) {
        free(r);
        *err = xstrdup("a custom runner is made with runner_new_custom");
        return -EINVAL;
    }
    *out = r;
    return 0;
}

runner_t *runner_new_custom(runner_fn fn, void *ctx)
{
    runner_t *r = xcalloc(1, sizeof(*r));
    r->mode = RUNNER_CUSTOM;
    r->timeout_ms = RUNNER_DEFAULT_TIMEOUT_MS;
    r->fn = fn;
    r->ctx = ctx;
    return r;
}

void runner_destroy(runner_t **r)
{
    if (!r || !*r)
        return;
    sim_destroy(&(*r)->sim);
    free(*r);
    *r = NULL;
}

runner_mode_t runner_mode(const runner_t *r)
{
    return r->mode;
}

const char *runner_mode_name(runner_mode_t m)
{
    switch (m) {
    case RUNNER_REAL: return "real";
    case RUNNER_SIMULATE: return "simulate";
    case RUNNER_CUSTOM: return "custom";
    }
    return "unknown";
}

void runner_set_timeout(runner_t *r, unsigned ms)
{
    r->timeout_ms = ms ? ms : RUNNER_DEFAULT_TIMEOUT_MS;
}

void runner_result_clear(runner_result_t *res)
{
    if (!res)
        return;
    free(res->output);
    *res = (runner_result_t)RUNNER_RESULT_INIT;
}

/* ---- REAL ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *const *argv, int out_fd)
{
    setpgid(0, 0); /* a group of its own, so a timeout kills what it started too */
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        if (null != STDIN_FILENO)
            close(null);
    }
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    if (out_fd > STDERR_FILENO)
        close(out_fd);
    /* The agent's sockets and files stay the agent's. */
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 4096;
    if (max > 65536)
        max = 65536;
    for (long fd = STDERR_FILENO + 1; fd < max; fd++)
        close((int)fd);
    /* The agent ignores or handles some signals; the command starts clean. */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], (char *const *)argv);
    int e = errno;
    const char *m1 = "cannot execute ";
    const char *m2 = ": ";
    const char *m3 = strerror(e);
    (void)!write(STDERR_FILENO, m1, strlen(m1));
    (void)!write(STDERR_FILENO, argv[0], strlen(argv[0]));
    (void)!write(STDERR_FILENO, m2, strlen(m2));
    (void)!write(STDERR_FILENO, m3, strlen(m3));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
}

static int run_real(runner_t *r, const char *const *argv, runner_result_t *res)
{
    buf_t out = BUF_INIT;
    buf_reset(&out);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        int e = errno;
        buf_printf(&out, "cannot run %s: pipe: %s\n", argv[0], strerror(e));
        res->status = 127;
        res->len = out.len;
        res->output = buf_steal(&out);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        buf_printf(&out, "cannot run %s: fork: %s\n", argv[0], strerror(e));
        res->status = 127;
        res->len = out.len;
        res->output = buf_steal(&out);
        return -e;
    }
    if (pid == 0)
        child_exec(argv, fds[1]);
    close(fds[1]);
    setpgid(pid, pid); /* also here: whichever runs first, the group exists before a kill */

    int64_t deadline = mono_ms() + r->timeout_ms;
    bool open_pipe = true, exited = false, timed_out = false;
    int wstatus = 0;
    char chunk[4096];
    while (!exited) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (open_pipe) {
            struct pollfd p = {fds[0], POLLIN, 0};
            int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
            if (n < 0 && errno != EINTR)
                open_pipe = false;
            if (n > 0) {
                ssize_t got = read(fds[0], chunk, sizeof(chunk));
                if (got > 0) {
                    size_t keep = out.len < RUNNER_OUTPUT_MAX ? RUNNER_OUTPUT_MAX - out.len : 0;
                    if ((size_t)got > keep)
                        res->truncated = true;
                    buf_append(&out, chunk, (size_t)got < keep ? (size_t)got : keep);
                } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                    open_pipe = false; /* every writer closed it: the command is (nearly) done */
                }
            }
        } else {
            /* The output is closed but the command may still run: wait in
             * small steps so the deadline holds. */
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        pid_t w = waitpid(pid, &wstatus, WNOHANG);
        if (w == pid)
            exited = true;
    }
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
    } else {
        /* Drain what the command wrote just before it exited (not what a
         * child it left behind keeps writing). */
        for (;;) {
            struct pollfd p = {fds[0], POLLIN, 0};
            if (!open_pipe || poll(&p, 1, 0) <= 0)
                break;
            ssize_t got = read(fds[0], chunk, sizeof(chunk));
            if (got <= 0)
                break;
            size_t keep = out.len < RUNNER_OUTPUT_MAX ? RUNNER_OUTPUT_MAX - out.len : 0;
            if ((size_t)got > keep)
                res->truncated = true;
            buf_append(&out, chunk, (size_t)got < keep ? (size_t)got : keep);
        }
    }
    close(fds[0]);

    if (timed_out) {
        res->status = RUNNER_STATUS_TIMEOUT;
        res->timed_out = true;
        buf_printf(&out, "%s(killed after %.1f s without finishing)\n",
                   out.len && out.p[out.len - 1] != '\n' ? "\n" : "", r->timeout_ms / 1000.0);
    } else if (WIFEXITED(wstatus)) {
        res->status = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        res->status = 128 + WTERMSIG(wstatus);
    } else {
        res->status = 127;
    }
    res->len = out.len;
    res->output = buf_steal(&out);
    return 0;
}

/* ---- all modes ---- */

int runner_run(runner_t *r, const char *const *argv, runner_result_t *res)
{
    runner_result_clear(res);
    if (!argv || !argv[0]) {
        res->status = 127;
        res->output = xstrdup("empty command\n");
        res->len = strlen(res->output);
        return -EINVAL;
    }
    int rc;
    switch (r->mode) {
    case RUNNER_REAL: rc = run_real(r, argv, res); break;
    case RUNNER_SIMULATE: rc = sim_run(r->sim, argv, res); break;
    default: rc = r->fn(r->ctx, argv, res); break;
    }
    if (!res->output) {
        res->output = xstrdup("");
        res->len = 0;
    }
    return rc;
}

static bool shell_safe(const char *s)
{
    if (!*s)
        return false;
    for (const char *c = s; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=/.,:@%", *c))
            return false;
    return true;
}

char *runner_command_line(const char *const *argv)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    for (size_t i = 0; argv && argv[i]; i++) {
        if (i)
            buf_putc(&b, ' ');
        if (shell_safe(argv[i])) {
            buf_puts(&b, argv[i]);
            continue;
        }
        buf_putc(&b, '\'');
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'')
                buf_puts(&b, "'\\''");
            else
                buf_putc(&b, *c);
        }
        buf_putc(&b, '\'');
    }
    return buf_steal(&b);
}
