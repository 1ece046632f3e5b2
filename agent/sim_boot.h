/* sim_boot — the boot half of the node simulator: the commands that refresh
 * what the next boot uses, and the simulated boot itself.
 *
 * Contract: internal to sim.c's dispatch table. Each handler gets the
 * simulator's root (never the live root: sim_new refused it), the
 * arguments after the program name and an output buffer, and returns the
 * exit status the real program would. Every file is written under the root
 * only (atomic.h for files; links and folders by rename or mkdir under the
 * root), and paths never contain "..". docs/simulator.md describes what
 * each command writes and where a boot reads from. */
#ifndef PCIFLEET_SIM_BOOT_H
#define PCIFLEET_SIM_BOOT_H

#include "buf.h"
#include "root.h"

#include <stddef.h>

/* update-grub (no arguments): ROOT/boot/grub/grub.cfg from ROOT/etc/default/grub. */
int sim_update_grub(const root_t *root, const char *const *args, size_t nargs, buf_t *out);
/* proxmox-boot-tool refresh: the ESP's loader entries from ROOT/etc/kernel/cmdline. */
int sim_proxmox_boot_tool(const root_t *root, const char *const *args, size_t nargs, buf_t *out);
/* update-initramfs -u -k all|VERSION: records the modules the new initramfs holds. */
int sim_update_initramfs(const root_t *root, const char *const *args, size_t nargs, buf_t *out);
/* systemctl reboot, and reboot: a simulated boot (sim.h, sim_boot). */
int sim_systemctl(const root_t *root, const char *const *args, size_t nargs, buf_t *out);
int sim_reboot_cmd(const root_t *root, const char *const *args, size_t nargs, buf_t *out);

/* The simulated boot; see sim.h. Returns 0 booted, 1 the profile makes the
 * boot fail (nothing changed), negative errno when a file could not be
 * read or written (out says which). */
int sim_boot_root(const root_t *root, buf_t *out);

#endif
