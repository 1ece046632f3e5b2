/* pve — Proxmox VE VM configs, hostpci values and PCI resource mappings.
 * The contracts are in vms.h. Everything here works on (buf, len) input that
 * may hold any bytes; no function reads past len or trusts a NUL. */
#include "vms.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PVE_MAPPING_WHERE "/etc/pve/mapping/pci.cfg"

/* ---- small helpers ---- */

/* A PCI ID as written in a config: function -1 means "the whole slot". */
typedef struct {
    unsigned long dom;
    unsigned bus, slot;
    int fn;
} pciid_t;

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n hex digits at s, all of them, into *v. */
static bool hex_field(const char *s, size_t n, unsigned long *v)
{
    unsigned long r = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(s[i]))
            return false;
        r = r * 16 + (unsigned long)(isdigit((unsigned char)s[i]) ? s[i] - '0'
                                                                  : (tolower((unsigned char)s[i]) - 'a' + 10));
    }
    *v = r;
    return true;
}

/* Parses "[domain:]bus:slot[.fn]" (domain 4 to 8 hex digits, bus and slot 2,
 * fn 1) from s[0..n). Slot must be at most 1f and fn at most 7. */
static int pciid_parse(const char *s, size_t n, pciid_t *id)
{
    const char *colon[3];
    size_t ncolon = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':') {
            if (ncolon == 2)
                return -EINVAL;
            colon[ncolon++] = s + i;
        }
    }
    if (ncolon == 0)
        return -EINVAL;
    const char *end = s + n;
    const char *p = s;
    unsigned long v;
    id->dom = 0;
    if (ncolon == 2) {
        size_t dl = (size_t)(colon[0] - p);
        if (dl < 4 || dl > 8 || !hex_field(p, dl, &v))
            return -EINVAL;
        id->dom = v;
        p = colon[0] + 1;
    }
    const char *bc = colon[ncolon - 1];
    if (bc - p != 2 || !hex_field(p, 2, &v))
        return -EINVAL;
    id->bus = (unsigned)v;
    p = bc + 1;
    if (end - p < 2 || !hex_field(p, 2, &v) || v > 0x1f)
        return -EINVAL;
    id->slot = (unsigned)v;
    p += 2;
    if (p == end) {
        id->fn = -1;
        return 0;
    }
    if (end - p != 2 || *p != '.' || !hex_field(p + 1, 1, &v) || v > 7)
        return -EINVAL;
    id->fn = (int)v;
    return 0;
}

static bool present_has(const strv_t *present, const char *addr)
{
    for (size_t i = 0; i < present->n; i++)
        if (strcasecmp(present->v[i], addr) == 0)
            return true;
    return false;
}

/* Adds every present function of the slot "DDDD:BB:SS" to out, sorted.
 * Returns how many. */
static size_t present_slot(const strv_t *present, const char *slot, strv_t *out)
{
    strv_t found = STRV_INIT;
    size_t sl = strlen(slot);
    for (size_t i = 0; i < present->n; i++) {
        const char *a = present->v[i];
        if (strncasecmp(a, slot, sl) == 0 && a[sl] == '.' && a[sl + 1] >= '0' && a[sl + 1] <= '7' &&
            a[sl + 2] == '\0') {
            char *low = xstrdup(a);
            for (char *c = low; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            if (!strv_contains(&found, low))
                strv_take(&found, low);
            else
                free(low);
        }
    }
    strv_sort(&found);
    size_t n = found.n;
    for (size_t i = 0; i < found.n; i++) {
        strv_add_unique(out, found.v[i]);
    }
    strv_free(&found);
    return n;
}

/* A short printable excerpt of untrusted bytes for an error sentence. */
static char *excerpt(const char *s, size_t n)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    size_t max = n > 40 ? 40 : n;
    for (size_t i = 0; i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_putc(&b, (c >= 0x20 && c < 0x7f) ? (char)c : '?');
    }
    if (n > max)
        buf_puts(&b, "...");
    return buf_steal(&b);
}

