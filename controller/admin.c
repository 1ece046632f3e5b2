#include "admin.h"

#include "assign.h"
#include "rollout.h"

#include "buf.h"
#include "json.h"
#include "keyfp.h"
#include "log.h"
#include "strv.h"
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- replies ---- */

static size_t pack_reply(int status, const char *body, const char *error, uint8_t **reply)
{
    Pcifleet__AdminReply r = PCIFLEET__ADMIN_REPLY__INIT;
    r.status = status;
    r.body = (char *)(body ? body : "");
    r.error = (char *)(error ? error : "");
    return wire_encode_admin_reply(&r, reply);
}

/* ---- keys ---- */

typedef struct {
    const char *node, *state, *key;
    char fp[KEYFP_LEN + 1];
} keyrow_t;

static void keys_rows(admin_ctx_t *ctx, strv_t *acc, strv_t *pend, keyrow_t **rows, size_t *n)
{
    keystore_list(ctx->keys, acc, pend);
    *n = acc->n + pend->n;
    *rows = xcalloc(*n ? *n : 1, sizeof **rows);
    size_t i = 0;
    for (size_t k = 0; k < acc->n; k++, i++) {
        (*rows)[i].node = acc->v[k];
        (*rows)[i].state = "accepted";
        (*rows)[i].key = keystore_key_for(ctx->keys, acc->v[k]);
    }
    for (size_t k = 0; k < pend->n; k++, i++) {
        (*rows)[i].node = pend->v[k];
        (*rows)[i].state = "pending";
        (*rows)[i].key = keystore_pending_key(ctx->keys, pend->v[k]);
    }
    for (i = 0; i < *n; i++) {
        if (!(*rows)[i].key)
            (*rows)[i].key = "";
        keyfp_of((*rows)[i].key, (*rows)[i].fp);
    }
}

static int keys_list(admin_ctx_t *ctx, bool json, buf_t *out)
{
    strv_t acc = STRV_INIT, pend = STRV_INIT;
    keyrow_t *rows;
    size_t n;
    keys_rows(ctx, &acc, &pend, &rows, &n);
    if (json) {
        json_t *j = json_new(2);
        json_obj_open(j, NULL);
        for (int pass = 0; pass < 2; pass++) {
            json_arr_open(j, pass == 0 ? "accepted" : "pending");
            for (size_t i = 0; i < n; i++) {
                if ((strcmp(rows[i].state, "accepted") == 0) != (pass == 0))
                    continue;
                json_obj_open(j, NULL);
                json_str(j, "node", rows[i].node);
                json_str(j, "fingerprint", rows[i].fp);
                json_str(j, "key", rows[i].key);
                if (pass == 1)
                    json_bool(j, "replaces_accepted", keystore_key_for(ctx->keys, rows[i].node) != NULL);
                json_obj_close(j);
            }
            json_arr_close(j);
        }
        json_obj_close(j);
        size_t len;
        const char *text = json_text(j, &len);
        buf_append(out, text, len);
        buf_putc(out, '\n');
        json_destroy(&j);
    } else {
        int w = 4;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(rows[i].node) > w)
                w = (int)strlen(rows[i].node);
        buf_printf(out, "%-*s  %-8s  %-*s  %s\n", w, "NODE", "STATE", KEYFP_LEN, "FINGERPRINT", "PUBLIC KEY");
        for (size_t i = 0; i < n; i++)
            buf_printf(out, "%-*s  %-8s  %-*s  %s\n", w, rows[i].node, rows[i].state, KEYFP_LEN, rows[i].fp,
                       rows[i].key);
        if (pend.n)
            buf_printf(out, "\n%zu pending: accept with `pcifleet keys accept NODE` after comparing the "
                            "fingerprint with `pcifleet fingerprint NODE.key` on the node.\n",
                       pend.n);
    }
    free(rows);
    strv_free(&acc);
    strv_free(&pend);
    return 0;
}

