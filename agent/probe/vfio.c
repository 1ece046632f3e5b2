#include "vfio.h"

#include "buf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\0';
}

/* Appends the first word of every line; comment lines are skipped when
 * comments is true. */
static int first_words(const char *buf, size_t len, bool comments, strv_t *out)
{
    int rc = 0;
    if (!buf)
        return 0;
    if (len && memchr(buf, '\0', len))
        rc = -EINVAL;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t s = pos;
        pos = nl ? end + 1 : len;
        while (s < end && is_blank(buf[s]))
            s++;
        if (s == end || (comments && (buf[s] == '#' || buf[s] == ';')))
            continue;
        size_t e = s;
        while (e < end && !is_blank(buf[e]))
            e++;
        char *name = xstrndup(buf + s, e - s);
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        strv_take(out, name);
    }
    return rc;
}

int modules_list_parse(const char *buf, size_t len, strv_t *out)
{
    return first_words(buf, len, true, out);
}

int proc_modules_parse(const char *buf, size_t len, strv_t *out)
{
    return first_words(buf, len, false, out);
}

static bool read_number(const char **p, int *out)
{
    const char *s = *p;
    long v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v > 1000000)
            return false;
    }
    *out = (int)v;
    *p = s;
    return true;
}

static bool parse_release(const char *release, int *major, int *minor)
{
    if (!release)
        return false;
    const char *p = release;
    if (!read_number(&p, major) || *p != '.')
        return false;
    p++;
    return read_number(&p, minor);
}

bool kernel_release_at_least(const char *release, int major, int minor)
{
    int ma, mi;
    if (!parse_release(release, &ma, &mi))
        return false;
    return ma > major || (ma == major && mi >= minor);
}

/* Normalises a root-relative path: '/'-prefixed, no "." or empty parts, and
 * ".." never climbs above the root. */
static char *path_normalize(const char *path)
{
    strv_t parts = STRV_INIT;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (parts.n) {
                free(parts.v[parts.n - 1]);
                parts.n--;
            }
        } else {
            strv_addn(&parts, p, n);
        }
        p = e;
    }
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < parts.n; i++) {
        buf_putc(&b, '/');
        buf_puts(&b, parts.v[i]);
    }
    if (!b.len)
        buf_putc(&b, '/');
    strv_free(&parts);
    return buf_steal(&b);
}

/* Follows a symlink at rel inside the root (an absolute target means the
 * node's root, not this machine's). Returns the final root-relative path. */
static char *resolve_in_root(const root_t *root, const char *rel)
{
    char *cur = path_normalize(rel);
    for (int hop = 0; hop < 16; hop++) {
        char *target;
        if (root_readlink(root, cur, &target) < 0)
            return cur;
        char *next;
        if (target[0] == '/') {
            next = path_normalize(target);
        } else {
            char *slash = strrchr(cur, '/');
            char *joined = xasprintf("%.*s/%s", (int)(slash - cur), cur, target);
            next = path_normalize(joined);
            free(joined);
        }
        free(target);
        free(cur);
        cur = next;
    }
    return cur;
}

static void read_modules_file(const root_t *root, const char *rel, vfio_info_t *out,
                              strv_t *seen, errs_t *errs)
{
    char *real = resolve_in_root(root, rel);
    if (strcmp(real, "/dev/null") == 0 || strv_contains(seen, real)) {
        free(real); /* masked, or the same file by another name */
        return;
    }
    strv_add(seen, real);
    char *data = NULL;
    size_t len = 0;
    int rc = root_read(root, real, ROOT_READ_MAX, &data, &len);
    if (rc == -ENOENT || rc == -ENOTDIR || rc == -EISDIR) {
        free(real);
        return;
    }
    if (rc < 0) {
        if (rc == -EFBIG)
            errs_add(errs, real, "is larger than %u bytes; treated as damaged and not read",
                     ROOT_READ_MAX);
        else
            errs_add(errs, real, "could not be read: %s", strerror(-rc));
        free(real);
        return;
    }
    strv_t names = STRV_INIT;
    if (modules_list_parse(data, len, &names) < 0)
        errs_add(errs, real, "holds NUL bytes; it is not a text file");
    bool contributed = false;
    for (size_t i = 0; i < out->required.n; i++) {
        if (strv_contains(&names, out->required.v[i])) {
            contributed = true;
            strv_add_unique(&out->configured, out->required.v[i]);
        }
    }
    if (contributed)
        strv_add_unique(&out->sources, real);
    strv_free(&names);
    free(data);
    free(real);
}