/* Expands one ID into addresses; notes IDs that point at nothing. */
static void pciid_expand(const pciid_t *id, const strv_t *present, strv_t *addresses, strv_t *problems)
{
    char slot[64];
    snprintf(slot, sizeof(slot), "%04lx:%02x:%02x", id->dom, id->bus, id->slot);
    if (id->fn >= 0) {
        char *addr = xasprintf("%s.%x", slot, (unsigned)id->fn);
        if (present && !present_has(present, addr))
            strv_take(problems, xasprintf("names %s, which does not exist on this node "
                                          "(card moved or bus renumbered?): the VM cannot start here",
                                          addr));
        strv_add_unique(addresses, addr);
        free(addr);
        return;
    }
    if (!present) {
        char *addr = xasprintf("%s.0", slot);
        strv_add_unique(addresses, addr);
        free(addr);
        return;
    }
    if (present_slot(present, slot, addresses) == 0)
        strv_take(problems, xasprintf("names slot %s, but no function of it exists on this node "
                                      "(card moved or bus renumbered?): the VM cannot start here",
                                      slot));
}

/* Parses a ';'-list of IDs into ids (validated, lowercased text). A bad ID
 * is skipped, the others still added; *err names the first bad one. */
static int idlist_split(const char *s, strv_t *ids, char **err)
{
    int rc = 0;
    const char *p = s;
    for (;;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        pciid_t id;
        if (pciid_parse(p, n, &id) < 0) {
            if (err && !*err) {
                char *ex = excerpt(p, n);
                *err = xasprintf("'%s' is not a PCI ID ([domain:]bus:slot[.function], hex)", ex);
                free(ex);
            }
            rc = -EINVAL;
        } else {
            char *low = xstrndup(p, n);
            for (char *c = low; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            strv_take(ids, low);
        }
        if (!semi)
            return rc;
        p = semi + 1;
    }
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "on", "yes", "true"};
    static const char *const no[] = {"0", "off", "no", "false"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* Splits a Proxmox property string "a=b,c,d=\"x,y\"" into keys (NULL for a
 * part without '=') and values (unquoted). Empty parts are skipped. */
static int props_split(const char *s, strv_t *keys, strv_t *vals, char **err)
{
    const char *p = s;
    while (*p) {
        if (*p == ',') {
            p++;
            continue;
        }
        const char *q = p;
        while (*q && *q != '=' && *q != ',')
            q++;
        char *key = NULL;
        if (*q == '=') {
            key = xstrndup(p, (size_t)(q - p));
            p = q + 1;
        }
        buf_t v = BUF_INIT;
        buf_reset(&v);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                buf_putc(&v, *p++);
            }
            if (*p != '"') {
                *err = xstrdup("a quoted value has no closing quote");
                free(key);
                buf_free(&v);
                return -EINVAL;
            }
            p++;
            if (*p && *p != ',') {
                *err = xstrdup("text follows a quoted value");
                free(key);
                buf_free(&v);
                return -EINVAL;
            }
        } else {
            while (*p && *p != ',')
                buf_putc(&v, *p++);
        }
        strv_take(keys, key ? key : xstrdup(""));
        strv_take(vals, buf_steal(&v));
    }
    return 0;
}

/* ---- pci.cfg ---- */

void pve_mappings_free(pve_mappings_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        pve_mapping_t *mp = &m->v[i];
        free(mp->name);
        for (size_t k = 0; k < mp->n_alts; k++) {
            strv_free(&mp->alts[k].ids);
            free(mp->alts[k].id);
            free(mp->alts[k].subsystem_id);
        }
        free(mp->alts);
        strv_free(&mp->addresses);
    }
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

const pve_mapping_t *pve_mappings_find(const pve_mappings_t *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0)
            return &m->v[i];
    return NULL;
}

