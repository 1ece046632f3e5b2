/* stepmem — a ring of the last results (see stepmem.h). A linear search
 * over a few hundred ids costs nothing next to running a command. */
#include "stepmem.h"

#include "atomic.h"
#include "buf.h"
#include "root.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct stepmem {
    Pcifleet__StepResult *v;
    size_t cap, n, next; /* next: the slot the next new result takes */
    root_t *dir;         /* the state folder, NULL when kept in memory only */
};

/* The largest steps.pb read back: cap results of the largest size. */
#define FILE_MAX(cap) ((size_t)(cap) * (STEPMEM_RESULT_MAX + 4))

stepmem_t *stepmem_new(size_t cap)
{
    stepmem_t *m = xcalloc(1, sizeof(*m));
    m->cap = cap ? cap : STEPMEM_DEFAULT_CAP;
    m->v = xcalloc(m->cap, sizeof(*m->v));
    return m;
}

void stepmem_destroy(stepmem_t **pm)
{
    if (!pm || !*pm)
        return;
    stepmem_t *m = *pm;
    for (size_t i = 0; i < m->n; i++)
        step_result_clear(&m->v[i]);
    free(m->v);
    root_destroy(&m->dir);
    free(m);
    *pm = NULL;
}

static Pcifleet__StepResult *find(const stepmem_t *m, const char *id)
{
    if (!id || !*id)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].step_id, id) == 0)
            return &m->v[i];
    return NULL;
}

const Pcifleet__StepResult *stepmem_find(const stepmem_t *m, const char *step_id)
{
    return find(m, step_id);
}

static void put_mem(stepmem_t *m, const Pcifleet__StepResult *r)
{
    Pcifleet__StepResult *slot = find(m, r->step_id);
    if (!slot) {
        slot = &m->v[m->next];
        m->next = (m->next + 1) % m->cap;
        if (m->n < m->cap)
            m->n++;
    }
    step_result_clear(slot);
    step_result_copy(slot, r);
}

/* Cuts a string to keep one packed record under STEPMEM_RESULT_MAX; the
 * cut says so, so nobody takes a shortened diff for the whole one. */
static void cut(char **s, size_t max)
{
    if (*s && strlen(*s) > max) {
        char *n = xasprintf("%.*s\n[... cut: the stored result keeps %zu bytes]\n", (int)max, *s, max);
        free(*s);
        *s = n;
    }
}

static int save(const stepmem_t *m, char **err)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    size_t first = (m->next + m->cap - m->n) % m->cap;
    for (size_t i = 0; i < m->n; i++) {
        Pcifleet__StepResult r;
        step_result_copy(&r, &m->v[(first + i) % m->cap]);
        size_t len = pcifleet__step_result__get_packed_size(&r);
        if (len > STEPMEM_RESULT_MAX) {
            cut(&r.diff, STEPMEM_RESULT_MAX / 2);
            cut(&r.detail, STEPMEM_RESULT_MAX / 8);
            cut(&r.command, STEPMEM_RESULT_MAX / 16);
            len = pcifleet__step_result__get_packed_size(&r);
        }
        if (len <= STEPMEM_RESULT_MAX) {
            uint8_t hdr[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
            buf_append(&b, hdr, 4);
            buf_reserve(&b, len);
            pcifleet__step_result__pack(&r, (uint8_t *)b.p + b.len);
            b.len += len;
        }
        step_result_clear(&r);
    }
    char *e = NULL;
    int rc = atomic_replace(m->dir, STEPMEM_FILE, b.p ? b.p : "", b.len, &e);
    if (rc < 0 && err)
        *err = xasprintf("cannot keep the step results in %s/%s: %s", root_prefix(m->dir), STEPMEM_FILE,
                         e ? e : strerror(-rc));
    free(e);
    buf_free(&b);
    return rc;
}

int stepmem_put_err(stepmem_t *m, const Pcifleet__StepResult *r, char **err)
{
    if (err)
        *err = NULL;
    if (!r->step_id || !*r->step_id)
        return 0;
    put_mem(m, r);
    return m->dir ? save(m, err) : 0;
}

void stepmem_put(stepmem_t *m, const Pcifleet__StepResult *r)
{
    stepmem_put_err(m, r, NULL);
}

