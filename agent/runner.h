/* runner — the one way the agent runs a command that changes the node.
 *
 * Contract: every effectful command (`qm`, and with issue 5 `update-grub`,
 * `proxmox-boot-tool refresh`, `update-initramfs`, `reboot`) goes through
 * runner_run and nowhere else, so one switch decides whether the node is
 * really touched. A runner has a mode:
 *  - RUNNER_REAL: fork and exec argv (argv[0] looked up in PATH), stdin from
 *    /dev/null, stdout and stderr together into one bounded buffer (at most
 *    RUNNER_OUTPUT_MAX bytes kept; the rest is read and dropped so the child
 *    never blocks on a full pipe), no other descriptor of the agent
 *    inherited. The child leads its own process group; when the timeout
 *    passes the whole group is killed (SIGKILL) and the result says so.
 *  - RUNNER_SIMULATE: argv goes to the node simulator (sim.h), which acts
 *    on the files under the runner's root and never executes anything.
 *  - RUNNER_CUSTOM: argv goes to a function the caller installs (tests:
 *    recording fakes, scripted failures).
 * argv is never a shell string and never passes through a shell.
 *
 * runner_run returns 0 when the command ran to an end (whatever its exit
 * status; res says how it went) and a negative errno when it could not be
 * started at all (fork or pipe failed); res is filled in both cases and its
 * output says what happened. Exit status: 0-255 as the command exited;
 * 128+N when signal N ended it; RUNNER_STATUS_TIMEOUT when the runner killed
 * it; 127 when argv[0] could not be executed. A runner is not thread-safe;
 * the agent runs one command at a time. */
#ifndef PCIFLEET_RUNNER_H
#define PCIFLEET_RUNNER_H

#include <stdbool.h>
#include <stddef.h>

/* Output kept per command: enough for any qm or update-grub message. */
#define RUNNER_OUTPUT_MAX (64u * 1024)
/* Default bound on a command's run time. */
#define RUNNER_DEFAULT_TIMEOUT_MS 60000u
#define RUNNER_STATUS_TIMEOUT (-2)

typedef enum {
    RUNNER_REAL,
    RUNNER_SIMULATE,
    RUNNER_CUSTOM,
} runner_mode_t;

typedef struct {
    int status;     /* see the contract above */
    char *output;   /* stdout and stderr as they came, NUL-terminated, never NULL after a run */
    size_t len;     /* bytes in output */
    bool truncated; /* more than RUNNER_OUTPUT_MAX bytes were written; the first ones are kept */
    bool timed_out; /* killed at the timeout: status is RUNNER_STATUS_TIMEOUT */
} runner_result_t;

#define RUNNER_RESULT_INIT {0, NULL, 0, false, false}

typedef struct runner runner_t;

/* A RUNNER_CUSTOM command: fills res (res->output may stay NULL: the runner
 * makes it ""), returns as runner_run does. */
typedef int (*runner_fn)(void *ctx, const char *const *argv, runner_result_t *res);

/* A runner in mode REAL or SIMULATE. root is the node's root prefix (NULL
 * or "" = "/"); SIMULATE refuses the live root (-EPERM, with *err saying
 * why: the simulator edits files under the root, and those would be the
 * host's own). Returns 0, or a negative errno with *err set (caller
 * frees). */
int runner_new(runner_mode_t mode, const char *root, runner_t **out, char **err);
/* A RUNNER_CUSTOM runner calling fn(ctx, ...); ctx is borrowed. */
runner_t *runner_new_custom(runner_fn fn, void *ctx);
void runner_destroy(runner_t **r);

runner_mode_t runner_mode(const runner_t *r);
const char *runner_mode_name(runner_mode_t m); /* "real" | "simulate" | "custom" */
/* Bound on each command's run time (REAL only; 0 = the default). */
void runner_set_timeout(runner_t *r, unsigned ms);

/* Runs argv (NULL-terminated, argv[0] not NULL). res must be
 * RUNNER_RESULT_INIT or cleared; the caller clears it afterwards. */
int runner_run(runner_t *r, const char *const *argv, runner_result_t *res);
void runner_result_clear(runner_result_t *res);

/* argv as one line a person can paste into a shell: words that need it are
 * single-quoted ("qm set 100 --hostpci0 '0000:02:00.0;0000:02:00.1'").
 * Caller frees. */
char *runner_command_line(const char *const *argv);

#endif
