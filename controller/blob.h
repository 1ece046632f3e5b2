/* blob — an immutable, reference-counted block of bytes.
 *
 * Contract: blob_new copies len bytes (and adds a NUL after them, so a text
 * blob is a C string); the blob is never written again. Each holder keeps
 * one reference: blob_ref adds one, blob_unref drops the caller's and sets
 * its pointer to NULL; the last one frees the blob. The count is atomic, so
 * a reference may be dropped on any thread: the controller hands kept
 * answers to ZeroMQ, whose I/O thread releases them once sent. */
#ifndef PCIFLEET_BLOB_H
#define PCIFLEET_BLOB_H

#include <stddef.h>

typedef struct blob blob_t;

/* Aborts on allocation failure, like buf.h. */
blob_t *blob_new(const void *data, size_t len);
/* The same, but the bytes (and the NUL) live in a memfd sealed against any
 * change (F_SEAL_WRITE, _SHRINK, _GROW, _SEAL) and mapped read-only, so
 * another process may open it by /proc/PID/fd/blob_fd() and read exactly
 * what blob_data() shows. The fd stays open until the last reference goes.
 * NULL when the kernel refuses (no memfd, no memory): use blob_new then. */
blob_t *blob_new_shared(const void *data, size_t len);
/* blob_new_shared's descriptor and memfd name ("pcifleet-answer-..."), -1
 * and "" for a blob_new one. */
int blob_fd(const blob_t *b);
const char *blob_name(const blob_t *b);
blob_t *blob_ref(blob_t *b);
void blob_unref(blob_t **b);
const char *blob_data(const blob_t *b);
size_t blob_len(const blob_t *b);

#endif