static int cmp_mapping_name(const void *a, const void *b)
{
    const pve_mapping_t *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void pve_mappings_expand(pve_mappings_t *m, const strv_t *present)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        pve_mapping_t *mp = &m->v[i];
        strv_free(&mp->addresses);
        for (size_t a = 0; a < mp->n_alts; a++) {
            const pve_map_alt_t *alt = &mp->alts[a];
            for (size_t k = 0; k < alt->ids.n; k++) {
                pciid_t id;
                if (pciid_parse(alt->ids.v[k], strlen(alt->ids.v[k]), &id) < 0)
                    continue; /* idlist_split validated them; nothing to add otherwise */
                /* The problems are the VM's concern (vm_judge); a mapping
                 * only says what it names. */
                strv_t found = STRV_INIT, ignored = STRV_INIT;
                pciid_expand(&id, present, &found, &ignored);
                if (found.n == 0)
                    strv_take(&found, xasprintf("%04lx:%02x:%02x.0", id.dom, id.bus, id.slot));
                for (size_t f = 0; f < found.n; f++)
                    strv_add_unique(&mp->addresses, found.v[f]);
                strv_free(&found);
                strv_free(&ignored);
            }
        }
    }
    if (m->n > 1)
        qsort(m->v, m->n, sizeof(*m->v), cmp_mapping_name);
}

