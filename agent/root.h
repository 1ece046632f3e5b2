/* root — every host path the agent reads goes through here.
 *
 * Contract: paths given to these functions are relative to the node's root
 * (a leading '/' is allowed and ignored), e.g. "sys/class/iommu". Nothing in
 * the agent opens a host path any other way, so tests, demos and benchmarks
 * point the whole agent at a fixture tree with one option. Functions return 0
 * or a negative errno; they never exit. The live root is "/", and nothing
 * here writes. */
#ifndef PCIFLEET_ROOT_H
#define PCIFLEET_ROOT_H

#include "strv.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct root root_t;

/* Largest file a probe reads by default: sysfs and proc files are small, and
 * a host file larger than this is treated as damaged, not read whole. */
#define ROOT_READ_MAX (4u * 1024 * 1024)

/* -ENOENT when dir does not exist, -ENOTDIR when it is not a directory. */
int root_new(const char *dir, root_t **out);
void root_destroy(root_t **r);

/* The prefix as given, without a trailing slash ("" for the live root). */
const char *root_prefix(const root_t *r);
/* True when the prefix resolves to "/": the agent reads the running host. */
bool root_is_live(const root_t *r);
/* Full path of rel under the root; the caller frees it. */
char *root_path(const root_t *r, const char *rel);

/* Reads a whole file into *out (NUL-terminated, caller frees) and its length
 * into *len (may be NULL). -EFBIG when it holds more than max bytes. */
int root_read(const root_t *r, const char *rel, size_t max, char **out, size_t *len);
/* Reads a one-line text file and strips trailing whitespace. */
int root_read_line(const root_t *r, const char *rel, char **out);
/* Reads a file holding one integer (decimal, or hex with 0x). -EINVAL if not. */
int root_read_long(const root_t *r, const char *rel, long *out);
/* The target of a symbolic link, as stored (caller frees). */
int root_readlink(const root_t *r, const char *rel, char **out);
/* The last component of a link's target: "vfio-pci" for a driver link. */
int root_readlink_base(const root_t *r, const char *rel, char **out);

bool root_exists(const root_t *r, const char *rel);
bool root_is_dir(const root_t *r, const char *rel);
/* Names in a directory, sorted, without "." and "..". Adds to *names. */
int root_list(const root_t *r, const char *rel, strv_t *names);

#endif
