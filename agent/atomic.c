/* atomic — temp file, fsync, rename, fsync the folder (see atomic.h). */
#include "atomic.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int atomic_replace(const root_t *root, const char *rel, const void *data, size_t len, char **err)
{
    *err = NULL;
    char *path = root_path(root, rel);
    mode_t mode = 0644;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            *err = xasprintf("%s is a symbolic link; not replaced", path);
            free(path);
            return -ELOOP;
        }
        if (!S_ISREG(st.st_mode)) {
            *err = xasprintf("%s is not a regular file; not replaced", path);
            free(path);
            return -EINVAL;
        }
        mode = st.st_mode & 07777;
    }
    char *dcopy = xstrdup(path), *bcopy = xstrdup(path);
    char *dir = xstrdup(dirname(dcopy));
    char *tmp = xasprintf("%s/.%s.pcifleet-XXXXXX", dir, basename(bcopy));
    free(dcopy);
    free(bcopy);

    int rc = 0;
    const char *what = NULL;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        what = "cannot create a temporary file beside it";
        goto out;
    }
    if ((rc = write_all(fd, data, len)) < 0) {
        what = "cannot write the new content";
    } else if (fchmod(fd, mode) < 0) {
        rc = -errno;
        what = "cannot set the file mode";
    } else if (fsync(fd) < 0) {
        rc = -errno;
        what = "cannot flush the new content to disk";
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        what = "cannot close the new content";
    }
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
        what = "cannot rename the new content over it";
    }
    if (rc < 0) {
        unlink(tmp);
        goto out;
    }
    /* The rename is durable only once the folder is on disk too. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0 && errno != EINVAL) {
            rc = -errno;
            what = "replaced, but cannot flush the folder to disk";
        }
        close(dfd);
    }
out:
    if (rc < 0)
        *err = xasprintf("%s: %s: %s", path, what, strerror(-rc));
    free(tmp);
    free(dir);
    free(path);
    return rc;
}
