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

#include <stddef.h>
#include <stdint.h>

/* Default frame limit: a 4,096-function node's inventory fits well below. */
#define WIRE_MAX_FRAME (16u * 1024 * 1024)

/* Returns 0, or a Pcifleet__Error__Code (> 0) with *err set (caller frees). */
int wire_decode(const uint8_t *buf, size_t len, size_t max, Pcifleet__Envelope **out, char **err);
void wire_free(Pcifleet__Envelope **env);

/* Sets version; packs env. Returns the length; *out is malloc'd. */
size_t wire_encode(Pcifleet__Envelope *env, uint8_t **out);

/* Helpers to build the small messages; the returned buffer is malloc'd. */
size_t wire_encode_error(uint64_t seq, Pcifleet__Error__Code code, const char *message, uint8_t **out);
size_t wire_encode_ack(uint64_t seq, uint8_t **out);
size_t wire_encode_resend(const char *reason, uint8_t **out);

/* Same checks for the admin socket's request. */
int wire_decode_admin_request(const uint8_t *buf, size_t len, size_t max, Pcifleet__AdminRequest **out,
                              char **err);

#endif
