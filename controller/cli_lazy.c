/* cli_lazy — GSSAPI, libsystemd and libuuid for the static CLI, loaded only
 * when one of their functions is called.
 *
 * Contract: the static libzmq and czmq archives the CLI links
 * (PCIFLEET_STATIC_CLI) reference GSSAPI (libzmq's GSSAPI mechanism),
 * sd_listen_fds and sd_is_socket_* (czmq's socket activation when binding)
 * and uuid_generate (czmq's zuuid). Linked normally, those three libraries
 * and the eleven they need are mapped and relocated at every start, about a
 * third of `pcifleet`'s start on a VM where page faults are dear, though
 * the CLI uses none of them: it only connects with the NULL mechanism.
 * Here each of those functions is defined with the library's own prototype;
 * its first call opens the real library (dlopen) and every call goes on to
 * the real function (dlsym), so what it does is the library's. If the
 * library cannot be loaded the CLI stops with the loader's message and
 * status 127, as the dynamic loader would have at start. The two GSSAPI
 * name-type OIDs libzmq reads are data, not functions: they are defined
 * with their values from RFC 2744 (implementations compare OIDs by value).
 * Only the static CLI links this file. */
#include <dlfcn.h>
#include <gssapi/gssapi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <uuid/uuid.h>

static gss_OID_desc user_name_oid = {10, "\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x01"};
static gss_OID_desc hostbased_service_oid = {10, "\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04"};
gss_OID GSS_C_NT_USER_NAME = &user_name_oid;
gss_OID GSS_C_NT_HOSTBASED_SERVICE = &hostbased_service_oid;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The real fn of the library soname (opened once, kept open). */
static void *real(void **handle, const char *soname, const char *fn)
{
    pthread_mutex_lock(&lock);
    if (!*handle && !(*handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "pcifleet: %s\n", dlerror());
        exit(127);
    }
    void *p = dlsym(*handle, fn);
    if (!p) {
        fprintf(stderr, "pcifleet: %s has no %s: %s\n", soname, fn, dlerror());
        exit(127);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

static void *gss_lib, *systemd_lib, *uuid_lib;

/* The real function, looked up on the first call and kept; its type comes
 * from the library's header, so a prototype here that differs from it does
 * not compile. */
#define REAL(lib, soname, fn)                                                                                   \
    static __typeof__(&fn) real_fn;                                                                             \
    __typeof__(&fn) f_ = __atomic_load_n(&real_fn, __ATOMIC_ACQUIRE);                                         \
    if (!f_) {                                                                                                 \
        f_ = (__typeof__(&fn))real(&lib, soname, #fn);                                                        \
        __atomic_store_n(&real_fn, f_, __ATOMIC_RELEASE);                                                     \
    }

#define GSS "libgssapi_krb5.so.2"

OM_uint32 gss_acquire_cred(OM_uint32 *minor, gss_name_t name, OM_uint32 time_req, gss_OID_set mechs,
                           gss_cred_usage_t usage, gss_cred_id_t *cred, gss_OID_set *actual, OM_uint32 *time_rec)
{
    REAL(gss_lib, GSS, gss_acquire_cred);
    return f_(minor, name, time_req, mechs, usage, cred, actual, time_rec);
}

OM_uint32 gss_release_cred(OM_uint32 *minor, gss_cred_id_t *cred)
{
    REAL(gss_lib, GSS, gss_release_cred);
    return f_(minor, cred);
}

OM_uint32 gss_init_sec_context(OM_uint32 *minor, gss_cred_id_t cred, gss_ctx_id_t *ctx, gss_name_t target,
                               gss_OID mech, OM_uint32 req_flags, OM_uint32 time_req, gss_channel_bindings_t cb,
                               gss_buffer_t in, gss_OID *actual_mech, gss_buffer_t out, OM_uint32 *ret_flags,
                               OM_uint32 *time_rec)
{
    REAL(gss_lib, GSS, gss_init_sec_context);
    return f_(minor, cred, ctx, target, mech, req_flags, time_req, cb, in, actual_mech, out, ret_flags, time_rec);
}

OM_uint32 gss_accept_sec_context(OM_uint32 *minor, gss_ctx_id_t *ctx, gss_cred_id_t cred, gss_buffer_t in,
                                 gss_channel_bindings_t cb, gss_name_t *src, gss_OID *mech, gss_buffer_t out,
                                 OM_uint32 *ret_flags, OM_uint32 *time_rec, gss_cred_id_t *delegated)
{
    REAL(gss_lib, GSS, gss_accept_sec_context);
    return f_(minor, ctx, cred, in, cb, src, mech, out, ret_flags, time_rec, delegated);
}

OM_uint32 gss_delete_sec_context(OM_uint32 *minor, gss_ctx_id_t *ctx, gss_buffer_t out)
{
    REAL(gss_lib, GSS, gss_delete_sec_context);
    return f_(minor, ctx, out);
}

OM_uint32 gss_wrap(OM_uint32 *minor, gss_ctx_id_t ctx, int conf_req, gss_qop_t qop, gss_buffer_t in, int *conf_state,
                   gss_buffer_t out)
{
    REAL(gss_lib, GSS, gss_wrap);
    return f_(minor, ctx, conf_req, qop, in, conf_state, out);
}

OM_uint32 gss_unwrap(OM_uint32 *minor, gss_ctx_id_t ctx, gss_buffer_t in, gss_buffer_t out, int *conf_state,
                     gss_qop_t *qop)
{
    REAL(gss_lib, GSS, gss_unwrap);
    return f_(minor, ctx, in, out, conf_state, qop);
}

OM_uint32 gss_display_name(OM_uint32 *minor, gss_name_t name, gss_buffer_t out, gss_OID *type)
{
    REAL(gss_lib, GSS, gss_display_name);
    return f_(minor, name, out, type);
}

OM_uint32 gss_import_name(OM_uint32 *minor, gss_buffer_t in, gss_OID type, gss_name_t *out)
{
    REAL(gss_lib, GSS, gss_import_name);
    return f_(minor, in, type, out);
}

OM_uint32 gss_release_name(OM_uint32 *minor, gss_name_t *name)
{
    REAL(gss_lib, GSS, gss_release_name);
    return f_(minor, name);
}

OM_uint32 gss_release_buffer(OM_uint32 *minor, gss_buffer_t buf)
{
    REAL(gss_lib, GSS, gss_release_buffer);
    return f_(minor, buf);
}

int sd_listen_fds(int unset_environment)
{
    REAL(systemd_lib, "libsystemd.so.0", sd_listen_fds);
    return f_(unset_environment);
}

int sd_is_socket_inet(int fd, int family, int type, int listening, uint16_t port)
{
    REAL(systemd_lib, "libsystemd.so.0", sd_is_socket_inet);
    return f_(fd, family, type, listening, port);
}

int sd_is_socket_unix(int fd, int type, int listening, const char *path, size_t length)
{
    REAL(systemd_lib, "libsystemd.so.0", sd_is_socket_unix);
    return f_(fd, type, listening, path, length);
}

void uuid_generate(uuid_t out)
{
    REAL(uuid_lib, "libuuid.so.1", uuid_generate);
    f_(out);
}