static int keys_accept(admin_ctx_t *ctx, const char *node, int64_t now, buf_t *out, char **err)
{
    if (!keys_valid_node_name(node)) {
        *err = xasprintf("'%s' is not a valid node name (1-63 of A-Z a-z 0-9 . _ -, not starting with . or -)",
                         node);
        return 2;
    }
    const char *pending = keystore_pending_key(ctx->keys, node);
    char fp[KEYFP_LEN + 1];
    keyfp_of(pending ? pending : "", fp);
    bool replaces = keystore_key_for(ctx->keys, node) != NULL;
    char *kerr = NULL;
    if (keystore_accept(ctx->keys, node, &kerr) < 0) {
        *err = kerr ? kerr : xasprintf("cannot accept the key of %s", node);
        return 1;
    }
    if (keystore_reload(ctx->keys, &kerr) < 0) {
        log_error("accepted the key of %s but cannot reload the key folder: %s", node, kerr ? kerr : "?");
        *err = kerr ? kerr : xstrdup("cannot reload the key folder");
        return 1;
    }
    log_info("accepted the key of %s (%s)%s", node, fp, replaces ? ", replacing its previous key" : "");
    char *serr = NULL;
    if (store_event(ctx->store, now, "key-accepted", node, fp, &serr) < 0) {
        log_warn("cannot log the key-accepted event of %s: %s", node, serr ? serr : "?");
        free(serr);
    }
    buf_printf(out, "accepted the key of %s (%s)%s\n", node, fp, replaces ? ", replacing its previous key" : "");
    return 0;
}

static int cmd_keys(admin_ctx_t *ctx, int argc, char **argv, bool json, int64_t now, buf_t *out, char **err)
{
    if (argc == 1 || (argc == 2 && strcmp(argv[1], "list") == 0))
        return keys_list(ctx, json, out);
    if (strcmp(argv[1], "accept") == 0) {
        if (argc != 3) {
            *err = xstrdup("usage: pcifleet keys accept NODE");
            return 2;
        }
        return keys_accept(ctx, argv[2], now, out, err);
    }
    *err = xasprintf("unknown keys command '%s': use `pcifleet keys` or `pcifleet keys accept NODE`", argv[1]);
    return 2;
}

/* ---- status ---- */

static int cmd_status(admin_ctx_t *ctx, bool json, int64_t now, buf_t *out)
{
    strv_t acc = STRV_INIT, pend = STRV_INIT;
    keystore_list(ctx->keys, &acc, &pend);
    ingest_stats_t st = {0};
    if (ctx->ingest)
        st = *ingest_stats(ctx->ingest);
    uint64_t lookups, hits;
    query_cache_stats(ctx->query.cache, &lookups, &hits);
    if (json) {
        json_t *j = json_new(2);
        json_obj_open(j, NULL);
        json_str(j, "version", ctx->version);
        json_str(j, "listen", ctx->listen);
        json_str(j, "database", store_path(ctx->store));
        json_int(j, "schema_version", store_schema_version());
        json_int(j, "uptime_s", now - ctx->started);
        json_int(j, "offline_after_s", ctx->offline_after);
        json_int(j, "accepted_keys", (long long)acc.n);
        json_int(j, "pending_keys", (long long)pend.n);
        json_int(j, "frames", (long long)st.frames);
        json_int(j, "inventories", (long long)st.inventories);
        json_int(j, "heartbeats", (long long)st.heartbeats);
        json_int(j, "refused", (long long)st.refused);
        json_int(j, "query_cache_lookups", (long long)lookups);
        json_int(j, "query_cache_hits", (long long)hits);
        json_int(j, "shared_answers", (long long)ctx->shared_answers);
        json_obj_close(j);
        size_t len;
        const char *text = json_text(j, &len);
        buf_append(out, text, len);
        buf_putc(out, '\n');
        json_destroy(&j);
    } else {
        buf_printf(out,
                   "controller      pcifleetd %s, up %lld s\n"
                   "listening on    %s\n"
                   "database        %s (schema %d)\n"
                   "offline after   %lld s without a heartbeat\n"
                   "keys            %zu accepted, %zu pending\n"
                   "frames          %llu received, %llu inventories, %llu heartbeats, %llu refused\n"
                   "query cache     %llu lookups, %llu answered from it\n"
                   "shared answers  %llu long answers the CLI read from the controller's memfd\n",
                   ctx->version, (long long)(now - ctx->started), ctx->listen, store_path(ctx->store),
                   store_schema_version(), (long long)ctx->offline_after, acc.n, pend.n,
                   (unsigned long long)st.frames, (unsigned long long)st.inventories,
                   (unsigned long long)st.heartbeats, (unsigned long long)st.refused,
                   (unsigned long long)lookups, (unsigned long long)hits,
                   (unsigned long long)ctx->shared_answers);
    }
    strv_free(&acc);
    strv_free(&pend);
    return 0;
}

