/* report_pb — inventory_t to Pcifleet__Inventory (see report_pb.h).
 *
 * Every string and array is malloc'd, so protobuf-c's own
 * protobuf_c_message_free_unpacked (default allocator) frees the whole tree. */
#include "report_pb.h"

#include "buf.h"
#include "wire.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static char *text(const char *s)
{
    return wire_text_dup(s, WIRE_MAX_STRING - 1);
}

static char **texts(const strv_t *l, size_t *n)
{
    *n = l->n;
    if (!l->n)
        return NULL;
    char **v = xcalloc(l->n, sizeof(*v));
    for (size_t i = 0; i < l->n; i++)
        v[i] = text(l->v[i]);
    return v;
}

static Pcifleet__Tri tri(int v)
{
    return v < 0 ? PCIFLEET__TRI__TRI_UNKNOWN : v ? PCIFLEET__TRI__TRI_TRUE : PCIFLEET__TRI__TRI_FALSE;
}

static uint32_t u32(long v)
{
    return v < 0 ? 0 : v > (long)UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static Pcifleet__Iommu *iommu_pb(const iommu_state_t *io)
{
    Pcifleet__Iommu *m = xmalloc(sizeof(*m));
    pcifleet__iommu__init(m);
    m->firmware = text(io->firmware);
    m->enabled = io->enabled;
    m->units = texts(&io->units, &m->n_units);
    m->groups = u32(io->groups);
    m->default_domain = text(io->default_domain);
    m->interrupt_remapping = tri(io->interrupt_remapping);
    m->cmdline = text(io->cmdline);
    m->verdict = text(verdict_name(io->verdict));
    m->reasons = texts(&io->reasons, &m->n_reasons);
    return m;
}

static Pcifleet__Boot *boot_pb(const boot_info_t *b)
{
    Pcifleet__Boot *m = xmalloc(sizeof(*m));
    pcifleet__boot__init(m);
    m->loader = text(b->loader_name ? b->loader_name : "unknown");
    m->cmdline_file = text(b->cmdline_file);
    /* As the JSON report writes them: "key=value", or "key" alone. */
    m->n_configured_args = b->configured_args.n;
    m->configured_args = b->configured_args.n ? xcalloc(b->configured_args.n, sizeof(char *)) : NULL;
    for (size_t i = 0; i < b->configured_args.n; i++) {
        const karg_t *a = &b->configured_args.v[i];
        char *s = a->value ? xasprintf("%s=%s", a->key, a->value) : xstrdup(a->key);
        m->configured_args[i] = text(s);
        free(s);
    }
    m->refresh_command = text(b->refresh_command);
    m->proxmox_boot_tool = b->proxmox_boot_tool;
    return m;
}

static Pcifleet__Vfio *vfio_pb(const vfio_info_t *v)
{
    Pcifleet__Vfio *m = xmalloc(sizeof(*m));
    pcifleet__vfio__init(m);
    m->required = texts(&v->required, &m->n_required);
    m->loaded = texts(&v->loaded, &m->n_loaded);
    m->configured = texts(&v->configured, &m->n_configured);
    m->missing = texts(&v->missing, &m->n_missing);
    return m;
}

static Pcifleet__Device *device_pb(const pci_dev_info_t *d)
{
    Pcifleet__Device *m = xmalloc(sizeof(*m));
    pcifleet__device__init(m);
    m->address = text(d->address);
    m->class_code = d->class_code;
    m->vendor_id = d->vendor_id;
    m->device_id = d->device_id;
    m->subsystem_vendor_id = d->subsys_vendor_id;
    m->subsystem_device_id = d->subsys_device_id;
    m->vendor_name = text(d->vendor_name);
    m->device_name = text(d->device_name);
    m->driver = text(d->driver);
    m->iommu_group = d->iommu_group;
    m->numa_node = d->numa_node;
    m->bridge = pci_dev_is_bridge(d);
    m->has_acs = d->has_acs;
    m->acs_cap = d->acs_cap;
    m->acs_ctl = d->acs_ctl;
    m->has_sriov = d->has_sriov;
    m->sriov_total = u32(d->sriov_total);
    m->sriov_num = u32(d->sriov_num);
    m->physfn = text(d->physfn);
    /* The negotiated link, as the JSON report's link.speed/width: only for
     * PCIe functions that report a link. */
    bool link = d->is_pcie && (d->link_width || d->link_max_width);
    m->link_speed = text(link ? pci_link_speed_name(d->link_speed) : NULL);
    m->link_width = link && d->link_width > 0 ? (uint32_t)d->link_width : 0;
    m->class_name = text(d->class_name);
    m->revision = d->revision;
    return m;
}

static Pcifleet__Group *group_pb(const iommu_group_t *g)
{
    Pcifleet__Group *m = xmalloc(sizeof(*m));
    pcifleet__group__init(m);
    m->id = g->id;
    m->type = text(g->type);
    m->n_devices = g->n_members;
    m->devices = g->n_members ? xcalloc(g->n_members, sizeof(char *)) : NULL;
    size_t endpoints = 0;
    for (size_t i = 0; i < g->n_members; i++) {
        m->devices[i] = text(g->members[i].address);
        endpoints += g->members[i].endpoint;
    }
    m->isolated = g->isolated;
    m->n_endpoints = endpoints;
    m->endpoints = endpoints ? xcalloc(endpoints, sizeof(*m->endpoints)) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < g->n_members; i++) {
        const group_member_t *gm = &g->members[i];
        if (!gm->endpoint)
            continue;
        Pcifleet__GroupEndpoint *e = xmalloc(sizeof(*e));
        pcifleet__group_endpoint__init(e);
        e->address = text(gm->address);
        e->assignable_alone = gm->alone;
        e->slot_functions = texts(&gm->slot_functions, &e->n_slot_functions);
        e->blockers = texts(&gm->blockers, &e->n_blockers);
        m->endpoints[k++] = e;
    }
    return m;
}

