/* stepmem — the results of the steps this agent has carried out, by step id.
 *
 * Contract: the controller may send a step again (it restarted, or its
 * answer was lost); the agent then answers with the result it gave the
 * first time and does not carry the step out again. stepmem keeps the last
 * `cap` results in memory (oldest forgotten first) as deep copies it owns.
 * A stepmem made by stepmem_open also survives the agent: a reboot step
 * restarts the agent (a real reboot does), and the controller resending the
 * steps before it must not get them carried out again. Every put then
 * rewrites STATE_DIR/steps.pb whole and atomically (atomic.h: a crash leaves
 * the old file or the new one), the last `cap` results, oldest first, each
 * a little-endian u32 length and a packed StepResult (at most
 * STEPMEM_RESULT_MAX bytes; longer diffs and details are cut so that one
 * step cannot grow the file without bound). A stepmem_new one lives as long
 * as the process. Every step is idempotent by itself anyway (a VM edit
 * finds its entry already there: UNCHANGED). Every outcome is kept, FAILED
 * and REFUSED too: a retry after a failure needs a new step id. */
#ifndef PCIFLEET_STEPMEM_H
#define PCIFLEET_STEPMEM_H

#include "pcifleet.pb-c.h"

#include <stddef.h>

#define STEPMEM_DEFAULT_CAP 256
/* Largest packed result kept on disk, and the file name in the state dir. */
#define STEPMEM_RESULT_MAX (64u * 1024)
#define STEPMEM_FILE "steps.pb"

typedef struct stepmem stepmem_t;

/* cap 0 means STEPMEM_DEFAULT_CAP. */
stepmem_t *stepmem_new(size_t cap);
void stepmem_destroy(stepmem_t **m);
/* A stepmem kept in state_dir/steps.pb (the folder is created, mode 0700,
 * when missing). Loads what the file holds; a damaged file (truncated, a
 * record that does not decode) keeps the records before the damage, and
 * *warn says what was dropped (caller frees; NULL when all was well).
 * Returns 0, or a negative errno with *err set (caller frees) when the
 * folder cannot be made or the file cannot be read. */
int stepmem_open(const char *state_dir, size_t cap, stepmem_t **out, char **warn, char **err);

/* The stored result for step_id, or NULL; borrowed until the next put. */
const Pcifleet__StepResult *stepmem_find(const stepmem_t *m, const char *step_id);
/* Stores a deep copy of r under r->step_id (an empty id is not stored),
 * replacing an earlier result of the same id. For an opened stepmem also
 * rewrites the file: returns 0, or a negative errno with *err set (caller
 * frees; err may be NULL) when that failed — the memory holds the result
 * either way, so this process still answers repeats correctly. */
int stepmem_put_err(stepmem_t *m, const Pcifleet__StepResult *r, char **err);
void stepmem_put(stepmem_t *m, const Pcifleet__StepResult *r);
size_t stepmem_count(const stepmem_t *m);

/* Deep-copies src into *dst, every field (initialized here; free with
 * step_result_clear). */
void step_result_copy(Pcifleet__StepResult *dst, const Pcifleet__StepResult *src);
/* Frees the strings of a result whose strings were malloc'd (those still
 * pointing at protobuf-c's empty string are left alone) and re-initializes
 * it. */
void step_result_clear(Pcifleet__StepResult *r);
/* "done" | "unchanged" | "refused" | "failed" | "unspecified" */
const char *step_outcome_name(Pcifleet__StepResult__Outcome o);

#endif
