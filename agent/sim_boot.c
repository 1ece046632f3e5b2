/* sim_boot — boot refresh commands and the simulated boot (sim_boot.h,
 * docs/simulator.md).
 *
 * The refresh commands write what a real one writes and nothing the boot
 * does not read: update-grub the linux lines of boot/grub/grub.cfg,
 * proxmox-boot-tool refresh the ESP's loader entries. The boot then reads
 * only those, so an edit of etc/default/grub or etc/kernel/cmdline that was
 * never refreshed changes nothing, as on real hardware. */
#include "sim_boot.h"

#include "atomic.h"
#include "boot.h"
#include "cmdline.h"
#include "errs.h"
#include "sim.h"
#include "strv.h"
#include "vfio.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>

#define GRUB_CFG "boot/grub/grub.cfg"
#define INITRAMFS_RECORD "boot/pcifleet-sim/initramfs.modules"
#define PCI_DEVICES "sys/bus/pci/devices"
#define IOMMU_GROUPS "sys/kernel/iommu_groups"
#define IOMMU_CLASS "sys/class/iommu"
static const char *const esp_dirs[] = {"boot/efi", "efi", "boot"}; /* where boot.h looks, same order */

/* ---- writing under the root ---- */

/* Every relative path built here comes from names read under the root; one
 * with a ".." component could leave it, so it is refused outright. */
static bool rel_safe(const char *rel)
{
    for (const char *p = rel; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n;
        while (*p == '/')
            p++;
    }
    return *rel != '\0';
}

/* The folders of rel that exist must resolve inside the root: a fixture
 * whose sys/ is a link to the host's /sys must not get the host written.
 * (Links inside the root, as Proxmox's etc/pve/qemu-server, are fine.) */
static bool inside_root(const root_t *root, const char *rel)
{
    char *top = realpath(root_prefix(root), NULL);
    if (!top)
        return false;
    char *path = root_path(root, rel);
    char *real = NULL;
    for (char *slash; !real && (slash = strrchr(path, '/'));) {
        *slash = '\0'; /* the last component itself is never followed */
        real = realpath(*path ? path : "/", NULL);
    }
    size_t n = strlen(top);
    bool ok = real && strncmp(real, top, n) == 0 && (real[n] == '/' || real[n] == '\0');
    free(real);
    free(path);
    free(top);
    return ok;
}

static int mkdir_p(const root_t *root, const char *rel)
{
    if (!rel_safe(rel) || !inside_root(root, rel))
        return -EINVAL;
    char *path = root_path(root, rel);
    size_t base = strlen(root_prefix(root)) + 1;
    for (char *p = path + base;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                int e = -errno;
                free(path);
                return e;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(path);
    return 0;
}

static int write_file(const root_t *root, const char *rel, const char *data, buf_t *out)
{
    if (!rel_safe(rel) || !inside_root(root, rel)) {
        buf_printf(out, "pcifleet simulator: /%s resolves outside the root; not written\n", rel);
        return -EINVAL;
    }
    char *dir = xstrdup(rel);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash) {
        *slash = '\0';
        rc = mkdir_p(root, dir);
    }
    free(dir);
    if (rc < 0) {
        buf_printf(out, "cannot create the folder of /%s: %s\n", rel, strerror(-rc));
        return rc;
    }
    char *err = NULL;
    rc = atomic_replace(root, rel, data, strlen(data), &err);
    if (rc < 0)
        buf_printf(out, "cannot write /%s: %s\n", rel, err ? err : strerror(-rc));
    free(err);
    return rc;
}

/* A link replaced by rename, so a reader sees the old one or the new one. */
static int write_link(const root_t *root, const char *rel, const char *target)
{
    if (!rel_safe(rel) || !inside_root(root, rel))
        return -EINVAL;
    char *path = root_path(root, rel);
    char *tmp = xasprintf("%s.pcifleet-sim-link", path);
    unlink(tmp);
    int rc = 0;
    if (symlink(target, tmp) < 0 || rename(tmp, path) < 0) {
        rc = -errno;
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

/* Removes dirfd/name and everything below it without following a link. */
static int rm_tree_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = rm_tree_at(fd, e->d_name);
        if (r < 0 && !rc)
            rc = r;
    }
    closedir(d);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && !rc)
        rc = -errno;
    return rc;
}

static int rm_tree(const root_t *root, const char *rel)
{
    if (!rel_safe(rel) || !inside_root(root, rel))
        return -EINVAL;
    char *path = root_path(root, rel);
    int rc = rm_tree_at(AT_FDCWD, path);
    free(path);
    return rc;
}

static char *read_text(const root_t *root, const char *rel)
{
    char *s = NULL;
    return root_read(root, rel, ROOT_READ_MAX, &s, NULL) == 0 ? s : NULL;
}

/* ---- the configured command lines ---- */

/* GRUB_CMDLINE_LINUX and _DEFAULT as update-grub sees them: etc/default/grub
 * then the drop-ins (boot.h applies them in that order). */
static int grub_vars(const root_t *root, char **linux_args, char **linux_default, buf_t *out)
{
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    boot_probe(root, &b, &errs);
    errs_free(&errs);
    if (!root_exists(root, "etc/default/grub")) {
        boot_info_free(&b);
        buf_puts(out, "/usr/sbin/grub-mkconfig: 1: /etc/default/grub: not found\n");
        return -ENOENT;
    }
    *linux_args = xstrdup(b.grub_linux ? b.grub_linux : "");
    *linux_default = xstrdup(b.grub_linux_default ? b.grub_linux_default : "");
    boot_info_free(&b);
    return 0;
}

/* Tokens of s joined by single spaces, as a boot loader hands them over. */
static void append_words(buf_t *b, const char *s)
{
    while (s && *s) {
        while (*s && isspace((unsigned char)*s))
            s++;
        const char *e = s;
        while (*e && !isspace((unsigned char)*e))
            e++;
        if (e > s) {
            if (b->len && b->p[b->len - 1] != ' ')
                buf_putc(b, ' ');
            buf_append(b, s, (size_t)(e - s));
        }
        s = e;
    }
}

