/* wire — one protobuf Envelope per ZeroMQ frame, checked before use (see wire.h).
 *
 * Decoding happens in two passes. The first (scan_message) walks the
 * protobuf encoding itself, guided by the generated descriptors, without
 * allocating: it checks every tag, wire type and length, refuses a singular
 * field given twice or two members of one oneof, a string that is not UTF-8
 * or holds a NUL, a string or bytes field over the string limit, a repeated
 * field with more than WIRE_MAX_REPEATED entries and nesting deeper than
 * WIRE_MAX_DEPTH, and it adds up what protobuf-c would allocate for the
 * message. Only a frame that passes, and whose decoded form stays under
 * WIRE_MAX_DECODED, goes to protobuf_c_message_unpack. That way a 16 MiB
 * frame of two-byte empty submessages cannot make the controller allocate
 * gigabytes. The second pass is protobuf-c's own.
 *
 * An Envelope is unpacked into one block sized by the pre-scan (an arena):
 * an inventory is a thousand small strings and arrays, and one malloc and
 * one free instead of a thousand each is most of what decoding costs the
 * controller. Should protobuf-c ask for more than the scan counted, the
 * rest comes from malloc. wire_free finds the block through a small table
 * of the envelopes decoded and not yet freed. */
#include "wire.h"

#include "buf.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODE_MALFORMED PCIFLEET__ERROR__CODE__CODE_MALFORMED
#define CODE_TOO_LARGE PCIFLEET__ERROR__CODE__CODE_TOO_LARGE
#define CODE_UNKNOWN PCIFLEET__ERROR__CODE__CODE_UNKNOWN_MESSAGE
#define CODE_BAD_VERSION PCIFLEET__ERROR__CODE__CODE_BAD_VERSION
#define VERSION_CURRENT PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT

/* ---- UTF-8 ---- */

static inline bool utf8_scan(const char *str, size_t n, bool no_nul)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time: admin replies are megabytes of it.
         * With no byte >= 0x80 in w, a byte is zero exactly when
         * subtracting one from it borrows into its top bit. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            if (no_nul && ((w - UINT64_C(0x0101010101010101)) & UINT64_C(0x8080808080808080)))
                return false;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0 && no_nul)
                return false;
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            unsigned char cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

bool wire_utf8_valid(const char *s, size_t n)
{
    return utf8_scan(s, n, false);
}

bool wire_text_valid(const char *s, size_t n)
{
    return utf8_scan(s, n, true);
}

/* ---- the arena an Envelope is unpacked into ---- */

typedef struct {
    char *base;
    size_t cap, used;
    size_t spilled;    /* allocations that did not fit and came from malloc */
    const void *owner; /* the Envelope decoded into it */
} arena_t;

static void *arena_alloc(void *data, size_t n)
{
    arena_t *a = data;
    size_t al = alignof(max_align_t);
    size_t need = (n + al - 1) & ~(al - 1);
    if (need >= n && a->cap - a->used >= need) {
        void *p = a->base + a->used;
        a->used += need;
        return p;
    }
    a->spilled++;
    return malloc(n ? n : 1); /* the scan undercounted: protobuf-c copes with NULL */
}

static void arena_release(void *data, void *p)
{
    arena_t *a = data;
    if (p && ((char *)p < a->base || (char *)p >= a->base + a->cap))
        free(p);
}

static size_t arena_cap_override; /* tests: wire_test_arena_cap */

void wire_test_arena_cap(size_t cap) { arena_cap_override = cap; }

/* Envelopes decoded into an arena and not yet freed (few at a time: a
 * linear table is enough). */
static pthread_mutex_t arenas_lock = PTHREAD_MUTEX_INITIALIZER;
static arena_t **arenas;
static size_t n_arenas, arenas_cap;