static bool valid_configid(const char *s)
{
    /* pve-configid: a letter, then letters, digits, '-' and '_'. */
    if (!isalpha((unsigned char)s[0]))
        return false;
    for (const char *c = s + 1; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
            return false;
    return strlen(s) <= 128;
}

/* One "map node=...,path=...,id=..." value. Adds an alternative when node
 * matches; returns -EINVAL with *err on a malformed entry. */
static int map_entry_parse(const char *val, const char *node, pve_mapping_t *mp, char **err)
{
    strv_t keys = STRV_INIT, vals = STRV_INIT;
    int rc = props_split(val, &keys, &vals, err);
    const char *enode = NULL, *path = NULL, *id = NULL, *sub = NULL, *group = NULL;
    for (size_t i = 0; rc == 0 && i < keys.n; i++) {
        const char *k = keys.v[i], *v = vals.v[i];
        const char **slot = NULL;
        if (strcmp(k, "node") == 0)
            slot = &enode;
        else if (strcmp(k, "path") == 0)
            slot = &path;
        else if (strcmp(k, "id") == 0)
            slot = &id;
        else if (strcmp(k, "subsystem-id") == 0)
            slot = &sub;
        else if (strcmp(k, "iommugroup") == 0)
            slot = &group;
        else if (strcmp(k, "description") == 0)
            continue;
        else {
            *err = xasprintf("unknown map property '%.40s'", *k ? k : v);
            rc = -EINVAL;
            break;
        }
        if (*slot) {
            *err = xasprintf("map property '%s' given twice", k);
            rc = -EINVAL;
            break;
        }
        *slot = v;
    }
    if (rc == 0 && (!enode || !path)) {
        *err = xstrdup("a map entry needs node= and path=");
        rc = -EINVAL;
    }
    long g = -1;
    if (rc == 0 && group) {
        char *e;
        errno = 0;
        g = strtol(group, &e, 10);
        if (errno || e == group || *e || g < 0 || g > 0x7fffffff) {
            *err = xasprintf("iommugroup '%.20s' is not a number", group);
            rc = -EINVAL;
        }
    }
    strv_t ids = STRV_INIT;
    if (rc == 0)
        rc = idlist_split(path, &ids, err);
    if (rc == 0) {
        if (node && strcmp(enode, node) == 0) {
            mp->alts = xrealloc(mp->alts, (mp->n_alts + 1) * sizeof(*mp->alts));
            pve_map_alt_t *a = &mp->alts[mp->n_alts++];
            a->ids = ids;
            ids = (strv_t)STRV_INIT;
            a->id = id ? xstrdup(id) : NULL;
            a->subsystem_id = sub ? xstrdup(sub) : NULL;
            a->iommugroup = (int)g;
        } else {
            mp->n_other++;
        }
    }
    strv_free(&ids);
    strv_free(&keys);
    strv_free(&vals);
    return rc;
}

int pve_mappings_parse(const char *buf, size_t len, const char *node, pve_mappings_t *out,
                       errs_t *errs)
{
    int rc = 0;
    int lineno = 0;
    pve_mapping_t *cur = NULL;
    bool skipping = false; /* inside a section we refused */
    size_t pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            n--;
        if (memchr(line, '\0', n)) {
            errs_add(errs, PVE_MAPPING_WHERE, "line %d contains a NUL byte; skipped", lineno);
            rc = -EINVAL;
            continue;
        }
        if (n == 0) { /* a blank line ends a section */
            cur = NULL;
            skipping = false;
            continue;
        }
        if (line[0] == '#')
            continue;
        if (!isspace((unsigned char)line[0])) {
            /* A section header: the mapping's name alone on the line. */
            char *name = xstrndup(line, n);
            cur = NULL;
            skipping = true;
            if (!valid_configid(name)) {
                char *ex = excerpt(line, n);
                errs_add(errs, PVE_MAPPING_WHERE,
                         "line %d: '%s' is not a mapping name (a letter, then letters, digits, '-' or '_'); "
                         "section skipped",
                         lineno, ex);
                free(ex);
                rc = -EINVAL;
                free(name);
            } else if (pve_mappings_find(out, name)) {
                errs_add(errs, PVE_MAPPING_WHERE,
                         "line %d: mapping '%s' is defined twice; the first definition counts", lineno,
                         name);
                rc = -EINVAL;
                free(name);
            } else {
                if (out->n == out->cap) {
                    out->cap = out->cap ? out->cap * 2 : 8;
                    out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
                }
                cur = &out->v[out->n++];
                memset(cur, 0, sizeof(*cur));
                cur->name = name;
                skipping = false;
            }
            continue;
        }
        if (skipping)
            continue;
        if (!cur) {
            errs_add(errs, PVE_MAPPING_WHERE, "line %d: a property line outside any mapping; skipped",
                     lineno);
            rc = -EINVAL;
            continue;
        }
        /* "\tkey value" */
        size_t i = 0;
        while (i < n && isspace((unsigned char)line[i]))
            i++;
        size_t ks = i;
        while (i < n && !isspace((unsigned char)line[i]))
            i++;
        char *key = xstrndup(line + ks, i - ks);
        while (i < n && isspace((unsigned char)line[i]))
            i++;
        char *val = xstrndup(line + i, n - i);
        if (strcmp(key, "map") == 0) {
            char *err = NULL;
            if (map_entry_parse(val, node, cur, &err) < 0) {
                errs_add(errs, PVE_MAPPING_WHERE, "line %d: mapping '%s': %s; entry skipped", lineno,
                         cur->name, err ? err : "malformed map entry");
                rc = -EINVAL;
            }
            free(err);
        } else if (strcmp(key, "live-migration-capable") == 0 || strcmp(key, "mdev") == 0) {
            bool b = false;
            if (parse_bool(val, &b) < 0) {
                errs_add(errs, PVE_MAPPING_WHERE, "line %d: mapping '%s': %s wants 0 or 1", lineno,
                         cur->name, key);
                rc = -EINVAL;
            } else if (key[0] == 'm') {
                cur->mdev = b;
            } else {
                cur->live_migration_capable = b;
            }
        } else if (strcmp(key, "description") != 0) {
            char *ex = excerpt(key, strlen(key));
            errs_add(errs, PVE_MAPPING_WHERE, "line %d: mapping '%s': unknown property '%s'; ignored",
                     lineno, cur->name, ex);
            free(ex);
            rc = -EINVAL;
        }
        free(key);
        free(val);
    }
    return rc;
}

/* ---- hostpci ---- */

void hostpci_free(hostpci_t *h)
{
    if (!h)
        return;
    strv_free(&h->addresses);
    strv_free(&h->problems);
    free(h->mapping);
    free(h->raw);
    h->mapping = h->raw = NULL;
    h->pcie = h->live_migration_capable = false;
}

