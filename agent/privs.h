/* privs — the agent gives up the privileges its policy does not need.
 *
 * Contract: privs_restrict sets no_new_privs and drops every capability
 * outside mask from the permitted, effective, inheritable and ambient sets,
 * and from the bounding set when the process may (CAP_SETPCAP), so neither
 * the agent nor a command it runs (update-grub, qm, ...) can regain one. It
 * is irreversible and applies to the calling thread: call it before any
 * other thread exists. A process without capabilities (not root) loses
 * nothing and gets only no_new_privs. privs_mask names what each level of
 * work needs; the daemon and the commands pick the level from their policy
 * (daemon.h). */
#ifndef PCIFLEET_PRIVS_H
#define PCIFLEET_PRIVS_H

#include "buf.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PRIVS_PROBE, /* read the node: PCI config space past 64 bytes, root-only files, /dev/kmsg */
    PRIVS_EDIT,  /* + edit host files that may belong to others (simulated steps, VM configs) */
    PRIVS_TOOLS, /* + run the step commands for real */
} privs_level_t;

/* Bit n set = capability n kept. reboot adds CAP_SYS_BOOT (PRIVS_TOOLS only). */
uint64_t privs_mask(privs_level_t level, bool reboot);

/* Returns 0, or a negative errno with *err set (caller frees). *effective
 * (may be NULL) receives the effective set afterwards. */
int privs_restrict(uint64_t mask, uint64_t *effective, char **err);

/* "cap_dac_read_search,cap_sys_admin,..." ("none" for 0). */
void privs_describe(uint64_t mask, buf_t *out);

const char *privs_level_name(privs_level_t level);

#endif
