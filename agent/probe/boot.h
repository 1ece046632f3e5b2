/* boot — which boot loader a node uses, and where its kernel command line lives.
 *
 * Contract: boot_probe decides from what is on disk under the root, never from
 * guesses, and says why in evidence sentences. In order of strength:
 *
 *  1. The EFI variables of the running boot (sys/firmware/efi/efivars):
 *     BootCurrent names the Boot#### entry the firmware started; its file path
 *     \EFI\systemd\systemd-bootx64.efi means systemd-boot, grub*.efi or
 *     shim*.efi means GRUB.
 *  2. An ESP copy (boot/efi, efi or boot under the root) with
 *     loader/loader.conf: systemd-boot.
 *  3. etc/kernel/proxmox-boot-uuids, a UEFI boot (sys/firmware/efi exists) and
 *     no GRUB binary on a mounted ESP: systemd-boot managed by
 *     proxmox-boot-tool (it keeps its ESPs unmounted, so their content is
 *     usually not visible) — unless the SecureBoot EFI variable says Secure
 *     Boot is on: Proxmox then installs signed GRUB via shim, so GRUB.
 *  4. etc/default/grub (boot/grub/grub.cfg is supporting evidence): GRUB.
 *  5. proxmox-boot-uuids on a legacy BIOS boot: GRUB via proxmox-boot-tool.
 *  Otherwise BOOT_UNKNOWN.
 *
 * Where to edit and how to apply:
 *  - GRUB: /etc/default/grub; `update-grub` (Debian/Proxmox), or
 *    `grub2-mkconfig -o /boot/grub2/grub.cfg` when only boot/grub2 exists;
 *    `proxmox-boot-tool refresh` when proxmox-boot-uuids exists.
 *  - systemd-boot with proxmox-boot-uuids: /etc/kernel/cmdline,
 *    `proxmox-boot-tool refresh`.
 *  - systemd-boot without it: /etc/kernel/cmdline, `kernel-install add-all`
 *    (re-creates the loader entries of every installed kernel with the current
 *    /etc/kernel/cmdline; needs systemd 255 or later — on older systemd the
 *    operator runs `kernel-install add VERSION /boot/vmlinuz-VERSION` per
 *    kernel). `bootctl update` only updates the loader binary and is not a
 *    command line refresh.
 *
 * GRUB drop-ins: update-grub sources /etc/default/grub and then
 * /etc/default/grub.d/ *.cfg in name order, so a drop-in (cloud images ship
 * one) can override the command line variables. boot_probe applies them in
 * the same order, lists those that assign GRUB_CMDLINE_LINUX* in
 * grub_dropins and says so in evidence.
 *
 * Errors: boot_probe returns 0 once it has decided (possibly BOOT_UNKNOWN);
 * files that exist but cannot be read or parsed (too large, unterminated
 * quote, NUL bytes) are recorded in errs with their root-relative path, and
 * the probe carries on with what it could read. */
#ifndef PCIFLEET_BOOT_H
#define PCIFLEET_BOOT_H

#include "cmdline.h"
#include "errs.h"
#include "root.h"
#include "strv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { BOOT_UNKNOWN = 0, BOOT_GRUB, BOOT_SYSTEMD_BOOT } boot_loader_t;