static Pcifleet__Nic *nic_pb(const nic_t *n)
{
    Pcifleet__Nic *m = xmalloc(sizeof(*m));
    pcifleet__nic__init(m);
    m->address = text(n->address);
    m->ifname = text(n->ifname);
    m->mac = text(n->mac);
    m->speed_mbps = n->speed_mbps < 0 ? -1 : n->speed_mbps;
    m->operstate = text(n->operstate);
    m->management = n->management;
    m->management_via = text(n->management_via);
    m->is_vf = n->is_vf;
    m->driver = text(n->driver);
    return m;
}

static Pcifleet__Vm *vm_pb(const vm_t *vm)
{
    Pcifleet__Vm *m = xmalloc(sizeof(*m));
    pcifleet__vm__init(m);
    m->source = text(vm->source);
    m->id = text(vm->id);
    m->name = text(vm->name);
    m->machine = text(vm->machine);
    m->running = tri(vm->running);
    m->n_hostpci = vm->n_hostpci;
    m->hostpci = vm->n_hostpci ? xcalloc(vm->n_hostpci, sizeof(*m->hostpci)) : NULL;
    for (size_t i = 0; i < vm->n_hostpci; i++) {
        const hostpci_t *h = &vm->hostpci[i];
        Pcifleet__HostPci *p = xmalloc(sizeof(*p));
        pcifleet__host_pci__init(p);
        p->index = h->index < 0 ? 0 : (uint32_t)h->index;
        p->addresses = texts(&h->addresses, &p->n_addresses);
        p->mapping = text(h->mapping);
        p->pcie = h->pcie;
        p->raw = text(h->raw);
        m->hostpci[i] = p;
    }
    m->migratable = vm->migratable;
    m->reasons = texts(&vm->reasons, &m->n_reasons);
    return m;
}