/* Are all devices of one mapping alternative present? */
static bool alt_present(const pve_map_alt_t *a, const strv_t *present)
{
    for (size_t i = 0; i < a->ids.n; i++) {
        pciid_t id;
        if (pciid_parse(a->ids.v[i], strlen(a->ids.v[i]), &id) < 0)
            return false;
        char slot[64];
        snprintf(slot, sizeof(slot), "%04lx:%02x:%02x", id.dom, id.bus, id.slot);
        if (id.fn >= 0) {
            char addr[80];
            snprintf(addr, sizeof(addr), "%s.%x", slot, (unsigned)id.fn);
            if (!present_has(present, addr))
                return false;
        } else {
            strv_t tmp = STRV_INIT;
            size_t k = present_slot(present, slot, &tmp);
            strv_free(&tmp);
            if (k == 0)
                return false;
        }
    }
    return true;
}

static void alt_expand(const pve_map_alt_t *a, const strv_t *present, hostpci_t *out)
{
    for (size_t i = 0; i < a->ids.n; i++) {
        pciid_t id;
        if (pciid_parse(a->ids.v[i], strlen(a->ids.v[i]), &id) == 0)
            pciid_expand(&id, present, &out->addresses, &out->problems);
    }
}

static int resolve_mapping(const char *name, const pve_mappings_t *maps, const strv_t *present,
                           hostpci_t *out, char **err)
{
    const pve_mapping_t *mp = pve_mappings_find(maps, name);
    if (!mp) {
        strv_take(&out->problems,
                  xasprintf("uses mapping '%s', which /etc/pve/mapping/pci.cfg does not define: "
                            "the VM cannot start until the mapping exists",
                            name));
        *err = xasprintf("unknown mapping '%s'", name);
        return -ENOENT;
    }
    out->live_migration_capable = mp->live_migration_capable;
    if (mp->n_alts == 0) {
        strv_take(&out->problems,
                  xasprintf("uses mapping '%s', which has no device for this node in "
                            "/etc/pve/mapping/pci.cfg: the VM cannot start here",
                            name));
        *err = xasprintf("mapping '%s' has no entry for this node", name);
        return -ENOENT;
    }
    const pve_map_alt_t *pick = NULL;
    if (present) {
        for (size_t i = 0; i < mp->n_alts && !pick; i++)
            if (alt_present(&mp->alts[i], present))
                pick = &mp->alts[i];
    }
    if (!pick) {
        pick = &mp->alts[0];
        if (present) {
            /* Expand without per-ID notes, then one sentence for the mapping. */
            strv_t ignored = STRV_INIT;
            for (size_t i = 0; i < pick->ids.n; i++) {
                pciid_t id;
                if (pciid_parse(pick->ids.v[i], strlen(pick->ids.v[i]), &id) == 0)
                    pciid_expand(&id, present, &out->addresses, &ignored);
            }
            strv_free(&ignored);
            strv_take(&out->problems,
                      xasprintf("uses mapping '%s', but none of its %zu device path%s for this node "
                                "exists here (hardware changed?): the VM cannot start here",
                                name, mp->n_alts, mp->n_alts == 1 ? "" : "s"));
            return 0;
        }
    }
    alt_expand(pick, present, out);
    return 0;
}

