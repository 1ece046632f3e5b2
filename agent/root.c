#include "root.h"

#include "buf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct root {
    char *prefix; /* without trailing slash; "" is the live root */
    bool live;
};

int root_new(const char *dir, root_t **out)
{
    struct stat st;
    *out = NULL;
    if (!dir || !*dir)
        dir = "/";
    if (stat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    root_t *r = xcalloc(1, sizeof(*r));
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/')
        n--;
    r->prefix = xstrndup(dir, n);
    char *real = realpath(dir, NULL);
    r->live = real && strcmp(real, "/") == 0;
    free(real);
    *out = r;
    return 0;
}

void root_destroy(root_t **r)
{
    if (!r || !*r)
        return;
    free((*r)->prefix);
    free(*r);
    *r = NULL;
}

const char *root_prefix(const root_t *r)
{
    return r->prefix;
}

bool root_is_live(const root_t *r)
{
    return r->live;
}

char *root_path(const root_t *r, const char *rel)
{
    while (*rel == '/')
        rel++;
    return xasprintf("%s/%s", r->prefix, rel);
}

int root_read(const root_t *r, const char *rel, size_t max, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    char *path = root_path(r, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    free(path);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    /* A FIFO or device would block or never end: only regular files. */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    /* sysfs reports 4096 for every attribute, so the size only rules out
     * files that are surely too big; the read loop enforces the limit. */
    if ((unsigned long long)st.st_size > (unsigned long long)max + 4096) {
        close(fd);
        return -EFBIG;
    }
    buf_t b = BUF_INIT;
    buf_reserve(&b, 0);
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            buf_free(&b);
            return e;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            close(fd);
            buf_free(&b);
            return -EFBIG;
        }
        buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    if (len)
        *len = b.len;
    *out = buf_steal(&b);
    return 0;
}

int root_read_line(const root_t *r, const char *rel, char **out)
{
    size_t len;
    int rc = root_read(r, rel, 64 * 1024, out, &len);
    if (rc < 0)
        return rc;
    while (len > 0 && isspace((unsigned char)(*out)[len - 1]))
        (*out)[--len] = '\0';
    return 0;
}

int root_read_long(const root_t *r, const char *rel, long *out)
{
    char *s;
    int rc = root_read_line(r, rel, &s);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    bool ok = errno == 0 && end != s && *end == '\0';
    free(s);
    if (!ok)
        return -EINVAL;
    *out = v;
    return 0;
}

int root_readlink(const root_t *r, const char *rel, char **out)
{
    *out = NULL;
    char *path = root_path(r, rel);
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    free(path);
    if (n < 0)
        return -errno;
    *out = xstrndup(target, (size_t)n);
    return 0;
}

int root_readlink_base(const root_t *r, const char *rel, char **out)
{
    char *target;
    int rc = root_readlink(r, rel, &target);
    if (rc < 0)
        return rc;
    size_t n = strlen(target);
    while (n > 1 && target[n - 1] == '/')
        target[--n] = '\0';
    const char *slash = strrchr(target, '/');
    *out = xstrdup(slash ? slash + 1 : target);
    free(target);
    if (!**out) {
        free(*out);
        *out = NULL;
        return -EINVAL;
    }
    return 0;
}

bool root_exists(const root_t *r, const char *rel)
{
    char *path = root_path(r, rel);
    struct stat st;
    bool ok = lstat(path, &st) == 0;
    free(path);
    return ok;
}

bool root_is_dir(const root_t *r, const char *rel)
{
    char *path = root_path(r, rel);
    struct stat st;
    bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return ok;
}

int root_list(const root_t *r, const char *rel, strv_t *names)
{
    char *path = root_path(r, rel);
    DIR *d = opendir(path);
    free(path);
    if (!d)
        return -errno;
    strv_t local = STRV_INIT;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strv_add(&local, de->d_name);
    }
    closedir(d);
    strv_sort(&local);
    for (size_t i = 0; i < local.n; i++)
        strv_take(names, local.v[i]);
    free(local.v);
    return 0;
}