static void arena_register(arena_t *a)
{
    pthread_mutex_lock(&arenas_lock);
    if (n_arenas == arenas_cap) {
        arenas_cap = arenas_cap ? arenas_cap * 2 : 8;
        arenas = xrealloc(arenas, arenas_cap * sizeof(*arenas));
    }
    arenas[n_arenas++] = a;
    pthread_mutex_unlock(&arenas_lock);
}

/* The arena env was decoded into, taken out of the table; NULL if none. */
static arena_t *arena_take(const void *env)
{
    arena_t *a = NULL;
    pthread_mutex_lock(&arenas_lock);
    for (size_t i = n_arenas; i-- > 0;) {
        if (arenas[i]->owner == env) {
            a = arenas[i];
            arenas[i] = arenas[--n_arenas];
            break;
        }
    }
    if (!n_arenas) { /* nothing live: give the table back */
        free(arenas);
        arenas = NULL;
        arenas_cap = 0;
    }
    pthread_mutex_unlock(&arenas_lock);
    return a;
}

/* ---- the pre-scan ---- */

typedef struct {
    size_t max_string;  /* longest string/bytes field */
    size_t decoded;     /* what protobuf-c would allocate, so far */
    int code;           /* set on refusal */
    char *err;          /* set on refusal (malloc'd) */
    bool version_seen;  /* top-level field 1 as a varint (Envelope/AdminRequest version) */
    uint64_t version;
    uint32_t first_unknown; /* first unknown field number at the top level, 0 if none */
} scan_t;

static int refuse(scan_t *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int refuse(scan_t *s, int code, const char *fmt, ...)
{
    if (!s->err) {
        va_list ap;
        va_start(ap, fmt);
        buf_t b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        s->err = buf_steal(&b);
        s->code = code;
    }
    return -1;
}

/* Reads a varint of at most 10 bytes. Returns the bytes used, 0 when the
 * input ends inside it or it is longer than 10 bytes. */
static size_t read_varint(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

static bool is_varint_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL:
    case PROTOBUF_C_TYPE_ENUM: return true;
    default: return false;
    }
}

static int wire_type_of(ProtobufCType t)
{
    if (is_varint_type(t))
        return 0;
    switch (t) {
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 5;
    default: return 2; /* string, bytes, message */
    }
}

static int charge(scan_t *s, size_t bytes)
{
    if (bytes > WIRE_MAX_DECODED || s->decoded + bytes > WIRE_MAX_DECODED)
        return refuse(s, CODE_TOO_LARGE, "decoding the frame would take more than %u MiB of memory",
                      WIRE_MAX_DECODED / (1024 * 1024));
    s->decoded += bytes;
    return 0;
}

/* Number of elements in a packed repeated scalar field, or -1 when the
 * payload does not divide into whole elements. */
static long packed_count(ProtobufCType t, const uint8_t *p, size_t n)
{
    int wt = wire_type_of(t);
    if (wt == 1)
        return n % 8 ? -1 : (long)(n / 8);
    if (wt == 5)
        return n % 4 ? -1 : (long)(n / 4);
    long count = 0;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        run++;
        if (!(p[i] & 0x80)) {
            count++;
            run = 0;
        } else if (run >= 10) {
            return -1;
        }
    }
    return run ? -1 : count;
}