static int mkdir_p(const char *dir)
{
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                rc = -errno;
                break;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    return rc;
}

int stepmem_open(const char *state_dir, size_t cap, stepmem_t **out, char **warn, char **err)
{
    *out = NULL;
    *warn = NULL;
    *err = NULL;
    if (!state_dir || !*state_dir) {
        *err = xstrdup("no state folder given for the step results");
        return -EINVAL;
    }
    int rc = mkdir_p(state_dir);
    root_t *dir = NULL;
    if (rc == 0)
        rc = root_new(state_dir, &dir);
    if (rc < 0) {
        *err = xasprintf("the state folder %s cannot be used: %s", state_dir, strerror(-rc));
        return rc;
    }
    stepmem_t *m = stepmem_new(cap);
    char *data = NULL;
    size_t len = 0;
    rc = root_read(dir, STEPMEM_FILE, FILE_MAX(m->cap), &data, &len);
    if (rc < 0 && rc != -ENOENT) {
        *err = xasprintf("%s/%s cannot be read: %s", state_dir, STEPMEM_FILE, strerror(-rc));
        root_destroy(&dir);
        stepmem_destroy(&m);
        return rc;
    }
    size_t off = 0, kept = 0;
    const uint8_t *p = (const uint8_t *)data;
    while (data && off < len) {
        if (len - off < 4) {
            *warn = xasprintf("%s/%s ends in a truncated record; kept the %zu results before it", state_dir,
                              STEPMEM_FILE, kept);
            break;
        }
        size_t n = (size_t)p[off] | (size_t)p[off + 1] << 8 | (size_t)p[off + 2] << 16 | (size_t)p[off + 3] << 24;
        Pcifleet__StepResult *r = n <= STEPMEM_RESULT_MAX && n <= len - off - 4
                                      ? pcifleet__step_result__unpack(NULL, n, p + off + 4)
                                      : NULL;
        if (!r) {
            *warn = xasprintf("%s/%s holds a damaged record at byte %zu; kept the %zu results before it",
                              state_dir, STEPMEM_FILE, off, kept);
            break;
        }
        if (r->step_id && *r->step_id) {
            put_mem(m, r);
            kept++;
        }
        pcifleet__step_result__free_unpacked(r, NULL);
        off += 4 + n;
    }
    free(data);
    m->dir = dir;
    *out = m;
    return 0;
}

size_t stepmem_count(const stepmem_t *m)
{
    return m->n;
}

static char *dup_or_empty(const char *s)
{
    return xstrdup(s ? s : "");
}

void step_result_copy(Pcifleet__StepResult *dst, const Pcifleet__StepResult *src)
{
    pcifleet__step_result__init(dst);
    dst->step_id = dup_or_empty(src->step_id);
    dst->outcome = src->outcome;
    dst->detail = dup_or_empty(src->detail);
    dst->command = dup_or_empty(src->command);
    dst->index = src->index;
    dst->diff = dup_or_empty(src->diff);
    dst->boot_id = dup_or_empty(src->boot_id);
    dst->verdict = dup_or_empty(src->verdict);
    if (src->n_backups) {
        dst->backups = xcalloc(src->n_backups, sizeof(char *));
        for (size_t i = 0; i < src->n_backups; i++)
            dst->backups[i] = dup_or_empty(src->backups[i]);
        dst->n_backups = src->n_backups;
    }
}

static void free_str(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        free(*s);
    *s = NULL;
}

void step_result_clear(Pcifleet__StepResult *r)
{
    if (!r)
        return;
    if (r->base.descriptor) {
        free_str(&r->step_id);
        free_str(&r->detail);
        free_str(&r->command);
        free_str(&r->diff);
        free_str(&r->boot_id);
        free_str(&r->verdict);
        for (size_t i = 0; i < r->n_backups; i++)
            free_str(&r->backups[i]);
        free(r->backups);
    }
    pcifleet__step_result__init(r);
}

const char *step_outcome_name(Pcifleet__StepResult__Outcome o)
{
    switch (o) {
    case PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE: return "done";
    case PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED: return "unchanged";
    case PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED: return "refused";
    case PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED: return "failed";
    default: return "unspecified";
    }
}
