#include "ingest.h"

#include "buf.h"
#include "keyfp.h"
#include "log.h"
#include "strv.h"
#include "wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Log budget per key: refusals other than "key not accepted" are logged at
 * most this many times per window; an unknown key once per window. */
#define LOG_WINDOW_S 60
#define LOG_BURST 10
#define LOG_FORGET_S 120

typedef struct {
    int64_t window_start;
    unsigned logged;
    unsigned suppressed;
    int64_t pending_logged_at; /* last "key not accepted" line, 0 = never */
} limiter_t;

struct ingest {
    store_t *store;
    keystore_t *keys;
    size_t max_frame;
    zhashx_t *limits; /* key (Z85 or "-") -> limiter_t */
    ingest_stats_t stats;
    ingest_step_fn on_step;
    void *step_arg;
};

void ingest_set_step_handler(ingest_t *ig, ingest_step_fn fn, void *arg)
{
    ig->on_step = fn;
    ig->step_arg = arg;
}

static void limiter_free(void **item)
{
    free(*item);
    *item = NULL;
}

ingest_t *ingest_new(store_t *store, keystore_t *keys, size_t max_frame)
{
    ingest_t *ig = xcalloc(1, sizeof *ig);
    ig->store = store;
    ig->keys = keys;
    ig->max_frame = max_frame ? max_frame : WIRE_MAX_FRAME;
    ig->limits = zhashx_new();
    zhashx_set_destructor(ig->limits, limiter_free);
    return ig;
}

void ingest_destroy(ingest_t **ig)
{
    if (!ig || !*ig)
        return;
    zhashx_destroy(&(*ig)->limits);
    free(*ig);
    *ig = NULL;
}

const ingest_stats_t *ingest_stats(const ingest_t *ig)
{
    return &ig->stats;
}

static limiter_t *limiter_for(ingest_t *ig, const char *key, int64_t now)
{
    const char *k = key && *key ? key : "-";
    limiter_t *l = zhashx_lookup(ig->limits, k);
    if (!l) {
        l = xcalloc(1, sizeof *l);
        l->window_start = now;
        zhashx_insert(ig->limits, k, l);
    }
    if (now - l->window_start >= LOG_WINDOW_S) {
        if (l->suppressed)
            log_warn("%u more refused frames from key %.8s… were not logged in the last minute", l->suppressed,
                     k);
        l->window_start = now;
        l->logged = 0;
        l->suppressed = 0;
    }
    return l;
}

void ingest_tick(ingest_t *ig, int64_t now)
{
    /* Collect first: zhashx must not change while it is walked. */
    strv_t old = STRV_INIT;
    for (limiter_t *l = zhashx_first(ig->limits); l; l = zhashx_next(ig->limits)) {
        int64_t last = l->window_start > l->pending_logged_at ? l->window_start : l->pending_logged_at;
        if (now - last >= LOG_FORGET_S && !l->suppressed)
            strv_add(&old, (const char *)zhashx_cursor(ig->limits));
    }
    for (size_t i = 0; i < old.n; i++)
        zhashx_delete(ig->limits, old.v[i]);
    strv_free(&old);
}

/* "PEER (key sha256:…, node N)" for log lines. */
static char *who(const char *key, const char *peer, const char *node)
{
    char fp[KEYFP_LEN + 1];
    if (key && *key)
        keyfp_of(key, fp);
    else
        snprintf(fp, sizeof fp, "none");
    if (node && *node)
        return xasprintf("%s (key %s, node %s)", peer && *peer ? peer : "?", fp, node);
    return xasprintf("%s (key %s)", peer && *peer ? peer : "?", fp);
}

/* Counts and logs a refusal (rate-limited per key). */
static void note_refusal(ingest_t *ig, const char *key, const char *peer, const char *node, int64_t now, int code,
                         const char *why)
{
    ig->stats.refused++;
    ig->stats.refused_by_code[code >= 0 && code < WIRE_ERROR_CODES ? code : 0]++;
    limiter_t *l = limiter_for(ig, key, now);
    if (l->logged < LOG_BURST) {
        l->logged++;
        char *w = who(key, peer, node);
        log_warn("refused a frame from %s: %s: %s", w, wire_code_name(code), why);
        free(w);
    } else {
        l->suppressed++;
    }
}

/* Logs a refusal and builds the Error reply. */
static size_t refuse(ingest_t *ig, const char *key, const char *peer, const char *node, int64_t now, uint64_t seq,
                     int code, const char *why, uint8_t **reply)
{
    note_refusal(ig, key, peer, node, now, code, why);
    return wire_encode_error(seq, (Pcifleet__Error__Code)code, why, reply);
}

/* The envelope's seq against the node's replay floor: returns 0 when it may
 * be handled, else the reply refusing it. A duplicate is refused as well as
 * a replay: the controller cannot tell them apart, and neither may be
 * applied twice (an old inventory would roll the node back). */