static int scan_message(scan_t *s, const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n,
                        unsigned depth)
{
    if (depth > WIRE_MAX_DEPTH)
        return refuse(s, CODE_MALFORMED, "messages are nested more than %d deep", WIRE_MAX_DEPTH);
    if (charge(s, desc->sizeof_message) < 0)
        return -1;
    uint32_t stack_counts[32];
    uint32_t *counts = desc->n_fields <= 32 ? stack_counts : xcalloc(desc->n_fields, sizeof(*counts));
    memset(counts, 0, (desc->n_fields <= 32 ? 32 : desc->n_fields) * sizeof(*counts));
    uint32_t unknown = 0;
    int rc = 0;
    size_t pos = 0;
    while (pos < n) {
        uint64_t tag;
        size_t used = read_varint(p + pos, n - pos, &tag);
        if (!used || tag > UINT32_MAX) {
            rc = refuse(s, CODE_MALFORMED, "%s holds a field tag that is cut off or too long", desc->short_name);
            break;
        }
        pos += used;
        uint32_t number = (uint32_t)(tag >> 3);
        int wt = (int)(tag & 7);
        if (number == 0) {
            rc = refuse(s, CODE_MALFORMED, "%s holds a field numbered 0", desc->short_name);
            break;
        }
        /* The field's payload: [pos, pos + plen), of wire type wt. */
        uint64_t value = 0;
        size_t plen = 0;
        const uint8_t *payload = p + pos;
        switch (wt) {
        case 0:
            used = read_varint(p + pos, n - pos, &value);
            if (!used) {
                rc = refuse(s, CODE_MALFORMED, "%s field %u holds a number that is cut off", desc->short_name,
                            number);
                goto out;
            }
            pos += used;
            break;
        case 1:
        case 5:
            plen = wt == 1 ? 8 : 4;
            if (n - pos < plen) {
                rc = refuse(s, CODE_MALFORMED, "%s field %u is cut off", desc->short_name, number);
                goto out;
            }
            pos += plen;
            break;
        case 2: {
            uint64_t l;
            used = read_varint(p + pos, n - pos, &l);
            if (!used || l > n - pos - used) {
                rc = refuse(s, CODE_MALFORMED, "%s field %u claims more bytes than the frame holds",
                            desc->short_name, number);
                goto out;
            }
            pos += used;
            payload = p + pos;
            plen = (size_t)l;
            pos += plen;
            break;
        }
        default:
            rc = refuse(s, CODE_MALFORMED, "%s field %u has wire type %d, which this protocol does not use",
                        desc->short_name, number, wt);
            goto out;
        }

        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, number);
        if (!f) {
            if (depth == 0 && !s->first_unknown)
                s->first_unknown = number;
            if (++unknown > WIRE_MAX_REPEATED) {
                rc = refuse(s, CODE_TOO_LARGE, "%s holds more than %u unknown fields", desc->short_name,
                            WIRE_MAX_REPEATED);
                goto out;
            }
            if (plen > s->max_string) {
                rc = refuse(s, CODE_TOO_LARGE, "%s field %u is %zu bytes, over the limit of %zu bytes",
                            desc->short_name, number, plen, s->max_string);
                goto out;
            }
            if ((rc = charge(s, sizeof(ProtobufCMessageUnknownField) + plen)) < 0)
                goto out;
            continue;
        }
        size_t idx = (size_t)(f - desc->fields);
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        bool packed = repeated && wt == 2 && wire_type_of(f->type) != 2;
        if (!packed && wt != wire_type_of(f->type)) {
            rc = refuse(s, CODE_MALFORMED, "%s.%s has the wrong wire type (%d)", desc->short_name, f->name, wt);
            goto out;
        }
        if (depth == 0 && number == 1 && wt == 0) {
            s->version_seen = true;
            s->version = value;
        }
        if (!repeated) {
            if (counts[idx]) {
                rc = refuse(s, CODE_MALFORMED, "%s.%s appears twice; it holds one value", desc->short_name,
                            f->name);
                goto out;
            }
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                for (size_t k = 0; k < desc->n_fields; k++) {
                    const ProtobufCFieldDescriptor *o = &desc->fields[k];
                    if (k != idx && counts[k] && (o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                        o->quantifier_offset == f->quantifier_offset) {
                        rc = refuse(s, CODE_MALFORMED, "%s carries both %s and %s; it carries one of them",
                                    desc->short_name, o->name, f->name);
                        goto out;
                    }
                }
            }
        }
        long elems = 1;
        if (packed) {
            elems = packed_count(f->type, payload, plen);
            if (elems < 0) {
                rc = refuse(s, CODE_MALFORMED, "%s.%s holds a packed list that is cut off", desc->short_name,
                            f->name);
                goto out;
            }
        }
        if ((uint64_t)counts[idx] + (uint64_t)elems > WIRE_MAX_REPEATED) {
            rc = refuse(s, CODE_TOO_LARGE, "%s.%s has more than %u entries", desc->short_name, f->name,
                        WIRE_MAX_REPEATED);
            goto out;
        }
        counts[idx] += (uint32_t)elems;
        if (repeated && (rc = charge(s, (size_t)elems * 8)) < 0) /* the array slot: a pointer or a scalar of at most 8 bytes */
            goto out;

        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_BYTES:
            if (plen > s->max_string) {
                rc = refuse(s, CODE_TOO_LARGE, "%s.%s is %zu bytes, over the limit of %zu bytes", desc->short_name,
                            f->name, plen, s->max_string);
                goto out;
            }
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (memchr(payload, '\0', plen)) {
                    rc = refuse(s, CODE_MALFORMED, "%s.%s holds a NUL byte", desc->short_name, f->name);
                    goto out;
                }
                if (!wire_utf8_valid((const char *)payload, plen)) {
                    rc = refuse(s, CODE_MALFORMED, "%s.%s is not valid UTF-8", desc->short_name, f->name);
                    goto out;
                }
            }
            if ((rc = charge(s, plen + 1)) < 0)
                goto out;
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            if ((rc = scan_message(s, f->descriptor, payload, plen, depth + 1)) < 0)
                goto out;
            break;
        default:
            break;
        }
    }
