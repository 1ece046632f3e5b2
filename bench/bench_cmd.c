/* bench_cmd — how long a command takes as a script runs it: a new process
 * each time (posix_spawn), its stdout a pipe read to the end in 64 KiB reads.
 *
 * Usage: bench_cmd RUNS COMMAND [ARG...]
 * Prints "n=RUNS p50=… p90=… p99=… max=…" in milliseconds, each run timed
 * from the spawn to the reap. Fails (exit 1) if a run does not exit 0; what
 * the command prints is read and dropped. Used for the standalone-controller
 * loops of docs/BENCHMARKS.md (`bench_cmd 300 pcifleet --admin EP nics
 * --free --json`). Nothing here is a test. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run: its time in ms, or -1 (said on stderr). */
static double run_once(char **argv)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "bench_cmd: pipe: %s\n", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    double t0 = now_ms();
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (e != 0) {
        close(p[0]);
        fprintf(stderr, "bench_cmd: cannot run %s: %s\n", argv[0], strerror(e));
        return -1;
    }
    static char chunk[65536];
    ssize_t r;
    while ((r = read(p[0], chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR))
        ;
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    double t = now_ms() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_cmd: %s did not exit 0\n", argv[0]);
        return -1;
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: bench_cmd RUNS COMMAND [ARG...]\n"
             "Runs COMMAND RUNS times, each a new process with stdout a pipe read to the end,\n"
             "and prints p50/p90/p99/max of the runs in ms.");
        return 0;
    }
    char *end = NULL;
    long n = argc >= 3 ? strtol(argv[1], &end, 10) : 0;
    if (argc < 3 || !end || *end || n < 1 || n > 1000000) {
        fputs("usage: bench_cmd RUNS COMMAND [ARG...] (RUNS from 1 to 1000000)\n", stderr);
        return 2;
    }
    double *t = calloc((size_t)n, sizeof *t);
    if (!t) {
        fputs("bench_cmd: out of memory\n", stderr);
        return 1;
    }
    for (long i = 0; i < n; i++)
        if ((t[i] = run_once(argv + 2)) < 0) {
            free(t);
            return 1;
        }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("n=%ld p50=%.2f p90=%.2f p99=%.2f max=%.2f\n", n, t[n / 2], t[(size_t)((n - 1) * 0.9 + 0.5)],
           t[(size_t)((n - 1) * 0.99 + 0.5)], t[n - 1]);
    free(t);
    return 0;
}
