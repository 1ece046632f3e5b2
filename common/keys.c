/* keys — CURVE key pairs and the controller's key folder (see keys.h).
 *
 * Writing uses zcert: zcert_new makes the pair, zcert_save_public and
 * zcert_save_secret write the two certificate files (the same files
 * zcert_save writes, NAME.key and NAME.key_secret). Each is written to a
 * fresh temporary name made with mkstemp (so the secret is mode 0600 from
 * its first byte), synced, and put in place with link(), which never
 * replaces an existing file: two keygens racing cannot clobber a pair.
 *
 * Reading does not use zcert_load, for three reasons: it cuts paths at 255
 * bytes (a longer path silently names another file), it prefers NAME_secret
 * over the file it was given, and it does not check the Z85 text (a bad
 * character gives a different key without an error). Instead the file is
 * read here (regular file, at most 64 KiB), parsed by czmq's own ZPL reader
 * (zconfig_str_load, the one zcert_load uses), and each key is checked with
 * zmq_z85_decode; a pair must also match (the public key is derived from
 * the secret one). keys_load_cert then makes the zcert_t with
 * zcert_new_from for zcert_apply. */
#include "keys.h"

#include "buf.h"
#include "log.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX (64u * 1024)

/* ---- names and keys ---- */

bool keys_valid_node_name(const char *name)
{
    if (!name)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > 63 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A 40-character Z85 text decoding to a key that is not all zeros. */
static bool z85_key_decode(const char *txt, uint8_t bin[32])
{
    if (!txt || strlen(txt) != KEY_Z85_LEN)
        return false;
    if (!zmq_z85_decode(bin, txt))
        return false;
    uint8_t acc = 0;
    for (int i = 0; i < 32; i++)
        acc |= bin[i];
    return acc != 0;
}

bool keys_valid_z85(const char *txt)
{
    uint8_t bin[32];
    return z85_key_decode(txt, bin);
}

/* ---- files ---- */

static int read_key_file(const char *path, char **text, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        *err = xasprintf("cannot open key file %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        *err = xasprintf("key file %s is not a regular file", path);
        return -EINVAL;
    }
    if ((unsigned long long)st.st_size > KEY_FILE_MAX) {
        close(fd);
        *err = xasprintf("key file %s is %lld bytes; a key file is a few hundred", path, (long long)st.st_size);
        return -EFBIG;
    }
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    for (;;) {
        char chunk[4096];
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            buf_free(&b);
            *err = xasprintf("cannot read key file %s: %s", path, strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        buf_append(&b, chunk, (size_t)r);
        if (b.len > KEY_FILE_MAX) {
            close(fd);
            buf_free(&b);
            *err = xasprintf("key file %s grew past %u bytes while being read", path, KEY_FILE_MAX);
            return -EFBIG;
        }
    }
    close(fd);
    if (strlen(b.p) != b.len) {
        buf_free(&b);
        *err = xasprintf("key file %s holds a NUL byte; it is not a key file", path);
        return -EINVAL;
    }
    *text = buf_steal(&b);
    return 0;
}

/* Reads the Z85 texts of a certificate file. sec may be NULL (not wanted). */
static int load_texts(const char *path, char pub[KEY_Z85_LEN + 1], char sec[KEY_Z85_LEN + 1], char **err)
{
    *err = NULL;
    char *text = NULL;
    int rc = read_key_file(path, &text, err);
    if (rc < 0)
        return rc;
    zconfig_t *root = zconfig_str_load(text);
    free(text);
    if (!root) {
        *err = xasprintf("key file %s is not a ZeroMQ certificate (made by `pcifleet keygen`)", path);
        return -EINVAL;
    }
    const char *p = zconfig_get(root, "/curve/public-key", NULL);
    uint8_t bin[32];
    if (!p || !z85_key_decode(p, bin)) {
        *err = xasprintf("key file %s has no valid curve public-key (40 Z85 characters)", path);
        zconfig_destroy(&root);
        return -EINVAL;
    }
    memcpy(pub, p, KEY_Z85_LEN + 1);
    if (sec) {
        const char *s = zconfig_get(root, "/curve/secret-key", NULL);
        uint8_t sbin[32], derived[32];
        if (!s || !z85_key_decode(s, sbin)) {
            *err = xasprintf("key file %s has no secret key: give the NAME.key_secret file of the pair", path);
            zconfig_destroy(&root);
            return -EINVAL;
        }
        if (crypto_scalarmult_base(derived, sbin) != 0 || sodium_memcmp(derived, bin, 32) != 0) {
            sodium_memzero(sbin, sizeof(sbin));
            *err = xasprintf("the secret key in %s does not belong to its public key", path);
            zconfig_destroy(&root);
            return -EINVAL;
        }
        sodium_memzero(sbin, sizeof(sbin));
        memcpy(sec, s, KEY_Z85_LEN + 1);
    }
    zconfig_destroy(&root);
    return 0;
}

int keys_load_public(const char *path, char out[KEY_Z85_LEN + 1], char **err)
{
    return load_texts(path, out, NULL, err);
}

int keys_load_pair(const char *path, char pub[KEY_Z85_LEN + 1], char sec[KEY_Z85_LEN + 1], char **err)
{
    int rc = load_texts(path, pub, sec, err);
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        sodium_memzero(sec, KEY_Z85_LEN + 1);
        *err = xasprintf("secret key file %s can be read or written by others (mode %04o); run chmod 600 %s", path,
                         (unsigned)(st.st_mode & 07777), path);
        return -EPERM;
    }
    return 0;
}

zcert_t *keys_load_cert(const char *path, char **err)
{
    char pub[KEY_Z85_LEN + 1], sec[KEY_Z85_LEN + 1];
    if (keys_load_pair(path, pub, sec, err) < 0)
        return NULL;
    uint8_t pbin[32], sbin[32];
    z85_key_decode(pub, pbin);
    z85_key_decode(sec, sbin);
    zcert_t *cert = zcert_new_from(pbin, sbin);
    sodium_memzero(sbin, sizeof(sbin));
    sodium_memzero(sec, sizeof(sec));
    if (!cert)
        *err = xasprintf("cannot make a certificate from %s: out of memory", path);
    return cert;
}

static int mkdir_p(const char *dir, mode_t mode)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    char *copy = xstrdup(dir);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST) {
            int e = errno;
            free(copy);
            return -e;
        }
        *p = '/';
    }
    free(copy);
    if (mkdir(dir, mode) < 0 && errno != EEXIST)
        return -errno;
    if (stat(dir, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static void fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Writes one certificate file to DIR/.NAME.XXXXXX with mode, syncs it and
 * returns the temporary path (caller frees), or NULL with *err set. */
static char *write_cert_temp(zcert_t *cert, const char *dir, const char *base, bool secret, mode_t mode,
                             char **err)
{
    char *tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        *err = xasprintf("cannot create a file in %s: %s", dir, strerror(e));
        free(tmp);
        return NULL;
    }
    close(fd);
    /* zcert_save_secret resets the process umask to czmq's default; keep ours. */
    mode_t old = umask(077);
    int rc = secret ? zcert_save_secret(cert, tmp) : zcert_save_public(cert, tmp);
    umask(old);
    if (rc != 0 || chmod(tmp, mode) < 0) {
        *err = xasprintf("cannot write %s/%s", dir, base);
        unlink(tmp);
        free(tmp);
        return NULL;
    }
    fsync_path(tmp);
    return tmp;
}

/* Puts tmp in place as final without replacing anything. */
static int place_no_clobber(char *tmp, const char *final, char **err)
{
    int rc = 0;
    if (link(tmp, final) < 0) {
        rc = -errno;
        if (rc == -EEXIST)
            *err = xasprintf("%s already exists; remove the old pair first to make a new one", final);
        else
            *err = xasprintf("cannot create %s: %s", final, strerror(-rc));
    }
    unlink(tmp);
    free(tmp);
    return rc;
}

int keys_generate(const char *dir, const char *name, char **err)
{
    *err = NULL;
    if (!keys_valid_node_name(name)) {
        *err = xasprintf("'%s' is not a valid key name: use 1-63 of A-Z a-z 0-9 . _ -, not starting with . or -",
                         name ? name : "");
        return -EINVAL;
    }
    int rc = mkdir_p(dir, 0700);
    if (rc < 0) {
        *err = xasprintf("cannot create key folder %s: %s", dir, strerror(-rc));
        return rc;
    }
    char *pub_path = xasprintf("%s/%s.key", dir, name);
    char *sec_path = xasprintf("%s/%s.key_secret", dir, name);
    char *pub_base = xasprintf("%s.key", name);
    char *sec_base = xasprintf("%s.key_secret", name);
    struct stat st;
    zcert_t *cert = NULL;
    char *tmp = NULL;
    if (lstat(pub_path, &st) == 0 || lstat(sec_path, &st) == 0) {
        *err = xasprintf("%s already exists; remove the old pair first to make a new one",
                         lstat(pub_path, &st) == 0 ? pub_path : sec_path);
        rc = -EEXIST;
        goto done;
    }
    cert = zcert_new();
    if (!cert) {
        *err = xstrdup("cannot make a key pair: czmq has no CURVE support or is out of memory");
        rc = -ENOMEM;
        goto done;
    }
    zcert_set_meta(cert, "name", "%s", name);
    tmp = write_cert_temp(cert, dir, sec_base, true, 0600, err);
    if (!tmp) {
        rc = -EIO;
        goto done;
    }
    if ((rc = place_no_clobber(tmp, sec_path, err)) < 0)
        goto done;
    tmp = write_cert_temp(cert, dir, pub_base, false, 0644, err);
    if (!tmp) {
        unlink(sec_path);
        rc = -EIO;
        goto done;
    }
    if ((rc = place_no_clobber(tmp, pub_path, err)) < 0) {
        unlink(sec_path);
        goto done;
    }
    fsync_path(dir);
done:
    zcert_destroy(&cert);
    free(pub_path);
    free(sec_path);
    free(pub_base);
    free(sec_base);
    return rc;
}

/* ---- the controller's key folder ---- */

struct keystore {
    char *dir;
    char *agents_dir;
    char *pending_dir;
    zhash_t *key_to_node; /* accepted */
    zhash_t *node_to_key; /* accepted */
    zhash_t *pending;     /* node -> key */
};

static zhash_t *new_map(void)
{
    zhash_t *h = zhash_new();
    if (!h)
        abort();
    zhash_autofree(h);
    return h;
}

/* Node name of a "NODE.key" file name, or NULL when it is not one. */
static char *node_of_file(const char *file)
{
    size_t n = strlen(file);
    if (n <= 4 || strcmp(file + n - 4, ".key") != 0)
        return NULL;
    char *node = xstrndup(file, n - 4);
    if (!keys_valid_node_name(node)) {
        free(node);
        return NULL;
    }
    return node;
}

static int list_dir(const char *dir, strv_t *names, char **err)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        *err = xasprintf("cannot list %s: %s", dir, strerror(e));
        return -e;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            strv_add(names, de->d_name);
    closedir(d);
    strv_sort(names);
    return 0;
}