static const char *running_kernel(const root_t *root, char *buf, size_t n)
{
    char *s = NULL;
    buf[0] = '\0';
    if (root_read_line(root, "proc/sys/kernel/osrelease", &s) == 0)
        snprintf(buf, n, "%s", s);
    free(s);
    return buf[0] ? buf : NULL;
}

/* The running root= token, for a grub.cfg written from nothing. */
static char *running_root_arg(const root_t *root)
{
    char *cl = read_text(root, "proc/cmdline");
    char *r = NULL;
    if (cl) {
        kargs_t a = KARGS_INIT;
        kargs_parse(cl, strlen(cl), &a);
        const karg_t *k = kargs_find_last(&a, "root");
        if (k && k->value)
            r = xstrdup(k->value);
        kargs_free(&a);
        free(cl);
    }
    return r;
}

/* ---- update-grub ---- */

/* One linux line rewritten as grub-mkconfig's 10_linux writes it:
 * "linux KERNEL root=... ro" then, for a recovery entry, "single" and
 * GRUB_CMDLINE_LINUX, else GRUB_CMDLINE_LINUX and _DEFAULT. The words up to
 * ro/rw are what grub-mkconfig takes from the system, so they are kept. */
static void grub_linux_line(buf_t *o, const char *line, size_t len, const char *lx, const char *ld)
{
    size_t ind = 0;
    while (ind < len && (line[ind] == ' ' || line[ind] == '\t'))
        ind++;
    buf_append(o, line, ind);
    char *rest = xstrndup(line + ind, len - ind);
    strv_t w = STRV_INIT;
    for (char *save = NULL, *t = strtok_r(rest, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        strv_add(&w, t);
    free(rest);
    size_t keep = w.n;
    bool recovery = false;
    for (size_t i = 0; i < w.n; i++) {
        if (strcmp(w.v[i], "ro") == 0 || strcmp(w.v[i], "rw") == 0) {
            keep = i + 1;
            recovery = i + 1 < w.n && strcmp(w.v[i + 1], "single") == 0;
            break;
        }
    }
    if (keep == w.n && w.n > 2)
        keep = 2; /* no ro/rw: "linux KERNEL" and the generated rest */
    buf_t args = BUF_INIT;
    buf_reset(&args);
    for (size_t i = 0; i < keep; i++)
        buf_printf(&args, "%s%s", i ? (i == 1 ? "\t" : " ") : "", w.v[i]);
    buf_puts(o, args.p);
    buf_free(&args);
    /* grub-mkconfig leaves the double space when a variable is empty;
     * tokens are what counts, so single spaces are written. */
    buf_t tail = BUF_INIT;
    buf_reset(&tail);
    if (recovery)
        append_words(&tail, "single");
    append_words(&tail, lx);
    if (!recovery)
        append_words(&tail, ld);
    if (tail.len)
        buf_printf(o, " %s", tail.p);
    buf_free(&tail);
    strv_free(&w);
}

static bool is_linux_line(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    return n - i > 6 && strncmp(l + i, "linux", 5) == 0 && (l[i + 5] == ' ' || l[i + 5] == '\t');
}

int sim_update_grub(const root_t *root, const char *const *args, size_t nargs, buf_t *out)
{
    (void)args;
    if (nargs > 0) {
        buf_puts(out, "Usage: update-grub\n");
        return 1;
    }
    char *lx = NULL, *ld = NULL;
    if (grub_vars(root, &lx, &ld, out) < 0)
        return 1;
    char *old = read_text(root, GRUB_CFG);
    buf_t cfg = BUF_INIT;
    buf_reset(&cfg);
    size_t entries = 0;
    if (old) {
        for (const char *p = old; *p;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            if (is_linux_line(p, n)) {
                grub_linux_line(&cfg, p, n, lx, ld);
                entries++;
            } else {
                buf_append(&cfg, p, n);
            }
            if (nl)
                buf_putc(&cfg, '\n');
            p += n + (nl ? 1 : 0);
        }
    }
    if (!entries) {
        /* No earlier grub.cfg to keep the system's parts from: one entry for
         * the running kernel on the running root. */
        char kbuf[128];
        const char *k = running_kernel(root, kbuf, sizeof(kbuf));
        char *r = running_root_arg(root);
        buf_reset(&cfg);
        buf_printf(&cfg, "# generated by the pcifleet node simulator (update-grub)\n"
                         "menuentry 'Linux' {\n\tlinux\t/boot/vmlinuz-%s root=%s ro",
                   k ? k : "linux", r ? r : "/dev/sda1");
        buf_t tail = BUF_INIT;
        buf_reset(&tail);
        append_words(&tail, lx);
        append_words(&tail, ld);
        if (tail.len)
            buf_printf(&cfg, " %s", tail.p);
        buf_printf(&cfg, "\n\tinitrd\t/boot/initrd.img-%s\n}\n", k ? k : "linux");
        buf_free(&tail);
        free(r);
        entries = 1;
    }
    buf_puts(out, "Generating grub configuration file ...\n");
    int rc = write_file(root, GRUB_CFG, cfg.p, out);
    if (rc == 0)
        buf_puts(out, "done\n");
    buf_free(&cfg);
    free(old);
    free(lx);
    free(ld);
    return rc < 0 ? 1 : 0;
}

/* ---- proxmox-boot-tool refresh ---- */

static const char *esp_dir(const root_t *root)
{
    for (size_t i = 0; i < sizeof(esp_dirs) / sizeof(esp_dirs[0]); i++) {
        char *rel = xasprintf("%s/loader/loader.conf", esp_dirs[i]);
        bool ok = root_exists(root, rel);
        free(rel);
        if (ok)
            return esp_dirs[i];
    }
    return NULL;
}

/* A loader entry with its options line replaced (added when missing). */
static char *entry_with_options(const char *old, const char *options)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    bool done = false;
    for (const char *p = old; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n >= 8 && strncmp(p, "options", 7) == 0 && (p[7] == ' ' || p[7] == '\t')) {
            if (!done)
                buf_printf(&b, "options  %s\n", options);
            done = true;
        } else {
            buf_append(&b, p, n);
            buf_putc(&b, '\n');
        }
        p += n + (nl ? 1 : 0);
    }
    if (!done)
        buf_printf(&b, "options  %s\n", options);
    return buf_steal(&b);
}

