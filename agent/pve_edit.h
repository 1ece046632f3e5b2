/* pve_edit — line-level edits of a Proxmox VM config (etc/pve/qemu-server/VMID.conf).
 *
 * Contract: the functions take the config as (buf, len) holding any bytes
 * and write the edited text into a buf_t; they never read past len. Only
 * the live section is edited: the lines before the first line starting
 * with '[' ([PENDING], [special:cloudinit], snapshots), as the probe reads it
 * (vms.h). Every line that is not the edited key's, and everything from the
 * first section line on, comes out byte for byte as it went in. A key's
 * line is one starting exactly with "KEY:" in column 0 (the form Proxmox
 * writes), so "hostpci1" never matches "hostpci10".
 *
 * Setting a key puts "KEY: VALUE\n" where the key's first live line was
 * (dropping any later duplicate, which Proxmox would not have written), or,
 * when the key is new, before the first live key that sorts after it
 * (Proxmox writes keys in sorted order), else after the last non-blank live
 * line. Deleting drops every live line of the key. Nothing here writes a
 * file: the caller replaces the file (atomic.h). Fuzzed by
 * fuzz/fuzz_pve_edit.c. */
#ifndef PCIFLEET_PVE_EDIT_H
#define PCIFLEET_PVE_EDIT_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* Offset of the first section line ('[' in column 0), or len. */
size_t pve_edit_live_end(const char *buf, size_t len);

/* A key Proxmox could write: a lowercase letter, then lowercase letters,
 * digits, '_' or '-', at most 64 bytes. */
bool pve_edit_valid_key(const char *key);

/* Appends the edited config to *out. -EINVAL (out untouched) when key is
 * not valid or value is empty or holds a newline, NUL or carriage return. */
int pve_edit_set(const char *buf, size_t len, const char *key, const char *value, buf_t *out);

/* Appends the config without the key's live lines to *out; returns how many
 * lines were dropped (0: out is the input unchanged), or -EINVAL for a bad
 * key. */
int pve_edit_delete(const char *buf, size_t len, const char *key, buf_t *out);

/* True when section `section` ("PENDING" for "[PENDING]"; NULL = the live
 * section) has a line for key. */
bool pve_edit_has_key(const char *buf, size_t len, const char *section, const char *key);

#endif