/* ---- dispatch ---- */

static size_t handle(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply, buf_t *body,
                     blob_t **kept, void *token, bool *deferred);

size_t admin_handle(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply)
{
    bool deferred = false;
    return handle(ctx, buf, len, now, reply, NULL, NULL, NULL, &deferred);
}

size_t admin_handle_chunked(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply,
                            buf_t *body, blob_t **kept, void *token, bool *deferred)
{
    buf_reset(body);
    *kept = NULL;
    *deferred = false;
    return handle(ctx, buf, len, now, reply, body, kept, token, deferred);
}

/* The reply that names a kept answer's memfd for the CLI to read itself
 * (pcifleet.proto SharedAnswer). */
static size_t pack_shared(const blob_t *kept, uint8_t **reply)
{
    Pcifleet__AdminReply r = PCIFLEET__ADMIN_REPLY__INIT;
    Pcifleet__SharedAnswer sa = PCIFLEET__SHARED_ANSWER__INIT;
    sa.pid = (uint32_t)getpid();
    sa.fd = blob_fd(kept);
    sa.name = (char *)blob_name(kept);
    sa.length = blob_len(kept);
    r.body = "";
    r.error = "";
    r.shared = &sa;
    return wire_encode_admin_reply(&r, reply);
}

/* The reply that announces a body of len bytes in chunks (pcifleet.proto). */
static size_t pack_announce(const char *p, size_t len, uint8_t **reply)
{
    Pcifleet__AdminReply r = PCIFLEET__ADMIN_REPLY__INIT;
    r.body = "";
    r.error = "";
    r.body_length = len;
    for (size_t off = 0, c; (c = wire_admin_chunk_len(p, len, off)) > 0; off += c)
        r.body_chunks++;
    return wire_encode_admin_reply(&r, reply);
}

size_t admin_pack_answer(int status, buf_t *o, const char *err, buf_t *body, uint8_t **reply)
{
    size_t n;
    if (status == 0 && o->len > WIRE_ADMIN_MAX_BODY) {
        char *why = xasprintf("the answer is %zu bytes, over the limit of %u: narrow the query (--node, --model, "
                              "or sql with a WHERE)",
                              o->len, WIRE_ADMIN_MAX_BODY);
        n = pack_reply(1, NULL, why, reply);
        free(why);
    } else if (status == 0 && body && o == body && o->len > WIRE_ADMIN_INLINE_MAX) {
        return pack_announce(o->p, o->len, reply); /* the body stays in *body for the caller */
    } else {
        n = pack_reply(status, o->p, status != 0 ? err : NULL, reply);
    }
    if (body && o == body)
        buf_reset(body); /* inside the reply, or refused: nothing follows */
    return n;
}