out:
    if (counts != stack_counts)
        free(counts);
    return rc;
}

static void scan_init(scan_t *s, size_t max_string)
{
    memset(s, 0, sizeof(*s));
    s->max_string = max_string;
}

/* ---- envelopes ---- */

static const char *body_case_name(Pcifleet__Envelope__BodyCase c)
{
    switch (c) {
    case PCIFLEET__ENVELOPE__BODY_HELLO: return "Hello";
    case PCIFLEET__ENVELOPE__BODY_INVENTORY: return "Inventory";
    case PCIFLEET__ENVELOPE__BODY_HEARTBEAT: return "Heartbeat";
    case PCIFLEET__ENVELOPE__BODY_ACK: return "Ack";
    case PCIFLEET__ENVELOPE__BODY_ERROR: return "Error";
    case PCIFLEET__ENVELOPE__BODY_RESEND: return "Resend";
    default: return "nothing";
    }
}

const char *wire_body_name(const Pcifleet__Envelope *env)
{
    return env ? body_case_name(env->body_case) : "nothing";
}

const char *wire_code_name(int code)
{
    switch (code) {
    case 0: return "ok";
    case PCIFLEET__ERROR__CODE__CODE_MALFORMED: return "malformed";
    case PCIFLEET__ERROR__CODE__CODE_TOO_LARGE: return "too-large";
    case PCIFLEET__ERROR__CODE__CODE_UNKNOWN_MESSAGE: return "unknown-message";
    case PCIFLEET__ERROR__CODE__CODE_BAD_VERSION: return "bad-version";
    case PCIFLEET__ERROR__CODE__CODE_WRONG_NODE: return "wrong-node";
    case PCIFLEET__ERROR__CODE__CODE_KEY_NOT_ACCEPTED: return "key-not-accepted";
    case PCIFLEET__ERROR__CODE__CODE_INTERNAL: return "internal";
    case PCIFLEET__ERROR__CODE__CODE_REPLAYED: return "replayed";
    default: return "unspecified";
    }
}

static int hash_len_ok(const ProtobufCBinaryData *h)
{
    return h->len == 0 || h->len == WIRE_HASH_LEN;
}

