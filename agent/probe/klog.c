#include "klog.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>

/* klogctl actions (see syslog(2)); only reading ones are used here. */
#define KLOG_ACTION_READ_ALL 3
#define KLOG_ACTION_SIZE_BUFFER 10
#define KLOG_LIVE_MAX (256u * 1024 * 1024)

/* Evidence kinds, from most to least telling; a line counts as the first kind
 * it shows, and each kind keeps only a few lines. */
enum { EV_DISABLED, EV_IR, EV_ENABLED, EV_GROUP, EV_TABLE, EV_KINDS };
static const unsigned ev_cap[EV_KINDS] = {3, 3, 4, 1, 4};

typedef struct {
    const char *p;
    size_t n;
} span_t;

static bool has(span_t s, const char *needle)
{
    size_t m = strlen(needle);
    return m <= s.n && memmem(s.p, s.n, needle, m) != NULL;
}

static bool starts(span_t s, const char *prefix)
{
    size_t m = strlen(prefix);
    return m <= s.n && memcmp(s.p, prefix, m) == 0;
}

static bool has_ci(span_t s, const char *needle)
{
    size_t m = strlen(needle);
    if (m > s.n)
        return false;
    for (size_t i = 0; i + m <= s.n; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)s.p[i + k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == m)
            return true;
    }
    return false;
}

static void skip_spaces(span_t *s)
{
    while (s->n && (s->p[0] == ' ' || s->p[0] == '\t')) {
        s->p++;
        s->n--;
    }
}

static void drop(span_t *s, size_t k)
{
    s->p += k;
    s->n -= k;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "6,1234,5678,-;message" (/dev/kmsg): digits and commas up to ';'. */
static void strip_kmsg(span_t *s)
{
    if (!s->n || !is_digit(s->p[0]))
        return;
    size_t commas = 0;
    for (size_t i = 0; i < s->n && i < 64; i++) {
        char c = s->p[i];
        if (c == ';') {
            if (commas >= 2)
                drop(s, i + 1);
            return;
        }
        if (c == ',')
            commas++;
        else if (!is_digit(c) && c != '-' && !(c >= 'a' && c <= 'z') && c != '=')
            return;
    }
}

/* "Jan 12 10:00:01 host kernel: " or "2024-01-12T10:00:01+0100 host kernel: " */
static void strip_syslog(span_t *s)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    bool dated = false;
    if (s->n >= 4 && s->p[3] == ' ')
        for (size_t i = 0; i < 12 && !dated; i++)
            dated = memcmp(s->p, months[i], 3) == 0;
    if (!dated && s->n >= 5 && is_digit(s->p[0]) && is_digit(s->p[1]) && is_digit(s->p[2]) &&
        is_digit(s->p[3]) && s->p[4] == '-')
        dated = true;
    if (!dated)
        return;
    span_t head = {s->p, s->n < 160 ? s->n : 160};
    const char *k = memmem(head.p, head.n, " kernel: ", 9);
    if (k)
        drop(s, (size_t)(k - s->p) + 9);
    else if (head.n >= 8 && (k = memmem(head.p, head.n, " kernel:", 8)) && k + 8 == s->p + s->n)
        drop(s, s->n); /* an empty kernel line */
}

/* "<6>" */
static void strip_priority(span_t *s)
{
    if (s->n < 3 || s->p[0] != '<')
        return;
    size_t i = 1;
    while (i < s->n && i < 6 && is_digit(s->p[i]))
        i++;
    if (i > 1 && i < s->n && s->p[i] == '>')
        drop(s, i + 1);
}

/* "[    0.123456] ", "[  +0.000010] ", "[Mon Jan  1 12:00:00 2024] "; not
 * "[Firmware Bug]: …", which has no digit. */
