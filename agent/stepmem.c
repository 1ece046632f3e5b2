/* stepmem — a ring of the last results (see stepmem.h). A linear search
 * over a few hundred ids costs nothing next to running a command. */
#include "stepmem.h"

#include "buf.h"

#include <stdlib.h>
#include <string.h>

struct stepmem {
    Pcifleet__StepResult *v;
    size_t cap, n, next; /* next: the slot the next new result takes */
};

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

void stepmem_put(stepmem_t *m, const Pcifleet__StepResult *r)
{
    if (!r->step_id || !*r->step_id)
        return;
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