int sim_proxmox_boot_tool(const root_t *root, const char *const *args, size_t nargs, buf_t *out)
{
    if (nargs != 1 || strcmp(args[0], "refresh") != 0) {
        buf_printf(out, "pcifleet simulator: 'proxmox-boot-tool%s%s' is not simulated (only 'refresh' is); "
                        "nothing was run\n",
                   nargs ? " " : "", nargs ? args[0] : "");
        return 2;
    }
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    boot_probe(root, &b, &errs);
    errs_free(&errs);
    boot_loader_t loader = b.loader;
    boot_info_free(&b);
    if (loader == BOOT_GRUB) {
        /* proxmox-boot-tool on a GRUB node refreshes GRUB on its ESPs. */
        buf_puts(out, "Running hook script 'proxmox-auto-removal'..\nRunning hook script 'zz-proxmox-boot'..\n");
        return sim_update_grub(root, NULL, 0, out);
    }
    char *cmd = NULL, *perr = NULL;
    char *text = read_text(root, "etc/kernel/cmdline");
    if (!text) {
        buf_puts(out, "E: /etc/kernel/cmdline does not exist - please create it\n");
        return 1;
    }
    kernel_cmdline_file_parse(text, strlen(text), &cmd, &perr);
    free(text);
    free(perr);
    if (!cmd) {
        buf_puts(out, "E: /etc/kernel/cmdline holds no command line\n");
        return 1;
    }
    const char *esp = esp_dir(root);
    int status = 0;
    buf_puts(out, "Running hook script 'proxmox-auto-removal'..\nRunning hook script 'zz-proxmox-boot'..\n"
                  "Re-executing '/etc/kernel/postinst.d/zz-proxmox-boot' in new private mount namespace..\n"
                  "Copying and configuring kernels on /dev/disk/by-uuid/ESP\n");
    if (!esp) {
        /* No ESP copy yet: one for the running kernel where boot.h looks first. */
        char kbuf[128];
        const char *k = running_kernel(root, kbuf, sizeof(kbuf));
        char *entry = xasprintf("title    Proxmox Virtual Environment\nversion  %s\noptions  %s\n"
                                "linux    /EFI/proxmox/%s/vmlinuz-%s\ninitrd   /EFI/proxmox/%s/initrd.img-%s\n",
                                k ? k : "linux", cmd, k ? k : "linux", k ? k : "linux", k ? k : "linux",
                                k ? k : "linux");
        char *rel = xasprintf("%s/loader/entries/proxmox-%s.conf", esp_dirs[0], k ? k : "linux");
        if (write_file(root, "boot/efi/loader/loader.conf", "timeout 3\ndefault proxmox-*\n", out) < 0 ||
            write_file(root, rel, entry, out) < 0)
            status = 1;
        free(rel);
        free(entry);
    } else {
        char *dir = xasprintf("%s/loader/entries", esp);
        strv_t names = STRV_INIT;
        root_list(root, dir, &names);
        for (size_t i = 0; i < names.n && !status; i++) {
            size_t n = strlen(names.v[i]);
            if (n < 6 || strcmp(names.v[i] + n - 5, ".conf") != 0)
                continue;
            char *rel = xasprintf("%s/%s", dir, names.v[i]);
            char *old = read_text(root, rel);
            if (old) {
                char *next = entry_with_options(old, cmd);
                buf_printf(out, "\tCopying kernel and creating boot-entry for %.*s\n", (int)(n - 5), names.v[i]);
                if (write_file(root, rel, next, out) < 0)
                    status = 1;
                free(next);
            }
            free(old);
            free(rel);
        }
        strv_free(&names);
        free(dir);
    }
    free(cmd);
    return status;
}

/* ---- update-initramfs ---- */

/* The modules the operator configured: etc/modules and modules-load.d. */
static void configured_modules(const root_t *root, strv_t *mods)
{
    strv_t raw = STRV_INIT;
    char *t = read_text(root, "etc/modules");
    if (t) {
        modules_list_parse(t, strlen(t), &raw);
        free(t);
    }
    strv_t names = STRV_INIT;
    root_list(root, "etc/modules-load.d", &names);
    for (size_t i = 0; i < names.n; i++) {
        size_t n = strlen(names.v[i]);
        if (n < 6 || strcmp(names.v[i] + n - 5, ".conf") != 0)
            continue;
        char *rel = xasprintf("etc/modules-load.d/%s", names.v[i]);
        char *target = NULL;
        /* A link to /dev/null masks the file; one to ../modules was read. */
        bool skip = root_readlink(root, rel, &target) == 0 &&
                    (strcmp(target, "/dev/null") == 0 || strcmp(target, "../modules") == 0);
        free(target);
        if (!skip && (t = read_text(root, rel))) {
            modules_list_parse(t, strlen(t), &raw);
            free(t);
        }
        free(rel);
    }
    strv_free(&names);
    for (size_t i = 0; i < raw.n; i++)
        strv_add_unique(mods, raw.v[i]);
    strv_free(&raw);
}

int sim_update_initramfs(const root_t *root, const char *const *args, size_t nargs, buf_t *out)
{
    bool update = false;
    const char *version = NULL;
    for (size_t i = 0; i < nargs; i++) {
        if (strcmp(args[i], "-u") == 0)
            update = true;
        else if (strcmp(args[i], "-k") == 0 && i + 1 < nargs)
            version = args[++i];
        else {
            buf_printf(out, "pcifleet simulator: update-initramfs option '%s' is not simulated (only -u -k "
                            "VERSION|all are); nothing was run\n",
                       args[i]);
            return 2;
        }
    }
    if (!update || !version) {
        buf_puts(out, "Usage: update-initramfs {-c|-d|-u} [-k version] (simulated: -u -k all|VERSION)\n");
        return 2;
    }
    char kbuf[128];
    const char *k = running_kernel(root, kbuf, sizeof(kbuf));
    const char *which = strcmp(version, "all") == 0 ? (k ? k : "linux") : version;
    strv_t mods = STRV_INIT;
    configured_modules(root, &mods);
    buf_t rec = BUF_INIT;
    buf_printf(&rec, "# the modules the initramfs holds, written by the pcifleet node simulator\nkernel %s\n",
               which);
    for (size_t i = 0; i < mods.n; i++)
        buf_printf(&rec, "%s\n", mods.v[i]);
    buf_printf(out, "update-initramfs: Generating /boot/initrd.img-%s\n", which);
    int rc = write_file(root, INITRAMFS_RECORD, rec.p, out);
    buf_free(&rec);
    strv_free(&mods);
    return rc < 0 ? 1 : 0;
}