static size_t handle(admin_ctx_t *ctx, const uint8_t *buf, size_t len, int64_t now, uint8_t **reply, buf_t *body,
                     blob_t **kept, void *token, bool *deferred)
{
    Pcifleet__AdminRequest *req = NULL;
    char *err = NULL;
    int code = wire_decode_admin_request(buf, len, ADMIN_MAX_REQUEST, &req, &err);
    if (code != 0 || !req) {
        char *why = xasprintf("bad admin request: %s", err ? err : "not an AdminRequest");
        log_warn("%s", why);
        size_t n = pack_reply(2, NULL, why, reply);
        free(why);
        free(err);
        wire_admin_request_free(&req);
        return n;
    }
    free(err);
    err = NULL;
    if (req->version != PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
        char *why = xasprintf("this controller speaks admin protocol version %d, the request is version %u: "
                              "use the pcifleet that comes with this pcifleetd",
                              (int)PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT, req->version);
        size_t n = pack_reply(2, NULL, why, reply);
        free(why);
        wire_admin_request_free(&req);
        return n;
    }

    /* argv without "--json" (which may come anywhere) and NULL-terminated. */
    bool json = req->json;
    char **argv = xcalloc(req->n_argv + 1, sizeof *argv);
    int argc = 0;
    for (size_t i = 0; i < req->n_argv; i++) {
        if (strcmp(req->argv[i], "--json") == 0)
            json = true;
        else
            argv[argc++] = req->argv[i];
    }

    /* the answer is written into the caller's body buffer when there is one:
     * it keeps its memory from one request to the next, and a long answer
     * then needs no copy */
    buf_t local = BUF_INIT;
    buf_t *o = body ? body : &local;
    int status;
    if (argc == 0) {
        err = xstrdup("no command given: see `pcifleet --help`");
        status = 2;
    } else if (strcmp(argv[0], "keys") == 0) {
        status = cmd_keys(ctx, argc, argv, json, now, o, &err);
    } else if (strcmp(argv[0], "assign") == 0 || strcmp(argv[0], "release") == 0) {
        if (!ctx->assign) {
            err = xasprintf("%s needs the controller's claims (not available here)", argv[0]);
            status = 1;
        } else {
            status = assign_run(ctx->assign, argc, argv, json, now, token, deferred, o, &err);
        }
    } else if (strcmp(argv[0], "rollout") == 0) {
        if (!ctx->rollout) {
            err = xstrdup("rollouts need the controller's connection to the agents (not available here)");
            status = 1;
        } else {
            status = rollout_admin(ctx->rollout, argc, argv, json, now, o, &err);
        }
    } else if (strcmp(argv[0], "status") == 0) {
        if (argc != 1) {
            err = xstrdup("usage: pcifleet status");
            status = 2;
        } else {
            status = cmd_status(ctx, json, now, o);
        }
    } else {
        status = query_run_kept(ctx->store, &ctx->query, argc, argv, json, o, body ? kept : NULL, &err);
    }
    if (status != 0 && !err)
        err = xasprintf("%s failed", argv[0] ? argv[0] : "the command");
    log_debug("admin: %s%s -> %d", argc ? argv[0] : "(none)", json ? " --json" : "", status);
    size_t n = 0;
    size_t klen = kept && *kept ? blob_len(*kept) : 0;
    if (klen > WIRE_ADMIN_INLINE_MAX && klen <= WIRE_ADMIN_MAX_BODY) {
        if (req->can_share && blob_fd(*kept) >= 0) {
            /* the CLI reads it from the memfd: nothing follows the reply */
            n = pack_shared(*kept, reply);
            blob_unref(kept);
            ctx->shared_answers++;
        } else {
            /* a kept answer is sent from where it is kept (the caller's
             * *kept), chunk by chunk, without a copy */
            n = pack_announce(blob_data(*kept), klen, reply);
        }
    } else {
        if (kept && *kept) { /* short (or refused below): inside the reply */
            buf_append(o, blob_data(*kept), klen);
            blob_unref(kept);
        }
        if (!*deferred)
            n = admin_pack_answer(status, o, err, body, reply);
    }
    buf_free(&local);
    free(err);
    free(argv);
    wire_admin_request_free(&req);
    return n;
}

/* ---- endpoint ---- */

