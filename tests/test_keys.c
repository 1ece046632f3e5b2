/* Tests of CURVE keys and the controller's key folder (common/keys.c).
 *
 * Proves: keygen writes NAME.key (0644) and NAME.key_secret (0600) that load
 * back to the same key, refuses to overwrite a pair and refuses bad names;
 * loading refuses missing, garbage, public-only (as a pair), world-readable
 * secret, mismatched and mis-encoded key files with a sentence; the key
 * folder records pending keys, accepts them by moving the file (and only
 * then maps key <-> node), refuses to accept what is not pending or a key
 * already serving another node, replaces a re-keyed node's key, lists both
 * sides sorted, survives a reopen, and skips damaged files in agents/. */
#include "testutil.h"

#include "buf.h"
#include "keys.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static char *path2(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static void test_generate_and_load(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir();
    char *dir = path2(tmp, "etc/pcifleet");
    char *err = NULL;
    assert_int_equal(keys_generate(dir, "pve-01", &err), 0);
    assert_null(err);
    assert_int_equal(mode_of(dir), 0700);
    char *pub = path2(dir, "pve-01.key"), *sec = path2(dir, "pve-01.key_secret");
    assert_int_equal(mode_of(sec), 0600);
    assert_int_equal(mode_of(pub), 0644);

    char k1[KEY_Z85_LEN + 1], k2[KEY_Z85_LEN + 1], p[KEY_Z85_LEN + 1], s[KEY_Z85_LEN + 1];
    assert_int_equal(keys_load_public(pub, k1, &err), 0);
    assert_int_equal(keys_load_public(sec, k2, &err), 0);
    assert_int_equal(strlen(k1), KEY_Z85_LEN);
    assert_string_equal(k1, k2);
    assert_true(keys_valid_z85(k1));
    assert_int_equal(keys_load_pair(sec, p, s, &err), 0);
    assert_string_equal(p, k1);
    assert_string_not_equal(s, p);

    /* The pair as a czmq certificate, as the agent applies it to its socket. */
    zcert_t *cert = keys_load_cert(sec, &err);
    assert_non_null(cert);
    assert_string_equal(zcert_public_txt(cert), k1);
    assert_string_equal(zcert_secret_txt(cert), s);
    zcert_destroy(&cert);

    /* The public file holds no secret. */
    char *cat = xasprintf("cat '%s'", pub);
    char *text = tu_run(cat, NULL);
    free(cat);
    assert_null(strstr(text, "secret-key"));
    assert_non_null(strstr(text, k1));
    free(text);

    /* No overwrite: the pair stays as it was. */
    assert_int_equal(keys_generate(dir, "pve-01", &err), -EEXIST);
    assert_non_null(strstr(err, "already exists"));
    free(err);
    assert_int_equal(keys_load_public(pub, k2, &err), 0);
    assert_string_equal(k1, k2);
    /* Not even when only one half is left. */
    assert_int_equal(unlink(pub), 0);
    assert_int_equal(keys_generate(dir, "pve-01", &err), -EEXIST);
    free(err);

    /* Names. */
    assert_int_equal(keys_generate(dir, "../escape", &err), -EINVAL);
    assert_non_null(strstr(err, "not a valid key name"));
    free(err);
    assert_int_equal(keys_generate(dir, "", &err), -EINVAL);
    free(err);
    assert_int_equal(keys_generate(dir, "controller", &err), 0);

    /* No temporary files are left behind. */
    char *ls = xasprintf("ls -A '%s' | grep -c '^\\.'", dir);
    char *left = tu_run(ls, NULL);
    free(ls);
    assert_int_equal(atoi(left), 0);
    free(left);

    free(pub);
    free(sec);
    free(dir);
    tu_rm_rf(tmp);
    free(tmp);
}

static void expect_load_refused(const char *path, bool pair, int code, const char *needle)
{
    char p[KEY_Z85_LEN + 1], s[KEY_Z85_LEN + 1];
    char *err = NULL;
    int rc = pair ? keys_load_pair(path, p, s, &err) : keys_load_public(path, p, &err);
    if (rc != code || !err || !strstr(err, needle)) {
        fprintf(stderr, "wanted %d '%s', got %d: %s\n", code, needle, rc, err ? err : "(none)");
        fail();
    }
    free(err);
}

