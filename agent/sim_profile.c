/* sim_profile — the fixture's hardware profile (sim.h). */
#include "sim.h"

#include "buf.h"
#include "daemon.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_MAX (64u * 1024)
#define GROUPS_MAX 4096

static void defaults(sim_profile_t *p)
{
    memset(p, 0, sizeof(*p));
    p->interrupt_remapping = true;
    p->load_modules = true;
}

void sim_profile_free(sim_profile_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_groups; i++)
        strv_free(&p->groups[i].devices);
    free(p->groups);
    defaults(p);
}

/* "0000:00:14.0" with hex digits, lowercased in place. */
static bool pci_addr(char *s)
{
    if (strlen(s) != 12 || s[4] != ':' || s[7] != ':' || s[10] != '.')
        return false;
    for (size_t i = 0; i < 12; i++) {
        if (i == 4 || i == 7 || i == 10)
            continue;
        if (!isxdigit((unsigned char)s[i]))
            return false;
        s[i] = (char)tolower((unsigned char)s[i]);
    }
    return s[11] >= '0' && s[11] <= '7';
}

static int parse_group(sim_profile_t *p, char *val, unsigned line, char **err)
{
    char *save = NULL;
    char *id = strtok_r(val, " \t", &save);
    char *end = NULL;
    long n = id ? strtol(id, &end, 10) : -1;
    if (!id || *end || n < 0 || n > 65535) {
        *err = xasprintf("line %u: group needs a number 0-65535 first (group = N ADDR [ADDR...])", line);
        return -EINVAL;
    }
    if (p->n_groups >= GROUPS_MAX) {
        *err = xasprintf("line %u: more than %d groups", line, GROUPS_MAX);
        return -EINVAL;
    }
    sim_group_t g = {n, STRV_INIT};
    for (char *a = strtok_r(NULL, " \t,", &save); a; a = strtok_r(NULL, " \t,", &save)) {
        if (!pci_addr(a)) {
            *err = xasprintf("line %u: '%s' is not a PCI address like 0000:00:14.0", line, a);
            strv_free(&g.devices);
            return -EINVAL;
        }
        strv_add(&g.devices, a);
    }
    if (!g.devices.n) {
        *err = xasprintf("line %u: group %ld names no device", line, n);
        return -EINVAL;
    }
    p->groups = xrealloc(p->groups, (p->n_groups + 1) * sizeof(*p->groups));
    p->groups[p->n_groups++] = g;
    return 0;
}

int sim_profile_parse(const char *buf, size_t len, sim_profile_t *out, char **err)
{
    *err = NULL;
    defaults(out);
    if (memchr(buf, '\0', len)) {
        *err = xstrdup("the profile holds NUL bytes");
        return -EINVAL;
    }
    unsigned line = 0;
    for (const char *p = buf, *end = buf + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *l = xstrndup(p, n);
        p += n + (nl ? 1 : 0);
        line++;
        char *hash = strchr(l, '#');
        if (hash)
            *hash = '\0';
        char *k = l;
        while (isspace((unsigned char)*k))
            k++;
        size_t kl = strlen(k);
        while (kl && isspace((unsigned char)k[kl - 1]))
            k[--kl] = '\0';
        if (!*k) {
            free(l);
            continue;
        }
        char *eq = strchr(k, '=');
        if (!eq) {
            *err = xasprintf("line %u: expected key = value", line);
            free(l);
            return -EINVAL;
        }
        char *v = eq + 1;
        while (eq > k && isspace((unsigned char)eq[-1]))
            eq--;
        *eq = '\0';
        while (isspace((unsigned char)*v))
            v++;
        int rc = 0;
        bool *bdst = strcmp(k, "boot_fails") == 0            ? &out->boot_fails
                     : strcmp(k, "interrupt_remapping") == 0 ? &out->interrupt_remapping
                     : strcmp(k, "load_modules") == 0        ? &out->load_modules
                                                             : NULL;
        if (bdst) {
            if (agent_parse_bool(v, bdst) < 0) {
                *err = xasprintf("line %u: %s = '%s' is neither true nor false", line, k, v);
                rc = -EINVAL;
            }
        } else if (strcmp(k, "boot_delay_ms") == 0) {
            char *e = NULL;
            unsigned long ms = strtoul(v, &e, 10);
            if (!*v || *e || !isdigit((unsigned char)*v) || ms > SIM_BOOT_DELAY_MAX_MS) {
                *err = xasprintf("line %u: boot_delay_ms = '%s' is not a number of milliseconds 0-%u", line, v,
                                 SIM_BOOT_DELAY_MAX_MS);
                rc = -EINVAL;
            } else {
                out->boot_delay_ms = (unsigned)ms;
            }
        } else if (strcmp(k, "iommu_after_boot") == 0) {
            if (strcmp(v, "auto") == 0)
                out->iommu_after_boot = SIM_IOMMU_AUTO;
            else if (strcmp(v, "on") == 0)
                out->iommu_after_boot = SIM_IOMMU_ON;
            else if (strcmp(v, "off") == 0)
                out->iommu_after_boot = SIM_IOMMU_OFF;
            else {
                *err = xasprintf("line %u: iommu_after_boot = '%s' is not auto, on or off", line, v);
                rc = -EINVAL;
            }
        } else if (strcmp(k, "group") == 0) {
            rc = parse_group(out, v, line, err);
        } else {
            *err = xasprintf("line %u: unknown key '%s' (boot_fails, boot_delay_ms, iommu_after_boot, "
                             "interrupt_remapping, load_modules, group)",
                             line, k);
            rc = -EINVAL;
        }
        free(l);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sim_profile_read(const root_t *root, sim_profile_t *out, char **err)
{
    *err = NULL;
    defaults(out);
    char *text = NULL;
    size_t len = 0;
    int rc = root_read(root, SIM_PROFILE_FILE, PROFILE_MAX, &text, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        *err = xasprintf("/%s cannot be read: %s", SIM_PROFILE_FILE, strerror(-rc));
        return rc;
    }
    char *perr = NULL;
    rc = sim_profile_parse(text, len, out, &perr);
    free(text);
    if (rc < 0) {
        *err = xasprintf("/%s: %s", SIM_PROFILE_FILE, perr);
        free(perr);
    }
    return rc;
}
