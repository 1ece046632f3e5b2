/* test_cli_lazy — the static CLI's lazily loaded GSSAPI, libsystemd and
 * libuuid functions (controller/cli_lazy.c) reach the real libraries.
 *
 * Each forwarder is called and must give what the real library gives:
 * uuid_generate fills distinct version-4-or-1 UUIDs; sd_listen_fds counts
 * the descriptors LISTEN_PID/LISTEN_FDS hand this process; sd_is_socket_*
 * tell a Unix stream socket, a TCP socket and a pipe apart; gss_import_name
 * and gss_display_name give back the name and a name type equal (by value)
 * to GSS_C_NT_HOSTBASED_SERVICE as defined there; the context functions,
 * given no context or credentials, answer with a GSSAPI error instead of
 * crashing (what MIT krb5 answers; with no Kerberos set up here nothing can
 * succeed). The file under test is compiled into this program; the real
 * libraries are already loaded here (libzmq.so needs them), which changes
 * nothing for dlopen and dlsym on their handles. */
#include "testutil.h"

#include "../controller/cli_lazy.c"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_uuid(void **state)
{
    (void)state;
    uuid_t a, b, zero = {0};
    uuid_generate(a);
    uuid_generate(b);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(a, b, sizeof a);
    int version = a[6] >> 4;
    assert_true(version == 4 || version == 1);
}

static void test_systemd(void **state)
{
    (void)state;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    assert_int_equal(sd_listen_fds(0), 0);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    /* the two descriptors handed over must be open at 3 and 4 */
    int s3 = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s3 >= 0);
    assert_int_equal(dup2(s3, 3), 3);
    assert_int_equal(dup2(s3, 4), 4);
    if (s3 != 3 && s3 != 4)
        close(s3);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    assert_int_equal(sd_listen_fds(1), 2); /* fds 3 and 4, and the variables unset */
    assert_null(getenv("LISTEN_FDS"));
    assert_true(sd_is_socket_unix(3, SOCK_STREAM, -1, NULL, 0) > 0);
    close(3);
    close(4);

    int sv[2], p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(p), 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(tcp >= 0);
    assert_true(sd_is_socket_unix(sv[0], SOCK_STREAM, -1, NULL, 0) > 0);
    assert_int_equal(sd_is_socket_unix(sv[0], SOCK_DGRAM, -1, NULL, 0), 0);
    assert_int_equal(sd_is_socket_unix(p[0], 0, -1, NULL, 0), 0);
    assert_true(sd_is_socket_inet(tcp, AF_INET, SOCK_STREAM, 0, 0) > 0);
    assert_int_equal(sd_is_socket_inet(sv[0], AF_INET, 0, -1, 0), 0);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    close(tcp);
}

static void test_gssapi(void **state)
{
    (void)state;
    OM_uint32 minor = 0;
    char text[] = "host@localhost";
    gss_buffer_desc in = {strlen(text), text};
    gss_name_t name = GSS_C_NO_NAME;
    assert_int_equal(gss_import_name(&minor, &in, GSS_C_NT_HOSTBASED_SERVICE, &name), GSS_S_COMPLETE);
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_OID type = GSS_C_NO_OID;
    assert_int_equal(gss_display_name(&minor, name, &out, &type), GSS_S_COMPLETE);
    assert_int_equal(out.length, strlen(text));
    assert_memory_equal(out.value, text, out.length);
    assert_non_null(type);
    assert_int_equal(type->length, GSS_C_NT_HOSTBASED_SERVICE->length);
    assert_memory_equal(type->elements, GSS_C_NT_HOSTBASED_SERVICE->elements, type->length);
    assert_int_equal(gss_release_buffer(&minor, &out), GSS_S_COMPLETE);

    char user[] = "nobody";
    gss_buffer_desc uin = {strlen(user), user};
    gss_name_t uname = GSS_C_NO_NAME;
    assert_int_equal(gss_import_name(&minor, &uin, GSS_C_NT_USER_NAME, &uname), GSS_S_COMPLETE);
    assert_int_equal(gss_release_name(&minor, &uname), GSS_S_COMPLETE);

    /* nothing to act on: each answers with an error status */
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER, msg = {4, "abcd"};
    int conf = 0;
    gss_qop_t qop = 0;
    assert_true(GSS_ERROR(gss_wrap(&minor, GSS_C_NO_CONTEXT, 1, 0, &msg, &conf, &tok)));
    assert_true(GSS_ERROR(gss_unwrap(&minor, GSS_C_NO_CONTEXT, &msg, &tok, &conf, &qop)));
    assert_true(GSS_ERROR(gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER)));
    assert_true(GSS_ERROR(gss_accept_sec_context(&minor, &ctx, GSS_C_NO_CREDENTIAL, &tok,
                                                 GSS_C_NO_CHANNEL_BINDINGS, NULL, NULL, &tok, NULL, NULL, NULL)));
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    assert_true(GSS_ERROR(gss_release_cred(&minor, NULL)));
    OM_uint32 major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ctx, GSS_C_NO_NAME, GSS_C_NO_OID, 0, 0,
                                           GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &tok, NULL, NULL);
    assert_true(GSS_ERROR(major));
    /* initiating needs a credentials cache, which is not there: an error,
     * and nothing to release */
    setenv("KRB5CCNAME", "FILE:/nonexistent/pcifleet.ccache", 1);
    setenv("KRB5_CONFIG", "/nonexistent/krb5.conf", 1);
    major = gss_acquire_cred(&minor, GSS_C_NO_NAME, 0, GSS_C_NO_OID_SET, GSS_C_INITIATE, &cred, NULL, NULL);
    assert_true(GSS_ERROR(major));
    assert_ptr_equal(cred, GSS_C_NO_CREDENTIAL);
    assert_int_equal(gss_release_name(&minor, &name), GSS_S_COMPLETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_systemd),
        cmocka_unit_test(test_gssapi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
