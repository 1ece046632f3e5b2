#include "pci.h"

#include "buf.h"

#include <errno.h>
#include <pci/pci.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpci reports errors through a function pointer without a user argument
 * and expects it not to return; we jump back to the device being read. One
 * scan at a time per thread, so thread-local state is enough. */
static __thread jmp_buf *pci_jump;
static __thread char pci_errmsg[512];
static __thread errs_t *pci_warn_errs;
static __thread const char *pci_warn_where;

static void __attribute__((noreturn, format(printf, 1, 2))) pci_on_error(char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    vsnprintf(pci_errmsg, sizeof(pci_errmsg), msg, ap);
    va_end(ap);
    if (pci_jump)
        longjmp(*pci_jump, 1);
    /* Not inside a guarded call: should not happen; never exit the agent. */
    fprintf(stderr, "pcifleet-agent: libpci: %s\n", pci_errmsg);
    abort();
}

static void __attribute__((format(printf, 1, 2))) pci_on_warning(char *msg, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, msg);
    vsnprintf(text, sizeof(text), msg, ap);
    va_end(ap);
    if (pci_warn_errs)
        errs_add(pci_warn_errs, pci_warn_where ? pci_warn_where : "libpci", "libpci: %s", text);
}

static void pci_on_debug(char *msg, ...)
{
    (void)msg;
}

bool pci_parse_address(const char *s, unsigned *domain, unsigned *bus, unsigned *dev, unsigned *func)
{
    unsigned d = 0, b, s_, f;
    int n = 0;
    size_t len = strlen(s);
    if (sscanf(s, "%4x:%2x:%2x.%1x%n", &d, &b, &s_, &f, &n) == 4 && (size_t)n == len && len == 12) {
        /* full form */
    } else if (d = 0, n = 0, sscanf(s, "%2x:%2x.%1x%n", &b, &s_, &f, &n) == 3 && (size_t)n == len && len == 7) {
        /* short form, domain 0 */
    } else {
        return false;
    }
    if (s_ > 0x1f || f > 7)
        return false;
    *domain = d;
    *bus = b;
    *dev = s_;
    *func = f;
    return true;
}

const char *pci_link_speed_name(int code)
{
    static const char *const names[] = {NULL, "2.5GT/s", "5GT/s", "8GT/s", "16GT/s", "32GT/s", "64GT/s"};
    if (code <= 0 || code >= (int)(sizeof(names) / sizeof(names[0])))
        return NULL;
    return names[code];
}

const char *pci_acs_bit_name(unsigned bit)
{
    static const char *const names[] = {"SrcValid", "TransBlk", "ReqRedir", "CmpltRedir",
                                        "UpstreamFwd", "EgressCtrl", "DirectTrans"};
    return bit < sizeof(names) / sizeof(names[0]) ? names[bit] : NULL;
}

bool pci_dev_is_bridge(const pci_dev_info_t *d)
{
    if (d->header_type == 1 || d->header_type == 2)
        return true;
    return d->class_code == 0x0600 || d->class_code == 0x0604 || d->class_code == 0x0609;
}

bool pci_dev_is_network(const pci_dev_info_t *d)
{
    return (d->class_code >> 8) == 0x02;
}

static char *lookup(struct pci_access *a, int flags, unsigned a1, unsigned a2, unsigned a3, unsigned a4)
{
    char text[256];
    char *r = pci_lookup_name(a, text, sizeof(text), flags | PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB,
                              a1, a2, a3, a4);
    return r ? xstrdup(r) : NULL;
}

static void read_links(const root_t *root, pci_dev_info_t *info, errs_t *errs)
{
    char rel[128], *s = NULL;
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver", info->address);
    if (root_readlink_base(root, rel, &s) == 0)
        info->driver = s;

    info->iommu_group = -1;
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/iommu_group", info->address);
    if (root_readlink_base(root, rel, &s) == 0) {
        char *end;
        long g = strtol(s, &end, 10);
        if (end != s && *end == '\0' && g >= 0)
            info->iommu_group = g;
        else
            errs_add(errs, rel, "iommu_group link points at \"%s\", which is not a group number", s);
        free(s);
    }

    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/physfn", info->address);
    if (root_readlink_base(root, rel, &s) == 0) {
        unsigned d, b, sl, f;
        if (pci_parse_address(s, &d, &b, &sl, &f))
            info->physfn = s;
        else {
            errs_add(errs, rel, "physfn link points at \"%s\", which is not a PCI address", s);
            free(s);
        }
    }

    /* Only a PF with the SR-IOV capability has these files. */
    if (!info->has_sriov)
        return;
    long v;
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/sriov_totalvfs", info->address);
    if (root_read_long(root, rel, &v) == 0) {
        info->has_sriov = true;
        info->sriov_total = v;
    }
    snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/sriov_numvfs", info->address);
    if (root_read_long(root, rel, &v) == 0) {
        info->has_sriov = true;
        info->sriov_num = v;
    }
}