static bool loopback_host(const char *host, size_t n)
{
    if ((n == 9 && strncmp(host, "localhost", 9) == 0) || (n == 5 && strncmp(host, "[::1]", 5) == 0) ||
        (n == 3 && strncmp(host, "::1", 3) == 0))
        return true;
    /* 127.0.0.0/8 as a dotted quad */
    if (n < 7 || n > 15 || strncmp(host, "127.", 4) != 0)
        return false;
    int dots = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (host[i] == '.') {
            if (digits == 0)
                return false;
            dots++;
            digits = 0;
        } else if (host[i] >= '0' && host[i] <= '9') {
            if (++digits > 3)
                return false;
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

int admin_endpoint_check(const char *ep, char **err)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        const char *path = ep + 6;
        if (!*path) {
            *err = xasprintf("admin endpoint %s names no socket path", ep);
            return -EINVAL;
        }
        if (*path == '@') {
            *err = xasprintf("admin endpoint %s is an abstract socket, which file permissions cannot protect: "
                             "use an ipc:// path such as ipc:///run/pcifleet/admin.sock",
                             ep);
            return -EINVAL;
        }
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            *err = xasprintf("admin socket path %s is too long for a unix socket", path);
            return -EINVAL;
        }
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *host = ep + 6;
        const char *colon = strrchr(host, ':');
        if (colon && loopback_host(host, (size_t)(colon - host)) && colon[1])
            return 0;
        *err = xasprintf("refusing admin endpoint %s: the admin socket has no authentication of its own, so "
                         "tcp:// is allowed only on loopback (tcp://127.0.0.1:PORT or tcp://[::1]:PORT); "
                         "use ipc:///run/pcifleet/admin.sock for a socket only root can open",
                         ep);
        return -EINVAL;
    }
    *err = xasprintf("refusing admin endpoint %s: use ipc://PATH (default ipc:///run/pcifleet/admin.sock) or "
                     "tcp://127.0.0.1:PORT",
                     ep);
    return -EINVAL;
}

/* mkdir -p with mode 0700 for the folders it creates. */
static int make_dirs(const char *dir, char **err)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (*p && mkdir(p, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                *err = xasprintf("cannot create %s: %s", p, strerror(e));
                free(p);
                return -e;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    free(p);
    return 0;
}

static int prepare_ipc(const char *path, char **err)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        struct stat st;
        if (stat(dir, &st) < 0) {
            rc = make_dirs(dir, err);
            if (rc == 0)
                log_info("created %s (mode 0700) for the admin socket", dir);
        } else if (!S_ISDIR(st.st_mode)) {
            *err = xasprintf("cannot put the admin socket in %s: not a directory", dir);
            rc = -ENOTDIR;
        } else if (st.st_mode & 0022) {
            log_warn("%s is writable by others than its owner; the admin socket itself is made mode 0600", dir);
        }
    }
    free(dir);
    if (rc < 0)
        return rc;

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = xasprintf("cannot bind the admin socket: %s exists and is not a socket", path);
            return -EEXIST;
        }
        /* A live socket belongs to another controller; a dead one is a
         * leftover of a crash that ZeroMQ replaces. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            struct sockaddr_un sa;
            memset(&sa, 0, sizeof sa);
            sa.sun_family = AF_UNIX;
            snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
            int c = connect(fd, (struct sockaddr *)&sa, sizeof sa);
            close(fd);
            if (c == 0) {
                *err = xasprintf("another process already serves the admin socket %s (is pcifleetd running?)",
                                 path);
                return -EADDRINUSE;
            }
        }
    }
    return 0;
}

int admin_bind(zsock_t *sock, const char *ep, char **err)
{
    int rc = admin_endpoint_check(ep, err);
    if (rc < 0)
        return rc;
    bool ipc = strncmp(ep, "ipc://", 6) == 0;
    if (ipc && (rc = prepare_ipc(ep + 6, err)) < 0)
        return rc;
    /* libzmq creates an ipc socket file in the calling thread, so the umask
     * keeps it private from the first moment; chmod makes sure. */
    mode_t old = umask(0077);
    rc = zsock_bind(sock, "%s", ep);
    int e = zmq_errno();
    umask(old);
    if (rc < 0) {
        *err = xasprintf("cannot bind the admin socket %s: %s", ep, zmq_strerror(e));
        return -(e ? e : EINVAL);
    }
    if (ipc && chmod(ep + 6, 0600) < 0) {
        int ce = errno;
        *err = xasprintf("cannot make the admin socket %s mode 0600: %s", ep + 6, strerror(ce));
        return -ce;
    }
    return 0;
}
