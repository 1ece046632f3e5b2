#include "net.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NET_WALK_MAX_DEPTH 8
#define NET_WALK_MAX_IFACES 256

/* Splits a line into whitespace-separated fields (at most max). */
static size_t fields(const char *p, const char *e, const char **f, size_t *fl, size_t max)
{
    size_t n = 0;
    while (p < e && n < max) {
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= e)
            break;
        const char *s = p;
        while (p < e && *p != ' ' && *p != '\t')
            p++;
        f[n] = s;
        fl[n] = (size_t)(p - s);
        n++;
    }
    return n;
}

static bool valid_ifname(const char *s, size_t n)
{
    if (n == 0 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == ':' || (unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

void route_default_ifaces_parse(const char *buf, size_t len, strv_t *out)
{
    const char *p = buf, *end = buf + len;
    bool header = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *f[11];
        size_t fl[11];
        size_t n = fields(p, e, f, fl, 11);
        /* Iface Destination Gateway Flags RefCnt Use Metric Mask ... */
        if (!header && n >= 8 && fl[1] == 8 && strncmp(f[1], "00000000", 8) == 0 && fl[7] == 8 &&
            strncmp(f[7], "00000000", 8) == 0 && valid_ifname(f[0], fl[0])) {
            char name[16];
            memcpy(name, f[0], fl[0]);
            name[fl[0]] = '\0';
            strv_add_unique(out, name);
        }
        header = false;
        p = e + 1;
    }
}

void route6_default_ifaces_parse(const char *buf, size_t len, strv_t *out)
{
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *f[10];
        size_t fl[10];
        size_t n = fields(p, e, f, fl, 10);
        /* dest plen src splen nexthop metric refcnt use flags iface; skip lo */
        if (n == 10 && fl[0] == 32 && strspn(f[0], "0") >= 32 && fl[1] == 2 && strncmp(f[1], "00", 2) == 0 &&
            valid_ifname(f[9], fl[9]) && !(fl[9] == 2 && strncmp(f[9], "lo", 2) == 0)) {
            char name[16];
            memcpy(name, f[9], fl[9]);
            name[fl[9]] = '\0';
            strv_add_unique(out, name);
        }
        p = e + 1;
    }
}

/* Interfaces directly below ifname: bridge ports, bond slaves, lower links. */
static void lower_ifaces(const root_t *root, const char *ifname, strv_t *out)
{
    char rel[128];
    strv_t names = STRV_INIT;
    snprintf(rel, sizeof(rel), "sys/class/net/%s/brif", ifname);
    if (root_list(root, rel, &names) == 0)
        for (size_t i = 0; i < names.n; i++)
            if (valid_ifname(names.v[i], strlen(names.v[i])))
                strv_add_unique(out, names.v[i]);
    strv_free(&names);

    snprintf(rel, sizeof(rel), "sys/class/net/%s/bonding/slaves", ifname);
    char *slaves = NULL;
    size_t len;
    if (root_read(root, rel, 64 * 1024, &slaves, &len) == 0) {
        const char *f[64];
        size_t fl[64];
        for (char *c = slaves; *c; c++)
            if (*c == '\n')
                *c = ' ';
        size_t n = fields(slaves, slaves + len, f, fl, 64);
        for (size_t i = 0; i < n; i++)
            if (valid_ifname(f[i], fl[i])) {
                char name[16];
                memcpy(name, f[i], fl[i]);
                name[fl[i]] = '\0';
                strv_add_unique(out, name);
            }
    }
    free(slaves);

    snprintf(rel, sizeof(rel), "sys/class/net/%s", ifname);
    if (root_list(root, rel, &names) == 0)
        for (size_t i = 0; i < names.n; i++)
            if (strncmp(names.v[i], "lower_", 6) == 0 && valid_ifname(names.v[i] + 6, strlen(names.v[i] + 6)))
                strv_add_unique(out, names.v[i] + 6);
    strv_free(&names);
}

typedef struct {
    strv_t names; /* every interface reached */
    strv_t paths; /* how it was reached, same index */
} walk_t;

static void walk(const root_t *root, const char *ifname, const char *path, int depth, walk_t *w)
{
    if (depth > NET_WALK_MAX_DEPTH || w->names.n >= NET_WALK_MAX_IFACES || strv_contains(&w->names, ifname))
        return;
    strv_add(&w->names, ifname);
    strv_add(&w->paths, path);
    strv_t lower = STRV_INIT;
    lower_ifaces(root, ifname, &lower);
    for (size_t i = 0; i < lower.n; i++) {
        char *sub = xasprintf("%s > %s", path, lower.v[i]);
        walk(root, lower.v[i], sub, depth + 1, w);
        free(sub);
    }
    strv_free(&lower);
}

/* The PCI function behind a netdev: its device link when that names a PCI
 * function, else the last PCI address on the path of the class entry itself
 * (virtio-net: .../0000:00:03.0/virtio2/net/eth0, where device -> virtio2). */
static char *netdev_pci_address(const root_t *root, const char *ifn)
{
    char rel[128], *target = NULL;
    unsigned a, b, c, d;
    snprintf(rel, sizeof(rel), "sys/class/net/%s/device", ifn);
    if (root_readlink_base(root, rel, &target) == 0 && pci_parse_address(target, &a, &b, &c, &d))
        return target;
    free(target);
    target = NULL;
    bool has_device = root_exists(root, rel);
    snprintf(rel, sizeof(rel), "sys/class/net/%s", ifn);
    if (!has_device || root_readlink(root, rel, &target) < 0)
        return NULL;
    char *found = NULL;
    char *save = NULL;
    for (char *tok = strtok_r(target, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
        if (pci_parse_address(tok, &a, &b, &c, &d)) {
            free(found);
            found = xstrdup(tok);
        }
    free(target);
    return found;
}

static nic_t *nic_for(nics_t *out, const char *address)
{
    for (size_t i = 0; i < out->n; i++)
        if (strcmp(out->v[i].address, address) == 0)
            return &out->v[i];
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
    }
    nic_t *n = &out->v[out->n++];
    memset(n, 0, sizeof(*n));
    snprintf(n->address, sizeof(n->address), "%s", address);
    n->speed_mbps = -1;
    return n;
}

static int cmp_nic(const void *a, const void *b)
{
    return strcmp(((const nic_t *)a)->address, ((const nic_t *)b)->address);
}

int net_probe(const root_t *root, const pci_devs_t *devs, nics_t *out, errs_t *errs)
{
    for (size_t i = 0; i < devs->n; i++)
        if (pci_dev_is_network(&devs->v[i]))
            nic_for(out, devs->v[i].address);

    strv_t ifaces = STRV_INIT;
    int rc = root_list(root, "sys/class/net", &ifaces);
    if (rc < 0 && devs->n > 0)
        errs_add(errs, "/sys/class/net", "cannot list network interfaces: %s", strerror(-rc));
    for (size_t i = 0; i < ifaces.n; i++) {
        const char *ifn = ifaces.v[i];
        char rel[128];
        char *addr = netdev_pci_address(root, ifn);
        if (!addr)
            continue; /* virtual interface, USB NIC, platform device */
        const pci_dev_info_t *d = pci_devs_find(devs, addr);
        free(addr);
        if (!d)
            continue;
        nic_t *n = nic_for(out, d->address);
        strv_add(&n->ifnames, ifn);
        if (!n->ifname) {
            n->ifname = xstrdup(ifn);
            snprintf(rel, sizeof(rel), "sys/class/net/%s/address", ifn);
            if (root_read_line(root, rel, &n->mac) < 0)
                n->mac = NULL;
            long speed;
            snprintf(rel, sizeof(rel), "sys/class/net/%s/speed", ifn);
            /* Reading speed fails with EINVAL while the link is down. */
            if (root_read_long(root, rel, &speed) == 0 && speed > 0)
                n->speed_mbps = speed;
            snprintf(rel, sizeof(rel), "sys/class/net/%s/operstate", ifn);
            if (root_read_line(root, rel, &n->operstate) < 0)
                n->operstate = NULL;
        }
    }
    strv_free(&ifaces);

    char *text = NULL;
    size_t len;
    if (root_read(root, "proc/net/route", ROOT_READ_MAX, &text, &len) == 0)
        route_default_ifaces_parse(text, len, &out->default_ifaces);
    else if (out->n > 0)
        errs_add(errs, "/proc/net/route", "cannot read the routing table: management NICs are unknown");
    free(text);
    text = NULL;
    if (root_read(root, "proc/net/ipv6_route", ROOT_READ_MAX, &text, &len) == 0)
        route6_default_ifaces_parse(text, len, &out->default_ifaces);
    free(text);

    walk_t w = {STRV_INIT, STRV_INIT};
    for (size_t i = 0; i < out->default_ifaces.n; i++)
        walk(root, out->default_ifaces.v[i], out->default_ifaces.v[i], 0, &w);

    for (size_t i = 0; i < out->n; i++) {
        nic_t *n = &out->v[i];
        const pci_dev_info_t *d = pci_devs_find(devs, n->address);
        n->is_vf = d && d->physfn;
        n->driver = d && d->driver ? xstrdup(d->driver) : NULL;
        for (size_t k = 0; k < n->ifnames.n && !n->management; k++)
            for (size_t m = 0; m < w.names.n; m++)
                if (strcmp(w.names.v[m], n->ifnames.v[k]) == 0) {
                    n->management = true;
                    n->management_via = xstrdup(w.paths.v[m]);
                    break;
                }
    }
    strv_free(&w.names);
    strv_free(&w.paths);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_nic);
    return 0;
}

void nics_free(nics_t *n)
{
    for (size_t i = 0; i < n->n; i++) {
        free(n->v[i].ifname);
        strv_free(&n->v[i].ifnames);
        free(n->v[i].mac);
        free(n->v[i].operstate);
        free(n->v[i].management_via);
        free(n->v[i].driver);
    }
    free(n->v);
    n->v = NULL;
    n->n = n->cap = 0;
    strv_free(&n->default_ifaces);
}