/* ---- reboot ---- */

static int do_reboot(const root_t *root, buf_t *out)
{
    int rc = sim_boot_root(root, out);
    /* Like the real command: the request is accepted and the machine goes
     * down; whether it comes back is not the command's exit status. */
    return rc < 0 ? 1 : 0;
}

int sim_systemctl(const root_t *root, const char *const *args, size_t nargs, buf_t *out)
{
    if (nargs != 1 || strcmp(args[0], "reboot") != 0) {
        buf_printf(out, "pcifleet simulator: 'systemctl%s%s' is not simulated (only 'systemctl reboot' is); "
                        "nothing was run\n",
                   nargs ? " " : "", nargs ? args[0] : "");
        return 1;
    }
    return do_reboot(root, out);
}

int sim_reboot_cmd(const root_t *root, const char *const *args, size_t nargs, buf_t *out)
{
    (void)args;
    if (nargs) {
        buf_puts(out, "pcifleet simulator: only a plain 'reboot' is simulated; nothing was run\n");
        return 1;
    }
    return do_reboot(root, out);
}

/* ---- the simulated boot ---- */

/* The command line the boot loader hands the kernel, from what the last
 * boot refresh produced, and the kernel version it boots. */
static char *grub_boot_cmdline(const root_t *root, char **kernel)
{
    char *cfg = read_text(root, GRUB_CFG);
    if (!cfg)
        return NULL;
    char *res = NULL;
    for (const char *p = cfg; *p && !res;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (is_linux_line(p, n)) {
            /* The first entry is the default (set default="0"). */
            char *line = xstrndup(p, n);
            strv_t w = STRV_INIT;
            for (char *save = NULL, *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
                strv_add(&w, t);
            buf_t b = BUF_INIT;
            buf_reset(&b);
            if (w.n >= 2) {
                buf_printf(&b, "BOOT_IMAGE=%s", w.v[1]);
                const char *v = strstr(w.v[1], "vmlinuz-");
                if (v)
                    *kernel = xstrdup(v + 8);
            }
            for (size_t i = 2; i < w.n; i++)
                buf_printf(&b, " %s", w.v[i]);
            res = buf_steal(&b);
            strv_free(&w);
            free(line);
        }
        p += n + (nl ? 1 : 0);
    }
    free(cfg);
    return res;
}

static char *entry_value(const char *entry, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = entry; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && (p[kl] == ' ' || p[kl] == '\t')) {
            const char *v = p + kl;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(p + n - v);
            while (vl && isspace((unsigned char)v[vl - 1]))
                vl--;
            return xstrndup(v, vl);
        }
        p += n + (nl ? 1 : 0);
    }
    return NULL;
}

static int name_vers_desc(const void *a, const void *b)
{
    return strverscmp(*(char *const *)b, *(char *const *)a);
}

/* systemd-boot: the newest entry matching loader.conf's default. */
static char *sdboot_boot_cmdline(const root_t *root, char **kernel)
{
    const char *esp = esp_dir(root);
    if (!esp)
        return NULL;
    char *lrel = xasprintf("%s/loader/loader.conf", esp);
    char *lconf = read_text(root, lrel);
    free(lrel);
    char *def = lconf ? entry_value(lconf, "default") : NULL;
    free(lconf);
    char *dir = xasprintf("%s/loader/entries", esp);
    strv_t names = STRV_INIT;
    root_list(root, dir, &names);
    if (names.n > 1) /* names.v is NULL when the folder is empty */
        qsort(names.v, names.n, sizeof(char *), name_vers_desc);
    char *res = NULL;
    for (size_t i = 0; i < names.n && !res; i++) {
        size_t n = strlen(names.v[i]);
        if (n < 6 || strcmp(names.v[i] + n - 5, ".conf") != 0)
            continue;
        char *id = xstrndup(names.v[i], n - 5);
        bool match = !def || fnmatch(def, id, 0) == 0 || fnmatch(def, names.v[i], 0) == 0;
        free(id);
        if (!match)
            continue;
        char *rel = xasprintf("%s/%s", dir, names.v[i]);
        char *e = read_text(root, rel);
        free(rel);
        if (!e)
            continue;
        char *initrd = entry_value(e, "initrd");
        char *opts = entry_value(e, "options");
        *kernel = entry_value(e, "version");
        buf_t b = BUF_INIT;
        buf_reset(&b);
        if (initrd) {
            /* systemd-boot passes the initrd as a Windows-style path. */
            for (char *c = initrd; *c; c++)
                if (*c == '/')
                    *c = '\\';
            buf_printf(&b, "initrd=%s", initrd);
        }
        append_words(&b, opts);
        res = buf_steal(&b);
        free(initrd);
        free(opts);
        free(e);
    }
    strv_free(&names);
    free(dir);
    free(def);
    return res;
}

typedef struct {
    char addr[16];
    unsigned cls;
} sim_dev_t;

typedef struct {
    const root_t *root;
    sim_profile_t prof;
    buf_t *out;
    bool intel, amd;        /* which firmware table is there */
    bool enabled, ir;
    const char *group_type; /* DMA, DMA-FQ, identity */
    sim_dev_t *devs;
    size_t n_devs;
    strv_t units;           /* dmar0... / ivhd0... */
    strv_t unit_of_dev;     /* parallel to devs: the unit a device is under ("" none) */
    long *group_of_dev;     /* parallel to devs: -1 none */
    strv_t klog;            /* new kernel log lines (without timestamps) */
} boot_t;

static void klog_add(boot_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void klog_add(boot_t *b, const char *fmt, ...)
{
    buf_t l = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&l, fmt, ap);
    va_end(ap);
    strv_take(&b->klog, buf_steal(&l));
}

