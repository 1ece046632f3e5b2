/* Fuzzes the agent's whole scan over a host tree built from the input: the
 * sysfs PCI, IOMMU-group, IOMMU, net and firmware entries, proc and etc, with
 * the symlinks sysfs is full of (driver, iommu_group, physfn, virtfnN,
 * class/net) dangling, looping, or naming a file where a directory is
 * expected. The tree goes into a fresh temp folder; inventory_scan,
 * inventory_to_json, inventory_summary and report_to_pb run over it exactly as
 * `pcifleet-agent scan --root DIR` (and the report it sends) run them; then
 * the tree is removed.
 *
 * Input: up to SYSFS_MAX_RECORDS records, back to back, each
 *
 *     op:u8  path  NUL  len:u16 (little-endian)  content[len]
 *
 * op % 3 is the kind: 0 a regular file holding content, 1 a directory
 * (content ignored), 2 a symbolic link whose target is content. (op / 3) % 3
 * picks the top folder the path goes under: 0 sys/, 1 proc/, 2 etc/. Missing
 * parent folders are made. A record that does not fit the rules below is
 * skipped; a truncated one ends the input (its content is cut to what is
 * left). fuzz/mkseed_sysfs.sh writes fixture trees in this form.
 *
 * Nothing is written outside the temp folder:
 * - a path is at most SYSFS_MAX_PATH bytes of '/'-separated names; "." and
 *   ".." are refused, empty parts and a leading '/' are ignored;
 * - every parent folder is walked with O_NOFOLLOW, so an entry is only ever
 *   made in a real folder at the place its path names (a symlink or file on
 *   the way makes the record be skipped), and files are made with O_EXCL;
 * - a link target is relative: any number of leading ".." (at most as many
 *   as the link's folder is deep below the temp folder), then names with no
 *   "..". So each link resolves from a real folder inside the tree, climbs at
 *   most to the tree's top, and goes only down from there: whatever chain of
 *   links a probe follows stays inside (or dangles, or loops: ELOOP).
 * - the tree is removed without following links (unlinkat, and folders
 *   opened with O_NOFOLLOW), and the run aborts if anything is left, so a
 *   leftover is a finding, not litter.
 * The probes themselves only read. */
#include "inventory.h"
#include "report_pb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSFS_MAX_RECORDS 256
#define SYSFS_MAX_PATH 240
/* A PCIe function's config space is 4096 bytes; nothing the probes read is
 * meaningfully bigger. */
#define SYSFS_MAX_CONTENT 4096
/* Deeper than any path of SYSFS_MAX_PATH bytes can make (120 parts + top). */
#define SYSFS_MAX_DEPTH 128

static const char *const tops[] = {"sys", "proc", "etc"};

/* Splits path (edited in place) into its names. Returns their count, or 0
 * when the path has none or has a "." or ".." part. */
static size_t split_path(char *path, char **parts, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(path, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (strcmp(tok, ".") == 0 || strcmp(tok, "..") == 0 || n == max)
            return 0;
        parts[n++] = tok;
    }
    return n;
}

/* True when target is a link target this harness accepts for a link whose
 * folder is depth levels below the temp folder (see the top comment). */
static bool target_ok(const char *target, size_t len, size_t depth)
{
    if (len == 0 || len > SYSFS_MAX_PATH || memchr(target, '\0', len) || target[0] == '/')
        return false;
    size_t ups = 0;
    bool leading = true;
    const char *p = target, *end = target + len;
    while (p < end) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!e)
            e = end;
        size_t n = (size_t)(e - p);
        bool dotdot = n == 2 && p[0] == '.' && p[1] == '.';
        if (dotdot) {
            if (!leading || ++ups > depth)
                return false;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            leading = false;
        }
        if (e == end)
            break;
        p = e + 1;
    }
    return true;
}

/* Opens (making them as needed) the folders parts[0..n-1] below dirfd,
 * never following a link. Returns a new fd, or -1. */
static int open_dirs(int dirfd, char **parts, size_t n)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (size_t i = 0; fd >= 0 && i < n; i++) {
        (void)mkdirat(fd, parts[i], 0755);
        int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    return fd;
}

static void make_file(int dirfd, const char *name, const uint8_t *content, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    while (len > 0) {
        ssize_t n = write(fd, content, len);
        if (n <= 0)
            break;
        content += n;
        len -= (size_t)n;
    }
    close(fd);
}

