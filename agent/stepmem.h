/* stepmem — the results of the steps this agent has carried out, by step id.
 *
 * Contract: the controller may send a step again (it restarted, or its
 * answer was lost); the agent then answers with the result it gave the
 * first time and does not carry the step out again. stepmem keeps the last
 * `cap` results in memory (oldest forgotten first) as deep copies it owns.
 * It lives as long as the agent process: after a restart a repeated step is
 * carried out again, which is why every step is idempotent by itself (a VM
 * edit finds its entry already there: UNCHANGED). Every outcome is kept,
 * FAILED and REFUSED too: a retry after a failure needs a new step id. */
#ifndef PCIFLEET_STEPMEM_H
#define PCIFLEET_STEPMEM_H

#include "pcifleet.pb-c.h"

#include <stddef.h>

#define STEPMEM_DEFAULT_CAP 256

typedef struct stepmem stepmem_t;

/* cap 0 means STEPMEM_DEFAULT_CAP. */
stepmem_t *stepmem_new(size_t cap);
void stepmem_destroy(stepmem_t **m);

/* The stored result for step_id, or NULL; borrowed until the next put. */
const Pcifleet__StepResult *stepmem_find(const stepmem_t *m, const char *step_id);
/* Stores a deep copy of r under r->step_id (an empty id is not stored),
 * replacing an earlier result of the same id. */
void stepmem_put(stepmem_t *m, const Pcifleet__StepResult *r);
size_t stepmem_count(const stepmem_t *m);

/* Deep-copies src into *dst (initialized here; free with step_result_clear). */
void step_result_copy(Pcifleet__StepResult *dst, const Pcifleet__StepResult *src);
/* Frees the strings of a result whose strings were malloc'd (those still
 * pointing at protobuf-c's empty string are left alone) and re-initializes
 * it. */
void step_result_clear(Pcifleet__StepResult *r);
/* "done" | "unchanged" | "refused" | "failed" | "unspecified" */
const char *step_outcome_name(Pcifleet__StepResult__Outcome o);

#endif
