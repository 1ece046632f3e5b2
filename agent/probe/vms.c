/* vms — walks the root for VM definitions, decides running state and
 * migratability, writes the JSON. The contracts are in vms.h. */
#include "vms.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PVE_CONF_DIR "etc/pve/qemu-server"
#define PVE_MAPPING_FILE "etc/pve/mapping/pci.cfg"
#define LIBVIRT_CONF_DIR "etc/libvirt/qemu"
#define LIBVIRT_RUN_DIR "run/libvirt/qemu"

/* ---- memory ---- */

void vm_clear(vm_t *vm)
{
    if (!vm)
        return;
    free(vm->id);
    free(vm->name);
    free(vm->machine);
    for (size_t i = 0; i < vm->n_hostpci; i++)
        hostpci_free(&vm->hostpci[i]);
    free(vm->hostpci);
    strv_free(&vm->reasons);
    memset(vm, 0, sizeof(*vm));
    vm->running = -1;
}

void vms_free(vms_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        vm_clear(&v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

vm_t *vms_push(vms_t *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = xrealloc(v->v, v->cap * sizeof(*v->v));
    }
    vm_t *vm = &v->v[v->n++];
    memset(vm, 0, sizeof(*vm));
    vm->running = -1;
    vm->migratable = true;
    return vm;
}

/* ---- verdict ---- */

static char *join_addresses(const strv_t *a)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    for (size_t i = 0; i < a->n; i++) {
        if (i)
            buf_puts(&b, ", ");
        buf_puts(&b, a->v[i]);
    }
    return buf_steal(&b);
}

void vm_judge(vm_t *vm)
{
    strv_free(&vm->reasons);
    vm->migratable = true;
    bool pve = vm->source && strcmp(vm->source, "proxmox") == 0;
    for (size_t i = 0; i < vm->n_hostpci; i++) {
        const hostpci_t *h = &vm->hostpci[i];
        char label[32];
        if (pve)
            snprintf(label, sizeof(label), "hostpci%d", h->index);
        else
            snprintf(label, sizeof(label), "hostdev %d", h->index);
        char *addrs = join_addresses(&h->addresses);
        const char *plural = h->addresses.n > 1 ? "s" : "";
        if (h->mapping && h->live_migration_capable && h->problems.n == 0) {
            /* The one exception: a mapping whose devices (and drivers)
             * support migration. Proxmox then migrates the VM live. */
        } else if (h->mapping) {
            vm->migratable = false;
            if (h->live_migration_capable)
                strv_take(&vm->reasons,
                          xasprintf("%s uses mapping '%s', which is marked live-migration-capable, "
                                    "but cannot be satisfied on this node (see below), so the VM "
                                    "cannot live-migrate from here",
                                    label, h->mapping));
            else if (h->addresses.n)
                strv_take(&vm->reasons,
                          xasprintf("%s passes through host device%s %s via mapping '%s', which is not "
                                    "marked live-migration-capable: a VM with a passed-through PCI "
                                    "device cannot live-migrate (mark the mapping live-migration-capable "
                                    "only if the device and its driver support migration)",
                                    label, plural, addrs, h->mapping));
            else
                strv_take(&vm->reasons,
                          xasprintf("%s asks for a passed-through PCI device via mapping '%s': a VM "
                                    "with a passed-through PCI device cannot live-migrate",
                                    label, h->mapping));
        } else {
            vm->migratable = false;
            if (h->addresses.n)
                strv_take(&vm->reasons,
                          xasprintf("%s passes through host device%s %s: a VM with a passed-through "
                                    "PCI device cannot live-migrate%s",
                                    label, plural, addrs,
                                    pve ? " (only a resource mapping marked live-migration-capable can)"
                                        : ""));
            else
                strv_take(&vm->reasons,
                          xasprintf("%s asks for a passed-through PCI device: a VM with a passed-through "
                                    "PCI device cannot live-migrate",
                                    label));
        }
        for (size_t k = 0; k < h->problems.n; k++)
            strv_take(&vm->reasons, xasprintf("%s %s", label, h->problems.v[k]));
        free(addrs);
    }
}

/* ---- running state ---- */

/* 1 when the pid file at rel names a pid with a proc/PID directory, 0 when
 * the file is missing or stale, -1 when it cannot be read. */
