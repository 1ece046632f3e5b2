#include "system.h"

#include "buf.h"

#include <ctype.h>
#include <string.h>
#include <stdlib.h>

/* Copies the value of a "key<tabs> : value" cpuinfo line (without newline). */
static char *cpuinfo_value(const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return NULL;
    const char *v = colon + 1;
    const char *end = line + n;
    while (v < end && isspace((unsigned char)*v))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    return xstrndup(v, (size_t)(end - v));
}

static bool key_is(const char *line, size_t n, const char *key)
{
    size_t k = strlen(key);
    if (n < k || strncmp(line, key, k) != 0)
        return false;
    for (size_t i = k; i < n; i++) {
        if (line[i] == ':')
            return true;
        if (line[i] != ' ' && line[i] != '\t')
            return false;
    }
    return false;
}

static bool has_token(const char *s, const char *tok)
{
    size_t t = strlen(tok);
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - p) == t && strncmp(p, tok, t) == 0)
            return true;
        p = e;
    }
    return false;
}

void cpuinfo_parse(const char *buf, size_t len, const char **vendor, char **model, int *virt)
{
    *vendor = "other";
    *model = NULL;
    *virt = -1;
    bool have_vendor = false;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (!have_vendor && key_is(p, n, "vendor_id")) {
            char *v = cpuinfo_value(p, n);
            if (v) {
                if (strcmp(v, "GenuineIntel") == 0)
                    *vendor = "intel";
                else if (strcmp(v, "AuthenticAMD") == 0 || strcmp(v, "HygonGenuine") == 0)
                    *vendor = "amd"; /* Hygon Dhyana is an AMD design with AMD-Vi */
                have_vendor = true;
                free(v);
            }
        } else if (!*model && (key_is(p, n, "model name") || key_is(p, n, "cpu"))) {
            *model = cpuinfo_value(p, n);
        } else if (*virt < 0 && key_is(p, n, "flags")) {
            char *v = cpuinfo_value(p, n);
            if (v) {
                *virt = has_token(v, "vmx") || has_token(v, "svm");
                free(v);
            }
        }
        p += n + 1;
    }
}

int sysinfo_probe(const root_t *root, const char *node_override, sysinfo_t *out, errs_t *errs)
{
    memset(out, 0, sizeof(*out));
    out->cpu_vendor = "other";
    out->cpu_virtualization = -1;

    char *s = NULL;
    if (node_override && *node_override)
        out->node = xstrdup(node_override);
    else if (root_read_line(root, "etc/hostname", &s) == 0 && *s)
        out->node = s, s = NULL;
    else {
        free(s);
        s = NULL;
        if (root_read_line(root, "proc/sys/kernel/hostname", &s) == 0 && *s)
            out->node = s, s = NULL;
        else
            errs_add(errs, "/etc/hostname", "cannot tell the node's name: pass --node NAME");
    }
    free(s);
    s = NULL;

    int rc = root_read_line(root, "proc/sys/kernel/osrelease", &out->kernel_release);
    if (rc < 0 || !out->kernel_release || !*out->kernel_release) {
        free(out->kernel_release);
        out->kernel_release = NULL;
        errs_add(errs, "/proc/sys/kernel/osrelease", "cannot read the kernel release: %s",
                 rc < 0 ? strerror(-rc) : "file is empty");
    }

    size_t len;
    rc = root_read(root, "proc/cpuinfo", ROOT_READ_MAX, &s, &len);
    if (rc == 0) {
        cpuinfo_parse(s, len, &out->cpu_vendor, &out->cpu_model, &out->cpu_virtualization);
        free(s);
    } else {
        errs_add(errs, "/proc/cpuinfo", "cannot read CPU information: %s", strerror(-rc));
    }

    if (root_read_line(root, "proc/sys/kernel/random/boot_id", &out->boot_id) < 0)
        out->boot_id = NULL;
    return 0;
}

void sysinfo_free(sysinfo_t *s)
{
    free(s->node);
    free(s->kernel_release);
    free(s->cpu_model);
    free(s->boot_id);
    memset(s, 0, sizeof(*s));
    s->cpu_vendor = "other";
    s->cpu_virtualization = -1;
}
