/* assign — `pcifleet assign` and `pcifleet release` on the admin socket.
 *
 * Contract: assign_run takes the command's words (argv[0] is "assign" or
 * "release") and answers like a query (status 0 done, 1 refused with a
 * sentence saying why and what to do instead, 2 bad usage). The claim
 * itself is claims.h. With --apply the answer waits for the node's agent:
 * the claim is stored as `applying`, a VmDeviceEdit step (pcifleet.proto)
 * goes to the agent through the send callback, and assign_run returns with
 * *deferred set, keeping the caller's token. When the agent's StepResult
 * comes (assign_step_result) or the deadline passes (assign_expired) the
 * pending request is finished: on DONE or UNCHANGED the claim becomes
 * `applied` with its hostpciN; otherwise, or without an answer in time, the
 * claim is rolled back (an assign) or kept (a release that could not edit
 * the VM), and the answer says why. Either way the token comes back to the
 * caller to send the answer to; assign_destroy gives every token still
 * pending to the token_free callback. */
#ifndef PCIFLEET_ASSIGN_H
#define PCIFLEET_ASSIGN_H

#include "buf.h"
#include "pcifleet.pb-c.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct assign_ctx assign_ctx_t;

/* Sends one packed Envelope to the agent of node: 0, or -1 when the node
 * has no connected agent. */
typedef int (*assign_send_fn)(void *arg, const char *node, const uint8_t *frame, size_t len);
typedef void (*assign_token_free_fn)(void *token);

/* send may be NULL: --apply is then refused. timeout_s: how long an --apply
 * waits for the agent. */
assign_ctx_t *assign_new(store_t *s, assign_send_fn send, void *arg, assign_token_free_fn token_free,
                         int timeout_s);
void assign_destroy(assign_ctx_t **a);

int assign_run(assign_ctx_t *a, int argc, char **argv, bool json, int64_t now, void *token, bool *deferred,
               buf_t *out, char **err);

/* A StepResult from node's agent. Returns the token of the request it
 * finishes (status, out and *err filled), or NULL when it answers nothing
 * pending (a late or repeated answer: logged, nothing else). */
void *assign_step_result(assign_ctx_t *a, const char *node, const Pcifleet__StepResult *r, int64_t now,
                         int *status, buf_t *out, char **err);
/* One pending request past its deadline, finished as failed; NULL when
 * none is due. Call until it returns NULL. */
void *assign_expired(assign_ctx_t *a, int64_t now, int *status, buf_t *out, char **err);
/* How many --apply requests wait for an agent. */
size_t assign_pending(const assign_ctx_t *a);

#endif
