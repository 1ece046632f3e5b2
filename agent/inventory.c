#include "inventory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PCIFLEET_VERSION
#define PCIFLEET_VERSION "0.0.0"
#endif

const char *agent_version(void)
{
    return PCIFLEET_VERSION;
}

int inventory_scan(const scan_opts_t *opts, inventory_t **out, char **err)
{
    *out = NULL;
    *err = NULL;
    const char *dir = opts && opts->root ? opts->root : "/";
    root_t *root = NULL;
    int rc = root_new(dir, &root);
    if (rc < 0) {
        *err = xasprintf("root %s: %s", dir, rc == -ENOTDIR ? "not a directory" : strerror(-rc));
        return rc;
    }
    inventory_t *inv = xcalloc(1, sizeof(*inv));
    inv->root = xstrdup(dir);
    errs_t *e = &inv->errors;

    sysinfo_probe(root, opts ? opts->node : NULL, &inv->sys, e);
    pci_probe_opts_t popts = {opts ? opts->ids_file : NULL};
    pci_probe(root, &popts, &inv->devices, e);
    groups_probe(root, &inv->devices, &inv->groups, e);
    iommu_probe(root, &inv->groups, &inv->iommu, e);
    boot_probe(root, &inv->boot, e);
    vfio_probe(root, inv->sys.kernel_release, &inv->vfio, e);
    net_probe(root, &inv->devices, &inv->nics, e);

    strv_t present = STRV_INIT;
    for (size_t i = 0; i < inv->devices.n; i++)
        strv_add(&present, inv->devices.v[i].address);
    vms_probe_with_mappings(root, inv->sys.node, &present, &inv->vms, &inv->mappings, e);
    strv_free(&present);

    corosync_probe(root, &inv->cluster, e);

    iommu_judge(&inv->iommu, &inv->sys, &inv->boot, &inv->vfio);
    root_destroy(&root);
    *out = inv;
    return 0;
}

void inventory_destroy(inventory_t **pinv)
{
    if (!pinv || !*pinv)
        return;
    inventory_t *inv = *pinv;
    free(inv->root);
    cluster_free(&inv->cluster);
    sysinfo_free(&inv->sys);
    iommu_state_free(&inv->iommu);
    boot_info_free(&inv->boot);
    vfio_info_free(&inv->vfio);
    pci_devs_free(&inv->devices);
    groups_free(&inv->groups);
    nics_free(&inv->nics);
    vms_free(&inv->vms);
    pve_mappings_free(&inv->mappings);
    errs_free(&inv->errors);
    free(inv);
    *pinv = NULL;
}

static void json_strv(json_t *j, const char *key, const strv_t *l)
{
    json_arr_open(j, key);
    for (size_t i = 0; i < l->n; i++)
        json_str(j, NULL, l->v[i]);
    json_arr_close(j);
}

static void json_hex(json_t *j, const char *key, unsigned v, int digits)
{
    char s[16];
    snprintf(s, sizeof(s), "%0*x", digits, v);
    json_str(j, key, s);
}

static void json_kargs(json_t *j, const char *key, const kargs_t *a)
{
    json_arr_open(j, key);
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].value) {
            char *s = xasprintf("%s=%s", a->v[i].key, a->v[i].value);
            json_str(j, NULL, s);
            free(s);
        } else {
            json_str(j, NULL, a->v[i].key);
        }
    }
    json_arr_close(j);
}

static void json_acs_bits(json_t *j, const char *key, unsigned v)
{
    json_arr_open(j, key);
    for (unsigned b = 0; pci_acs_bit_name(b); b++)
        if (v & (1u << b))
            json_str(j, NULL, pci_acs_bit_name(b));
    json_arr_close(j);
}

static const char *pcie_type_name(int t)
{
    switch (t) {
    case PCIE_TYPE_ENDPOINT: return "endpoint";
    case PCIE_TYPE_LEGACY_ENDPOINT: return "legacy-endpoint";
    case PCIE_TYPE_ROOT_PORT: return "root-port";
    case PCIE_TYPE_UPSTREAM: return "upstream-port";
    case PCIE_TYPE_DOWNSTREAM: return "downstream-port";
    case PCIE_TYPE_PCIE_TO_PCI: return "pcie-to-pci-bridge";
    case PCIE_TYPE_PCI_TO_PCIE: return "pci-to-pcie-bridge";
    case PCIE_TYPE_RC_INTEGRATED: return "rc-integrated-endpoint";
    case PCIE_TYPE_RC_EVENT_COLLECTOR: return "rc-event-collector";
    default: return NULL;
    }
}