static void read_devices(boot_t *b)
{
    strv_t names = STRV_INIT;
    root_list(b->root, PCI_DEVICES, &names);
    b->devs = xcalloc(names.n ? names.n : 1, sizeof(*b->devs));
    b->group_of_dev = xcalloc(names.n ? names.n : 1, sizeof(long));
    for (size_t i = 0; i < names.n; i++) {
        if (strlen(names.v[i]) != 12 || !rel_safe(names.v[i]))
            continue;
        sim_dev_t *d = &b->devs[b->n_devs];
        snprintf(d->addr, sizeof(d->addr), "%s", names.v[i]);
        char *rel = xasprintf(PCI_DEVICES "/%s/class", names.v[i]);
        long v = 0;
        d->cls = root_read_long(b->root, rel, &v) == 0 ? (unsigned)v : 0;
        free(rel);
        b->group_of_dev[b->n_devs] = -1;
        strv_add(&b->unit_of_dev, "");
        b->n_devs++;
    }
    strv_free(&names);
}

static size_t dev_index(const boot_t *b, const char *addr)
{
    for (size_t i = 0; i < b->n_devs; i++)
        if (strcasecmp(b->devs[i].addr, addr) == 0)
            return i;
    return (size_t)-1;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Intel: one unit per DRHD of the DMAR table. Devices named in a unit's
 * scope (single-step endpoint paths) go to it, the rest to the unit with
 * INCLUDE_PCI_ALL (or the last one). */
static void intel_units(boot_t *b)
{
    char *t = NULL;
    size_t len = 0;
    root_read(b->root, "sys/firmware/acpi/tables/DMAR", 1u << 20, &t, &len);
    const uint8_t *p = (const uint8_t *)t;
    size_t all = (size_t)-1;
    for (size_t off = 48; t && off + 16 <= len;) {
        uint16_t type = le16(p + off), slen = le16(p + off + 2);
        if (slen < 4 || off + slen > len)
            break;
        if (type == 0 && slen >= 16) {
            size_t u = b->units.n;
            char *name = xasprintf("dmar%zu", u);
            strv_add(&b->units, name);
            char *rel = xasprintf(IOMMU_CLASS "/%s/intel-iommu/address", name);
            char *val = xasprintf("%llx\n", (unsigned long long)le64(p + off + 8));
            write_file(b->root, rel, val, b->out);
            free(rel);
            free(val);
            static const char *const files[][2] = {{"version", "1:0\n"}, {"cap", "d2008c40660462\n"},
                                                   {"ecap", "f050da\n"}};
            for (size_t f = 0; f < 3; f++) {
                rel = xasprintf(IOMMU_CLASS "/%s/intel-iommu/%s", name, files[f][0]);
                write_file(b->root, rel, files[f][1], b->out);
                free(rel);
            }
            klog_add(b, "DMAR: %s: Using Queued invalidation", name);
            if (p[off + 4] & 1)
                all = u;
            uint16_t seg = le16(p + off + 6);
            for (size_t s = off + 16; s + 8 <= off + slen;) {
                uint8_t stype = p[s], sl = p[s + 1];
                if (sl < 6 || s + sl > off + slen)
                    break;
                if (stype == 1 && sl == 8) {
                    char addr[16];
                    snprintf(addr, sizeof(addr), "%04x:%02x:%02x.%x", seg, p[s + 5], p[s + 6] & 0x1f,
                             p[s + 7] & 7);
                    size_t di = dev_index(b, addr);
                    if (di != (size_t)-1) {
                        free(b->unit_of_dev.v[di]);
                        b->unit_of_dev.v[di] = xstrdup(name);
                    }
                }
                s += sl;
            }
            free(name);
        }
        off += slen;
    }
    free(t);
    if (!b->units.n) {
        strv_add(&b->units, "dmar0");
        write_file(b->root, IOMMU_CLASS "/dmar0/intel-iommu/version", "1:0\n", b->out);
        klog_add(b, "DMAR: dmar0: Using Queued invalidation");
    }
    if (all == (size_t)-1)
        all = b->units.n - 1;
    for (size_t i = 0; i < b->n_devs; i++)
        if (!*b->unit_of_dev.v[i]) {
            free(b->unit_of_dev.v[i]);
            b->unit_of_dev.v[i] = xstrdup(b->units.v[all]);
        }
}

/* AMD: one unit per IOMMU (IVHD blocks of types 10h, 11h, 40h; several
 * blocks may describe one IOMMU, told apart by its device id). Every
 * device but the IOMMU itself is behind the first unit. */
static void amd_units(boot_t *b)
{
    char *t = NULL;
    size_t len = 0;
    root_read(b->root, "sys/firmware/acpi/tables/IVRS", 1u << 20, &t, &len);
    const uint8_t *p = (const uint8_t *)t;
    uint16_t seen[16];
    size_t nseen = 0;
    for (size_t off = 48; t && off + 8 <= len && nseen < 16;) {
        uint8_t type = p[off];
        uint16_t blen = le16(p + off + 2);
        if (blen < 8 || off + blen > len)
            break;
        if (type == 0x10 || type == 0x11 || type == 0x40) {
            uint16_t id = le16(p + off + 4), cap = le16(p + off + 6);
            bool dup = false;
            for (size_t i = 0; i < nseen; i++)
                dup = dup || seen[i] == id;
            if (!dup) {
                seen[nseen++] = id;
                char *name = xasprintf("ivhd%zu", b->units.n);
                strv_add(&b->units, name);
                char *rel = xasprintf(IOMMU_CLASS "/%s/amd-iommu/cap", name);
                char *val = xasprintf("%x\n", cap);
                write_file(b->root, rel, val, b->out);
                free(rel);
                free(val);
                rel = xasprintf(IOMMU_CLASS "/%s/amd-iommu/features", name);
                write_file(b->root, rel, "25bf732fa2295afe\n", b->out);
                free(rel);
                klog_add(b, "pci 0000:%02x:%02x.%x: AMD-Vi: Found IOMMU cap 0x%x", id >> 8, (id >> 3) & 0x1f,
                         id & 7, cap);
                free(name);
            }
        }
        off += blen;
    }
    free(t);
    if (!b->units.n) {
        strv_add(&b->units, "ivhd0");
        write_file(b->root, IOMMU_CLASS "/ivhd0/amd-iommu/cap", "40\n", b->out);
        klog_add(b, "pci 0000:00:00.2: AMD-Vi: Found IOMMU cap 0x40");
    }
    for (size_t i = 0; i < b->n_devs; i++)
        if ((b->devs[i].cls >> 8) != 0x0806) { /* the IOMMU function is in no group */
            free(b->unit_of_dev.v[i]);
            b->unit_of_dev.v[i] = xstrdup(b->units.v[0]);
        }
    klog_add(b, "perf/amd_iommu: Detected AMD IOMMU #0 (2 banks, 4 counters/bank).");
}

/* Default groups: the functions of one slot share a group, a bridge or
 * port has its own, numbered in address order. */
static void default_groups(boot_t *b)
{
    long next = 0;
    for (size_t i = 0; i < b->n_devs; i++) {
        if (!*b->unit_of_dev.v[i])
            continue;
        bool bridge = (b->devs[i].cls >> 8) == 0x0604 || (b->devs[i].cls >> 8) == 0x0609;
        if (!bridge) {
            for (size_t j = 0; j < i; j++) {
                bool jbridge = (b->devs[j].cls >> 8) == 0x0604 || (b->devs[j].cls >> 8) == 0x0609;
                if (!jbridge && b->group_of_dev[j] >= 0 && strncmp(b->devs[j].addr, b->devs[i].addr, 10) == 0) {
                    b->group_of_dev[i] = b->group_of_dev[j];
                    break;
                }
            }
        }
        if (b->group_of_dev[i] < 0)
            b->group_of_dev[i] = next++;
    }
}

static void profile_groups(boot_t *b)
{
    for (size_t g = 0; g < b->prof.n_groups; g++)
        for (size_t k = 0; k < b->prof.groups[g].devices.n; k++) {
            size_t di = dev_index(b, b->prof.groups[g].devices.v[k]);
            if (di == (size_t)-1) {
                buf_printf(b->out, "pcifleet simulator: the profile's group %ld names %s, which is not in "
                                   "the PCI tree; ignored\n",
                           b->prof.groups[g].id, b->prof.groups[g].devices.v[k]);
                continue;
            }
            b->group_of_dev[di] = b->prof.groups[g].id;
        }
}

static int write_groups(boot_t *b)
{
    int rc = 0;
    for (size_t i = 0; i < b->n_devs && rc == 0; i++) {
        const char *a = b->devs[i].addr;
        if (*b->unit_of_dev.v[i]) {
            char *rel = xasprintf(IOMMU_CLASS "/%s/devices", b->unit_of_dev.v[i]);
            mkdir_p(b->root, rel);
            free(rel);
            rel = xasprintf(IOMMU_CLASS "/%s/devices/%s", b->unit_of_dev.v[i], a);
            char *target = xasprintf("../../../../bus/pci/devices/%s", a);
            rc = write_link(b->root, rel, target);
            free(rel);
            free(target);
        }
        long g = b->group_of_dev[i];
        if (g < 0 || rc < 0)
            continue;
        char *gdir = xasprintf(IOMMU_GROUPS "/%ld/devices", g);
        mkdir_p(b->root, gdir);
        char *rel = xasprintf("%s/%s", gdir, a);
        char *target = xasprintf("../../../../bus/pci/devices/%s", a);
        rc = write_link(b->root, rel, target);
        free(rel);
        free(target);
        free(gdir);
        char *tr = xasprintf(IOMMU_GROUPS "/%ld/type", g);
        char *tv = xasprintf("%s\n", b->group_type);
        if (!root_exists(b->root, tr)) {
            write_file(b->root, tr, tv, b->out);
            char *rr = xasprintf(IOMMU_GROUPS "/%ld/reserved_regions", g);
            write_file(b->root, rr, "0x00000000fee00000 0x00000000feefffff msi\n", b->out);
            free(rr);
        }
        free(tr);
        free(tv);
        rel = xasprintf(PCI_DEVICES "/%s/iommu_group", a);
        target = xasprintf("../../../../kernel/iommu_groups/%ld", g);
        if (rc == 0)
            rc = write_link(b->root, rel, target);
        free(rel);
        free(target);
        klog_add(b, "pci %s: Adding to iommu group %ld", a, g);
    }
    if (rc < 0)
        buf_printf(b->out, "cannot write the IOMMU groups: %s\n", strerror(-rc));
    return rc;
}

/* The previous boot's IOMMU state goes: a boot builds it from nothing. */
static int clear_iommu(boot_t *b)
{
    int rc = rm_tree(b->root, IOMMU_CLASS);
    if (rc == 0)
        rc = rm_tree(b->root, IOMMU_GROUPS);
    for (size_t i = 0; i < b->n_devs && rc == 0; i++) {
        char *rel = xasprintf(PCI_DEVICES "/%s/iommu_group", b->devs[i].addr);
        char *path = root_path(b->root, rel);
        if (!inside_root(b->root, rel))
            rc = -EINVAL;
        else if (unlink(path) < 0 && errno != ENOENT)
            rc = -errno;
        free(path);
        free(rel);
    }
    if (rc == 0)
        rc = mkdir_p(b->root, IOMMU_CLASS);
    if (rc < 0)
        buf_printf(b->out, "cannot clear the previous boot's IOMMU state: %s\n", strerror(-rc));
    return rc;
}

/* proc/interrupts with the chip names of this boot: IR-IO-APIC and
 * IR-PCI-MSI when interrupts are remapped, IO-APIC and PCI-MSI when not;
 * every other byte stays. */
static char *interrupts_for(const char *old, bool ir)
{
    buf_t o = BUF_INIT;
    buf_reset(&o);
    for (const char *p = old; *p;) {
        size_t sp = strspn(p, " \t\n");
        buf_append(&o, p, sp);
        p += sp;
        size_t n = strcspn(p, " \t\n");
        if (!n)
            continue;
        bool bare = (n == 7 && strncmp(p, "IO-APIC", 7) == 0) || (n == 7 && strncmp(p, "PCI-MSI", 7) == 0) ||
                    (n > 8 && strncmp(p, "PCI-MSI-", 8) == 0);
        bool remapped = n > 3 && strncmp(p, "IR-", 3) == 0;
        if (ir && bare)
            buf_puts(&o, "IR-");
        if (!ir && remapped) {
            p += 3;
            n -= 3;
        }
        buf_append(&o, p, n);
        p += n;
    }
    return buf_steal(&o);
}

static bool has_cpu_flag(const root_t *root, const char *flag)
{
    char *c = read_text(root, "proc/cpuinfo");
    bool yes = false;
    size_t fl = strlen(flag);
    for (const char *p = c; p && (p = strstr(p, flag)); p += fl)
        if ((p[-1] == ' ' || p[-1] == '\t') && (p[fl] == ' ' || p[fl] == '\n' || !p[fl]))
            yes = true;
    free(c);
    return yes;
}

/* Lines of the old log this boot replaces: the command line and every
 * IOMMU line a boot prints depending on its arguments. Table lines
 * (firmware facts) and everything else stay. */
static bool managed_line(const char *l)
{
    static const char *const phrases[] = {
        "Command line:", "DMAR: IOMMU enabled", "DMAR: Intel(R) Virtualization Technology",
        "Using Queued invalidation", "Using Register based invalidation", "Enabled IRQ remapping",
        "Failed to enable irq remapping", "Adding to iommu group", "AMD-Vi: Found IOMMU",
        "AMD-Vi: Interrupt remapping", "perf/amd_iommu: Detected", "IOMMU disabled", "iommu: Default domain type",
        "AMD-Vi: Extended features", "AMD-Vi: Lazy IO/TLB",
    };
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (strstr(l, phrases[i]))
            return true;
    return false;
}

static char *new_klog(boot_t *b, const char *old, const char *cmdline)
{
    buf_t o = BUF_INIT;
    buf_reset(&o);
    bool skipping = false, cmd_done = false;
    for (const char *p = old ? old : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, n);
        bool cont = n && (line[0] == ' ' || line[0] == '\t');
        if (cont && skipping) {
            /* continuation of a replaced message */
        } else if (!cont && managed_line(line)) {
            skipping = true;
            if (!cmd_done && strstr(line, "Command line:") && !strstr(line, "Kernel command line:")) {
                buf_printf(&o, "[    0.000000] Command line: %s\n", cmdline);
                cmd_done = true;
            } else if (strstr(line, "Kernel command line:")) {
                buf_printf(&o, "[    0.052143] Kernel command line: %s\n", cmdline);
            }
        } else {
            skipping = false;
            buf_printf(&o, "%s\n", line);
        }
        free(line);
        p += n + (nl ? 1 : 0);
    }
    if (!cmd_done) {
        buf_t h = BUF_INIT;
        buf_printf(&h, "[    0.000000] Command line: %s\n", cmdline);
        buf_append(&h, o.p, o.len);
        buf_free(&o);
        o = h;
    }
    for (size_t i = 0; i < b->klog.n; i++)
        buf_printf(&o, "[    1.%06zu] %s\n", 100000 + i, b->klog.v[i]);
    return buf_steal(&o);
}