/* Reads one folder of NODE.key files; accepted says which map to fill. */
static int load_folder(keystore_t *ks, bool accepted, char **err)
{
    const char *dir = accepted ? ks->agents_dir : ks->pending_dir;
    strv_t names = STRV_INIT;
    int rc = list_dir(dir, &names, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < names.n; i++) {
        const char *file = names.v[i];
        char *node = node_of_file(file);
        if (!node) {
            size_t n = strlen(file);
            bool secret = n > 11 && strcmp(file + n - 11, ".key_secret") == 0;
            log_warn("ignoring %s/%s: %s", dir, file,
                     secret ? "a secret key does not belong in the controller's key folder"
                            : "not a NODE.key file with a valid node name");
            free(node);
            continue;
        }
        char *path = xasprintf("%s/%s", dir, file);
        char key[KEY_Z85_LEN + 1];
        char *lerr = NULL;
        if (keys_load_public(path, key, &lerr) < 0) {
            log_warn("ignoring %s: %s", path, lerr);
            free(lerr);
        } else if (accepted) {
            const char *owner = zhash_lookup(ks->key_to_node, key);
            if (owner) {
                log_warn("ignoring %s: the same key is already accepted for node %s", path, owner);
            } else {
                zhash_insert(ks->key_to_node, key, node);
                zhash_insert(ks->node_to_key, node, key);
            }
        } else {
            zhash_insert(ks->pending, node, key);
        }
        free(path);
        free(node);
    }
    strv_free(&names);
    return 0;
}

