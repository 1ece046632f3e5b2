/* sim — the node simulator (see sim.h).
 *
 * Two dispatch tables: programs (argv[0]'s base name) and, for qm, its
 * subcommands. A handler gets the simulator, the arguments after what was
 * dispatched on, and an output buffer; it returns the exit status. */
#include "sim.h"

#include "atomic.h"
#include "buf.h"
#include "pve_edit.h"
#include "root.h"
#include "sim_boot.h"
#include "vms.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PVE_CONF_DIR "etc/pve/qemu-server"
#define QM_PARSE_ERROR 255 /* what qm exits with on a "400 ..." parameter error */
#define QM_NO_CONFIG 2

struct sim {
    root_t *root;
};

typedef int (*sim_cmd_fn)(sim_t *s, const char *const *args, size_t nargs, buf_t *out);

typedef struct {
    const char *name;
    sim_cmd_fn fn;
} sim_cmd_t;

int sim_new(const char *root, sim_t **out, char **err)
{
    *out = NULL;
    *err = NULL;
    root_t *r = NULL;
    int rc = root_new(root, &r);
    if (rc < 0) {
        *err = xasprintf("the simulator's root %s cannot be used: %s", root && *root ? root : "/",
                         rc == -ENOTDIR ? "not a directory" : strerror(-rc));
        return rc;
    }
    if (root_is_live(r)) {
        root_destroy(&r);
        *err = xstrdup("the simulator edits the files under its root, and the root is this host's own /; "
                       "give it a fixture tree (--root DIR)");
        return -EPERM;
    }
    sim_t *s = xcalloc(1, sizeof(*s));
    s->root = r;
    *out = s;
    return 0;
}

void sim_destroy(sim_t **s)
{
    if (!s || !*s)
        return;
    root_destroy(&(*s)->root);
    free(*s);
    *s = NULL;
}

/* ---- qm ---- */

