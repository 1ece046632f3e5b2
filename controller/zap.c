#include "zap.h"

#include "buf.h"
#include "keys.h"
#include "log.h"

#include <string.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_KEY_BYTES 32

/* Copies frame f into a NUL-terminated string of at most cap-1 bytes. */
static void frame_str(zframe_t *f, char *out, size_t cap)
{
    size_t n = f ? zframe_size(f) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(out, zframe_data(f), n);
    out[n] = '\0';
}

/* Answers one ZAP request read from handler. Malformed requests (which only
 * libzmq itself can send here) are answered with 500 when they carry at
 * least a version and a request id, else dropped. */
static void zap_answer(zsock_t *handler)
{
    zmsg_t *req = zmsg_recv(handler);
    if (!req)
        return;
    char version[8], mechanism[16], address[64];
    zframe_t *f_version = zmsg_pop(req);
    zframe_t *f_reqid = zmsg_pop(req);
    zframe_t *f_domain = zmsg_pop(req);
    zframe_t *f_address = zmsg_pop(req);
    zframe_t *f_identity = zmsg_pop(req);
    zframe_t *f_mechanism = zmsg_pop(req);
    frame_str(f_version, version, sizeof version);
    frame_str(f_mechanism, mechanism, sizeof mechanism);
    frame_str(f_address, address, sizeof address);

    const char *status = "200", *text = "OK";
    char user_id[KEY_Z85_LEN + 1] = "";
    if (strcmp(version, "1.0") != 0 || !f_reqid) {
        status = "500";
        text = "bad ZAP version";
    } else if (strcmp(mechanism, "CURVE") == 0) {
        zframe_t *key = zmsg_pop(req);
        if (!key || zframe_size(key) != ZAP_KEY_BYTES || !zmq_z85_encode(user_id, zframe_data(key), ZAP_KEY_BYTES)) {
            status = "400";
            text = "bad CURVE credentials";
            user_id[0] = '\0';
        } else {
            log_debug("CURVE handshake from %s, key %s", address, user_id);
        }
        zframe_destroy(&key);
    } else if (strcmp(mechanism, "NULL") != 0) {
        status = "400";
        text = "only CURVE clients are admitted";
        log_warn("refused a %s handshake from %s: only CURVE clients are admitted", mechanism, address);
    }

    if (f_reqid) {
        zmsg_t *rep = zmsg_new();
        zmsg_addstr(rep, "1.0");
        zmsg_append(rep, &f_reqid);
        zmsg_addstr(rep, status);
        zmsg_addstr(rep, text);
        zmsg_addstr(rep, user_id);
        zmsg_addmem(rep, NULL, 0); /* no metadata */
        zmsg_send(&rep, handler);
    }
    zframe_destroy(&f_version);
    zframe_destroy(&f_reqid);
    zframe_destroy(&f_domain);
    zframe_destroy(&f_address);
    zframe_destroy(&f_identity);
    zframe_destroy(&f_mechanism);
    zmsg_destroy(&req);
}

static void zap_actor(zsock_t *pipe, void *args)
{
    (void)args;
    zsock_t *handler = zsock_new(ZMQ_REP);
    int rc = handler ? zsock_bind(handler, "%s", ZAP_ENDPOINT) : -1;
    zsock_signal(pipe, 0);
    if (rc != 0) {
        zstr_sendf(pipe, "cannot bind %s: %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        zsock_destroy(&handler);
        return;
    }
    zstr_send(pipe, "ok");
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    /* Signals do not end this thread; the owner's $TERM does, so a shutdown
     * in progress never leaves a handshake hanging. */
    zpoller_set_nonstop(poller, true);
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which == handler) {
            zap_answer(handler);
            continue;
        }
        if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || strcmp(cmd, "$TERM") == 0;
            zstr_free(&cmd);
            if (term)
                break;
            continue;
        }
        if (zpoller_terminated(poller))
            break;
    }
    zpoller_destroy(&poller);
    zsock_destroy(&handler);
}

zactor_t *zap_start(char **err)
{
    zactor_t *zap = zactor_new(zap_actor, NULL);
    if (!zap) {
        *err = xstrdup("cannot start the ZAP handler thread");
        return NULL;
    }
    char *status = zstr_recv(zap);
    if (!status || strcmp(status, "ok") != 0) {
        *err = status ? xstrdup(status) : xstrdup("the ZAP handler did not start");
        zstr_free(&status);
        zactor_destroy(&zap);
        return NULL;
    }
    zstr_free(&status);
    return zap;
}

void zap_stop(zactor_t **zap)
{
    if (zap && *zap)
        zactor_destroy(zap);
}