static int check_seq(ingest_t *ig, const Pcifleet__Envelope *env, const char *key, const char *peer, int64_t now,
                     size_t *n, uint8_t **reply)
{
    if (env->seq == 0 || env->seq > WIRE_MAX_SEQ) {
        char *why = xasprintf("seq %llu is outside 1..%llu", (unsigned long long)env->seq,
                              (unsigned long long)WIRE_MAX_SEQ);
        *n = refuse(ig, key, peer, env->node, now, env->seq, PCIFLEET__ERROR__CODE__CODE_MALFORMED, why, reply);
        free(why);
        return -1;
    }
    uint64_t floor = 0;
    char *err = NULL;
    if (store_seq_floor(ig->store, env->node, &floor, &err) < 0) {
        log_error("cannot read the replay floor of %s: %s", env->node, err ? err : "unknown error");
        free(err);
        *n = wire_encode_error(env->seq, PCIFLEET__ERROR__CODE__CODE_INTERNAL,
                               "the controller could not check this message; see its log", reply);
        return -1;
    }
    if (env->seq > floor)
        return 0;
    char *why = xasprintf("seq %llu is not above %llu, the last accepted from node %s: a replayed or "
                          "duplicated message",
                          (unsigned long long)env->seq, (unsigned long long)floor, env->node);
    note_refusal(ig, key, peer, env->node, now, PCIFLEET__ERROR__CODE__CODE_REPLAYED, why);
    *n = wire_encode_replayed(env->seq, floor, why, reply);
    free(why);
    return -1;
}

/* The key is not accepted: keep it as pending for the node it names. */
static size_t refuse_unknown_key(ingest_t *ig, const char *key, const char *peer, const char *node, int64_t now,
                                 uint64_t seq, uint8_t **reply)
{
    ig->stats.refused++;
    ig->stats.refused_by_code[PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED]++;
    char *why;
    bool recorded = false;
    if (!key || !*key) {
        why = xstrdup("the connection has no CURVE key; agents must connect with CURVE");
    } else if (!keys_valid_node_name(node)) {
        why = xasprintf("this key is not accepted and the message names no valid node (1-63 of A-Z a-z 0-9 . _ -)");
    } else {
        const char *pending = keystore_pending_key(ig->keys, node);
        if (!pending || strcmp(pending, key) != 0) {
            char *err = NULL;
            if (keystore_add_pending(ig->keys, node, key, &err) < 0) {
                log_error("cannot record the pending key of %s: %s", node, err ? err : "unknown error");
                free(err);
            } else {
                recorded = true;
            }
        }
        why = xasprintf("key for %s is pending: run `pcifleet keys accept %s` on the controller", node, node);
    }
    limiter_t *l = limiter_for(ig, key, now);
    if (recorded || l->pending_logged_at == 0 || now - l->pending_logged_at >= LOG_WINDOW_S) {
        l->pending_logged_at = now;
        char *w = who(key, peer, NULL);
        const char *accepted_key = keys_valid_node_name(node) ? keystore_key_for(ig->keys, node) : NULL;
        log_warn("refused %s: key not accepted: %s%s", w, why,
                 accepted_key ? " (this node already has a different accepted key: accepting replaces it)" : "");
        free(w);
    }
    size_t n = wire_encode_error(seq, PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED, why, reply);
    free(why);
    return n;
}

static size_t on_beat(ingest_t *ig, const Pcifleet__Envelope *env, const ProtobufCBinaryData *hash,
                      const char *boot_id, bool hello, const char *key, const char *peer, int64_t now,
                      uint8_t **reply)
{
    bool known = false, matches = false;
    char *err = NULL;
    if (store_heartbeat(ig->store, env->node, hash->data, hash->len, boot_id, now, &known, &matches, &err) < 0) {
        log_error("cannot record the heartbeat of %s: %s", env->node, err ? err : "unknown error");
        free(err);
        return wire_encode_error(env->seq, PCIFLEET__ERROR__CODE__CODE_INTERNAL,
                                 "the controller could not record this heartbeat; see its log", reply);
    }
    ig->stats.heartbeats++;
    if (hello) {
        char *w = who(key, peer, env->node);
        log_info("hello from %s: agent %s, boot %s, %s", w,
                 *env->hello->agent_version ? env->hello->agent_version : "?", *boot_id ? boot_id : "?",
                 !known ? "no inventory stored yet" : matches ? "inventory up to date" : "inventory changed");
        free(w);
    }
    if (!known)
        return wire_encode_resend("the controller has no inventory for this node", reply);
    if (!matches)
        return wire_encode_resend("the inventory hash differs from the stored one", reply);
    if (hello)
        return wire_encode_ack(env->seq, reply);
    return 0;
}