/* Puts list in the order of required. */
static void order_like(strv_t *list, const strv_t *required)
{
    strv_t sorted = STRV_INIT;
    for (size_t i = 0; i < required->n; i++)
        if (strv_contains(list, required->v[i]))
            strv_add(&sorted, required->v[i]);
    strv_free(list);
    *list = sorted;
}

int vfio_probe(const root_t *root, const char *kernel_release, vfio_info_t *out, errs_t *errs)
{
    memset(out, 0, sizeof(*out));
    if (!root || !errs)
        return -EINVAL;

    char *osrelease = NULL;
    const char *release = kernel_release;
    if (!release && root_read_line(root, "proc/sys/kernel/osrelease", &osrelease) == 0)
        release = osrelease;
    int major, minor;
    bool known = parse_release(release, &major, &minor);
    strv_add(&out->required, "vfio");
    strv_add(&out->required, "vfio_iommu_type1");
    strv_add(&out->required, "vfio_pci");
    if (known && !kernel_release_at_least(release, 6, 2))
        strv_add(&out->required, "vfio_virqfd");
    if (!known) {
        if (release)
            errs_add(errs, kernel_release ? "kernel release" : "/proc/sys/kernel/osrelease",
                     "\"%.64s\" is not a kernel version; vfio_virqfd (needed before 6.2) is not "
                     "checked",
                     release);
        else
            errs_add(errs, "/proc/sys/kernel/osrelease",
                     "could not be read, so the kernel version is unknown; vfio_virqfd (needed "
                     "before 6.2) is not checked");
    }
    free(osrelease);

    /* Loaded now. */
    strv_t mods = STRV_INIT;
    char *data = NULL;
    size_t len = 0;
    int rc = root_read(root, "proc/modules", ROOT_READ_MAX, &data, &len);
    if (rc == 0) {
        proc_modules_parse(data, len, &mods);
        free(data);
    } else if (rc != -ENOENT) {
        errs_add(errs, "/proc/modules", "could not be read: %s", strerror(-rc));
    }
    for (size_t i = 0; i < out->required.n; i++) {
        const char *m = out->required.v[i];
        char *sys = xasprintf("sys/module/%s", m);
        if (strv_contains(&mods, m) || root_is_dir(root, sys))
            strv_add(&out->loaded, m);
        free(sys);
    }
    strv_free(&mods);

    /* Configured to load at boot. */
    strv_t seen = STRV_INIT;
    read_modules_file(root, "/etc/modules", out, &seen, errs);
    strv_t confs = STRV_INIT;
    root_list(root, "etc/modules-load.d", &confs);
    for (size_t i = 0; i < confs.n; i++) {
        size_t n = strlen(confs.v[i]);
        if (n < 6 || strcmp(confs.v[i] + n - 5, ".conf") != 0)
            continue;
        char *rel = xasprintf("/etc/modules-load.d/%s", confs.v[i]);
        read_modules_file(root, rel, out, &seen, errs);
        free(rel);
    }
    strv_free(&confs);
    strv_free(&seen);
    order_like(&out->configured, &out->required);

    for (size_t i = 0; i < out->required.n; i++) {
        const char *m = out->required.v[i];
        if (!strv_contains(&out->configured, m) && !strv_contains(&out->loaded, m))
            strv_add(&out->missing, m);
    }
    return 0;
}

void vfio_info_free(vfio_info_t *v)
{
    if (!v)
        return;
    strv_free(&v->required);
    strv_free(&v->loaded);
    strv_free(&v->configured);
    strv_free(&v->missing);
    strv_free(&v->sources);
}