typedef struct {
    boot_loader_t loader;
    const char *loader_name;     /* "grub" | "systemd-boot" | "unknown" (static string) */
    const char *cmdline_file;    /* "/etc/default/grub" | "/etc/kernel/cmdline" | NULL (static) */
    const char *refresh_command; /* "update-grub" | "proxmox-boot-tool refresh" |
                                    "grub2-mkconfig -o /boot/grub2/grub.cfg" |
                                    "kernel-install add-all" | NULL (static) */
    bool proxmox_boot_tool;      /* etc/kernel/proxmox-boot-uuids present */
    char *grub_linux;            /* raw value of GRUB_CMDLINE_LINUX, NULL if unset */
    char *grub_linux_default;    /* raw value of GRUB_CMDLINE_LINUX_DEFAULT, NULL if unset */
    kargs_t configured_args;     /* what a normal boot gets from the file now: for GRUB
                                    LINUX then LINUX_DEFAULT; for /etc/kernel/cmdline its line */
    strv_t evidence;             /* sentences: what on disk made us decide the loader */
    /* Additions beyond the first draft of this API: */
    bool uefi;                   /* sys/firmware/efi exists: the node booted via UEFI */
    char *efi_boot_path;         /* file path of the EFI entry that booted (BootCurrent), UTF-8,
                                    e.g. "\EFI\systemd\systemd-bootx64.efi"; NULL if unknown */
    strv_t grub_dropins;         /* "/etc/default/grub.d/NAME.cfg" files that assign a
                                    GRUB_CMDLINE_LINUX* variable, in the order applied */
} boot_info_t;

/* Fills *out (which need not be initialised; it is overwritten). Reads through
 * root only. The caller releases it with boot_info_free. */
int boot_probe(const root_t *root, boot_info_t *out, errs_t *errs);
/* Releases everything and leaves *b zeroed (loader BOOT_UNKNOWN). NULL-safe. */
void boot_info_free(boot_info_t *b);

/* Parses an /etc/default/grub style file (a POSIX shell fragment) and gives
 * the final values of GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT
 * (malloc'd; NULL when never assigned). Understands KEY="…" (with \ escapes
 * and $VAR / ${VAR} expansion of variables assigned earlier in the file;
 * unset ones expand to nothing), KEY='…', unquoted words, KEY+=…, '#'
 * comments, backslash-newline continuation, `export`, several assignments on
 * one line, ';' separators; later assignments override earlier ones.
 * Conditionals are not evaluated: an assignment inside `if … fi` counts.
 * `$(…)` and backticks are kept literally.
 * Returns 0, or -EINVAL with *err set (malloc'd sentence naming the line) on
 * malformed input — an unterminated quote (the assignment it opened is not
 * applied) or NUL bytes — while the outputs still hold what was read before
 * the problem. *err is NULL on success. Any of the out pointers may be NULL. */
int grub_defaults_parse(const char *buf, size_t len, char **linux_out, char **linux_default_out,
                        char **err);

/* /etc/kernel/cmdline: the first line that is neither empty (whitespace only)
 * nor a comment ('#' first), with surrounding whitespace removed. *out is
 * NULL when there is none (returns 0). Returns -EINVAL with *err set when the
 * file holds NUL bytes (the line is still returned, cut at the NUL), and
 * -EINVAL with *err when more non-comment lines follow: proxmox-boot-tool and
 * kernel-install disagree on what they mean, *out still holds the first. */
int kernel_cmdline_file_parse(const char *buf, size_t len, char **out, char **err);

/* One EFI_LOAD_OPTION (the data of a Boot#### variable without efivarfs's
 * 4-byte attribute prefix): u32 attributes, u16 file path list length,
 * NUL-terminated UTF-16LE description, device path list. */
typedef struct {
    uint32_t attributes;
    char *description; /* UTF-8, never NULL after a successful parse */
    char *file_path;   /* UTF-8 path of the first media file path node (type 4,
                          subtype 4), e.g. "\EFI\systemd\systemd-bootx64.efi";
                          NULL when the list has none */
} efi_load_option_t;

/* Returns 0, or -EINVAL when the option is truncated or malformed (nothing
 * to free then). Invalid UTF-16 becomes U+FFFD. */
int efi_load_option_parse(const uint8_t *buf, size_t len, efi_load_option_t *out);
void efi_load_option_free(efi_load_option_t *o);
/* What an EFI file path says about the loader: "systemd-boot" in the file
 * name (any case) → BOOT_SYSTEMD_BOOT; grub*.efi or shim*.efi → BOOT_GRUB;
 * anything else (BOOTX64.EFI, a UKI, NULL) → BOOT_UNKNOWN. */
boot_loader_t efi_path_loader(const char *path);

#endif