/* Reads one function's identity and capabilities. Returns 0, or -EIO with
 * pci_errmsg set when libpci gave up on it. Everything touched after setjmp
 * lives in *info or is volatile. */
static int read_config(struct pci_access *a, pci_dev_info_t *info)
{
    jmp_buf jb;
    struct pci_dev *volatile dev = NULL;
    pci_jump = &jb;
    if (setjmp(jb) != 0) {
        pci_jump = NULL;
        /* libpci fails between whole updates of the device (every pointer
         * it holds is NULL or complete), so freeing it here is safe and
         * keeps a broken tree from leaking one struct per bad function. */
        if (dev)
            pci_free_dev(dev);
        return -EIO;
    }
    dev = pci_get_dev(a, (int)info->domain, (int)info->bus, (int)info->dev, (int)info->func);
    struct pci_dev *d = dev;
    pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS |
                         PCI_FILL_NUMA_NODE | PCI_FILL_CAPS | PCI_FILL_EXT_CAPS);
    info->vendor_id = d->vendor_id;
    info->device_id = d->device_id;
    info->class_code = d->device_class;
    info->prog_if = d->prog_if;
    info->revision = d->rev_id;
    info->subsys_vendor_id = d->subsys_vendor_id;
    info->subsys_device_id = d->subsys_id;
    info->numa_node = d->numa_node;

    u8 hdr = pci_read_byte(d, PCI_HEADER_TYPE);
    info->header_type = (d->vendor_id == 0xffff || hdr == 0xff) ? -1 : (hdr & 0x7f);

    size_t ncaps = 0;
    for (struct pci_cap *c = d->first_cap; c; c = c->next)
        ncaps++;
    if (ncaps) {
        info->caps = xcalloc(ncaps, sizeof(*info->caps));
        for (struct pci_cap *c = d->first_cap; c && info->n_caps < ncaps; c = c->next) {
            pci_cap_ref_t *r = &info->caps[info->n_caps++];
            r->offset = c->addr;
            r->id = c->id;
            r->extended = c->type == PCI_CAP_EXTENDED;
        }
    }

    struct pci_cap *acs = pci_find_cap(d, PCI_EXT_CAP_ID_ACS, PCI_CAP_EXTENDED);
    if (acs) {
        info->has_acs = true;
        info->acs_cap = pci_read_word(d, (int)acs->addr + PCI_ACS_CAP);
        info->acs_ctl = pci_read_word(d, (int)acs->addr + PCI_ACS_CTRL);
    }

    struct pci_cap *sriov = pci_find_cap(d, PCI_EXT_CAP_ID_SRIOV, PCI_CAP_EXTENDED);
    if (sriov) {
        info->has_sriov = true;
        info->sriov_total = pci_read_word(d, (int)sriov->addr + PCI_IOV_TOTALVF);
        info->sriov_num = pci_read_word(d, (int)sriov->addr + PCI_IOV_NUMVF);
    }

    info->pcie_type = -1;
    struct pci_cap *exp = pci_find_cap(d, PCI_CAP_ID_EXP, PCI_CAP_NORMAL);
    if (exp) {
        int base = (int)exp->addr;
        u16 flags = pci_read_word(d, base + PCI_EXP_FLAGS);
        info->is_pcie = true;
        info->pcie_type = (flags & PCI_EXP_FLAGS_TYPE) >> 4;
        /* Root-complex integrated endpoints and event collectors have no link. */
        if (info->pcie_type != PCIE_TYPE_RC_INTEGRATED && info->pcie_type != PCIE_TYPE_RC_EVENT_COLLECTOR) {
            u32 lcap = pci_read_long(d, base + PCI_EXP_LNKCAP);
            u16 lsta = pci_read_word(d, base + PCI_EXP_LNKSTA);
            info->link_max_speed = (int)(lcap & PCI_EXP_LNKCAP_SPEED);
            info->link_max_width = (int)((lcap & PCI_EXP_LNKCAP_WIDTH) >> 4);
            info->link_speed = lsta & PCI_EXP_LNKSTA_SPEED;
            info->link_width = (lsta & PCI_EXP_LNKSTA_WIDTH) >> 4;
        }
    }

    info->vendor_name = lookup(a, PCI_LOOKUP_VENDOR, d->vendor_id, 0, 0, 0);
    info->device_name = lookup(a, PCI_LOOKUP_DEVICE, d->vendor_id, d->device_id, 0, 0);
    info->class_name = lookup(a, PCI_LOOKUP_CLASS, d->device_class, 0, 0, 0);
    if (d->subsys_vendor_id && d->subsys_vendor_id != 0xffff)
        info->subsys_name = lookup(a, PCI_LOOKUP_SUBSYSTEM | PCI_LOOKUP_DEVICE, d->vendor_id, d->device_id,
                                   d->subsys_vendor_id, d->subsys_id);
    pci_jump = NULL;
    pci_free_dev(d);
    return 0;
}