static bool valid_vmid(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 9 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* "hostpciN" with N 0..15 written as Proxmox writes it. */
static bool hostpci_key(const char *k)
{
    if (strncmp(k, "hostpci", 7) != 0)
        return false;
    const char *d = k + 7;
    if (!isdigit((unsigned char)d[0]))
        return false;
    if (!d[1])
        return true;
    return d[0] == '1' && d[1] >= '0' && d[1] <= '5' && !d[2];
}

/* The config's name as qm prints it: relative to /etc/pve, through the
 * node folder when qemu-server is the usual link into nodes/NODE. */
static char *qm_conf_name(const sim_t *s, const char *vmid)
{
    char *target = NULL;
    char *name;
    if (root_readlink(s->root, PVE_CONF_DIR, &target) == 0 && strncmp(target, "nodes/", 6) == 0)
        name = xasprintf("%s/%s.conf", target, vmid);
    else
        name = xasprintf("qemu-server/%s.conf", vmid);
    free(target);
    return name;
}

/* qm set VMID OPTIONS... */
static int qm_set(sim_t *s, const char *const *args, size_t nargs, buf_t *out)
{
    if (nargs < 1) {
        buf_puts(out, "400 not enough arguments\nqm set <vmid> [OPTIONS]\n");
        return QM_PARSE_ERROR;
    }
    const char *vmid = args[0];
    if (!valid_vmid(vmid)) {
        buf_printf(out, "400 Parameter verification failed.\nvmid: invalid format - '%s' is not a VMID "
                        "(100 to 999999999)\n",
                   vmid);
        return QM_PARSE_ERROR;
    }
    if (nargs < 2) {
        buf_puts(out, "400 Parameter verification failed.\nno options specified\n");
        return QM_PARSE_ERROR;
    }

    /* Check every option before touching anything: a request is done
     * whole or not at all. */
    for (size_t i = 1; i < nargs; i++) {
        const char *opt = args[i];
        if (strncmp(opt, "--", 2) != 0) {
            buf_printf(out, "400 too many arguments: '%s'\nqm set <vmid> [OPTIONS]\n", opt);
            return QM_PARSE_ERROR;
        }
        const char *name = opt + 2;
        if (i + 1 >= nargs) {
            buf_printf(out, "400 not enough arguments: option '%s' needs a value\n", opt);
            return QM_PARSE_ERROR;
        }
        const char *val = args[++i];
        if (strcmp(name, "delete") == 0) {
            char *list = xstrdup(val);
            bool ok = *list != '\0';
            for (char *save = NULL, *k = strtok_r(list, ", ", &save); ok && k; k = strtok_r(NULL, ", ", &save)) {
                if (!hostpci_key(k)) {
                    buf_printf(out, "pcifleet simulator: qm set --delete '%s' is not simulated (only hostpci0 "
                                    "to hostpci15 are); nothing was changed\n",
                               k);
                    ok = false;
                }
            }
            if (!*list)
                buf_puts(out, "400 Parameter verification failed.\ndelete: no key given\n");
            free(list);
            if (!ok)
                return QM_PARSE_ERROR;
        } else if (hostpci_key(name)) {
            hostpci_t h;
            memset(&h, 0, sizeof(h));
            char *perr = NULL;
            /* No mappings loaded: mapping=NAME passes as syntax (-ENOENT). */
            int rc = pve_hostpci_parse(val, NULL, NULL, &h, &perr);
            hostpci_free(&h);
            if (rc < 0 && rc != -ENOENT) {
                buf_printf(out, "400 Parameter verification failed.\n%s: %s\n", name,
                           perr ? perr : "invalid format");
                free(perr);
                return QM_PARSE_ERROR;
            }
            free(perr);
            if (strpbrk(val, "\n\r")) {
                buf_printf(out, "400 Parameter verification failed.\n%s: invalid format\n", name);
                return QM_PARSE_ERROR;
            }
        } else {
            buf_printf(out, "pcifleet simulator: qm set option '%s' is not simulated (only --hostpciN and "
                            "--delete hostpciN are); nothing was changed\n",
                       opt);
            return QM_PARSE_ERROR;
        }
    }

    char *rel = xasprintf("%s/%s.conf", PVE_CONF_DIR, vmid);
    char *conf = NULL;
    size_t len = 0;
    int rc = root_read(s->root, rel, ROOT_READ_MAX, &conf, &len);
    if (rc == -ENOENT) {
        char *name = qm_conf_name(s, vmid);
        buf_printf(out, "Configuration file '%s' does not exist\n", name);
        free(name);
        free(rel);
        return QM_NO_CONFIG;
    }
    if (rc < 0) {
        buf_printf(out, "unable to read /%s: %s\n", rel, strerror(-rc));
        free(rel);
        return 1;
    }

    bool changed = false;
    for (size_t i = 1; i + 1 < nargs; i += 2) {
        const char *name = args[i] + 2, *val = args[i + 1];
        buf_t next = BUF_INIT;
        if (strcmp(name, "delete") == 0) {
            char *list = xstrdup(val);
            for (char *save = NULL, *k = strtok_r(list, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
                buf_reset(&next);
                if (pve_edit_delete(conf, len, k, &next) > 0) {
                    free(conf);
                    len = next.len;
                    conf = buf_steal(&next);
                    changed = true;
                } else {
                    buf_printf(out, "cannot delete '%s' - not set in current configuration!\n", k);
                }
            }
            free(list);
        } else {
            pve_edit_set(conf, len, name, val, &next); /* key and value checked above */
            free(conf);
            len = next.len;
            conf = buf_steal(&next);
            changed = true;
        }
        buf_free(&next);
    }
    int status = 0;
    if (changed) {
        char *err = NULL;
        if (atomic_replace(s->root, rel, conf, len, &err) < 0) {
            buf_printf(out, "unable to write the configuration: %s\n", err);
            status = 1;
        }
        free(err);
    }
    free(conf);
    free(rel);
    return status;
}

static const sim_cmd_t qm_commands[] = {
    {"set", qm_set},
};

static int sim_qm(sim_t *s, const char *const *args, size_t nargs, buf_t *out)
{
    if (nargs == 0) {
        buf_puts(out, "400 not enough arguments\nqm <command> [ARGS] [OPTIONS]\n");
        return QM_PARSE_ERROR;
    }
    for (size_t i = 0; i < sizeof(qm_commands) / sizeof(qm_commands[0]); i++)
        if (strcmp(args[0], qm_commands[i].name) == 0)
            return qm_commands[i].fn(s, args + 1, nargs - 1, out);
    buf_printf(out, "pcifleet simulator: 'qm %s' is not simulated (only 'qm set' is); nothing was run\n", args[0]);
    return QM_PARSE_ERROR;
}

/* ---- dispatch ---- */

/* The boot commands act on the root alone; sim_boot.c has them. */
static int sim_update_grub_cmd(sim_t *s, const char *const *a, size_t n, buf_t *out)
{
    return sim_update_grub(s->root, a, n, out);
}
static int sim_pbt_cmd(sim_t *s, const char *const *a, size_t n, buf_t *out)
{
    return sim_proxmox_boot_tool(s->root, a, n, out);
}
static int sim_initramfs_cmd(sim_t *s, const char *const *a, size_t n, buf_t *out)
{
    return sim_update_initramfs(s->root, a, n, out);
}
static int sim_systemctl_cmd(sim_t *s, const char *const *a, size_t n, buf_t *out)
{
    return sim_systemctl(s->root, a, n, out);
}
static int sim_reboot(sim_t *s, const char *const *a, size_t n, buf_t *out)
{
    return sim_reboot_cmd(s->root, a, n, out);
}

static const sim_cmd_t programs[] = {
    {"qm", sim_qm},
    {"update-grub", sim_update_grub_cmd},
    {"proxmox-boot-tool", sim_pbt_cmd},
    {"update-initramfs", sim_initramfs_cmd},
    {"systemctl", sim_systemctl_cmd},
    {"reboot", sim_reboot},
};

int sim_boot(sim_t *s, char **report)
{
    buf_t out = BUF_INIT;
    buf_reset(&out);
    int rc = sim_boot_root(s->root, &out);
    *report = buf_steal(&out);
    return rc;
}

int sim_boot_dir(const char *root, char **report)
{
    sim_t *s = NULL;
    int rc = sim_new(root, &s, report);
    if (rc < 0)
        return rc;
    rc = sim_boot(s, report);
    sim_destroy(&s);
    return rc;
}

int sim_run(sim_t *s, const char *const *argv, runner_result_t *res)
{
    buf_t out = BUF_INIT;
    buf_reset(&out);
    int status = 127;
    if (!argv || !argv[0]) {
        buf_puts(&out, "pcifleet simulator: empty command\n");
    } else {
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        size_t nargs = 0;
        while (argv[1 + nargs])
            nargs++;
        const sim_cmd_t *cmd = NULL;
        for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
            if (strcmp(base, programs[i].name) == 0)
                cmd = &programs[i];
        if (cmd)
            status = cmd->fn(s, argv + 1, nargs, &out);
        else
            buf_printf(&out, "pcifleet simulator: '%s' is not simulated; nothing was run\n", argv[0]);
    }
    res->status = status;
    res->truncated = false;
    res->timed_out = false;
    if (out.len > RUNNER_OUTPUT_MAX) {
        out.len = RUNNER_OUTPUT_MAX;
        out.p[out.len] = '\0';
        res->truncated = true;
    }
    res->len = out.len;
    res->output = buf_steal(&out);
    return 0;
}
