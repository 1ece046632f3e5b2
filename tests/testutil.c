#include "testutil.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set: run the tests through ctest\n", name);
        exit(2);
    }
    return v;
}

char *tu_fixture_src(const char *name)
{
    return xasprintf("%s/%s", env_or_die("PCIFLEET_FIXTURES"), name);
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/pcifleet-test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        exit(2);
    }
    return tmpl;
}

static void run_or_die(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
        exit(2);
    }
}

char *tu_fixture_copy(const char *name)
{
    char *src = tu_fixture_src(name);
    char *dst = tu_tmpdir();
    /* cp -a keeps the symlinks (driver, iommu_group) as links. */
    char *cmd = xasprintf("cp -a '%s/.' '%s/'", src, dst);
    run_or_die(cmd);
    free(cmd);
    free(src);
    return dst;
}

void tu_rm_rf(const char *path)
{
    if (!path || strncmp(path, "/tmp/", 5) != 0) {
        const char *base = getenv("TMPDIR");
        if (!path || !base || strncmp(path, base, strlen(base)) != 0) {
            fprintf(stderr, "refusing to remove %s: not a temp folder\n", path ? path : "(null)");
            return;
        }
    }
    char *cmd = xasprintf("rm -rf '%s'", path);
    run_or_die(cmd);
    free(cmd);
}

void tu_write(const char *dir, const char *rel, const char *data)
{
    char *path = xasprintf("%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            perror(path);
            exit(2);
        }
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(data, f);
    fclose(f);
    free(path);
}

char *tu_run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    if (!p) {
        perror("popen");
        exit(2);
    }
    buf_t b = BUF_INIT;
    buf_reserve(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        buf_append(&b, chunk, n);
    int rc = pclose(p);
    if (status)
        *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
    return buf_steal(&b);
}