int report_to_pb(const inventory_t *inv, Pcifleet__Inventory **out)
{
    Pcifleet__Inventory *m = xmalloc(sizeof(*m));
    pcifleet__inventory__init(m);
    m->agent_version = text(agent_version());
    m->boot_id = text(inv->sys.boot_id);
    m->kernel_release = text(inv->sys.kernel_release);
    m->cpu_vendor = text(inv->sys.cpu_vendor);
    m->cpu_model = text(inv->sys.cpu_model);
    m->cpu_virtualization = tri(inv->sys.cpu_virtualization);
    m->iommu = iommu_pb(&inv->iommu);
    m->boot = boot_pb(&inv->boot);
    m->vfio = vfio_pb(&inv->vfio);

    m->n_devices = inv->devices.n;
    m->devices = inv->devices.n ? xcalloc(inv->devices.n, sizeof(*m->devices)) : NULL;
    for (size_t i = 0; i < inv->devices.n; i++)
        m->devices[i] = device_pb(&inv->devices.v[i]);

    m->n_groups = inv->groups.n;
    m->groups = inv->groups.n ? xcalloc(inv->groups.n, sizeof(*m->groups)) : NULL;
    for (size_t i = 0; i < inv->groups.n; i++)
        m->groups[i] = group_pb(&inv->groups.v[i]);

    m->n_nics = inv->nics.n;
    m->nics = inv->nics.n ? xcalloc(inv->nics.n, sizeof(*m->nics)) : NULL;
    for (size_t i = 0; i < inv->nics.n; i++)
        m->nics[i] = nic_pb(&inv->nics.v[i]);

    m->n_vms = inv->vms.n;
    m->vms = inv->vms.n ? xcalloc(inv->vms.n, sizeof(*m->vms)) : NULL;
    for (size_t i = 0; i < inv->vms.n; i++)
        m->vms[i] = vm_pb(&inv->vms.v[i]);

    /* Only the mappings with an entry for this node (inventory.h keeps the
     * others with n_alts 0); already sorted by name, so the hash is stable. */
    size_t nmap = 0;
    for (size_t i = 0; i < inv->mappings.n; i++)
        nmap += inv->mappings.v[i].n_alts > 0;
    m->n_mappings = nmap;
    m->mappings = nmap ? xcalloc(nmap, sizeof(*m->mappings)) : NULL;
    for (size_t i = 0, k = 0; i < inv->mappings.n; i++) {
        const pve_mapping_t *mp = &inv->mappings.v[i];
        if (!mp->n_alts)
            continue;
        Pcifleet__PciMapping *pm = xmalloc(sizeof(*pm));
        pcifleet__pci_mapping__init(pm);
        pm->name = text(mp->name);
        pm->addresses = texts(&mp->addresses, &pm->n_addresses);
        m->mappings[k++] = pm;
    }

    if (inv->cluster.name) {
        Pcifleet__Cluster *c = xmalloc(sizeof(*c));
        pcifleet__cluster__init(c);
        c->name = text(inv->cluster.name);
        c->members = texts(&inv->cluster.members, &c->n_members);
        m->cluster = c;
    }

    m->n_errors = inv->errors.n;
    m->errors = inv->errors.n ? xcalloc(inv->errors.n, sizeof(*m->errors)) : NULL;
    for (size_t i = 0; i < inv->errors.n; i++) {
        Pcifleet__ScanError *e = xmalloc(sizeof(*e));
        pcifleet__scan_error__init(e);
        e->where = text(inv->errors.v[i].where);
        e->what = text(inv->errors.v[i].what);
        m->errors[i] = e;
    }

    m->hash.data = xmalloc(32);
    report_hash(m, m->hash.data);
    m->hash.len = 32;
    *out = m;
    return 0;
}

void report_pb_free(Pcifleet__Inventory **pb)
{
    if (!pb || !*pb)
        return;
    protobuf_c_message_free_unpacked(&(*pb)->base, NULL);
    *pb = NULL;
}

void report_hash(const Pcifleet__Inventory *pb, uint8_t out[32])
{
    /* A shallow copy with the hash emptied: protobuf-c does not write an
     * empty proto3 bytes field, so this packs "the message without hash". */
    Pcifleet__Inventory copy = *pb;
    copy.hash.len = 0;
    copy.hash.data = NULL;
    size_t n = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *packed = xmalloc(n ? n : 1);
    protobuf_c_message_pack(&copy.base, packed);
    crypto_hash_sha256(out, packed, n);
    free(packed);
}