/* Checks that need the decoded message: what protobuf cannot say. */
static int check_body(const Pcifleet__Envelope *env, char **err)
{
    const ProtobufCBinaryData *h = NULL;
    switch (env->body_case) {
    case PCIFLEET__ENVELOPE__BODY_HELLO: h = &env->hello->inventory_hash; break;
    case PCIFLEET__ENVELOPE__BODY_HEARTBEAT: h = &env->heartbeat->inventory_hash; break;
    case PCIFLEET__ENVELOPE__BODY_INVENTORY: h = &env->inventory->hash; break;
    default: break;
    }
    if (h && !hash_len_ok(h)) {
        *err = xasprintf("the %s carries a %zu-byte inventory hash; a SHA-256 hash is %d bytes",
                         body_case_name(env->body_case), h->len, WIRE_HASH_LEN);
        return CODE_MALFORMED;
    }
    return 0;
}

static int version_refusal(uint64_t version, const char *what, char **err)
{
    if (version == 0)
        *err = xasprintf("the %s names no protocol version; this program speaks version %d", what,
                         VERSION_CURRENT);
    else
        *err = xasprintf("the %s speaks protocol version %llu; this program speaks version %d", what,
                         (unsigned long long)version, VERSION_CURRENT);
    return CODE_BAD_VERSION;
}

/* Size check and pre-scan shared by every decoder. Returns 0 or a code. */
static int precheck(const uint8_t *buf, size_t len, size_t max, size_t max_string,
                    const ProtobufCMessageDescriptor *desc, const char *what, scan_t *s, char **err)
{
    if (!max)
        max = WIRE_MAX_FRAME;
    if (len > max) {
        *err = xasprintf("the frame is %zu bytes, over the limit of %zu bytes", len, max);
        return CODE_TOO_LARGE;
    }
    if (!buf || len == 0) {
        *err = xasprintf("the frame is empty; a %s always carries at least its version", what);
        return CODE_MALFORMED;
    }
    scan_init(s, max_string);
    if (scan_message(s, desc, buf, len, 0) < 0) {
        /* A peer speaking another version may well use another layout: say so
         * rather than "malformed" when the version field could be read. */
        if (s->code == CODE_MALFORMED && s->version_seen && s->version != VERSION_CURRENT) {
            free(s->err);
            return version_refusal(s->version, what, err);
        }
        *err = s->err;
        return s->code;
    }
    return 0;
}

int wire_decode(const uint8_t *buf, size_t len, size_t max, Pcifleet__Envelope **out, char **err)
{
    *out = NULL;
    *err = NULL;
    scan_t s;
    int code = precheck(buf, len, max, WIRE_MAX_STRING, &pcifleet__envelope__descriptor, "envelope", &s, err);
    if (code)
        return code;
    arena_t *a = xmalloc(sizeof(*a));
    /* what the scan counted, plus room for protobuf-c's rounding */
    a->cap = arena_cap_override ? arena_cap_override : s.decoded + s.decoded / 8 + 256;
    a->base = xmalloc(a->cap);
    a->used = a->spilled = 0;
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_release, .allocator_data = a};
    Pcifleet__Envelope *env = pcifleet__envelope__unpack(&alloc, len, buf);
    if (!env) {
        free(a->base);
        free(a);
        *err = xstrdup("the frame is not a valid pcifleet envelope (protobuf decoding failed)");
        return CODE_MALFORMED;
    }
    a->owner = env;
    arena_register(a);
    if (env->version != VERSION_CURRENT) {
        code = version_refusal(env->version, "envelope", err);
        wire_free(&env);
        return code;
    }
    if (env->body_case == PCIFLEET__ENVELOPE__BODY__NOT_SET) {
        if (s.first_unknown)
            *err = xasprintf("the envelope carries a message this program does not know (field %u)",
                             s.first_unknown);
        else
            *err = xstrdup("the envelope carries no message");
        wire_free(&env);
        return CODE_UNKNOWN;
    }
    if ((code = check_body(env, err)) != 0) {
        wire_free(&env);
        return code;
    }
    *out = env;
    return 0;
}