int pve_hostpci_parse(const char *value, const pve_mappings_t *maps, const strv_t *present,
                      hostpci_t *out, char **err)
{
    *err = NULL;
    out->raw = xstrdup(value ? value : "");
    if (!value || !*value) {
        *err = xstrdup("the value is empty");
        return -EINVAL;
    }
    strv_t keys = STRV_INIT, vals = STRV_INIT;
    int rc = props_split(value, &keys, &vals, err);
    const char *host = NULL, *mapping = NULL;
    static const char *const bools[] = {"pcie", "rombar", "x-vga", "legacy-igd"};
    static const char *const strs[] = {"mdev", "romfile", "device-id", "vendor-id",
                                       "sub-device-id", "sub-vendor-id", "driver"};
    /* Every part is looked at even after an error, so the devices a broken
     * value names are still reported; *err keeps the first problem. */
    strv_t seen = STRV_INIT;
    for (size_t i = 0; i < keys.n; i++) {
        const char *k = keys.v[i], *v = vals.v[i];
        const char *canon = *k ? k : "host";
        char *problem = NULL;
        if (!strv_add_unique(&seen, canon)) {
            problem = xasprintf("'%.40s' is given twice", canon);
        } else if (strcmp(canon, "host") == 0) {
            host = v;
        } else if (strcmp(k, "mapping") == 0) {
            mapping = v;
        } else {
            bool known = false;
            for (size_t b = 0; b < sizeof(bools) / sizeof(bools[0]) && !known; b++) {
                if (strcmp(k, bools[b]) == 0) {
                    bool bv;
                    known = true;
                    if (parse_bool(v, &bv) < 0)
                        problem = xasprintf("%s wants 0 or 1, not '%.20s'", k, v);
                    else if (b == 0)
                        out->pcie = bv;
                }
            }
            for (size_t s = 0; s < sizeof(strs) / sizeof(strs[0]) && !known; s++) {
                if (strcmp(k, strs[s]) == 0) {
                    known = true;
                    if (strcmp(k, "driver") == 0 && strcmp(v, "vfio") != 0 && strcmp(v, "keep") != 0)
                        problem = xasprintf("driver wants vfio or keep, not '%.20s'", v);
                }
            }
            if (!known) {
                char *ex = excerpt(k, strlen(k));
                problem = xasprintf("unknown option '%s'", ex);
                free(ex);
            }
        }
        if (problem && rc == 0) {
            *err = problem;
            rc = -EINVAL;
        } else {
            free(problem);
        }
    }
    strv_free(&seen);
    if (rc == 0 && host && mapping) {
        *err = xstrdup("it sets both a host device and a mapping");
        rc = -EINVAL;
    }
    if (rc == 0 && !host && !mapping) {
        *err = xstrdup("it names neither a host device nor a mapping");
        rc = -EINVAL;
    }
    if (mapping && (rc == 0 || !host)) {
        if (!valid_configid(mapping)) {
            if (rc == 0) {
                char *ex = excerpt(mapping, strlen(mapping));
                *err = xasprintf("'%s' is not a mapping name", ex);
                free(ex);
                rc = -EINVAL;
            }
        } else {
            out->mapping = xstrdup(mapping);
            if (rc == 0)
                rc = resolve_mapping(mapping, maps, present, out, err);
        }
    }
    if (host) {
        /* Even when an option is wrong, keep the devices the value names:
         * whoever reads the inventory must still see them as taken. */
        strv_t ids = STRV_INIT;
        char *id_err = NULL;
        int r = idlist_split(host, &ids, &id_err);
        if (r < 0 && rc == 0) {
            rc = r;
            *err = id_err;
            id_err = NULL;
        }
        free(id_err);
        for (size_t i = 0; i < ids.n; i++) {
            pciid_t id;
            if (pciid_parse(ids.v[i], strlen(ids.v[i]), &id) == 0)
                pciid_expand(&id, present, &out->addresses, &out->problems);
        }
        strv_free(&ids);
    }
    strv_free(&keys);
    strv_free(&vals);
    return rc;
}

/* ---- VM config ---- */

/* "hostpciN" → N (0..15), -2 for hostpci with a number out of range, -1 otherwise. */
static int hostpci_key(const char *key)
{
    if (strncmp(key, "hostpci", 7) != 0)
        return -1;
    const char *d = key + 7;
    if (!*d)
        return -1;
    for (const char *c = d; *c; c++)
        if (!isdigit((unsigned char)*c))
            return -1;
    if ((d[0] == '0' && d[1]) || strlen(d) > 3)
        return -2;
    int n = atoi(d);
    return n < PVE_MAX_HOSTPCI ? n : -2;
}