static int pidfile_running(const root_t *root, const char *rel, errs_t *errs, bool *found)
{
    long pid = 0;
    int rc = root_read_long(root, rel, &pid);
    *found = rc != -ENOENT;
    if (rc == -ENOENT)
        return 0;
    if (rc < 0 || pid <= 0) {
        char *where = xasprintf("/%s", rel);
        errs_add(errs, where, "pid file is unreadable or holds no pid (%s); running state unknown",
                 rc < 0 ? strerror(-rc) : "not a positive number");
        free(where);
        return -1;
    }
    char *proc = xasprintf("proc/%ld", pid);
    int running = root_is_dir(root, proc) ? 1 : 0; /* no process: a stale pid file */
    free(proc);
    return running;
}

static int pve_running(const root_t *root, const char *vmid, errs_t *errs)
{
    static const char *const dirs[] = {"run/qemu-server", "var/run/qemu-server"};
    for (size_t i = 0; i < 2; i++) {
        char *rel = xasprintf("%s/%s.pid", dirs[i], vmid);
        bool found;
        int r = pidfile_running(root, rel, errs, &found);
        free(rel);
        if (found)
            return r;
    }
    return 0;
}

static int libvirt_running(const root_t *root, const char *name, errs_t *errs)
{
    char *status = xasprintf("%s/%s.xml", LIBVIRT_RUN_DIR, name);
    bool up = root_exists(root, status);
    free(status);
    if (up)
        return 1;
    char *rel = xasprintf("%s/%s.pid", LIBVIRT_RUN_DIR, name);
    bool found;
    int r = pidfile_running(root, rel, errs, &found);
    free(rel);
    return r;
}

/* ---- the walk ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static char *hostname_short(const root_t *root)
{
    char *h = NULL;
    if (root_read_line(root, "etc/hostname", &h) < 0)
        return NULL;
    char *dot = strchr(h, '.');
    if (dot)
        *dot = '\0';
    if (!*h) {
        free(h);
        return NULL;
    }
    return h;
}

static int cmp_vmid(const void *a, const void *b)
{
    const vm_t *x = a, *y = b;
    long p = strtol(x->id, NULL, 10), q = strtol(y->id, NULL, 10);
    return (p > q) - (p < q);
}

/* Reads pci.cfg into *maps (entries for node, or the host's own name). */
static int read_mappings(const root_t *root, const char *node, pve_mappings_t *maps, errs_t *errs)
{
    int ret = 0;
    char *buf = NULL;
    size_t len = 0;
    int rc = root_read(root, PVE_MAPPING_FILE, ROOT_READ_MAX, &buf, &len);
    if (rc == 0) {
        char *own = node ? NULL : hostname_short(root);
        if (pve_mappings_parse(buf, len, node ? node : own, maps, errs) < 0)
            ret = -EINVAL;
        free(own);
    } else if (rc != -ENOENT && rc != -ENOTDIR) {
        errs_add(errs, "/" PVE_MAPPING_FILE, "cannot read PCI resource mappings: %s; mapped hostpci "
                 "entries stay unresolved", strerror(-rc));
        ret = -EINVAL;
    }
    free(buf);
    return ret;
}

static int probe_pve(const root_t *root, const char *node, const strv_t *present, vms_t *out,
                     pve_mappings_t *maps_out, errs_t *errs)
{
    int ret = 0;
    pve_mappings_t maps = PVE_MAPPINGS_INIT;
    strv_t names = STRV_INIT;
    int rc = root_list(root, PVE_CONF_DIR, &names);
    bool have_vms = !(rc == -ENOENT || rc == -ENOTDIR);
    if (have_vms && rc < 0) {
        errs_add(errs, "/" PVE_CONF_DIR, "cannot list VM configs: %s", strerror(-rc));
        ret = -EINVAL;
        have_vms = false;
    }
    /* Without VM configs the mappings matter only to a caller that asked. */
    if ((have_vms || maps_out) && read_mappings(root, node, &maps, errs) < 0)
        ret = -EINVAL;

    size_t first = out->n;
    for (size_t i = 0; have_vms && i < names.n; i++) {
        const char *f = names.v[i];
        if (!ends_with(f, ".conf") || !all_digits(f, strlen(f) - 5))
            continue;
        char *vmid = xstrndup(f, strlen(f) - 5);
        char *rel = xasprintf("%s/%s", PVE_CONF_DIR, f);
        char *buf = NULL;
        size_t len = 0;
        rc = root_read(root, rel, ROOT_READ_MAX, &buf, &len);
        if (rc < 0) {
            char *where = xasprintf("/%s", rel);
            errs_add(errs, where, "cannot read VM config: %s", strerror(-rc));
            free(where);
            ret = -EINVAL;
        } else {
            vm_t *vm = vms_push(out);
            if (pve_conf_parse(buf, len, vmid, &maps, present, vm, errs) < 0)
                ret = -EINVAL;
            vm->running = pve_running(root, vmid, errs);
        }
        free(buf);
        free(rel);
        free(vmid);
    }
    if (out->n > first) /* out->v is NULL when there are no VMs at all */
        qsort(out->v + first, out->n - first, sizeof(*out->v), cmp_vmid);
    if (maps_out) {
        pve_mappings_expand(&maps, present);
        *maps_out = maps;
    } else {
        pve_mappings_free(&maps);
    }
    strv_free(&names);
    return ret;
}