void wire_free(Pcifleet__Envelope **env)
{
    if (!env || !*env)
        return;
    arena_t *a = arena_take(*env);
    if (a) {
        /* the block goes at once; the message is walked only to free what
         * came from malloc, if anything did */
        if (a->spilled) {
            ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_release, .allocator_data = a};
            pcifleet__envelope__free_unpacked(*env, &alloc);
        }
        free(a->base);
        free(a);
    } else {
        pcifleet__envelope__free_unpacked(*env, NULL);
    }
    *env = NULL;
}

static size_t pack_message(const ProtobufCMessage *m, uint8_t **out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = xmalloc(n ? n : 1);
    size_t w = protobuf_c_message_pack(m, *out);
    if (w != n)
        abort(); /* protobuf-c packs exactly what it measured */
    return n;
}

size_t wire_encode(Pcifleet__Envelope *env, uint8_t **out)
{
    env->version = VERSION_CURRENT;
    return pack_message(&env->base, out);
}

static size_t encode_error(uint64_t seq, Pcifleet__Error__Code code, uint64_t accepted_seq, const char *message,
                           uint8_t **out)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Error e = PCIFLEET__ERROR__INIT;
    e.code = code;
    e.seq = seq;
    e.accepted_seq = accepted_seq;
    /* Keep the reply decodable by the peer: cut an overlong sentence and
     * replace anything that is not UTF-8. */
    char *text = wire_text_dup(message ? message : "", WIRE_MAX_STRING - 1);
    e.message = text;
    env.body_case = PCIFLEET__ENVELOPE__BODY_ERROR;
    env.error = &e;
    size_t n = wire_encode(&env, out);
    free(text);
    return n;
}

size_t wire_encode_error(uint64_t seq, Pcifleet__Error__Code code, const char *message, uint8_t **out)
{
    return encode_error(seq, code, 0, message, out);
}

size_t wire_encode_replayed(uint64_t seq, uint64_t accepted_seq, const char *message, uint8_t **out)
{
    return encode_error(seq, PCIFLEET__ERROR__CODE__CODE_REPLAYED, accepted_seq, message, out);
}

size_t wire_encode_ack(uint64_t seq, uint8_t **out)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Ack a = PCIFLEET__ACK__INIT;
    a.seq = seq;
    env.body_case = PCIFLEET__ENVELOPE__BODY_ACK;
    env.ack = &a;
    return wire_encode(&env, out);
}

size_t wire_encode_resend(const char *reason, uint8_t **out)
{
    Pcifleet__Envelope env = PCIFLEET__ENVELOPE__INIT;
    Pcifleet__Resend r = PCIFLEET__RESEND__INIT;
    char *text = wire_text_dup(reason ? reason : "", WIRE_MAX_STRING - 1);
    r.reason = text;
    env.body_case = PCIFLEET__ENVELOPE__BODY_RESEND;
    env.resend = &r;
    size_t n = wire_encode(&env, out);
    free(text);
    return n;
}

/* ---- admin socket ---- */

int wire_decode_admin_request(const uint8_t *buf, size_t len, size_t max, Pcifleet__AdminRequest **out,
                              char **err)
{
    *out = NULL;
    *err = NULL;
    scan_t s;
    int code = precheck(buf, len, max, WIRE_MAX_STRING, &pcifleet__admin_request__descriptor, "admin request",
                        &s, err);
    if (code)
        return code;
    Pcifleet__AdminRequest *req = pcifleet__admin_request__unpack(NULL, len, buf);
    if (!req) {
        *err = xstrdup("the frame is not a valid admin request (protobuf decoding failed)");
        return CODE_MALFORMED;
    }
    if (req->version != VERSION_CURRENT) {
        code = version_refusal(req->version, "admin request", err);
        pcifleet__admin_request__free_unpacked(req, NULL);
        return code;
    }
    if (req->n_argv > WIRE_MAX_ADMIN_ARGS) {
        *err = xasprintf("the admin request has %zu arguments; at most %d are taken", req->n_argv,
                         WIRE_MAX_ADMIN_ARGS);
        pcifleet__admin_request__free_unpacked(req, NULL);
        return CODE_TOO_LARGE;
    }
    *out = req;
    return 0;
}