static void json_device(json_t *j, const pci_dev_info_t *d, const iommu_groups_t *groups)
{
    json_obj_open(j, NULL);
    json_str(j, "address", d->address);
    json_hex(j, "class", d->class_code, 4);
    json_hex(j, "prog_if", d->prog_if, 2);
    json_hex(j, "revision", d->revision, 2);
    json_hex(j, "vendor_id", d->vendor_id, 4);
    json_hex(j, "device_id", d->device_id, 4);
    json_hex(j, "subsystem_vendor_id", d->subsys_vendor_id, 4);
    json_hex(j, "subsystem_device_id", d->subsys_device_id, 4);
    json_str(j, "class_name", d->class_name);
    json_str(j, "vendor_name", d->vendor_name);
    json_str(j, "device_name", d->device_name);
    json_str(j, "subsystem_name", d->subsys_name);
    json_str(j, "driver", d->driver);
    json_int_or_null(j, "iommu_group", d->iommu_group);
    json_int(j, "numa_node", d->numa_node);
    json_bool(j, "bridge", pci_dev_is_bridge(d));
    const group_member_t *m = groups_find_member(groups, d->address);
    if (m && m->endpoint)
        json_bool(j, "assignable_alone", m->alone);
    else
        json_null(j, "assignable_alone");
    if (d->has_acs) {
        json_obj_open(j, "acs");
        json_hex(j, "cap", d->acs_cap, 4);
        json_hex(j, "ctl", d->acs_ctl, 4);
        json_acs_bits(j, "cap_flags", d->acs_cap);
        json_acs_bits(j, "ctl_flags", d->acs_ctl);
        json_obj_close(j);
    } else {
        json_null(j, "acs");
    }
    if (d->has_sriov) {
        json_obj_open(j, "sriov");
        json_int(j, "total_vfs", d->sriov_total);
        json_int(j, "num_vfs", d->sriov_num);
        json_obj_close(j);
    } else {
        json_null(j, "sriov");
    }
    json_str(j, "physfn", d->physfn);
    json_str(j, "pcie_type", pcie_type_name(d->pcie_type));
    if (d->is_pcie && (d->link_width || d->link_max_width)) {
        json_obj_open(j, "link");
        json_str(j, "speed", pci_link_speed_name(d->link_speed));
        json_int(j, "width", d->link_width);
        json_str(j, "max_speed", pci_link_speed_name(d->link_max_speed));
        json_int(j, "max_width", d->link_max_width);
        json_obj_close(j);
    } else {
        json_null(j, "link");
    }
    json_arr_open(j, "capabilities");
    for (size_t i = 0; i < d->n_caps; i++) {
        json_obj_open(j, NULL);
        json_hex(j, "offset", d->caps[i].offset, d->caps[i].extended ? 3 : 2);
        json_hex(j, "id", d->caps[i].id, d->caps[i].extended ? 4 : 2);
        json_bool(j, "extended", d->caps[i].extended);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_obj_close(j);
}

static void json_group(json_t *j, const iommu_group_t *g)
{
    json_obj_open(j, NULL);
    json_int(j, "id", g->id);
    json_str(j, "type", g->type);
    json_arr_open(j, "devices");
    for (size_t i = 0; i < g->n_members; i++)
        json_str(j, NULL, g->members[i].address);
    json_arr_close(j);
    json_bool(j, "isolated", g->isolated);
    json_arr_open(j, "endpoints");
    for (size_t i = 0; i < g->n_members; i++) {
        const group_member_t *m = &g->members[i];
        if (!m->endpoint)
            continue;
        json_obj_open(j, NULL);
        json_str(j, "address", m->address);
        json_bool(j, "assignable_alone", m->alone);
        json_strv(j, "slot_functions", &m->slot_functions);
        json_strv(j, "blockers", &m->blockers);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_obj_close(j);
}

static void json_nic(json_t *j, const nic_t *n)
{
    json_obj_open(j, NULL);
    json_str(j, "address", n->address);
    json_str(j, "ifname", n->ifname);
    json_strv(j, "ifnames", &n->ifnames);
    json_str(j, "mac", n->mac);
    json_int_or_null(j, "speed_mbps", n->speed_mbps);
    json_str(j, "operstate", n->operstate);
    json_bool(j, "management", n->management);
    json_str(j, "management_via", n->management_via);
    json_bool(j, "is_vf", n->is_vf);
    json_str(j, "driver", n->driver);
    json_obj_close(j);
}

void inventory_to_json(const inventory_t *inv, json_t *j)
{
    json_obj_open(j, NULL);
    json_str(j, "node", inv->sys.node);
    json_str(j, "agent_version", agent_version());
    json_str(j, "root", inv->root);
    json_str(j, "boot_id", inv->sys.boot_id);

    json_obj_open(j, "kernel");
    json_str(j, "release", inv->sys.kernel_release);
    json_obj_close(j);

    json_obj_open(j, "cpu");
    json_str(j, "vendor", inv->sys.cpu_vendor);
    json_str(j, "model", inv->sys.cpu_model);
    json_tribool(j, "virtualization", inv->sys.cpu_virtualization);
    json_obj_close(j);

    const iommu_state_t *io = &inv->iommu;
    json_obj_open(j, "iommu");
    json_str(j, "firmware", io->firmware);
    json_bool(j, "enabled", io->enabled);
    json_int(j, "units", (long long)io->units.n);
    json_strv(j, "unit_names", &io->units);
    json_int(j, "groups", io->groups);
    json_str(j, "default_domain", io->default_domain);
    json_tribool(j, "interrupt_remapping", io->interrupt_remapping);
    json_str(j, "cmdline", io->cmdline);
    json_str(j, "verdict", verdict_name(io->verdict));
    json_strv(j, "reasons", &io->reasons);
    if (io->klog_available)
        json_strv(j, "kernel_log", &io->klog.evidence);
    else
        json_null(j, "kernel_log");
    json_obj_close(j);

    const boot_info_t *b = &inv->boot;
    json_obj_open(j, "boot");
    json_str(j, "loader", b->loader_name ? b->loader_name : "unknown");
    json_str(j, "cmdline_file", b->cmdline_file);
    json_kargs(j, "configured_args", &b->configured_args);
    json_str(j, "refresh_command", b->refresh_command);
    json_bool(j, "proxmox_boot_tool", b->proxmox_boot_tool);
    json_strv(j, "evidence", &b->evidence);
    json_obj_close(j);

    json_obj_open(j, "vfio");
    json_strv(j, "required", &inv->vfio.required);
    json_strv(j, "loaded", &inv->vfio.loaded);
    json_strv(j, "configured", &inv->vfio.configured);
    json_strv(j, "missing", &inv->vfio.missing);
    json_strv(j, "sources", &inv->vfio.sources);
    json_obj_close(j);

    json_arr_open(j, "devices");
    for (size_t i = 0; i < inv->devices.n; i++)
        json_device(j, &inv->devices.v[i], &inv->groups);
    json_arr_close(j);

    json_arr_open(j, "groups");
    for (size_t i = 0; i < inv->groups.n; i++)
        json_group(j, &inv->groups.v[i]);
    json_arr_close(j);

    json_arr_open(j, "nics");
    for (size_t i = 0; i < inv->nics.n; i++)
        json_nic(j, &inv->nics.v[i]);
    json_arr_close(j);

    vms_to_json(j, "vms", &inv->vms);
    /* Only mappings with an entry for this node: what mapping=NAME means here. */
    json_arr_open(j, "mappings");
    for (size_t i = 0; i < inv->mappings.n; i++) {
        const pve_mapping_t *mp = &inv->mappings.v[i];
        if (!mp->n_alts)
            continue;
        json_obj_open(j, NULL);
        json_str(j, "name", mp->name);
        json_strv(j, "addresses", &mp->addresses);
        json_obj_close(j);
    }
    json_arr_close(j);
    /* the Proxmox cluster (corosync.conf), or null */
    if (inv->cluster.name) {
        json_obj_open(j, "cluster");
        json_str(j, "name", inv->cluster.name);
        json_arr_open(j, "members");
        for (size_t i = 0; i < inv->cluster.members.n; i++)
            json_str(j, NULL, inv->cluster.members.v[i]);
        json_arr_close(j);
        json_obj_close(j);
    } else {
        json_null(j, "cluster");
    }

    json_arr_open(j, "errors");
    for (size_t i = 0; i < inv->errors.n; i++) {
        json_obj_open(j, NULL);
        json_str(j, "where", inv->errors.v[i].where);
        json_str(j, "what", inv->errors.v[i].what);
        json_obj_close(j);
    }
    json_arr_close(j);
    json_obj_close(j);
}

static const char *tri(int v, const char *yes, const char *no)
{
    return v < 0 ? "unknown" : v ? yes : no;
}

static void list_line(buf_t *out, const char *label, const strv_t *l)
{
    buf_printf(out, "%s", label);
    if (!l->n)
        buf_puts(out, " -");
    for (size_t i = 0; i < l->n; i++)
        buf_printf(out, " %s", l->v[i]);
    buf_putc(out, '\n');
}

void inventory_summary(const inventory_t *inv, buf_t *out)
{
    const iommu_state_t *io = &inv->iommu;
    buf_printf(out, "node %s  kernel %s  cpu %s (%s)\n", inv->sys.node ? inv->sys.node : "?",
               inv->sys.kernel_release ? inv->sys.kernel_release : "?", inv->sys.cpu_vendor,
               tri(inv->sys.cpu_virtualization, "virtualization on", "no vmx/svm flag"));
    buf_printf(out, "IOMMU: %s\n", verdict_name(io->verdict));
    for (size_t i = 0; i < io->reasons.n; i++)
        buf_printf(out, "  - %s\n", io->reasons.v[i]);
    buf_printf(out, "  firmware table %s, %s, %zu unit(s), %ld group(s), default domain %s, interrupt remapping %s\n",
               io->firmware ? io->firmware : "none", io->enabled ? "enabled" : "not enabled", io->units.n,
               io->groups, io->default_domain ? io->default_domain : "-",
               tri(io->interrupt_remapping, "on", "off"));
    buf_printf(out, "  running cmdline: %s\n", io->cmdline ? io->cmdline : "(unreadable)");
    buf_printf(out, "boot: %s", inv->boot.loader_name ? inv->boot.loader_name : "unknown");
    if (inv->boot.cmdline_file)
        buf_printf(out, ", arguments in %s", inv->boot.cmdline_file);
    if (inv->boot.refresh_command)
        buf_printf(out, ", refresh with %s", inv->boot.refresh_command);
    buf_putc(out, '\n');
    list_line(out, "vfio modules missing:", &inv->vfio.missing);

    size_t endpoints = 0, alone = 0;
    for (size_t i = 0; i < inv->groups.n; i++)
        for (size_t k = 0; k < inv->groups.v[i].n_members; k++)
            if (inv->groups.v[i].members[k].endpoint) {
                endpoints++;
                alone += inv->groups.v[i].members[k].alone;
            }
    buf_printf(out, "devices: %zu PCI functions, %zu IOMMU groups, %zu of %zu endpoints assignable alone\n",
               inv->devices.n, inv->groups.n, alone, endpoints);

    buf_printf(out, "NICs (%zu):\n", inv->nics.n);
    for (size_t i = 0; i < inv->nics.n; i++) {
        const nic_t *n = &inv->nics.v[i];
        const pci_dev_info_t *d = pci_devs_find(&inv->devices, n->address);
        const group_member_t *m = groups_find_member(&inv->groups, n->address);
        char speed[24] = "-";
        if (n->speed_mbps > 0)
            snprintf(speed, sizeof(speed), "%ldMb/s", n->speed_mbps);
        buf_printf(out, "  %s  %-10s %-17s %-9s %-5s %s%s%-12s %s\n", n->address,
                   n->ifname ? n->ifname : "-", n->mac ? n->mac : "-", speed,
                   n->operstate ? n->operstate : "-", n->management ? "MANAGEMENT " : "",
                   n->is_vf ? "VF " : "", !m ? "no-group" : m->alone ? "alone" : "shared-group",
                   d && d->device_name ? d->device_name : "");
    }
    buf_printf(out, "VMs (%zu):\n", inv->vms.n);
    for (size_t i = 0; i < inv->vms.n; i++) {
        const vm_t *vm = &inv->vms.v[i];
        buf_printf(out, "  %s %-6s %-16s %-8s %s", vm->source, vm->id ? vm->id : "?", vm->name ? vm->name : "-",
                   vm->running == 1 ? "running" : vm->running == 0 ? "stopped" : "?",
                   vm->migratable ? "migratable" : "pinned");
        for (size_t k = 0; k < vm->n_hostpci; k++)
            for (size_t a = 0; a < vm->hostpci[k].addresses.n; a++)
                buf_printf(out, " %s", vm->hostpci[k].addresses.v[a]);
        buf_putc(out, '\n');
    }
    if (inv->errors.n) {
        buf_printf(out, "errors (%zu):\n", inv->errors.n);
        for (size_t i = 0; i < inv->errors.n; i++)
            buf_printf(out, "  %s: %s\n", inv->errors.v[i].where, inv->errors.v[i].what);
    }
}