/* Makes one record's entry under rootfd. */
static void make_entry(int rootfd, unsigned op, const char *path, const uint8_t *content, size_t len)
{
    char copy[SYSFS_MAX_PATH + 1];
    size_t plen = strlen(path);
    if (plen > SYSFS_MAX_PATH)
        return;
    memcpy(copy, path, plen + 1);
    char *parts[SYSFS_MAX_DEPTH];
    parts[0] = (char *)tops[(op / 3) % 3];
    size_t n = split_path(copy, parts + 1, SYSFS_MAX_DEPTH - 1);
    if (n == 0)
        return;
    n++; /* with the top folder; the entry is parts[n-1], its folder n-1 deep */
    int kind = (int)(op % 3);
    if (kind == 2 && !target_ok((const char *)content, len, n - 1))
        return;
    int dirfd = open_dirs(rootfd, parts, n - 1);
    if (dirfd < 0)
        return;
    const char *name = parts[n - 1];
    if (kind == 0) {
        make_file(dirfd, name, content, len > SYSFS_MAX_CONTENT ? SYSFS_MAX_CONTENT : len);
    } else if (kind == 1) {
        (void)mkdirat(dirfd, name, 0755);
    } else {
        char target[SYSFS_MAX_PATH + 1];
        memcpy(target, content, len);
        target[len] = '\0';
        (void)symlinkat(target, dirfd, name);
    }
    close(dirfd);
}

/* Builds the tree the input describes under the folder open at rootfd. */
static void build_tree(int rootfd, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++)
        (void)mkdirat(rootfd, tops[i], 0755);
    size_t pos = 0;
    for (int rec = 0; rec < SYSFS_MAX_RECORDS && pos < size; rec++) {
        unsigned op = data[pos++];
        const uint8_t *nul = memchr(data + pos, '\0', size - pos);
        if (!nul)
            return;
        const char *path = (const char *)data + pos;
        pos = (size_t)(nul - data) + 1;
        size_t len = 0;
        if (pos < size)
            len = data[pos++];
        if (pos < size)
            len |= (size_t)data[pos++] << 8;
        if (len > size - pos)
            len = size - pos;
        make_entry(rootfd, op, path, data + pos, len);
        pos += len;
    }
}

/* Removes everything in the folder open at fd (closed here), depth levels
 * down, without following a link. */
static void empty_dir(int fd, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        /* Files and links go with a plain unlink, which never follows. */
        if (unlinkat(dirfd(d), de->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
            continue;
        if (depth < SYSFS_MAX_DEPTH) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                empty_dir(sub, depth + 1);
        }
        (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

/* A few lines of pci.ids instead of the system's 1.3 MB, which libpci
 * would parse again for every input (14 ms each, most of the run): the
 * names are not what this target fuzzes, the probes around them are. */
static char *ids_path;

static void remove_ids(void)
{
    if (ids_path)
        unlink(ids_path);
    free(ids_path);
    ids_path = NULL;
}

static const char *small_ids(const char *base)
{
    if (ids_path)
        return ids_path;
    ids_path = xasprintf("%s/pcifleet-fuzz-sysfs-%ld.ids", base, (long)getpid());
    FILE *f = fopen(ids_path, "w");
    if (!f) {
        perror(ids_path);
        abort();
    }
    fputs("8086  Intel Corporation\n\t1521  I350 Gigabit Network Connection\n\t10fb  82599ES\n"
          "\t10ed  82599 Ethernet Controller Virtual Function\n15b3  Mellanox Technologies\n"
          "1022  Advanced Micro Devices, Inc. [AMD]\n",
          f);
    if (fclose(f) != 0)
        abort();
    atexit(remove_ids);
    return ids_path;
}

static void scan(const char *dir, const char *ids)
{
    scan_opts_t so = {dir, NULL, ids};
    inventory_t *inv = NULL;
    char *err = NULL;
    /* The root is a folder we just made: the scan has no reason to fail. */
    if (inventory_scan(&so, &inv, &err) < 0)
        abort();
    json_t *j = json_new(2);
    inventory_to_json(inv, j);
    size_t len;
    if (!json_text(j, &len) || len == 0)
        abort();
    json_destroy(&j);
    buf_t b = BUF_INIT;
    inventory_summary(inv, &b);
    buf_free(&b);
    Pcifleet__Inventory *pb = NULL;
    if (report_to_pb(inv, &pb) < 0 || !pb)
        abort();
    report_pb_free(&pb);
    inventory_destroy(&inv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* tmpfs when there is one: the tree is made and removed per input. */
    const char *tmp = getenv("TMPDIR");
    const char *base = tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char *dir = xasprintf("%s/pcifleet-fuzz-sysfs.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0)
        abort();
    build_tree(rootfd, data, size);
    scan(dir, small_ids(base));
    empty_dir(rootfd, 0);
    /* Anything left means the removal missed an entry: a harness bug. */
    if (rmdir(dir) < 0) {
        perror(dir);
        abort();
    }
    free(dir);
    return 0;
}