/* proc/modules: the previous boot's lines, minus vfio modules that are no
 * longer configured, plus configured modules not loaded yet (unless the
 * profile says they fail to load). */
static int boot_modules(boot_t *b)
{
    strv_t mods = STRV_INIT;
    configured_modules(b->root, &mods);
    char *old = read_text(b->root, "proc/modules");
    buf_t o = BUF_INIT;
    buf_reset(&o);
    strv_t have = STRV_INIT;
    for (const char *p = old ? old : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t w = strcspn(p, " \n");
        char *name = xstrndup(p, w < n ? w : n);
        bool vfio = strcmp(name, "vfio") == 0 || strncmp(name, "vfio_", 5) == 0;
        if (n && (!vfio || (b->prof.load_modules && strv_contains(&mods, name)))) {
            buf_append(&o, p, n);
            buf_putc(&o, '\n');
            strv_add(&have, name);
        }
        free(name);
        p += n + (nl ? 1 : 0);
    }
    int rc = 0;
    for (size_t i = 0; i < mods.n && b->prof.load_modules && rc == 0; i++) {
        if (strv_contains(&have, mods.v[i]) || !rel_safe(mods.v[i]) || strchr(mods.v[i], '/'))
            continue;
        buf_printf(&o, "%s 16384 0 - Live 0x0000000000000000\n", mods.v[i]);
        static const char *const files[][2] = {{"initstate", "live\n"}, {"refcnt", "0\n"}, {"coresize", "16384\n"}};
        for (size_t f = 0; f < 3 && rc == 0; f++) {
            char *rel = xasprintf("sys/module/%s/%s", mods.v[i], files[f][0]);
            rc = write_file(b->root, rel, files[f][1], b->out);
            free(rel);
        }
        if (strcmp(mods.v[i], "vfio_iommu_type1") == 0)
            write_file(b->root, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n", b->out);
    }
    if (rc == 0)
        rc = write_file(b->root, "proc/modules", o.p ? o.p : "", b->out);
    buf_free(&o);
    strv_free(&have);
    strv_free(&mods);
    free(old);
    return rc;
}

static char *new_boot_id(void)
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* Not a security value: uniqueness per boot is all that counts. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        for (size_t i = 0; i < 16; i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
            r[i] = (uint8_t)(x >> 56);
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    return xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n", r[0], r[1], r[2],
                     r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static bool arg_opt(const kargs_t *a, const char *key, const char *opt)
{
    const karg_t *k = kargs_find_last(a, key);
    return k && karg_has_option(k, opt);
}

static void boot_free(boot_t *b)
{
    sim_profile_free(&b->prof);
    free(b->devs);
    free(b->group_of_dev);
    strv_free(&b->units);
    strv_free(&b->unit_of_dev);
    strv_free(&b->klog);
}

int sim_boot_root(const root_t *root, buf_t *out)
{
    if (root_is_live(root)) {
        buf_puts(out, "pcifleet simulator: refusing to simulate a boot on this host's own /\n");
        return -EPERM;
    }
    boot_t b;
    memset(&b, 0, sizeof(b));
    b.root = root;
    b.out = out;
    char *perr = NULL;
    int rc = sim_profile_read(root, &b.prof, &perr);
    if (rc < 0) {
        buf_printf(out, "pcifleet simulator: %s\n", perr);
        free(perr);
        return rc;
    }
    if (b.prof.boot_fails) {
        buf_puts(out, "pcifleet simulator: the node went down and does not come back (boot_fails = true in "
                      "/" SIM_PROFILE_FILE "); nothing under the root changed\n");
        boot_free(&b);
        return 1;
    }

    boot_info_t bi;
    errs_t errs = ERRS_INIT;
    boot_probe(root, &bi, &errs);
    errs_free(&errs);
    char *kernel = NULL;
    char *cmdline = bi.loader == BOOT_SYSTEMD_BOOT ? sdboot_boot_cmdline(root, &kernel)
                    : bi.loader == BOOT_GRUB         ? grub_boot_cmdline(root, &kernel)
                                                     : NULL;
    if (!cmdline) {
        /* Nothing the simulator can read a new command line from: the node
         * boots as it did before. */
        char *c = NULL;
        root_read_line(root, "proc/cmdline", &c);
        cmdline = c ? c : xstrdup("");
        buf_printf(out, "pcifleet simulator: no boot configuration of the %s boot loader to boot from; the "
                        "previous command line is kept\n",
                   bi.loader_name);
    }
    boot_info_free(&bi);

    kargs_t args = KARGS_INIT;
    kargs_parse(cmdline, strlen(cmdline), &args);
    char kbuf[128];
    const char *release = kernel ? kernel : running_kernel(root, kbuf, sizeof(kbuf));
    b.intel = root_exists(root, "sys/firmware/acpi/tables/DMAR");
    b.amd = !b.intel && root_exists(root, "sys/firmware/acpi/tables/IVRS");
    bool iommu_off = arg_opt(&args, "iommu", "off");
    if (b.intel) {
        /* Proxmox's 6.8+ kernels enable VT-d by default; others need the argument. */
        bool def_on = release && strstr(release, "-pve") && kernel_release_at_least(release, 6, 8);
        b.enabled = !iommu_off && !arg_opt(&args, "intel_iommu", "off") &&
                    (arg_opt(&args, "intel_iommu", "on") || def_on);
    } else if (b.amd) {
        b.enabled = !iommu_off && !arg_opt(&args, "amd_iommu", "off");
    }
    if (b.prof.iommu_after_boot == SIM_IOMMU_OFF)
        b.enabled = false;
    else if (b.prof.iommu_after_boot == SIM_IOMMU_ON && (b.intel || b.amd))
        b.enabled = true;
    b.ir = b.enabled && b.prof.interrupt_remapping && !arg_opt(&args, "intremap", "off");
    b.group_type = arg_opt(&args, "iommu", "pt") ? "identity" : arg_opt(&args, "iommu.strict", "1") ? "DMA" : "DMA-FQ";

    /* What a kernel prints while parsing its arguments, table or not. */
    if (arg_opt(&args, "intel_iommu", "on"))
        klog_add(&b, "DMAR: IOMMU enabled");
    read_devices(&b);
    rc = clear_iommu(&b);
    if (rc == 0 && b.enabled) {
        klog_add(&b, "iommu: Default domain type: %s", strcmp(b.group_type, "identity") == 0
                                                           ? "Passthrough (set via kernel command line)"
                                                           : "Translated");
        if (b.intel)
            intel_units(&b);
        else
            amd_units(&b);
        if (b.ir)
            klog_add(&b, b.intel ? (has_cpu_flag(root, "x2apic") ? "DMAR-IR: Enabled IRQ remapping in x2apic mode"
                                                                 : "DMAR-IR: Enabled IRQ remapping in xapic mode")
                                 : "AMD-Vi: Interrupt remapping enabled");
        else
            klog_add(&b, b.intel ? "DMAR-IR: Failed to enable irq remapping. You are vulnerable to irq-injection "
                                   "attacks."
                                 : "AMD-Vi: Interrupt remapping disabled");
        if (b.intel)
            klog_add(&b, "DMAR: Intel(R) Virtualization Technology for Directed I/O");
        if (b.prof.n_groups)
            profile_groups(&b);
        else
            default_groups(&b);
        rc = write_groups(&b);
    } else if (rc == 0 && (b.intel || b.amd) && (iommu_off || arg_opt(&args, "intel_iommu", "off") ||
                                                 arg_opt(&args, "amd_iommu", "off"))) {
        klog_add(&b, b.intel ? "DMAR: IOMMU disabled" : "AMD-Vi: AMD IOMMU disabled");
    }

    char *text;
    if (rc == 0 && (text = read_text(root, "proc/interrupts"))) {
        char *next = interrupts_for(text, b.ir);
        rc = write_file(root, "proc/interrupts", next, out);
        free(next);
        free(text);
    }
    if (rc == 0)
        rc = boot_modules(&b);
    if (rc == 0) {
        char *old = read_text(root, "dmesg.txt");
        char *log = new_klog(&b, old, cmdline);
        rc = write_file(root, "dmesg.txt", log, out);
        free(log);
        free(old);
    }
    if (rc == 0 && kernel) {
        char *v = xasprintf("%s\n", kernel);
        rc = write_file(root, "proc/sys/kernel/osrelease", v, out);
        free(v);
    }
    if (rc == 0) {
        char *c = xasprintf("%s\n", cmdline);
        rc = write_file(root, "proc/cmdline", c, out);
        free(c);
    }
    /* The boot id last: a reader that sees the new id sees the whole boot. */
    if (rc == 0) {
        char *id = new_boot_id();
        rc = write_file(root, "proc/sys/kernel/random/boot_id", id, out);
        if (rc == 0)
            buf_printf(out, "pcifleet simulator: booted %s with '%s': IOMMU %s%s, boot id %.36s\n",
                       release ? release : "the kernel", cmdline, b.enabled ? "on" : "off",
                       b.enabled ? (b.ir ? ", interrupt remapping on" : ", interrupt remapping off") : "", id);
        free(id);
    }
    kargs_free(&args);
    free(cmdline);
    free(kernel);
    boot_free(&b);
    return rc < 0 ? rc : 0;
}