void wire_admin_request_free(Pcifleet__AdminRequest **req)
{
    if (!req || !*req)
        return;
    pcifleet__admin_request__free_unpacked(*req, NULL);
    *req = NULL;
}

size_t wire_encode_admin_request(Pcifleet__AdminRequest *req, uint8_t **out)
{
    req->version = VERSION_CURRENT;
    return pack_message(&req->base, out);
}

size_t wire_encode_admin_reply(const Pcifleet__AdminReply *reply, uint8_t **out)
{
    return pack_message(&reply->base, out);
}

int wire_decode_admin_reply(const uint8_t *buf, size_t len, size_t max, Pcifleet__AdminReply **out, char **err)
{
    *out = NULL;
    *err = NULL;
    if (!max)
        max = WIRE_MAX_FRAME;
    if (len > max) {
        *err = xasprintf("the reply is %zu bytes, over the limit of %zu bytes", len, max);
        return CODE_TOO_LARGE;
    }
    if (!buf || len == 0) {
        /* An empty AdminReply is valid protobuf: status 0, nothing to print. */
        *out = pcifleet__admin_reply__unpack(NULL, 0, (const uint8_t *)"");
        if (!*out) {
            *err = xstrdup("the reply could not be decoded");
            return CODE_MALFORMED;
        }
        return 0;
    }
    scan_t s;
    scan_init(&s, max);
    if (scan_message(&s, &pcifleet__admin_reply__descriptor, buf, len, 0) < 0) {
        *err = s.err;
        return s.code;
    }
    *out = pcifleet__admin_reply__unpack(NULL, len, buf);
    if (!*out) {
        *err = xstrdup("the frame is not a valid admin reply (protobuf decoding failed)");
        return CODE_MALFORMED;
    }
    const Pcifleet__AdminReply *r = *out;
    const char *why = NULL;
    if (r->body_chunks && r->body && *r->body)
        why = "announces body chunks but carries a body too";
    else if (r->body_length > WIRE_ADMIN_MAX_BODY)
        why = "announces a body over the limit";
    else if ((r->body_length == 0) != (r->body_chunks == 0) || r->body_chunks > r->body_length ||
             r->body_length > (uint64_t)r->body_chunks * WIRE_ADMIN_CHUNK)
        why = "announces a body length its chunks cannot hold";
    if (why) {
        *err = xasprintf("the admin reply %s (%" PRIu64 " bytes in %u chunks)", why, r->body_length,
                         r->body_chunks);
        wire_admin_reply_free(out);
        return CODE_MALFORMED;
    }
    return 0;
}

size_t wire_admin_chunk_len(const char *body, size_t len, size_t off)
{
    if (off >= len)
        return 0;
    size_t n = len - off;
    if (n <= WIRE_ADMIN_CHUNK)
        return n;
    n = WIRE_ADMIN_CHUNK;
    /* back off continuation bytes so the next chunk starts a character */
    while (n > WIRE_ADMIN_CHUNK - 4 && ((unsigned char)body[off + n] & 0xC0) == 0x80)
        n--;
    return n;
}

void wire_admin_reply_free(Pcifleet__AdminReply **reply)
{
    if (!reply || !*reply)
        return;
    pcifleet__admin_reply__free_unpacked(*reply, NULL);
    *reply = NULL;
}

/* ---- text for the wire ---- */

char *wire_text_dup(const char *s, size_t max)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    if (!s)
        return buf_steal(&b);
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                                                         : (c >= 0xF0 && c <= 0xF4)   ? 4
                                                                                      : 0;
        bool ok = len && len <= n - i && wire_utf8_valid(s + i, len);
        const char *piece = ok ? s + i : "\xEF\xBF\xBD"; /* U+FFFD */
        size_t plen = ok ? len : 3;
        if (b.len + plen > max)
            break;
        buf_append(&b, piece, plen);
        i += ok ? len : 1;
    }
    return buf_steal(&b);
}
