/* ingest — what the controller does with one frame from an agent.
 *
 * Contract: ingest_handle takes the bytes of one frame, the sender's CURVE
 * public key (the ZAP User-Id, Z85; NULL when the connection had none) and
 * the peer's address (for logs), and returns the reply to send back to that
 * peer, or nothing. It never trusts the frame: a frame over the size limit,
 * bytes the wire decoder refuses, a key that is not accepted, a message that
 * names another node than the key's, or a body a controller does not take
 * is answered with an Error (pcifleet.proto) and logged with the reason
 * (rate-limited per key, so a flood cannot drown the log); nothing is
 * stored for it. An unknown key that names a valid node is recorded as
 * pending for that node (keys.h) so the operator can accept it. An
 * accepted key's envelope must carry a seq above the last one accepted from
 * its node (store.h keeps that floor across restarts); one that does not is
 * refused as replayed (CODE_REPLAYED, naming the floor) and not applied.
 *
 * Accepted messages: Hello and Heartbeat record the heartbeat (store.h) and
 * ask for the full inventory (Resend) when the controller has none for the
 * node or the hash differs; Hello is otherwise acknowledged, a matching
 * Heartbeat costs no reply. Inventory replaces the node's inventory in one
 * transaction and is acknowledged (Ack names the envelope's seq). A
 * StepResult goes to the step handler, without a reply.
 *
 * The ingest_t borrows store and keystore; they must outlive it. */
#ifndef PCIFLEET_INGEST_H
#define PCIFLEET_INGEST_H

#include "keys.h"
#include "store.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ingest ingest_t;

typedef struct {
    uint64_t frames;     /* every frame handled */
    uint64_t inventories; /* inventories stored */
    uint64_t heartbeats; /* hellos and heartbeats recorded */
    uint64_t refused;    /* frames answered with an Error */
    uint64_t step_results; /* StepResults from agents */
    uint64_t refused_by_code[WIRE_ERROR_CODES]; /* refused, by Error code (pcifleet.proto Error.Code) */
} ingest_stats_t;

/* Where an accepted agent's StepResult goes (the node is the sender's, as
 * checked against its key); r is valid during the call only. Without a
 * handler a StepResult is logged and dropped. */
typedef void (*ingest_step_fn)(void *arg, const char *node, const Pcifleet__StepResult *r, int64_t now);
void ingest_set_step_handler(ingest_t *ig, ingest_step_fn fn, void *arg);

/* max_frame: the largest frame accepted (0 = WIRE_MAX_FRAME). */
ingest_t *ingest_new(store_t *store, keystore_t *keys, size_t max_frame);
void ingest_destroy(ingest_t **ig);

/* Returns the reply length and sets *reply (malloc'd, caller frees), or
 * returns 0 with *reply = NULL when nothing is to be sent. now: unix seconds. */
size_t ingest_handle(ingest_t *ig, const char *key_z85, const char *peer, const uint8_t *buf, size_t len,
                     int64_t now, uint8_t **reply);

/* For a message of nframes frames (agents send exactly one): logs the
 * refusal like any other and returns the MALFORMED Error to send back. */
size_t ingest_refuse_frames(ingest_t *ig, const char *key_z85, const char *peer, size_t nframes, int64_t now,
                            uint8_t **reply);

/* Once a second or so: forgets log rate-limit state older than two minutes. */
void ingest_tick(ingest_t *ig, int64_t now);

const ingest_stats_t *ingest_stats(const ingest_t *ig);

#endif
