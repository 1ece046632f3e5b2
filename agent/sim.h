/* sim — the node simulator: what the runner does with a command in
 * SIMULATE mode (runner.h).
 *
 * Contract: sim_run takes the argv the agent would have executed and
 * carries out its effect on the files under the simulator's root, as the
 * real command would on a real node. It never executes anything, and it
 * never pretends: a program, subcommand or option it does not understand
 * is refused with a message and a non-zero exit status, and nothing is
 * changed. Every file it changes is replaced atomically (atomic.h); a
 * refused or failed command leaves the tree as it was.
 *
 * Understood (a dispatch table; docs/simulator.md has the details):
 *   qm set VMID --hostpciN VALUE      (N 0-15; VALUE checked as Proxmox's
 *                                      hostpci syntax, mapping names are not)
 *   qm set VMID --delete hostpciN[,hostpciM...]
 * Several options may be given in one call, applied in order, written once.
 * They edit ROOT/etc/pve/qemu-server/VMID.conf with pve_edit.h: only the
 * live section, every other line byte for byte. Deleting a key that is not
 * set warns as qm does ("cannot delete 'hostpci3' - not set in current
 * configuration!") and succeeds without writing. Unlike qm on a running
 * VM, the change always goes to the live section, never to [PENDING].
 *   update-grub                       ROOT/boot/grub/grub.cfg's linux lines from
 *                                     GRUB_CMDLINE_LINUX(_DEFAULT) in etc/default/grub
 *                                     (and etc/default/grub.d, as boot.h reads them)
 *   proxmox-boot-tool refresh         the options line of every loader entry on the
 *                                     ESP copy boot.h finds (boot/efi, efi, boot with
 *                                     loader/loader.conf; boot/efi is created when none
 *                                     exists) from etc/kernel/cmdline; on a GRUB node,
 *                                     what update-grub does
 *   update-initramfs -u -k all|VER    records the configured modules in
 *                                     ROOT/boot/pcifleet-sim/initramfs.modules
 *   systemctl reboot, reboot          a simulated boot (sim_boot below); exit 0
 *                                     even when the profile makes the boot fail, as
 *                                     the real command returns before the node is down
 *
 * Exit statuses, as qm's: 0 done; 2 the VM has no config ("Configuration
 * file 'nodes/NODE/qemu-server/VMID.conf' does not exist"); 255 for a
 * malformed or not-simulated request ("400 ..." lines); 1 when the file
 * cannot be read or replaced. A program other than those in the table gets
 * 127, as a shell gives for a command it cannot find. */
#ifndef PCIFLEET_SIM_H
#define PCIFLEET_SIM_H

#include "root.h"
#include "runner.h"
#include "strv.h"

#include <stdbool.h>

typedef struct sim sim_t;

/* root: an existing folder that is not the live root (-EPERM otherwise: the
 * simulator would edit the host's own files). Returns 0 or a negative errno
 * with *err set (caller frees). */
int sim_new(const char *root, sim_t **out, char **err);
void sim_destroy(sim_t **s);

/* Fills res (output and status) and returns 0; argv as for runner_run. */
int sim_run(sim_t *s, const char *const *argv, runner_result_t *res);

/* ---- the fixture's hardware profile ----
 * ROOT/sim-profile.conf, optional (beside dmesg.txt: both describe the
 * machine, not its files). "key = value" lines, '#' comments:
 *   boot_fails = BOOL          a reboot takes the node down for good
 *   boot_delay_ms = N          the agent comes back N ms after a reboot (0-600000)
 *   iommu_after_boot = auto|on|off   off: the kernel never enables the IOMMU
 *                              (a broken DMAR/IVRS); on: whatever the arguments
 *   interrupt_remapping = BOOL default true; false: DMA remapping without IR
 *   load_modules = BOOL        default true; false: configured modules fail to load
 *   group = N ADDR [ADDR...]   IOMMU group N holds these functions; when any
 *                              group line is given, functions in none get no group
 * BOOL as agent_parse_bool (true/false, yes/no, on/off, 1/0). */
#define SIM_PROFILE_FILE "sim-profile.conf"
#define SIM_BOOT_DELAY_MAX_MS 600000u

typedef enum { SIM_IOMMU_AUTO = 0, SIM_IOMMU_OFF, SIM_IOMMU_ON } sim_iommu_t;

typedef struct {
    long id;
    strv_t devices; /* "DDDD:BB:DD.F", lowercase */
} sim_group_t;

typedef struct {
    bool boot_fails;
    unsigned boot_delay_ms;
    sim_iommu_t iommu_after_boot;
    bool interrupt_remapping;
    bool load_modules;
    sim_group_t *groups;
    size_t n_groups;
} sim_profile_t;

/* Parses a profile; unknown keys and bad values are errors (-EINVAL, *err
 * names the line; caller frees): a typo must not silently give a normal
 * boot. *out holds the defaults plus what was read; free it either way. */
int sim_profile_parse(const char *buf, size_t len, sim_profile_t *out, char **err);
/* ROOT/sim-profile.conf; a missing file gives the defaults and 0. */
int sim_profile_read(const root_t *root, sim_profile_t *out, char **err);
void sim_profile_free(sim_profile_t *p);

/* The simulated boot, as `systemctl reboot` does it. Unless the profile
 * says boot_fails (returns 1, nothing changed):
 *  - the command line is what the boot loader (boot.h's verdict) reads:
 *    GRUB the first linux line of boot/grub/grub.cfg (BOOT_IMAGE=KERNEL then
 *    its words), systemd-boot the newest ESP entry matching loader.conf's
 *    default (initrd=\PATH then options). Only refresh commands write
 *    those, so an unrefreshed edit changes nothing. It goes to proc/cmdline
 *    and the dmesg.txt command line lines; the entry's kernel version to
 *    proc/sys/kernel/osrelease;
 *  - the IOMMU is on when the firmware table is there (DMAR: Intel, IVRS:
 *    AMD) and the arguments enable it: Intel intel_iommu=on (or a -pve
 *    kernel 6.8+, on by default) and no intel_iommu=off / iommu=off; AMD
 *    unless amd_iommu=off / iommu=off; the profile may force it. Then
 *    sys/class/iommu units (one per DRHD / IOMMU in the table) with device
 *    links, sys/kernel/iommu_groups (profile groups, else one per slot with
 *    bridges alone; type identity with iommu=pt, DMA with iommu.strict=1,
 *    else DMA-FQ), device iommu_group links, IR- chips in proc/interrupts
 *    when interrupts are remapped, and the kernel log lines klog.h knows.
 *    The previous boot's IOMMU files are removed first;
 *  - proc/modules keeps the previous lines except vfio modules no longer
 *    configured, and adds configured modules (sys/module/NAME too);
 *  - a new proc/sys/kernel/random/boot_id, written last.
 * Returns 0, 1, or a negative errno with *report saying what failed (a
 * failed write can leave a half-booted tree). *report (caller frees) is the
 * simulator's account of the boot. Refuses the live root (-EPERM). */
int sim_boot(sim_t *s, char **report);
/* The same on a root (sim_new's checks apply). */
int sim_boot_dir(const char *root, char **report);

#endif
