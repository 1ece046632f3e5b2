/* kargs_edit — pure editors for the files that hold the next boot's kernel
 * command line and the modules loaded at boot.
 *
 * Contract: every editor takes the file's bytes (buf, len; len 0 = the file
 * is missing or empty), never touches the disk, and gives the new text in
 * *out (malloc'd, NUL-terminated, caller frees; *out_len its length) with
 * *changed saying whether it differs. Applying the same edit to its own
 * output changes nothing. Everything not edited stays byte for byte:
 * comments, other lines, CRLF line ends, continuation lines, spacing
 * between tokens that stay.
 *
 * Token semantics (as cmdline.h, never substrings). A token to add is
 * KEY or KEY=VALUE; VALUE is a comma list of options.
 *  - It is already present when a token of the same key exists whose
 *    options include every option of the one to add ("intel_iommu=on,sm_on"
 *    already gives "intel_iommu=on"); a bare KEY is present when a bare KEY
 *    is. For GRUB, presence is looked for in BOTH GRUB_CMDLINE_LINUX and
 *    GRUB_CMDLINE_LINUX_DEFAULT, in their final values (grub_defaults_parse,
 *    so "$VAR" expansion counts).
 *  - A token of the same key conflicts when it has the opposite of one of
 *    the options to add (on/off, X/noX), or has "off" while the one to add
 *    has not ("iommu=off" against "iommu=pt"). Conflicting tokens never stay:
 *    the first one is REPLACED in place by the token to add (when nothing
 *    satisfies it yet), the others are removed, wherever they are. Tokens of
 *    the same key that neither satisfy nor conflict ("intel_iommu=igfx_off")
 *    stay, and the token is added beside them.
 *  - A token to remove is KEY (every token of that key goes) or KEY=VALUE
 *    (only tokens exactly so). GRUB: from both variables.
 * Tokens given to add or remove must be plain: no whitespace, quotes, '$',
 * '`', '\', ';', '#' — the editors refuse others (-EINVAL, *err says which)
 * rather than write something the shell or the kernel reads differently.
 *
 * Errors: -EINVAL with *err (caller frees) when the input cannot be edited
 * safely (NUL bytes, an unterminated quote, a value mixing quote styles such
 * as "a"'b', a bad token); *out is then NULL and nothing is to be written. */
#ifndef PCIFLEET_KARGS_EDIT_H
#define PCIFLEET_KARGS_EDIT_H

#include "strv.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *const *add; /* tokens to add, n_add of them */
    size_t n_add;
    const char *const *remove; /* keys or exact tokens to remove */
    size_t n_remove;
} kargs_change_t;

/* /etc/default/grub. variable: "GRUB_CMDLINE_LINUX_DEFAULT" (NULL or "" mean
 * it) or "GRUB_CMDLINE_LINUX": where tokens are added. Additions go into the
 * last assignment of that variable (the one that counts), removals and
 * replacements into every assignment of either variable. The value keeps its
 * quoting: "double", 'single' or none — except that an unquoted value that
 * would hold more than one token is given double quotes (the only other
 * spelling, backslash-escaped spaces, is one nobody reads right). A missing
 * variable is added as a new line VAR="TOKENS" at the end of the file
 * (after a newline if the file lacks its last one). The shell is understood
 * as grub_defaults_parse understands it: '#' comments, export, several
 * assignments on a line, ';', backslash-newline, KEY+=; assignments inside
 * if/then blocks are edited too. */
int kargs_edit_grub(const char *buf, size_t len, const char *variable, const kargs_change_t *ch, char **out,
                    size_t *out_len, bool *changed, char **err);

/* /etc/kernel/cmdline: the first line that is neither blank nor a '#'
 * comment is the command line (kernel_cmdline_file_parse); it is edited in
 * place. A file without one gets one (the tokens added, with a newline). */
int kargs_edit_cmdline_file(const char *buf, size_t len, const kargs_change_t *ch, char **out, size_t *out_len,
                            bool *changed, char **err);

/* A modules-load.d file (one module a line): appends each module of
 * modules[0..n) (normalised '-' to '_', names of letters, digits, '_' and
 * '-' only) that is neither in the file nor in already (modules configured
 * in other files, e.g. vfio_info_t.configured). A new file starts with a
 * comment saying who wrote it and why. */
int modules_conf_edit(const char *buf, size_t len, const char *const *modules, size_t n, const strv_t *already,
                      char **out, size_t *out_len, bool *changed, char **err);

#endif