int keystore_reload(keystore_t *ks, char **err)
{
    *err = NULL;
    zhash_t *k2n = ks->key_to_node, *n2k = ks->node_to_key, *pend = ks->pending;
    ks->key_to_node = new_map();
    ks->node_to_key = new_map();
    ks->pending = new_map();
    int rc = load_folder(ks, true, err);
    if (rc == 0)
        rc = load_folder(ks, false, err);
    if (rc < 0) {
        /* Keep serving with what was known before. */
        zhash_destroy(&ks->key_to_node);
        zhash_destroy(&ks->node_to_key);
        zhash_destroy(&ks->pending);
        ks->key_to_node = k2n;
        ks->node_to_key = n2k;
        ks->pending = pend;
        return rc;
    }
    zhash_destroy(&k2n);
    zhash_destroy(&n2k);
    zhash_destroy(&pend);
    return 0;
}

int keystore_open(const char *dir, keystore_t **out, char **err)
{
    *out = NULL;
    *err = NULL;
    int rc = mkdir_p(dir, 0700);
    if (rc < 0) {
        *err = xasprintf("cannot use key folder %s: %s", dir, strerror(-rc));
        return rc;
    }
    keystore_t *ks = xcalloc(1, sizeof(*ks));
    ks->dir = xstrdup(dir);
    ks->agents_dir = xasprintf("%s/agents", dir);
    ks->pending_dir = xasprintf("%s/pending", dir);
    const char *subs[] = {ks->agents_dir, ks->pending_dir};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (stat(subs[i], &st) < 0 && mkdir(subs[i], 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            *err = xasprintf("cannot create %s: %s", subs[i], strerror(-rc));
            keystore_destroy(&ks);
            return rc;
        }
    }
    ks->key_to_node = new_map();
    ks->node_to_key = new_map();
    ks->pending = new_map();
    if ((rc = keystore_reload(ks, err)) < 0) {
        keystore_destroy(&ks);
        return rc;
    }
    *out = ks;
    return 0;
}

