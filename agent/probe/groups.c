#include "groups.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static iommu_group_t *group_add(iommu_groups_t *g, long id)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i].id == id)
            return &g->v[i];
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 32;
        g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
    }
    iommu_group_t *grp = &g->v[g->n++];
    memset(grp, 0, sizeof(*grp));
    grp->id = id;
    return grp;
}

static void member_add(iommu_group_t *grp, const char *address)
{
    for (size_t i = 0; i < grp->n_members; i++)
        if (strcmp(grp->members[i].address, address) == 0)
            return;
    grp->members = xrealloc(grp->members, (grp->n_members + 1) * sizeof(*grp->members));
    group_member_t *m = &grp->members[grp->n_members++];
    memset(m, 0, sizeof(*m));
    snprintf(m->address, sizeof(m->address), "%s", address);
}

/* A group folder's name as the kernel writes it (%d): digits only, no
 * leading zero, no sign or space, in range. Anything looser would let two
 * folders ("7", "07", "+7", or two numbers past LONG_MAX) name one group,
 * and the second would read the first's files and overwrite its type. */
static bool parse_group_id(const char *s, long *id)
{
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end)
        return false;
    *id = v;
    return true;
}

static int cmp_group(const void *a, const void *b)
{
    const iommu_group_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const group_member_t *)a)->address, ((const group_member_t *)b)->address);
}

static bool same_slot(const pci_dev_info_t *a, const pci_dev_info_t *b)
{
    return a->domain == b->domain && a->bus == b->bus && a->dev == b->dev;
}

static void analyse(iommu_group_t *grp, const pci_devs_t *devs)
{
    if (grp->n_members > 1) /* members is NULL for an empty group */
        qsort(grp->members, grp->n_members, sizeof(*grp->members), cmp_member);
    grp->isolated = true;
    for (size_t i = 0; i < grp->n_members; i++) {
        group_member_t *m = &grp->members[i];
        const pci_dev_info_t *d = pci_devs_find(devs, m->address);
        /* A listed function libpci could not read still occupies the group:
         * count it as an endpoint so we never call a group clean wrongly. */
        m->endpoint = !d || !pci_dev_is_bridge(d);
    }
    for (size_t i = 0; i < grp->n_members; i++) {
        group_member_t *m = &grp->members[i];
        if (!m->endpoint)
            continue;
        const pci_dev_info_t *d = pci_devs_find(devs, m->address);
        for (size_t k = 0; k < grp->n_members; k++) {
            const group_member_t *o = &grp->members[k];
            if (k == i || !o->endpoint)
                continue;
            const pci_dev_info_t *od = pci_devs_find(devs, o->address);
            if (d && od && same_slot(d, od))
                strv_add(&m->slot_functions, o->address);
            else
                strv_add(&m->blockers, o->address);
        }
        m->alone = m->blockers.n == 0;
        if (!m->alone)
            grp->isolated = false;
    }
}

int groups_probe(const root_t *root, const pci_devs_t *devs, iommu_groups_t *out, errs_t *errs)
{
    strv_t ids = STRV_INIT;
    if (root_list(root, "sys/kernel/iommu_groups", &ids) == 0) {
        for (size_t i = 0; i < ids.n; i++) {
            long id;
            if (!parse_group_id(ids.v[i], &id)) {
                errs_add(errs, "/sys/kernel/iommu_groups", "\"%s\" is not a group number; skipped", ids.v[i]);
                continue;
            }
            iommu_group_t *grp = group_add(out, id);
            char rel[96];
            snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%ld/type", id);
            char *type = NULL;
            if (root_read_line(root, rel, &type) == 0 && *type)
                grp->type = type;
            else
                free(type);
            strv_t members = STRV_INIT;
            snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%ld/devices", id);
            int rc = root_list(root, rel, &members);
            if (rc < 0)
                errs_add(errs, rel, "cannot list the devices of IOMMU group %ld: %s", id, strerror(-rc));
            for (size_t k = 0; k < members.n; k++) {
                unsigned a, b, c, d;
                if (pci_parse_address(members.v[k], &a, &b, &c, &d))
                    member_add(grp, members.v[k]);
                else
                    errs_add(errs, rel, "\"%s\" in IOMMU group %ld is not a PCI address", members.v[k], id);
            }
            strv_free(&members);
        }
    }
    strv_free(&ids);

    /* Devices whose link names a group the group folders did not list: trust
     * the link too (odd or partial trees), and say so. */
    for (size_t i = 0; i < devs->n; i++) {
        const pci_dev_info_t *d = &devs->v[i];
        if (d->iommu_group < 0)
            continue;
        const group_member_t *m = groups_find_member(out, d->address);
        if (m)
            continue;
        if (out->n > 0)
            errs_add(errs, "/sys/kernel/iommu_groups",
                     "%s links to IOMMU group %ld, but that group does not list it", d->address,
                     d->iommu_group);
        member_add(group_add(out, d->iommu_group), d->address);
    }

    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_group);
    for (size_t i = 0; i < out->n; i++)
        analyse(&out->v[i], devs);
    return 0;
}

const iommu_group_t *groups_find(const iommu_groups_t *g, long id)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i].id == id)
            return &g->v[i];
    return NULL;
}

const group_member_t *groups_find_member(const iommu_groups_t *g, const char *address)
{
    for (size_t i = 0; i < g->n; i++)
        for (size_t k = 0; k < g->v[i].n_members; k++)
            if (strcmp(g->v[i].members[k].address, address) == 0)
                return &g->v[i].members[k];
    return NULL;
}

void groups_free(iommu_groups_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        for (size_t k = 0; k < g->v[i].n_members; k++) {
            strv_free(&g->v[i].members[k].slot_functions);
            strv_free(&g->v[i].members[k].blockers);
        }
        free(g->v[i].members);
        free(g->v[i].type);
    }
    free(g->v);
    g->v = NULL;
    g->n = g->cap = 0;
}