static size_t on_inventory(ingest_t *ig, const Pcifleet__Envelope *env, const char *key, const char *peer,
                           int64_t now, uint8_t **reply)
{
    char *err = NULL;
    if (store_ingest_inventory(ig->store, env->node, env->inventory, now, &err) < 0) {
        char *w = who(key, peer, env->node);
        log_error("cannot store the inventory from %s: %s", w, err ? err : "unknown error");
        free(w);
        free(err);
        return wire_encode_error(env->seq, PCIFLEET__ERROR__CODE__CODE_INTERNAL,
                                 "the controller could not store this inventory; see its log", reply);
    }
    ig->stats.inventories++;
    const Pcifleet__Inventory *inv = env->inventory;
    log_info("stored the inventory of %s: %zu devices, %zu groups, %zu NICs, %zu VMs, IOMMU %s", env->node,
             inv->n_devices, inv->n_groups, inv->n_nics, inv->n_vms,
             inv->iommu && *inv->iommu->verdict ? inv->iommu->verdict : "unknown");
    return wire_encode_ack(env->seq, reply);
}

size_t ingest_refuse_frames(ingest_t *ig, const char *key_z85, const char *peer, size_t nframes, int64_t now,
                            uint8_t **reply)
{
    ig->stats.frames++;
    char *why = xasprintf("a message must be exactly one frame, this one has %zu", nframes);
    size_t n = refuse(ig, key_z85 && *key_z85 ? key_z85 : NULL, peer, NULL, now, 0,
                      PCIFLEET__ERROR__CODE__CODE_MALFORMED, why, reply);
    free(why);
    return n;
}

size_t ingest_handle(ingest_t *ig, const char *key_z85, const char *peer, const uint8_t *buf, size_t len,
                     int64_t now, uint8_t **reply)
{
    *reply = NULL;
    ig->stats.frames++;
    const char *key = key_z85 && *key_z85 ? key_z85 : NULL;
    if (len > ig->max_frame) {
        char *why = xasprintf("frame of %zu bytes is over the controller's limit of %zu bytes", len, ig->max_frame);
        size_t n = refuse(ig, key, peer, NULL, now, 0, PCIFLEET__ERROR__CODE__CODE_TOO_LARGE, why, reply);
        free(why);
        return n;
    }
    Pcifleet__Envelope *env = NULL;
    char *err = NULL;
    int code = wire_decode(buf, len, ig->max_frame, &env, &err);
    if (code != 0) {
        size_t n = refuse(ig, key, peer, NULL, now, 0, code > 0 ? code : PCIFLEET__ERROR__CODE__CODE_MALFORMED,
                          err ? err : "not a valid envelope", reply);
        free(err);
        wire_free(&env);
        return n;
    }
    const char *node = env->node ? env->node : "";
    const char *owner = key ? keystore_node_for(ig->keys, key) : NULL;
    size_t n = 0;
    if (!owner) {
        n = refuse_unknown_key(ig, key, peer, node, now, env->seq, reply);
    } else if (strcmp(owner, node) != 0) {
        char *why = *node ? xasprintf("this key belongs to node %s, not %s", owner, node)
                          : xasprintf("the message names no node; this key belongs to node %s", owner);
        n = refuse(ig, key, peer, owner, now, env->seq, PCIFLEET__ERROR__CODE__CODE_WRONG_NODE, why, reply);
        free(why);
    } else if (check_seq(ig, env, key, peer, now, &n, reply) == 0) {
        switch (env->body_case) {
        case PCIFLEET__ENVELOPE__BODY_HELLO:
            n = on_beat(ig, env, &env->hello->inventory_hash, env->hello->boot_id ? env->hello->boot_id : "", true,
                        key, peer, now, reply);
            break;
        case PCIFLEET__ENVELOPE__BODY_HEARTBEAT:
            n = on_beat(ig, env, &env->heartbeat->inventory_hash,
                        env->heartbeat->boot_id ? env->heartbeat->boot_id : "", false, key, peer, now, reply);
            break;
        case PCIFLEET__ENVELOPE__BODY_INVENTORY:
            n = on_inventory(ig, env, key, peer, now, reply);
            break;
        case PCIFLEET__ENVELOPE__BODY_ACK:
            break; /* an agent acknowledging: nothing to do */
        case PCIFLEET__ENVELOPE__BODY_STEP_RESULT:
            ig->stats.step_results++;
            if (ig->on_step)
                ig->on_step(ig->step_arg, node, env->step_result, now);
            else
                log_info("node %s answered step %s, which nothing here waits for", node,
                         env->step_result->step_id ? env->step_result->step_id : "");
            break;
        case PCIFLEET__ENVELOPE__BODY_ERROR: {
            char *w = who(key, peer, node);
            log_warn("%s reports an error: %s (code %d, seq %llu)", w,
                     env->error->message ? env->error->message : "", (int)env->error->code,
                     (unsigned long long)env->error->seq);
            free(w);
            break;
        }
        default: {
            char *why = xasprintf("a controller does not take %s messages", wire_body_name(env));
            n = refuse(ig, key, peer, node, now, env->seq, PCIFLEET__ERROR__CODE__CODE_UNKNOWN_MESSAGE, why, reply);
            free(why);
            break;
        }
        }
        store_seq_accept(ig->store, node, env->seq);
    }
    wire_free(&env);
    return n;
}
