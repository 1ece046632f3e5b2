/* atomic — replacing a host file under the agent's root so that a crash at
 * any moment leaves either the old file or the new one, never a mix.
 *
 * Contract: atomic_replace writes data to a temporary file in the target's
 * own folder (".NAME.pcifleet-XXXXXX", so the rename stays on one file
 * system), gives it the old file's mode (0644 for a new file), fsyncs it,
 * renames it over ROOT/rel and fsyncs the folder. On any failure the
 * temporary file is removed, the original is untouched, and *err says what
 * failed (caller frees). Folders in rel may be symbolic links (Proxmox's
 * etc/pve/qemu-server is one); the file itself may not: replacing a link
 * would cut it, so that is refused (-ELOOP). This is the agent's only way of
 * writing a host file; the readers in root.h never write. Backups, where a
 * step keeps them, are the caller's business. */
#ifndef PCIFLEET_ATOMIC_H
#define PCIFLEET_ATOMIC_H

#include "root.h"

#include <stddef.h>

int atomic_replace(const root_t *root, const char *rel, const void *data, size_t len, char **err);

#endif