void keystore_destroy(keystore_t **pks)
{
    if (!pks || !*pks)
        return;
    keystore_t *ks = *pks;
    zhash_destroy(&ks->key_to_node);
    zhash_destroy(&ks->node_to_key);
    zhash_destroy(&ks->pending);
    free(ks->dir);
    free(ks->agents_dir);
    free(ks->pending_dir);
    free(ks);
    *pks = NULL;
}

const char *keystore_node_for(const keystore_t *ks, const char *key_z85)
{
    if (!ks || !key_z85)
        return NULL;
    return zhash_lookup(ks->key_to_node, key_z85);
}

const char *keystore_key_for(const keystore_t *ks, const char *node)
{
    if (!ks || !node)
        return NULL;
    return zhash_lookup(ks->node_to_key, node);
}

const char *keystore_pending_key(const keystore_t *ks, const char *node)
{
    if (!ks || !node)
        return NULL;
    return zhash_lookup(ks->pending, node);
}

int keystore_add_pending(keystore_t *ks, const char *node, const char *key_z85, char **err)
{
    *err = NULL;
    if (!keys_valid_node_name(node)) {
        *err = xasprintf("'%s' is not a valid node name", node ? node : "");
        return -EINVAL;
    }
    uint8_t bin[32];
    if (!z85_key_decode(key_z85, bin)) {
        *err = xstrdup("the key is not a valid CURVE public key (40 Z85 characters)");
        return -EINVAL;
    }
    const char *owner = zhash_lookup(ks->key_to_node, key_z85);
    if (owner) {
        *err = xasprintf("the key is already accepted for node %s", owner);
        return -EEXIST;
    }
    const char *old = zhash_lookup(ks->pending, node);
    if (old && strcmp(old, key_z85) == 0)
        return 0;
    if (!old && zhash_size(ks->pending) >= KEYS_MAX_PENDING) {
        *err = xasprintf("%d keys are already pending; accept or remove some in %s before more are recorded",
                         KEYS_MAX_PENDING, ks->pending_dir);
        return -ENOSPC;
    }
    uint8_t zero[32] = {0};
    zcert_t *cert = zcert_new_from(bin, zero);
    if (!cert) {
        *err = xstrdup("out of memory");
        return -ENOMEM;
    }
    zcert_set_meta(cert, "name", "%s", node);
    char *base = xasprintf("%s.key", node);
    char *final = xasprintf("%s/%s", ks->pending_dir, base);
    char *tmp = write_cert_temp(cert, ks->pending_dir, base, false, 0644, err);
    zcert_destroy(&cert);
    int rc = 0;
    if (!tmp) {
        rc = -EIO;
    } else {
        if (rename(tmp, final) < 0) {
            rc = -errno;
            *err = xasprintf("cannot write %s: %s", final, strerror(-rc));
            unlink(tmp);
        } else {
            fsync_path(ks->pending_dir);
            zhash_update(ks->pending, node, (void *)key_z85);
        }
        free(tmp);
    }
    free(base);
    free(final);
    return rc;
}