/* Sorted by address text: pci_devs_find searches the same order, and for
 * the fixed-width "%04x:%02x:%02x.%x" form text order is numeric order. */
static int cmp_dev(const void *a, const void *b)
{
    return strcmp(((const pci_dev_info_t *)a)->address, ((const pci_dev_info_t *)b)->address);
}

/* Explains why libpci gave up on a function: names each file its sysfs
 * method needs that cannot be read. Run only after a failure, so a healthy
 * node does not read every file twice. Returns false when it named one. */
static bool precheck(const root_t *root, const char *addr, errs_t *errs)
{
    static const char *const needed[] = {"vendor", "device", "class", "irq", "resource", "config"};
    bool ok = true;
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        char rel[128], *s = NULL;
        snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/%s", addr, needed[i]);
        int rc = root_read(root, rel, 64 * 1024, &s, NULL);
        free(s);
        if (rc < 0) {
            errs_add(errs, rel, "cannot read %s of PCI function %s: %s", needed[i], addr,
                     rc == -EFBIG ? "file is larger than 64 KiB" : strerror(-rc));
            ok = false;
        }
    }
    return ok;
}

int pci_probe(const root_t *root, const pci_probe_opts_t *opts, pci_devs_t *out, errs_t *errs)
{
    strv_t names = STRV_INIT;
    int rc = root_list(root, "sys/bus/pci/devices", &names);
    if (rc < 0) {
        errs_add(errs, "/sys/bus/pci/devices", "cannot list PCI functions: %s", strerror(-rc));
        return rc;
    }

    struct pci_access *a = pci_alloc();
    a->error = pci_on_error;
    a->warning = pci_on_warning;
    a->debug = pci_on_debug;
    a->method = PCI_ACCESS_SYS_BUS_PCI;
    char *sysfs = root_path(root, "sys/bus/pci");
    pci_set_param(a, "sysfs.path", sysfs);
    if (opts && opts->ids_file)
        pci_set_name_list_path(a, (char *)opts->ids_file, 0);
    pci_warn_errs = errs;
    pci_warn_where = "/sys/bus/pci";

    jmp_buf jb;
    pci_jump = &jb;
    if (setjmp(jb) != 0) {
        pci_jump = NULL;
        errs_add(errs, "/sys/bus/pci", "libpci could not start: %s", pci_errmsg);
        free(sysfs);
        strv_free(&names);
        pci_warn_errs = NULL;
        return -EIO;
    }
    pci_init(a);
    pci_jump = NULL;

    for (size_t i = 0; i < names.n; i++) {
        unsigned dom, bus, dev, fn;
        if (!pci_parse_address(names.v[i], &dom, &bus, &dev, &fn)) {
            errs_add(errs, "/sys/bus/pci/devices", "\"%s\" is not a PCI address; skipped", names.v[i]);
            continue;
        }
        char where[128];
        snprintf(where, sizeof(where), "/sys/bus/pci/devices/%s", names.v[i]);
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 64;
            out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
        }
        pci_dev_info_t *info = &out->v[out->n];
        memset(info, 0, sizeof(*info));
        snprintf(info->address, sizeof(info->address), "%04x:%02x:%02x.%x", dom, bus, dev, fn);
        info->domain = dom;
        info->bus = bus;
        info->dev = dev;
        info->func = fn;
        pci_warn_where = where;
        if (read_config(a, info) < 0) {
            if (precheck(root, names.v[i], errs))
                errs_add(errs, where, "libpci could not read PCI function %s: %s", info->address, pci_errmsg);
            free(info->caps);
            free(info->vendor_name);
            free(info->device_name);
            free(info->class_name);
            continue;
        }
        if (info->vendor_id == 0xffff || info->vendor_id == 0)
            errs_add(errs, where, "PCI function %s has no valid vendor id (0x%04x)", info->address,
                     info->vendor_id);
        read_links(root, info, errs);
        out->n++;
    }
    pci_warn_errs = NULL;
    pci_warn_where = NULL;
    pci_cleanup(a);
    free(sysfs);
    strv_free(&names);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_dev);
    return 0;
}

/* pci_probe leaves the list sorted by address, and addresses are fixed-width
 * hex ("%04x:%02x:%02x.%x"), so strcmp order is address order. */
const pci_dev_info_t *pci_devs_find(const pci_devs_t *d, const char *address)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->v[mid].address, address);
        if (c == 0)
            return &d->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void pci_devs_free(pci_devs_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        pci_dev_info_t *x = &d->v[i];
        free(x->vendor_name);
        free(x->device_name);
        free(x->class_name);
        free(x->subsys_name);
        free(x->driver);
        free(x->physfn);
        free(x->caps);
    }
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}