static void test_load_refusals(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *err = NULL;
    assert_int_equal(keys_generate(dir, "a", &err), 0);
    assert_int_equal(keys_generate(dir, "b", &err), 0);
    char *apub = path2(dir, "a.key"), *asec = path2(dir, "a.key_secret"), *bsec = path2(dir, "b.key_secret");

    char *missing = path2(dir, "none.key");
    expect_load_refused(missing, false, -ENOENT, "cannot open key file");
    expect_load_refused(dir, false, -EINVAL, "not a regular file");

    tu_write(dir, "garbage.key", "this is not a certificate\n\t\tat all = \"\n");
    char *garbage = path2(dir, "garbage.key");
    expect_load_refused(garbage, false, -EINVAL, garbage);

    /* A public file is no pair. */
    expect_load_refused(apub, true, -EINVAL, "give the NAME.key_secret file");

    /* A secret others can read is refused, as ssh does. */
    assert_int_equal(chmod(asec, 0644), 0);
    expect_load_refused(asec, true, -EPERM, "chmod 600");
    assert_int_equal(chmod(asec, 0600), 0);

    /* a's public key with b's secret key: a pair that does not match. */
    char ap[KEY_Z85_LEN + 1], bp[KEY_Z85_LEN + 1], bs[KEY_Z85_LEN + 1];
    assert_int_equal(keys_load_public(apub, ap, &err), 0);
    assert_int_equal(keys_load_pair(bsec, bp, bs, &err), 0);
    char *mixed = xasprintf("curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", ap, bs);
    tu_write(dir, "mixed.key_secret", mixed);
    char *mixed_path = path2(dir, "mixed.key_secret");
    assert_int_equal(chmod(mixed_path, 0600), 0);
    expect_load_refused(mixed_path, true, -EINVAL, "does not belong to its public key");

    /* A character outside Z85 (and a short key) is refused, not misread. */
    char bad[KEY_Z85_LEN + 1];
    memcpy(bad, ap, sizeof(bad));
    bad[39] = '~'; /* '~' is not in the Z85 alphabet */
    char *badtext = xasprintf("curve\n    public-key = \"%s\"\n", bad);
    tu_write(dir, "badz85.key", badtext);
    char *badz85 = path2(dir, "badz85.key");
    expect_load_refused(badz85, false, -EINVAL, "no valid curve public-key");
    tu_write(dir, "short.key", "curve\n    public-key = \"abc\"\n");
    char *shortk = path2(dir, "short.key");
    expect_load_refused(shortk, false, -EINVAL, "no valid curve public-key");
    /* An all-zero key (what czmq reads for a missing secret) is no key. */
    tu_write(dir, "zero.key", "curve\n    public-key = \"0000000000000000000000000000000000000000\"\n");
    char *zero = path2(dir, "zero.key");
    expect_load_refused(zero, false, -EINVAL, "no valid curve public-key");

    assert_null(keys_load_cert(apub, &err));
    assert_non_null(err);
    free(err);

    free(zero);
    free(shortk);
    free(badz85);
    free(badtext);
    free(mixed_path);
    free(mixed);
    free(garbage);
    free(missing);
    free(apub);
    free(asec);
    free(bsec);
    tu_rm_rf(dir);
    free(dir);
}

static void test_node_names(void **state)
{
    (void)state;
    const char *good[] = {"a", "pve-01", "node_7.lab.example", "A0", NULL};
    const char *bad[] = {"", ".hidden", "-x", "a/b", "a b", "é", "../x", NULL};
    for (int i = 0; good[i]; i++)
        assert_true(keys_valid_node_name(good[i]));
    for (int i = 0; bad[i]; i++)
        assert_false(keys_valid_node_name(bad[i]));
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_false(keys_valid_node_name(long_name));
    long_name[63] = '\0';
    assert_true(keys_valid_node_name(long_name));
    assert_false(keys_valid_node_name(NULL));
}

static void key_of(const char *dir, const char *name, char out[KEY_Z85_LEN + 1])
{
    char *err = NULL;
    assert_int_equal(keys_generate(dir, name, &err), 0);
    char *p = xasprintf("%s/%s.key", dir, name);
    assert_int_equal(keys_load_public(p, out, &err), 0);
    free(p);
}

