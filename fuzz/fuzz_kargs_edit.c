/* Fuzzes the GRUB, /etc/kernel/cmdline and modules editors and the diff
 * generator: any bytes are either refused with a sentence or edited, and an
 * edit applied to its own output changes nothing (a node must never loop
 * through reboots over a file shape). */
#include "kargs_edit.h"
#include "udiff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const ADD[] = {"intel_iommu=on", "iommu=pt"};
static const char *const REMOVE[] = {"amd_iommu=off", "iommu=off"};
static const char *const MODS[] = {"vfio", "vfio_iommu_type1", "vfio-pci"};

typedef int (*edit_fn)(const char *, size_t, const kargs_change_t *, char **, size_t *, bool *, char **);

static int grub_default(const char *b, size_t l, const kargs_change_t *c, char **o, size_t *ol, bool *ch, char **e)
{
    return kargs_edit_grub(b, l, NULL, c, o, ol, ch, e);
}

static int grub_linux(const char *b, size_t l, const kargs_change_t *c, char **o, size_t *ol, bool *ch, char **e)
{
    return kargs_edit_grub(b, l, "GRUB_CMDLINE_LINUX", c, o, ol, ch, e);
}

static void check(edit_fn fn, const char *data, size_t size, const kargs_change_t *c)
{
    char *out = NULL, *err = NULL;
    size_t len = 0;
    bool changed = false;
    int rc = fn(data, size, c, &out, &len, &changed, &err);
    if ((rc < 0) != (err != NULL) || (rc < 0) != (out == NULL))
        abort(); /* an error comes with its sentence and without text */
    if (rc == 0) {
        if (changed != (len != size || memcmp(out, data, size) != 0))
            abort();
        char *again = NULL, *err2 = NULL;
        size_t len2 = 0;
        bool changed2 = true;
        if (fn(out, len, c, &again, &len2, &changed2, &err2) < 0 || changed2)
            abort(); /* idempotent */
        char *d = udiff("a", data, size, "b", out, len);
        if ((*d == '\0') == changed)
            abort();
        free(d);
        free(again);
        free(err2);
    }
    free(out);
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    kargs_change_t add = {ADD, 2, NULL, 0}, both = {ADD, 2, REMOVE, 2};
    check(grub_default, d, size, &add);
    check(grub_linux, d, size, &both);
    check(kargs_edit_cmdline_file, d, size, &add);
    check(kargs_edit_cmdline_file, d, size, &both);

    char *out = NULL, *err = NULL;
    size_t len;
    bool changed;
    if (modules_conf_edit(d, size, MODS, 3, NULL, &out, &len, &changed, &err) == 0) {
        char *again = NULL;
        if (modules_conf_edit(out, len, MODS, 3, NULL, &again, &len, &changed, &err) < 0 || changed)
            abort();
        free(again);
    }
    free(out);
    free(err);
    return 0;
}
