/* vfio — are the VFIO modules loaded now, and configured to load at boot?
 *
 * Contract: vfio_probe works out which modules passthrough needs for the
 * node's kernel (vfio, vfio_iommu_type1, vfio_pci, and vfio_virqfd on kernels
 * before 6.2, where it was merged into vfio), then reads through the root:
 *  - loaded: proc/modules, or sys/module/NAME (a built-in module with
 *    parameters shows up there without being in proc/modules);
 *  - configured: etc/modules and etc/modules-load.d/ *.conf — the operator's
 *    files; /usr/lib/modules-load.d belongs to packages and is not read. A
 *    .conf that is a symlink to /dev/null masks the file of that name and is
 *    skipped; symlinks are resolved inside the root, and a file reached twice
 *    (Debian links modules-load.d/modules.conf to ../modules) counts once.
 * Module names are normalised ('-' becomes '_'), so "vfio-pci" is vfio_pci.
 * Lists are in the order of `required`; sources in the order read.
 *
 * Errors: vfio_probe returns 0; unreadable files (too large, permission) go
 * into errs with their root-relative path. When neither kernel_release nor
 * ROOT/proc/sys/kernel/osrelease gives a kernel version, vfio_virqfd is not
 * required (listing it on a 6.2+ kernel makes systemd-modules-load fail) and
 * errs says so. */
#ifndef PCIFLEET_VFIO_H
#define PCIFLEET_VFIO_H

#include "errs.h"
#include "root.h"
#include "strv.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    strv_t required;   /* vfio, vfio_iommu_type1, vfio_pci, plus vfio_virqfd before 6.2 */
    strv_t loaded;     /* required modules that are loaded (or built in) */
    strv_t configured; /* required modules listed in etc/modules or etc/modules-load.d/ *.conf */
    strv_t missing;    /* required modules neither configured nor loaded */
    strv_t sources;    /* files where configured ones were found, root-relative with leading '/' */
} vfio_info_t;

/* kernel_release: "6.8.12-4-pve" style, or NULL to read proc/sys/kernel/osrelease
 * under the root. Fills *out (overwritten). Release with vfio_info_free. */
int vfio_probe(const root_t *root, const char *kernel_release, vfio_info_t *out, errs_t *errs);
/* Releases all lists and leaves *v empty. NULL-safe. */
void vfio_info_free(vfio_info_t *v);

/* /etc/modules or modules-load.d format: one module per line, the first word
 * is the name (arguments after it are ignored), lines starting with '#' or ';'
 * are comments, '-' is normalised to '_'. Appends names to *out; returns 0, or
 * -EINVAL when the input holds NUL bytes (lines around them still count). */
int modules_list_parse(const char *buf, size_t len, strv_t *out);
/* /proc/modules: the first field of each line (normalised like above). */
int proc_modules_parse(const char *buf, size_t len, strv_t *out);
/* True when release starts with MAJOR.MINOR at least major.minor
 * ("6.8.12-4-pve", "6.1.0-18-amd64", "5.15.0"); false for NULL or garbage. */
bool kernel_release_at_least(const char *release, int major, int minor);

#endif