static bool valid_key(const char *s, size_t n)
{
    if (n == 0 || !islower((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static int cmp_hostpci(const void *a, const void *b)
{
    const hostpci_t *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

int pve_conf_parse(const char *buf, size_t len, const char *vmid, const pve_mappings_t *maps,
                   const strv_t *present, vm_t *out, errs_t *errs)
{
    int rc = 0;
    if (!vmid)
        vmid = "?";
    char *where = xasprintf("/etc/pve/qemu-server/%s.conf", vmid);
    out->source = "proxmox";
    out->id = xstrdup(vmid);
    out->running = -1;
    hostpci_t slots[PVE_MAX_HOSTPCI];
    bool used[PVE_MAX_HOSTPCI] = {false};
    memset(slots, 0, sizeof(slots));

    if (len == 0) {
        errs_add(errs, where, "the file is empty (truncated?)");
        rc = -EINVAL;
    }
    int lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n > 0 && line[0] == '[')
            break; /* [PENDING], [special:cloudinit], [snapshot]: not live */
        if (!nl) {
            errs_add(errs, where,
                     "line %d ends without a newline: the file looks truncated; read as it is", lineno);
            rc = -EINVAL;
        }
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if (memchr(line, '\0', n)) {
            errs_add(errs, where, "line %d contains a NUL byte; skipped", lineno);
            rc = -EINVAL;
            continue;
        }
        const char *colon = memchr(line, ':', n);
        size_t kl = colon ? (size_t)(colon - line) : 0;
        size_t vs = colon ? kl + 1 : n;
        while (vs < n && isspace((unsigned char)line[vs]))
            vs++;
        if (!colon || !valid_key(line, kl) || vs >= n) {
            char *ex = excerpt(line, n);
            errs_add(errs, where, "line %d is not 'key: value' ('%s'); skipped", lineno, ex);
            free(ex);
            rc = -EINVAL;
            continue;
        }
        char *key = xstrndup(line, kl);
        char *val = xstrndup(line + vs, n - vs);
        int idx = hostpci_key(key);
        if (strcmp(key, "name") == 0) {
            free(out->name);
            out->name = val;
            val = NULL;
        } else if (strcmp(key, "machine") == 0) {
            free(out->machine);
            out->machine = val;
            val = NULL;
        } else if (idx == -2) {
            errs_add(errs, where, "line %d: %s is not a Proxmox setting (hostpci0 to hostpci15); ignored",
                     lineno, key);
            rc = -EINVAL;
        } else if (idx >= 0) {
            if (used[idx]) {
                errs_add(errs, where, "line %d sets %s again; the later value counts", lineno, key);
                rc = -EINVAL;
                hostpci_free(&slots[idx]);
                memset(&slots[idx], 0, sizeof(slots[idx]));
            }
            used[idx] = true;
            hostpci_t *h = &slots[idx];
            h->index = idx;
            char *err = NULL;
            int r = pve_hostpci_parse(val, maps, present, h, &err);
            if (r == -ENOENT) {
                errs_add(errs, where, "line %d: %s: %s", lineno, key, err ? err : "unknown mapping");
                rc = -EINVAL;
            } else if (r < 0) {
                errs_add(errs, where, "line %d: %s: %s", lineno, key, err ? err : "malformed value");
                strv_take(&h->problems, xasprintf("is not valid (%s): Proxmox will refuse to start the VM",
                                                  err ? err : "malformed value"));
                rc = -EINVAL;
            }
            free(err);
        }
        free(key);
        free(val);
    }
    size_t count = 0;
    for (int i = 0; i < PVE_MAX_HOSTPCI; i++)
        count += used[i];
    if (count) {
        out->hostpci = xcalloc(count, sizeof(*out->hostpci));
        for (int i = 0; i < PVE_MAX_HOSTPCI; i++)
            if (used[i])
                out->hostpci[out->n_hostpci++] = slots[i];
        qsort(out->hostpci, out->n_hostpci, sizeof(*out->hostpci), cmp_hostpci);
    }
    vm_judge(out);
    free(where);
    return rc;
}