static void strip_timestamp(span_t *s)
{
    if (!s->n || s->p[0] != '[')
        return;
    bool digit = false;
    for (size_t i = 1; i < s->n && i < 48; i++) {
        char c = s->p[i];
        if (c == ']') {
            if (digit) {
                drop(s, i + 1);
                skip_spaces(s);
            }
            return;
        }
        if (is_digit(c))
            digit = true;
        else if (!(c == ' ' || c == '.' || c == ':' || c == '+' || c == '-' || c == ',' ||
                   (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return;
    }
}

static span_t strip_prefixes(span_t s)
{
    while (s.n && (s.p[s.n - 1] == '\r' || s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    strip_kmsg(&s);
    strip_syslog(&s);
    strip_priority(&s);
    strip_timestamp(&s);
    skip_spaces(&s);
    return s;
}

static void add_evidence(klog_facts_t *out, unsigned *count, int kind, span_t s)
{
    if (out->evidence.n >= KLOG_EVIDENCE_MAX || count[kind] >= ev_cap[kind])
        return;
    size_t n = s.n < KLOG_EVIDENCE_LINE_MAX ? s.n : KLOG_EVIDENCE_LINE_MAX;
    char *line = xstrndup(s.p, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
            line[i] = '?';
    if (strv_contains(&out->evidence, line)) {
        free(line);
        return;
    }
    strv_take(&out->evidence, line);
    count[kind]++;
}

static bool is_dmar_table_line(span_t s)
{
    return starts(s, "ACPI: DMAR ") || has(s, "Reserving DMAR table memory") ||
           has(s, "DMAR: Host address width") || has(s, "DMAR: DRHD base") ||
           has(s, "DMAR: RMRR base") || has(s, "DMAR: ATSR flags") || has(s, "DMAR: SATC flags") ||
           has(s, "DMAR: dmar") || has(s, "DMAR-IR: IOAPIC id") || has(s, "DMAR-IR: HPET id");
}

static bool is_ivrs_table_line(span_t s)
{
    if (starts(s, "ACPI: IVRS ") || has(s, "Reserving IVRS table memory"))
        return true;
    return has(s, "AMD-Vi:") && !has(s, "IOMMU disabled");
}

static bool is_enabled_line(span_t s)
{
    return has(s, "DMAR: IOMMU enabled") ||
           has(s, "DMAR: Intel(R) Virtualization Technology for Directed I/O") ||
           (has(s, "DMAR: dmar") && has(s, "Using Queued invalidation")) ||
           (has(s, "DMAR: dmar") && has(s, "Using Register based invalidation")) ||
           has(s, "AMD-Vi: Found IOMMU") || has(s, "AMD-Vi: Interrupt remapping enabled") ||
           has(s, "AMD-Vi: Extended features") || has(s, "AMD-Vi: Lazy IO/TLB flushing enabled") ||
           has(s, "AMD IOMMUv2 loaded and initialized") ||
           has(s, "perf/amd_iommu: Detected AMD IOMMU");
}

static bool is_ir_enabled_line(span_t s)
{
    return has(s, "Enabled IRQ remapping in") || has(s, "AMD-Vi: Interrupt remapping enabled");
}

static bool is_ir_disabled_line(span_t s)
{
    if (has(s, "IRQ remapping doesn't support X2APIC mode"))
        return true;
    if (!has(s, "remapping") && !has(s, "DMAR-IR:"))
        return false; /* IRQ, interrupt and Intr- remapping all say "remapping" */
    if (has(s, "not in kdump mode"))
        return false; /* the kernel resets a pre-enabled unit, then enables it again */
    return has_ci(s, "disabl") || has_ci(s, "not enabl") || has_ci(s, "failed to enable") ||
           has_ci(s, "doesn't support");
}

static bool is_disabled_line(span_t s)
{
    return ((has(s, "DMAR:") || has(s, "AMD-Vi:")) && has(s, "IOMMU disabled")) ||
           has(s, "Intel-IOMMU: disabled");
}

int klog_parse(const char *buf, size_t len, klog_facts_t *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->ir_enabled = -1;
    if (!buf)
        return 0;
    bool ir_yes = false, ir_no = false;
    unsigned count[EV_KINDS] = {0};
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        span_t s = strip_prefixes((span_t){buf + pos, end - pos});
        pos = nl ? end + 1 : len;
        if (s.n < 6 || !(has(s, "DMAR") || has(s, "IVRS") || has(s, "AMD-Vi") ||
                         has(s, "IOMMU") || has(s, "iommu") || has(s, "remapping")))
            continue; /* cheap filter: every line that matters names one of these */
        bool dmar = is_dmar_table_line(s), ivrs = is_ivrs_table_line(s);
        bool enabled = is_enabled_line(s), group = has(s, "Adding to iommu group");
        bool iry = is_ir_enabled_line(s), irn = !iry && is_ir_disabled_line(s);
        bool disabled = is_disabled_line(s);
        if (iry && has(s, "DMAR-IR:"))
            dmar = true; /* remapping through VT-d needs the DMAR table */
        out->dmar_table |= dmar;
        out->ivrs_table |= ivrs;
        out->iommu_enabled |= enabled || group;
        out->iommu_disabled |= disabled;
        ir_yes |= iry;
        ir_no |= irn;
        int kind = disabled          ? EV_DISABLED
                   : (iry || irn)    ? EV_IR
                   : enabled         ? EV_ENABLED
                   : group           ? EV_GROUP
                   : (dmar || ivrs)  ? EV_TABLE
                                     : -1;
        if (kind >= 0)
            add_evidence(out, count, kind, s);
    }
    out->ir_enabled = ir_yes ? 1 : ir_no ? 0 : -1;
    return 0;
}

void klog_facts_free(klog_facts_t *f)
{
    if (!f)
        return;
    strv_free(&f->evidence);
    memset(f, 0, sizeof(*f));
    f->ir_enabled = -1;
}

int klog_read(const root_t *root, char **buf, size_t *len, errs_t *errs)
{
    *buf = NULL;
    if (len)
        *len = 0;
    if (!root_is_live(root)) {
        int rc = root_read(root, "dmesg.txt", KLOG_FILE_MAX, buf, len);
        if (rc == -ENOENT)
            errs_add(errs, "/dmesg.txt", "is missing: this root has no saved kernel log");
        else if (rc == -EFBIG)
            errs_add(errs, "/dmesg.txt", "is larger than %u bytes; treated as damaged and not read",
                     KLOG_FILE_MAX);
        else if (rc < 0)
            errs_add(errs, "/dmesg.txt", "could not be read: %s", strerror(-rc));
        return rc;
    }
    int size = klogctl(KLOG_ACTION_SIZE_BUFFER, NULL, 0);
    if (size < 0) {
        int e = errno;
        errs_add(errs, "kernel log", "its size could not be read: %s", strerror(e));
        return -e;
    }
    if (size == 0)
        size = 1 << 20;
    if ((unsigned)size > KLOG_LIVE_MAX)
        size = (int)KLOG_LIVE_MAX;
    char *data = xmalloc((size_t)size + 1);
    int n = klogctl(KLOG_ACTION_READ_ALL, data, size);
    if (n < 0) {
        int e = errno;
        free(data);
        if (e == EPERM || e == EACCES)
            errs_add(errs, "kernel log",
                     "could not be read: %s (kernel.dmesg_restrict is set and the agent lacks "
                     "CAP_SYSLOG)",
                     strerror(e));
        else
            errs_add(errs, "kernel log", "could not be read: %s", strerror(e));
        return -e;
    }
    data[n] = '\0';
    *buf = data;
    if (len)
        *len = (size_t)n;
    return 0;
}