static void test_keystore(void **state)
{
    (void)state;
    char *tmp = tu_tmpdir();
    char *gen = path2(tmp, "gen");
    char *kdir = path2(tmp, "keys");
    char k1[KEY_Z85_LEN + 1], k2[KEY_Z85_LEN + 1], k3[KEY_Z85_LEN + 1];
    key_of(gen, "k1", k1);
    key_of(gen, "k2", k2);
    key_of(gen, "k3", k3);

    keystore_t *ks = NULL;
    char *err = NULL;
    assert_int_equal(keystore_open(kdir, &ks, &err), 0);
    char *agents = path2(kdir, "agents"), *pending = path2(kdir, "pending");
    assert_int_equal(mode_of(agents), 0700);
    assert_int_equal(mode_of(pending), 0700);
    assert_string_equal(keystore_dir(ks), kdir);

    /* Unknown key: nothing maps; recording it makes it pending only. */
    assert_null(keystore_node_for(ks, k1));
    assert_int_equal(keystore_add_pending(ks, "pve1", k1, &err), 0);
    assert_int_equal(keystore_add_pending(ks, "pve1", k1, &err), 0); /* idempotent */
    assert_int_equal(keystore_add_pending(ks, "pve0", k2, &err), 0);
    assert_string_equal(keystore_pending_key(ks, "pve1"), k1);
    assert_null(keystore_node_for(ks, k1));
    assert_null(keystore_key_for(ks, "pve1"));
    char *pfile = path2(pending, "pve1.key"), *afile = path2(agents, "pve1.key");
    assert_true(exists(pfile));
    assert_false(exists(afile));
    strv_t acc = STRV_INIT, pend = STRV_INIT;
    keystore_list(ks, &acc, &pend);
    assert_int_equal(acc.n, 0);
    assert_int_equal(pend.n, 2);
    assert_string_equal(pend.v[0], "pve0");
    assert_string_equal(pend.v[1], "pve1");
    strv_free(&pend);

    /* Refusals when recording. */
    assert_int_equal(keystore_add_pending(ks, "bad/name", k3, &err), -EINVAL);
    free(err);
    assert_int_equal(keystore_add_pending(ks, "pve3", "not-a-key", &err), -EINVAL);
    free(err);

    /* Accept: the file moves and both maps know it. */
    assert_int_equal(keystore_accept(ks, "pve1", &err), 0);
    assert_false(exists(pfile));
    assert_true(exists(afile));
    assert_string_equal(keystore_node_for(ks, k1), "pve1");
    assert_string_equal(keystore_key_for(ks, "pve1"), k1);
    assert_null(keystore_pending_key(ks, "pve1"));
    keystore_list(ks, &acc, &pend);
    assert_int_equal(acc.n, 1);
    assert_string_equal(acc.v[0], "pve1");
    assert_int_equal(pend.n, 1);
    strv_free(&acc);
    strv_free(&pend);

    /* Nothing pending: refused. */
    assert_int_equal(keystore_accept(ks, "pve1", &err), -ENOENT);
    assert_non_null(strstr(err, "no key is pending for node pve1"));
    free(err);
    assert_int_equal(keystore_accept(ks, "nobody", &err), -ENOENT);
    free(err);

    /* An accepted key cannot become pending, for any node. */
    assert_int_equal(keystore_add_pending(ks, "pve2", k1, &err), -EEXIST);
    assert_non_null(strstr(err, "already accepted for node pve1"));
    free(err);

    /* A pending file holding a key that already serves another node (copied
     * by hand) is not accepted. */
    char *cmd = xasprintf("cp '%s' '%s/pve9.key'", afile, pending);
    free(tu_run(cmd, NULL));
    free(cmd);
    assert_int_equal(keystore_reload(ks, &err), 0);
    assert_string_equal(keystore_pending_key(ks, "pve9"), k1);
    assert_int_equal(keystore_accept(ks, "pve9", &err), -EEXIST);
    assert_non_null(strstr(err, "already accepted for node pve1"));
    free(err);
    assert_null(keystore_key_for(ks, "pve9"));

    /* Re-keyed node: accepting its new key replaces the old one. */
    assert_int_equal(keystore_add_pending(ks, "pve1", k3, &err), 0);
    assert_int_equal(keystore_accept(ks, "pve1", &err), 0);
    assert_string_equal(keystore_key_for(ks, "pve1"), k3);
    assert_string_equal(keystore_node_for(ks, k3), "pve1");
    assert_null(keystore_node_for(ks, k1));

    /* Damaged files in agents/ are skipped (with a warning), the rest kept. */
    tu_write(agents, "broken.key", "garbage\n");
    tu_write(agents, "notakey.txt", "x\n");
    tu_write(agents, "-bad.key", "x\n");
    FILE *devnull = fopen("/dev/null", "w");
    log_set_output(devnull);
    keystore_t *again = NULL;
    assert_int_equal(keystore_open(kdir, &again, &err), 0);
    log_set_output(NULL);
    fclose(devnull);
    assert_string_equal(keystore_key_for(again, "pve1"), k3);
    assert_string_equal(keystore_node_for(again, k3), "pve1");
    assert_null(keystore_key_for(again, "broken"));
    assert_string_equal(keystore_pending_key(again, "pve0"), k2);
    keystore_destroy(&again);
    assert_null(again);
    keystore_destroy(&again); /* NULL-safe */

    keystore_destroy(&ks);
    free(pfile);
    free(afile);
    free(agents);
    free(pending);
    free(gen);
    free(kdir);
    tu_rm_rf(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_load),
        cmocka_unit_test(test_load_refusals),
        cmocka_unit_test(test_node_names),
        cmocka_unit_test(test_keystore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
