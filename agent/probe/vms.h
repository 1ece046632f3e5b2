/* vms — the virtual machines a node has, and the host PCI devices they take.
 *
 * Contract: reads Proxmox VE VM configs (etc/pve/qemu-server/VMID.conf, with
 * resource mappings from etc/pve/mapping/pci.cfg) and libvirt domain
 * definitions (etc/libvirt/qemu/NAME.xml) through the agent's root, never the
 * host's paths directly. For every VM it reports the passed-through PCI
 * functions as full lowercase addresses (DDDD:BB:DD.F), whether the VM runs,
 * and whether it can live-migrate, with sentences a person can act on when
 * not. Nothing here writes, runs `qm`/`virsh`, or aborts on bad input: a
 * damaged file gives an errs entry and everything else that could be read.
 *
 * The implementation is split by source: pve.c (Proxmox config, hostpci
 * values, pci.cfg mappings), libvirt.c (domain XML) and vms.c (walking the
 * root, running state, JSON). The parsers take (buf, len) so they are fuzzed
 * directly (fuzz/fuzz_pve_conf.c, fuzz_pve_mapping.c, fuzz_libvirt_xml.c).
 *
 * Ownership: every string and array inside the structs below belongs to the
 * struct; hostpci_free, vm_clear, vms_free and pve_mappings_free release it
 * all and leave the struct empty (safe to call twice). */
#ifndef PCIFLEET_VMS_H
#define PCIFLEET_VMS_H

#include "errs.h"
#include "json.h"
#include "root.h"
#include "strv.h"

#include <stdbool.h>
#include <stddef.h>

/* Proxmox allows hostpci0 .. hostpci15. */
#define PVE_MAX_HOSTPCI 16

typedef struct {
    int index;          /* N of hostpciN; for libvirt, the position among the domain's PCI hostdevs */
    strv_t addresses;   /* expanded, full DDDD:BB:DD.F, lowercase, no duplicates */
    char *mapping;      /* mapping name when mapping=NAME, else NULL */
    bool pcie;          /* pcie=1 */
    char *raw;          /* the value as written in the config (libvirt: the <address> element) */
    /* Not in the JSON; for the reasons the VM gets: */
    bool live_migration_capable; /* a resolved mapping marked live-migration-capable */
    strv_t problems;    /* what this node cannot satisfy, as predicates ("names 0000:09:00.0, which
                         * does not exist on this node ..."); vm_judge puts "hostpciN " in front */
} hostpci_t;

typedef struct {
    const char *source; /* "proxmox" | "libvirt" (static) */
    char *id;           /* Proxmox VMID, or libvirt domain name */
    char *name;
    char *machine;      /* as written: "q35", "pc-q35-8.1", "q35,viommu=intel"; NULL when unset (Proxmox: i440fx) */
    int running;        /* 1, 0, -1 unknown */
    hostpci_t *hostpci;
    size_t n_hostpci;
    bool migratable;    /* live migration possible as far as passthrough is concerned */
    strv_t reasons;     /* why not migratable, and hostpci entries this node cannot satisfy */
} vm_t;

typedef struct {
    vm_t *v;
    size_t n, cap;
} vms_t;

#define VMS_INIT {NULL, 0, 0}

/* ---- Proxmox resource mappings (etc/pve/mapping/pci.cfg) ---- */

/* One `map` line for this node: one alternative of a mapping's pool. */
typedef struct {
    strv_t ids;         /* the path's IDs as written, lowercased ("0000:01:00.0", "0000:02:00") */
    char *id;           /* expected vendor:device ("8086:1572"), NULL when absent */
    char *subsystem_id; /* expected subsystem vendor:device, NULL when absent */
    int iommugroup;     /* expected IOMMU group, -1 when absent */
} pve_map_alt_t;

typedef struct {
    char *name;
    pve_map_alt_t *alts; /* this node's map entries, in file order */
    size_t n_alts;
    size_t n_other;      /* map entries for other nodes (ignored) */
    bool live_migration_capable;
    bool mdev;
    strv_t addresses;    /* empty until pve_mappings_expand fills it */
} pve_mapping_t;

typedef struct {
    pve_mapping_t *v;
    size_t n, cap;
} pve_mappings_t;

#define PVE_MAPPINGS_INIT {NULL, 0, 0}

/* Parses pci.cfg (SectionConfig: a bare name line, then indented
 * "key value" lines; a blank line ends the section). Keeps, per mapping, the
 * map entries whose node= is `node`. Malformed lines and map entries give an
 * errs entry (where "/etc/pve/mapping/pci.cfg") and are skipped. Returns 0,
 * or -EINVAL when anything had to be skipped (what could be read is in out). */
int pve_mappings_parse(const char *buf, size_t len, const char *node, pve_mappings_t *out,
                       errs_t *errs);
const pve_mapping_t *pve_mappings_find(const pve_mappings_t *m, const char *name);
void pve_mappings_free(pve_mappings_t *m);

/* Fills every mapping's addresses with what this node's map entries name,
 * all alternatives together, in file order, each once, as full lowercase
 * DDDD:BB:DD.F: a function as written; a whole slot as its functions in
 * present, or its function 0 when none is present (or present is NULL) so
 * a mapping pointing at missing hardware still shows what it names. Then
 * sorts the mappings by name (strcmp), so a report lists them in an order
 * that does not depend on the file's. */
