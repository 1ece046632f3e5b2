/* wire — one protobuf Envelope per ZeroMQ frame, checked before use.
 *
 * Contract: wire_decode never trusts its input: it refuses a frame over the
 * size limit, bytes that are not an Envelope, a protocol version it does not
 * speak and a body it does not know, each with an Error code (pcifleet.proto)
 * and a sentence naming what was wrong. On success the caller owns *out and
 * frees it with wire_free. wire_encode packs into a malloc'd buffer the
 * caller frees. Both take (buf, len) so the decoder is fuzzed directly. */
#ifndef PCIFLEET_WIRE_H
#define PCIFLEET_WIRE_H

#include "pcifleet.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default frame limit: a 4,096-function node's inventory fits well below. */
#define WIRE_MAX_FRAME (16u * 1024 * 1024)

/* Sanity limits the decoders enforce before protobuf-c allocates anything
 * (additions). A frame breaking one is refused: CODE_TOO_LARGE for the
 * counts and sizes, CODE_MALFORMED for the rest.
 *   WIRE_MAX_REPEATED  entries of one repeated field (devices, VMs, ...), and
 *                      unknown fields of one message
 *   WIRE_MAX_STRING    bytes of one string or bytes field (envelopes and admin
 *                      requests; an admin reply's body may fill the frame)
 *   WIRE_MAX_DEPTH     nesting of messages
 *   WIRE_MAX_DECODED   what the decoded message may occupy in memory
 *   WIRE_MAX_ADMIN_ARGS  argv entries of one admin request
 * Beyond the limits, a string must be UTF-8 without NUL bytes, a singular
 * field may appear once, a oneof may carry one member, and the hashes in
 * Hello, Heartbeat and Inventory are empty or WIRE_HASH_LEN bytes. */
#define WIRE_MAX_REPEATED 65536u
#define WIRE_MAX_STRING (64u * 1024)
#define WIRE_MAX_DEPTH 16
#define WIRE_MAX_DECODED (64u * 1024 * 1024)
#define WIRE_MAX_ADMIN_ARGS 256
#define WIRE_HASH_LEN 32
/* Error codes 0..WIRE_ERROR_CODES-1 exist (pcifleet.proto Error.Code). */
#define WIRE_ERROR_CODES 9
/* The largest seq an agent may use: the store keeps it in a signed column. */
#define WIRE_MAX_SEQ ((uint64_t)INT64_MAX)

/* Returns 0, or a Pcifleet__Error__Code (> 0) with *err set (caller frees).
 * max 0 means WIRE_MAX_FRAME. On failure *out is NULL. */
int wire_decode(const uint8_t *buf, size_t len, size_t max, Pcifleet__Envelope **out, char **err);
void wire_free(Pcifleet__Envelope **env);

/* Sets version; packs env. Returns the length; *out is malloc'd. */
size_t wire_encode(Pcifleet__Envelope *env, uint8_t **out);

/* Helpers to build the small messages; the returned buffer is malloc'd. */
size_t wire_encode_error(uint64_t seq, Pcifleet__Error__Code code, const char *message, uint8_t **out);
/* CODE_REPLAYED, naming the highest seq accepted from the node. */
size_t wire_encode_replayed(uint64_t seq, uint64_t accepted_seq, const char *message, uint8_t **out);
size_t wire_encode_ack(uint64_t seq, uint8_t **out);
size_t wire_encode_resend(const char *reason, uint8_t **out);

/* Same checks for the admin socket's request (free with wire_admin_request_free). */
int wire_decode_admin_request(const uint8_t *buf, size_t len, size_t max, Pcifleet__AdminRequest **out,
                              char **err);

/* ---- additions ---- */

void wire_admin_request_free(Pcifleet__AdminRequest **req);
/* Sets req->version and packs it; *out is malloc'd. */
size_t wire_encode_admin_request(Pcifleet__AdminRequest *req, uint8_t **out);
size_t wire_encode_admin_reply(const Pcifleet__AdminReply *reply, uint8_t **out);
/* Admin replies whose body is longer than WIRE_ADMIN_INLINE_MAX carry it in
 * chunk messages after the reply (pcifleet.proto AdminReply.body_chunks);
 * a chunk is at most WIRE_ADMIN_CHUNK bytes, a body at most
 * WIRE_ADMIN_MAX_BODY. */
#define WIRE_ADMIN_INLINE_MAX (256u * 1024)
#define WIRE_ADMIN_CHUNK (256u * 1024)
#define WIRE_ADMIN_MAX_BODY (512u * 1024 * 1024)
/* The length of the chunk that starts at body[off]: at most
 * WIRE_ADMIN_CHUNK bytes, ending on a UTF-8 character boundary. 0 at the
 * end. */
size_t wire_admin_chunk_len(const char *body, size_t len, size_t off);
/* The CLI's side: the same structural checks, but the body may be as long as
 * the frame (max, 0 = WIRE_MAX_FRAME); a reply announcing chunks must have
 * an empty body and a length the chunks can hold. Free with
 * wire_admin_reply_free. */
int wire_decode_admin_reply(const uint8_t *buf, size_t len, size_t max, Pcifleet__AdminReply **out, char **err);
void wire_admin_reply_free(Pcifleet__AdminReply **reply);

/* "malformed", "too-large", "unknown-message", "bad-version", "wrong-node",
 * "key-not-accepted", "internal" ("ok" for 0): for logs. Static strings. */
const char *wire_code_name(int code);
/* For tests: envelopes decode into an arena of cap bytes instead of what the
 * pre-scan counted, so the path where allocations spill over to malloc is
 * exercised. 0 restores the default. */
void wire_test_arena_cap(size_t cap);
/* "Hello", "Inventory", ... or "nothing": the body an envelope carries. */
const char *wire_body_name(const Pcifleet__Envelope *env);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
bool wire_utf8_valid(const char *s, size_t n);
/* UTF-8 without NUL bytes, in one pass. */
bool wire_text_valid(const char *s, size_t n);
/* A malloc'd copy of s fit for a protobuf string: bytes that are not UTF-8
 * become U+FFFD and the copy is cut (at a character boundary) to at most max
 * bytes. s NULL gives "". */
char *wire_text_dup(const char *s, size_t max);

#endif
