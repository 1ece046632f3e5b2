/* admin — the controller's admin socket: AdminRequest in, AdminReply out.
 *
 * Contract: admin_handle takes one request frame (pcifleet.proto
 * AdminRequest, as sent by `pcifleet`) and returns the packed AdminReply.
 * `keys` (list accepted and pending keys with fingerprints), `keys accept
 * NODE` and `status` are answered here; every other command goes to
 * query_run (query.h). A request that is not an AdminRequest, or a command
 * used wrongly, gets status 2 and a sentence saying what was wrong; a
 * refused or failed command status 1. "--json" anywhere in argv means the
 * same as the request's json flag.
 *
 * The admin socket has no authentication of its own: who can open it is
 * the whole access control. admin_endpoint_check therefore admits only
 * ipc:// paths (the socket file is made mode 0600 in a directory made 0700)
 * and tcp:// on a loopback address; admin_bind prepares and binds such an
 * endpoint. */
#ifndef PCIFLEET_ADMIN_H
#define PCIFLEET_ADMIN_H

#include "ingest.h"
#include "keys.h"
#include "query.h"
#include "buf.h"
#include "store.h"

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

/* Borrowed pointers; they must outlive the calls. ingest may be NULL. */
typedef struct {
    store_t *store;
    keystore_t *keys;
    ingest_t *ingest;
    query_opts_t query;
    const char *listen;   /* for `status` */
    const char *version;  /* for `status` */
    int64_t started;      /* unix seconds, for `status` */
    int64_t offline_after;
    struct assign_ctx *assign; /* assign/release (assign.h); NULL: refused */
    struct rollout_ctx *rollout; /* rollout ... (rollout.h); NULL: refused */
    uint64_t shared_answers;     /* answers sent as a SharedAnswer, for `status` */
} admin_ctx_t;

/* Largest request the admin socket takes. */
#define ADMIN_MAX_REQUEST (1024u * 1024)

/* Returns the packed reply's length; *reply is malloc'd (caller frees). The
 * body is always inside the reply. */
size_t admin_handle(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply);
/* The same, but a body over WIRE_ADMIN_INLINE_MAX is left in *body (reset
 * first; empty otherwise) and the reply announces it (AdminReply
 * body_length, body_chunks): the caller sends it after the reply, one
 * message per wire_admin_chunk_len piece (wire.h). When that body is a kept
 * answer (query_run_kept), it is in *kept instead (a reference the caller
 * drops with blob_unref; NULL otherwise) and *body stays empty. A kept
 * answer in a memfd (blob_new_shared) asked for with can_share is named in
 * the reply (AdminReply.shared) and neither *kept nor *body is set. An answer
 * over WIRE_ADMIN_MAX_BODY is refused (status 1) with what to narrow. */
size_t admin_handle_chunked(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply,
                            buf_t *body, blob_t **kept, void *token, bool *deferred);
/* token: the caller's handle on the requester. When the command's answer
 * must wait (assign --apply: assign.h), *deferred is set, nothing is
 * returned, and the token is kept; the answer comes later from
 * assign_step_result/assign_expired and is packed with admin_pack_answer. */
/* Packs an answer (status, text in o, err for status != 0) the way
 * admin_handle_chunked does: o == body and long means chunks follow. */
size_t admin_pack_answer(int status, buf_t *o, const char *err, buf_t *body, uint8_t **reply);

/* 0 when ep is an acceptable admin endpoint, else -EINVAL with *err set
 * (caller frees). */
int admin_endpoint_check(const char *ep, char **err);

/* Checks ep, creates an ipc socket's directory (mode 0700) when missing,
 * refuses when another process already serves that socket, binds sock,
 * and makes the socket file mode 0600. 0 or negative errno, *err set. */
int admin_bind(zsock_t *sock, const char *ep, char **err);

#endif