void pve_mappings_expand(pve_mappings_t *m, const strv_t *present);

/* ---- Proxmox VM config ---- */

/* Parses one hostpciN value ("[host=]ID[;ID...][,opt=val...]" or
 * "mapping=NAME[,...]") into out (which the caller zeroes; index is left for
 * the caller). IDs are "[domain:]bus:slot[.fn]" in hex; a slot without a
 * function means every function of that slot in `present` (sorted). present
 * may be NULL (unknown): then a slot means its function 0 and nothing is
 * checked for existence. A mapping resolves to the first of this node's
 * alternatives whose devices are all present (the first one when none is).
 * Returns 0 when the value is valid, even if it names devices the node lacks
 * (those are in out->problems); -EINVAL for a malformed value and -ENOENT for
 * a mapping maps does not define (for this node), with a sentence in *err
 * (caller frees). On error out still holds raw, mapping and whatever
 * addresses could be read. */
int pve_hostpci_parse(const char *value, const pve_mappings_t *maps, const strv_t *present,
                      hostpci_t *out, char **err);

/* Parses a VM config. Only the live section counts: everything before the
 * first "[section]" line ([PENDING], [special:cloudinit], snapshots). "#"
 * lines are the description. A line without "key: value", an unknown or
 * malformed hostpci, and a last line without its newline (a truncated file)
 * each give an errs entry (where "/etc/pve/qemu-server/VMID.conf", what names
 * the line) and the rest is still read. out is filled whatever happens
 * (source "proxmox", id vmid, running -1: vms_probe decides); migratable and
 * reasons are computed from the hostpci entries. Returns 0, or -EINVAL when
 * anything had to be recorded in errs. maps and present may be NULL. */
int pve_conf_parse(const char *buf, size_t len, const char *vmid, const pve_mappings_t *maps,
                   const strv_t *present, vm_t *out, errs_t *errs);

/* ---- libvirt domain XML ---- */

/* Parses a domain definition (<domain>): name, <os><type machine=...>, and
 * every PCI passthrough: <hostdev mode='subsystem' type='pci'> and
 * <interface type='hostdev'>, each by its <source><address domain= bus= slot=
 * function=/>. Other hostdevs (USB, SCSI, mdev) are ignored. libxml2 reads it
 * without network access, entity substitution or DTD loading, prints
 * nothing, and documents with a DOCTYPE or larger than LIBVIRT_XML_MAX are
 * refused. Returns 0, or -EINVAL with an errs entry when the XML is malformed
 * or not a domain (out then holds what could be read; source is "libvirt").
 * running is -1: vms_probe decides it from run/libvirt/qemu. */
#define LIBVIRT_XML_MAX (4u * 1024 * 1024)
int libvirt_domain_parse(const char *buf, size_t len, vm_t *out, errs_t *errs);
/* The same, naming `where` (e.g. "/etc/libvirt/qemu/web1.xml") in errs. */
int libvirt_domain_parse_at(const char *buf, size_t len, const char *where, vm_t *out,
                            errs_t *errs);

/* ---- the node ---- */

/* Reads etc/pve/qemu-server/ *.conf (with etc/pve/mapping/pci.cfg entries for
 * `node`) and etc/libvirt/qemu/ *.xml under root, appending one vm_t per VM
 * to out (Proxmox by VMID, then libvirt by name). present: the node's PCI
 * function addresses, used to expand slots and to flag entries pointing at
 * nothing (NULL: unknown). node NULL means the short name in etc/hostname.
 * Running: Proxmox run/qemu-server/ID.pid (or var/run/...) naming a pid that
 * has a proc/PID directory; libvirt run/libvirt/qemu/NAME.xml (the status
 * file libvirt keeps while a domain runs), or NAME.pid naming a live pid.
 * Missing folders are not errors (the node has no such hypervisor).
 * Returns 0, or -EINVAL when something was recorded in errs. */
int vms_probe(const root_t *root, const char *node, const strv_t *present, vms_t *out,
              errs_t *errs);
/* The same, and when maps is not NULL (an empty PVE_MAPPINGS_INIT list)
 * hands over the pci.cfg mappings it read, expanded with
 * pve_mappings_expand (so sorted by name); the caller frees them with
 * pve_mappings_free. A mapping with no entry for `node` stays in the list
 * with n_alts 0 and no addresses. pci.cfg is read even on a node without VM
 * configs, since the mappings are facts of their own. */
int vms_probe_with_mappings(const root_t *root, const char *node, const strv_t *present, vms_t *out,
                            pve_mappings_t *maps, errs_t *errs);

/* Writes the array under key: per VM source, id, name, machine, running
 * (true/false/null), hostpci [{index, addresses, mapping, pcie, raw}],
 * migratable, reasons. */
void vms_to_json(json_t *j, const char *key, const vms_t *v);

void hostpci_free(hostpci_t *h);
void vm_clear(vm_t *vm);
void vms_free(vms_t *v);
/* Appends a zeroed VM (running -1, migratable true) and returns it. */
vm_t *vms_push(vms_t *v);
/* Sets migratable and reasons from the VM's hostpci entries (drops earlier reasons). */
void vm_judge(vm_t *vm);

#endif