static int probe_libvirt(const root_t *root, vms_t *out, errs_t *errs)
{
    strv_t names = STRV_INIT;
    int rc = root_list(root, LIBVIRT_CONF_DIR, &names);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return 0;
    if (rc < 0) {
        errs_add(errs, "/" LIBVIRT_CONF_DIR, "cannot list domain definitions: %s", strerror(-rc));
        return -EINVAL;
    }
    int ret = 0;
    for (size_t i = 0; i < names.n; i++) {
        const char *f = names.v[i];
        if (!ends_with(f, ".xml") || f[0] == '.')
            continue;
        char *rel = xasprintf("%s/%s", LIBVIRT_CONF_DIR, f);
        char *where = xasprintf("/%s", rel);
        char *buf = NULL;
        size_t len = 0;
        rc = root_read(root, rel, LIBVIRT_XML_MAX, &buf, &len);
        if (rc == -EISDIR || rc == -EINVAL) {
            /* not a regular file */
        } else if (rc < 0) {
            errs_add(errs, where, "cannot read domain definition: %s", strerror(-rc));
            ret = -EINVAL;
        } else {
            vm_t *vm = vms_push(out);
            if (libvirt_domain_parse_at(buf, len, where, vm, errs) < 0)
                ret = -EINVAL;
            if (!vm->id) /* unnamed: use the file's name, as virsh would list it */
                vm->id = xstrndup(f, strlen(f) - 4);
            /* libvirt names the run files after the domain name. Only
             * trust names that are a plain file name. */
            if (!strchr(vm->id, '/') && strcmp(vm->id, ".") && strcmp(vm->id, ".."))
                vm->running = libvirt_running(root, vm->id, errs);
        }
        free(buf);
        free(where);
        free(rel);
    }
    strv_free(&names);
    return ret;
}

int vms_probe(const root_t *root, const char *node, const strv_t *present, vms_t *out,
              errs_t *errs)
{
    return vms_probe_with_mappings(root, node, present, out, NULL, errs);
}

int vms_probe_with_mappings(const root_t *root, const char *node, const strv_t *present, vms_t *out,
                            pve_mappings_t *maps, errs_t *errs)
{
    int a = probe_pve(root, node, present, out, maps, errs);
    int b = probe_libvirt(root, out, errs);
    return a < 0 || b < 0 ? -EINVAL : 0;
}

/* ---- JSON ---- */

void vms_to_json(json_t *j, const char *key, const vms_t *v)
{
    json_arr_open(j, key);
    for (size_t i = 0; v && i < v->n; i++) {
        const vm_t *vm = &v->v[i];
        json_obj_open(j, NULL);
        json_str(j, "source", vm->source);
        json_str(j, "id", vm->id);
        json_str(j, "name", vm->name);
        json_str(j, "machine", vm->machine);
        json_tribool(j, "running", vm->running);
        json_arr_open(j, "hostpci");
        for (size_t k = 0; k < vm->n_hostpci; k++) {
            const hostpci_t *h = &vm->hostpci[k];
            json_obj_open(j, NULL);
            json_int(j, "index", h->index);
            json_arr_open(j, "addresses");
            for (size_t a = 0; a < h->addresses.n; a++)
                json_str(j, NULL, h->addresses.v[a]);
            json_arr_close(j);
            json_str(j, "mapping", h->mapping);
            json_bool(j, "pcie", h->pcie);
            json_str(j, "raw", h->raw);
            json_obj_close(j);
        }
        json_arr_close(j);
        json_bool(j, "migratable", vm->migratable);
        json_arr_open(j, "reasons");
        for (size_t r = 0; r < vm->reasons.n; r++)
            json_str(j, NULL, vm->reasons.v[r]);
        json_arr_close(j);
        json_obj_close(j);
    }
    json_arr_close(j);
}