int keystore_accept(keystore_t *ks, const char *node, char **err)
{
    *err = NULL;
    if (!keys_valid_node_name(node)) {
        *err = xasprintf("'%s' is not a valid node name", node ? node : "");
        return -EINVAL;
    }
    char *from = xasprintf("%s/%s.key", ks->pending_dir, node);
    char *to = xasprintf("%s/%s.key", ks->agents_dir, node);
    char key[KEY_Z85_LEN + 1];
    char *lerr = NULL;
    int rc = 0;
    struct stat st;
    if (!zhash_lookup(ks->pending, node) && stat(from, &st) < 0) {
        *err = xasprintf("no key is pending for node %s (`pcifleet keys` lists the pending ones)", node);
        rc = -ENOENT;
        goto done;
    }
    /* What is moved is the file, so check the key the file holds. */
    if ((rc = keys_load_public(from, key, &lerr)) < 0) {
        *err = xasprintf("cannot accept the key of %s: %s", node, lerr);
        free(lerr);
        goto done;
    }
    const char *owner = zhash_lookup(ks->key_to_node, key);
    if (owner && strcmp(owner, node) != 0) {
        *err = xasprintf("the key pending for %s is already accepted for node %s; one key serves one node", node,
                         owner);
        rc = -EEXIST;
        goto done;
    }
    if (rename(from, to) < 0) {
        rc = -errno;
        *err = xasprintf("cannot move %s to %s: %s", from, to, strerror(-rc));
        goto done;
    }
    fsync_path(ks->agents_dir);
    fsync_path(ks->pending_dir);
    const char *old = zhash_lookup(ks->node_to_key, node);
    if (old)
        zhash_delete(ks->key_to_node, old);
    zhash_update(ks->node_to_key, node, key);
    zhash_update(ks->key_to_node, key, (void *)node);
    zhash_delete(ks->pending, node);
done:
    free(from);
    free(to);
    return rc;
}

static void add_keys(zhash_t *h, strv_t *out)
{
    if (!out)
        return;
    zlist_t *keys = zhash_keys(h);
    for (const char *k = keys ? zlist_first(keys) : NULL; k; k = zlist_next(keys))
        strv_add(out, k);
    zlist_destroy(&keys);
    strv_sort(out);
}

void keystore_list(const keystore_t *ks, strv_t *accepted, strv_t *pending)
{
    if (!ks)
        return;
    add_keys(ks->node_to_key, accepted);
    add_keys(ks->pending, pending);
}

const char *keystore_dir(const keystore_t *ks)
{
    return ks ? ks->dir : NULL;
}
