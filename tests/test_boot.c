/* boot: the boot loader is decided from what is on disk, the command line
 * files are read like the tools that use them read them, and damaged files
 * give errors, not crashes. Each test states what it proves. */
#include "testutil.h"

#include "boot.h"
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EFI_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c"

/* tests/data/boot/NAME as a string (caller frees). */
static char *data_file(const char *name, size_t *len)
{
    const char *src = getenv("PCIFLEET_SOURCE");
    assert_non_null(src);
    char *path = xasprintf("%s/tests/data/boot/%s", src, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    buf_reserve(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    free(path);
    if (len)
        *len = b.len;
    return buf_steal(&b);
}

/* Writes bytes (NULs allowed) to DIR/REL, creating parent folders. */
static void write_bin(const char *dir, const char *rel, const void *data, size_t len)
{
    tu_write(dir, rel, "");
    char *path = xasprintf("%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    free(path);
}

static void put16(buf_t *b, unsigned v)
{
    buf_putc(b, (char)(v & 0xff));
    buf_putc(b, (char)((v >> 8) & 0xff));
}

static void put32(buf_t *b, unsigned v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

static void put_utf16(buf_t *b, const char *s)
{
    for (; *s; s++)
        put16(b, (unsigned char)*s);
    put16(b, 0);
}

/* An EFI_LOAD_OPTION as efibootmgr writes one: active, a hard drive node
 * (GPT partition 1), a file path node, the end node. */
static buf_t load_option(const char *desc, const char *path)
{
    buf_t dp = BUF_INIT;
    buf_putc(&dp, 4); /* media: hard drive */
    buf_putc(&dp, 1);
    put16(&dp, 42);
    put32(&dp, 1);             /* partition number */
    put32(&dp, 2048), put32(&dp, 0); /* start LBA */
    put32(&dp, 1048576), put32(&dp, 0); /* size */
    for (int i = 0; i < 16; i++)
        buf_putc(&dp, (char)(0x10 + i)); /* partition GUID */
    buf_putc(&dp, 2); /* GPT */
    buf_putc(&dp, 2); /* GUID signature */
    if (path) {
        buf_putc(&dp, 4); /* media: file path */
        buf_putc(&dp, 4);
        put16(&dp, 4 + 2 * ((unsigned)strlen(path) + 1));
        put_utf16(&dp, path);
    }
    buf_putc(&dp, 0x7f);
    buf_putc(&dp, (char)0xff);
    put16(&dp, 4);
    buf_t b = BUF_INIT;
    put32(&b, 1); /* LOAD_OPTION_ACTIVE */
    put16(&b, (unsigned)dp.len);
    put_utf16(&b, desc);
    buf_append(&b, dp.p, dp.len);
    buf_free(&dp);
    return b;
}

/* Writes efivarfs files: BootCurrent = num and Boot<num> = the option. */
static void write_efi_boot(const char *dir, unsigned num, const char *desc, const char *path)
{
    buf_t cur = BUF_INIT;
    put32(&cur, 6); /* efivarfs attribute prefix: BS|RT */
    put16(&cur, num);
    write_bin(dir, "sys/firmware/efi/efivars/BootCurrent-" EFI_GUID, cur.p, cur.len);
    buf_free(&cur);
    buf_t opt = load_option(desc, path);
    buf_t file = BUF_INIT;
    put32(&file, 7); /* NV|BS|RT */
    buf_append(&file, opt.p, opt.len);
    char *rel = xasprintf("sys/firmware/efi/efivars/Boot%04X-" EFI_GUID, num);
    write_bin(dir, rel, file.p, file.len);
    free(rel);
    buf_free(&opt);
    buf_free(&file);
}

static bool has_evidence(const boot_info_t *b, const char *part)
{
    for (size_t i = 0; i < b->evidence.n; i++)
        if (strstr(b->evidence.v[i], part))
            return true;
    return false;
}

static const err_entry_t *err_at(const errs_t *e, const char *where)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i].where, where) == 0)
            return &e->v[i];
    return NULL;
}

static char *args_string(const boot_info_t *b)
{
    return kargs_to_string(&b->configured_args);
}

static void probe(const char *dir, boot_info_t *b, errs_t *errs)
{
    root_t *root = NULL;
    assert_int_equal(root_new(dir, &root), 0);
    assert_int_equal(boot_probe(root, b, errs), 0);
    root_destroy(&root);
}

/* ---- grub_defaults_parse ------------------------------------------------ */

/* Debian 12's shipped file: comments (with quotes and backticks in them) are
 * skipped, the backtick GRUB_DISTRIBUTOR line does not disturb parsing,
 * GRUB_CMDLINE_LINUX="" is set-but-empty, not NULL. */
static void test_grub_debian_default(void **state)
{
    (void)state;
    size_t len;
    char *text = data_file("debian12-default.grub", &len);
    char *lin = NULL, *def = NULL, *err = NULL;
    assert_int_equal(grub_defaults_parse(text, len, &lin, &def, &err), 0);
    assert_null(err);
    assert_string_equal(lin, "");
    assert_string_equal(def, "quiet");
    free(lin);
    free(def);
    free(text);
}

/* A Proxmox 8 file after the usual passthrough edit. */
static void test_grub_proxmox(void **state)
{
    (void)state;
    size_t len;
    char *text = data_file("proxmox8-iommu.grub", &len);
    char *lin = NULL, *def = NULL, *err = NULL;
    assert_int_equal(grub_defaults_parse(text, len, &lin, &def, &err), 0);
    assert_string_equal(lin, "");
    assert_string_equal(def, "quiet intel_iommu=on iommu=pt");
    free(lin);
    free(def);
    free(text);
}

/* A hand-edited file: single quotes, a backslash-newline continuation inside
 * double quotes, `export`, $VAR and ${VAR} expansion of the earlier value,
 * the variable set several times (the last wins, intel_iommu=off survives
 * only as an earlier token), a NAME=value before a command (not an
 * assignment), and +=. */
static void test_grub_hand_edited(void **state)
{
    (void)state;
    size_t len;
    char *text = data_file("hand-edited.grub", &len);
    char *lin = NULL, *def = NULL, *err = NULL;
    assert_int_equal(grub_defaults_parse(text, len, &lin, &def, &err), 0);
    assert_null(err);
    assert_string_equal(lin, "root=ZFS=rpool/ROOT/pve-1 boot=zfs console=ttyS0,115200n8");
    assert_string_equal(def, "quiet   intel_iommu=off iommu=pt intel_iommu=on,sm_on");
    kargs_t a = KARGS_INIT;
    kargs_parse(def, strlen(def), &a);
    assert_true(karg_has_option(kargs_find_last(&a, "intel_iommu"), "on"));
    kargs_free(&a);
    free(lin);
    free(def);
    free(text);
}

/* An unterminated quote: -EINVAL, a sentence naming line 3 and the
 * variable, and what was read before it (GRUB_CMDLINE_LINUX="") is kept
 * while the broken assignment is not applied. */
static void test_grub_unterminated(void **state)
{
    (void)state;
    size_t len;
    char *text = data_file("unterminated.grub", &len);
    char *lin = NULL, *def = NULL, *err = NULL;
    assert_int_equal(grub_defaults_parse(text, len, &lin, &def, &err), -EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, "line 3"));
    assert_non_null(strstr(err, "GRUB_CMDLINE_LINUX_DEFAULT"));
    assert_string_equal(lin, "");
    assert_null(def);
    free(err);
    free(lin);
    free(text);

    const char *sq = "GRUB_CMDLINE_LINUX='quiet\n";
    assert_int_equal(grub_defaults_parse(sq, strlen(sq), &lin, NULL, &err), -EINVAL);
    assert_non_null(strstr(err, "line 1: unterminated single quote"));
    assert_null(lin);
    free(err);
}

/* Smaller shell cases: single quotes keep double quotes and $ literally;
 * if/then bodies count; several assignments on one line; ${X:-default};
 * $(…) stays literal; a variable never set stays NULL; unset clears. */
static void test_grub_shell_cases(void **state)
{
    (void)state;
    struct {
        const char *in, *lin, *def;
    } cases[] = {
        {"GRUB_CMDLINE_LINUX='a \"b c\" $X'", "a \"b c\" $X", NULL},
        {"if [ -f /x ]; then\n  GRUB_CMDLINE_LINUX=\"iommu=pt\"\nfi\n", "iommu=pt", NULL},
        {"GRUB_CMDLINE_LINUX=a GRUB_CMDLINE_LINUX_DEFAULT=b\n", "a", "b"},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"${NOPE:-quiet} $(cat /x)\"", NULL, "quiet $(cat /x)"},
        {"X=on\nGRUB_CMDLINE_LINUX=intel_iommu=$X\\ iommu=pt", "intel_iommu=on iommu=pt", NULL},
        {"GRUB_CMDLINE_LINUX=x\nunset GRUB_CMDLINE_LINUX\n", NULL, NULL},
        {"GRUB_CMDLINE_LINUX=\"a\" # comment \"with quote\n", "a", NULL},
        {"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\r\nGRUB_CMDLINE_LINUX=\"\"\r\n", "", "quiet"},
        {"GRUB_CMDLINE_LINUX_DEFAULT+=", NULL, ""}, /* once a fuzzer crash: += of nothing */
        {"", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *lin = NULL, *def = NULL, *err = NULL;
        int rc = grub_defaults_parse(cases[i].in, strlen(cases[i].in), &lin, &def, &err);
        if (rc != 0)
            fail_msg("case %zu: %s", i, err);
        if (cases[i].lin)
            assert_string_equal(lin, cases[i].lin);
        else
            assert_null(lin);
        if (cases[i].def)
            assert_string_equal(def, cases[i].def);
        else
            assert_null(def);
        free(lin);
        free(def);
    }
}

/* Hostile input: NUL bytes give -EINVAL with a line number but the values
 * around them are still read; a value doubled 40 times is cut at a bound
 * (no runaway memory) and reported. */
static void test_grub_hostile(void **state)
{
    (void)state;
    const char nul[] = "GRUB_CMDLINE_LINUX=\"quiet\"\nGRUB_TIMEOUT=5\0\nGRUB_CMDLINE_LINUX_DEFAULT=x";
    char *lin = NULL, *def = NULL, *err = NULL;
    assert_int_equal(grub_defaults_parse(nul, sizeof(nul) - 1, &lin, &def, &err), -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_string_equal(lin, "quiet");
    assert_string_equal(def, "x");
    free(lin);
    free(def);
    free(err);

    buf_t b = BUF_INIT;
    buf_puts(&b, "GRUB_CMDLINE_LINUX=0123456789\n");
    for (int i = 0; i < 40; i++)
        buf_puts(&b, "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX$GRUB_CMDLINE_LINUX\"\n");
    assert_int_equal(grub_defaults_parse(b.p, b.len, &lin, NULL, &err), -EINVAL);
    assert_non_null(strstr(err, "was cut"));
    assert_true(strlen(lin) <= 16384);
    free(lin);
    free(err);
    buf_free(&b);
}

/* ---- kernel_cmdline_file_parse ----------------------------------------- */

/* The Proxmox ZFS file gives its line without the newline; comment and
 * blank lines before it are skipped; an empty file gives NULL; a second
 * argument line is reported while the first is still returned. */
static void test_kernel_cmdline_file(void **state)
{
    (void)state;
    size_t len;
    char *text = data_file("proxmox-zfs.cmdline", &len);
    char *line = NULL, *err = NULL;
    assert_int_equal(kernel_cmdline_file_parse(text, len, &line, &err), 0);
    assert_null(err);
    assert_string_equal(line, "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=on iommu=pt");
    free(line);
    free(text);

    const char *c = "# managed by hand\n\n   root=/dev/sda1 ro  \n";
    assert_int_equal(kernel_cmdline_file_parse(c, strlen(c), &line, &err), 0);
    assert_string_equal(line, "root=/dev/sda1 ro");
    free(line);

    assert_int_equal(kernel_cmdline_file_parse("\n\n", 2, &line, &err), 0);
    assert_null(line);

    const char *two = "root=/dev/sda1\niommu=pt\n";
    assert_int_equal(kernel_cmdline_file_parse(two, strlen(two), &line, &err), -EINVAL);
    assert_string_equal(line, "root=/dev/sda1");
    assert_non_null(strstr(err, "line 2"));
    free(line);
    free(err);
}

/* ---- EFI load options --------------------------------------------------- */

/* A systemd-boot entry as efibootmgr writes it parses to its description
 * and file path; every truncation of it is refused (or parsed) without
 * reading out of bounds; the path classification follows the file name. */
static void test_efi_load_option(void **state)
{
    (void)state;
    buf_t b = load_option("Linux Boot Manager", "\\EFI\\systemd\\systemd-bootx64.efi");
    efi_load_option_t o;
    assert_int_equal(efi_load_option_parse((const uint8_t *)b.p, b.len, &o), 0);
    assert_int_equal(o.attributes, 1);
    assert_string_equal(o.description, "Linux Boot Manager");
    assert_string_equal(o.file_path, "\\EFI\\systemd\\systemd-bootx64.efi");
    assert_int_equal(efi_path_loader(o.file_path), BOOT_SYSTEMD_BOOT);
    efi_load_option_free(&o);
    assert_null(o.description);
    for (size_t n = 0; n < b.len; n++) {
        /* exact-size copies so the sanitizer sees any overread */
        uint8_t *cut = xmalloc(n ? n : 1);
        memcpy(cut, b.p, n);
        if (efi_load_option_parse(cut, n, &o) == 0)
            efi_load_option_free(&o);
        free(cut);
    }
    buf_free(&b);

    b = load_option("UEFI OS", NULL);
    assert_int_equal(efi_load_option_parse((const uint8_t *)b.p, b.len, &o), 0);
    assert_null(o.file_path);
    efi_load_option_free(&o);
    buf_free(&b);

    assert_int_equal(efi_path_loader("\\EFI\\proxmox\\grubx64.efi"), BOOT_GRUB);
    assert_int_equal(efi_path_loader("\\EFI\\debian\\shimx64.efi"), BOOT_GRUB);
    assert_int_equal(efi_path_loader("\\EFI\\SYSTEMD\\SYSTEMD-BOOTX64.EFI"), BOOT_SYSTEMD_BOOT);
    assert_int_equal(efi_path_loader("\\EFI\\BOOT\\BOOTX64.EFI"), BOOT_UNKNOWN);
    assert_int_equal(efi_path_loader(NULL), BOOT_UNKNOWN);
}

/* ---- boot_probe on small roots ----------------------------------------- */

/* Plain Debian GRUB on legacy BIOS: loader grub, /etc/default/grub,
 * update-grub, the configured args are LINUX then LINUX_DEFAULT, and the
 * evidence names the files. */
static void test_probe_plain_grub(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *text = data_file("debian12-default.grub", NULL);
    tu_write(dir, "etc/default/grub", text);
    free(text);
    tu_write(dir, "boot/grub/grub.cfg", "# DO NOT EDIT THIS FILE\n");
    tu_write(dir, "sys/firmware/acpi/tables/DMAR", "DMAR");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.loader_name, "grub");
    assert_string_equal(b.cmdline_file, "/etc/default/grub");
    assert_string_equal(b.refresh_command, "update-grub");
    assert_false(b.proxmox_boot_tool);
    assert_false(b.uefi);
    assert_string_equal(b.grub_linux, "");
    assert_string_equal(b.grub_linux_default, "quiet");
    char *s = args_string(&b);
    assert_string_equal(s, "quiet");
    free(s);
    assert_true(has_evidence(&b, "/etc/default/grub exists"));
    assert_true(has_evidence(&b, "/boot/grub/grub.cfg exists"));
    assert_true(has_evidence(&b, "legacy BIOS"));
    boot_info_free(&b);
    assert_int_equal(b.loader, BOOT_UNKNOWN);
    assert_int_equal(b.evidence.n, 0);
    assert_null(b.grub_linux);
    tu_rm_rf(dir);
    free(dir);
}

/* Proxmox on ZFS with UEFI: proxmox-boot-uuids, an ESP copy with
 * loader/loader.conf, /sys/firmware/efi — and /etc/default/grub still there
 * (Proxmox installs it). The loader is systemd-boot, the file to edit is
 * /etc/kernel/cmdline, refreshed with proxmox-boot-tool, and the evidence
 * warns that /etc/default/grub is not used. */
static void test_probe_proxmox_systemd_boot(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *text = data_file("proxmox8-iommu.grub", NULL);
    tu_write(dir, "etc/default/grub", text);
    free(text);
    text = data_file("proxmox-zfs.cmdline", NULL);
    tu_write(dir, "etc/kernel/cmdline", text);
    free(text);
    tu_write(dir, "etc/kernel/proxmox-boot-uuids", "5A4B-9C2D\n5A4C-1E3F\n");
    tu_write(dir, "boot/efi/loader/loader.conf", "timeout 3\ndefault proxmox-*\n");
    tu_write(dir, "sys/firmware/efi/fw_platform_size", "64\n");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_SYSTEMD_BOOT);
    assert_string_equal(b.loader_name, "systemd-boot");
    assert_string_equal(b.cmdline_file, "/etc/kernel/cmdline");
    assert_string_equal(b.refresh_command, "proxmox-boot-tool refresh");
    assert_true(b.proxmox_boot_tool);
    assert_true(b.uefi);
    char *s = args_string(&b);
    assert_string_equal(s, "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet intel_iommu=on iommu=pt");
    free(s);
    assert_true(has_evidence(&b, "/boot/efi/loader/loader.conf exists"));
    assert_true(has_evidence(&b, "proxmox-boot-uuids exists"));
    assert_true(has_evidence(&b, "UEFI"));
    assert_true(has_evidence(&b, "/etc/default/grub is not used"));
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

/* The same node as proxmox-boot-tool leaves it normally: the ESPs are not
 * mounted, so only proxmox-boot-uuids and the UEFI boot are visible. Still
 * systemd-boot. With Secure Boot on, Proxmox boots signed GRUB instead. */
static void test_probe_proxmox_esp_unmounted(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
    tu_write(dir, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n");
    tu_write(dir, "etc/kernel/proxmox-boot-uuids", "5A4B-9C2D\n");
    tu_write(dir, "sys/firmware/efi/fw_platform_size", "64\n");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_SYSTEMD_BOOT);
    assert_string_equal(b.refresh_command, "proxmox-boot-tool refresh");
    assert_true(has_evidence(&b, "no GRUB binary on a mounted ESP"));
    boot_info_free(&b);

    const unsigned char sb[] = {6, 0, 0, 0, 1};
    write_bin(dir, "sys/firmware/efi/efivars/SecureBoot-" EFI_GUID, sb, sizeof(sb));
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.cmdline_file, "/etc/default/grub");
    assert_string_equal(b.refresh_command, "proxmox-boot-tool refresh");
    assert_true(has_evidence(&b, "Secure Boot"));
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

/* Proxmox on ZFS with legacy BIOS: proxmox-boot-tool in GRUB mode. Loader
 * grub, file /etc/default/grub, but the refresh is proxmox-boot-tool's (a
 * bare update-grub would not update the ESPs). */
static void test_probe_proxmox_grub_bios(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *text = data_file("proxmox8-iommu.grub", NULL);
    tu_write(dir, "etc/default/grub", text);
    free(text);
    tu_write(dir, "etc/kernel/proxmox-boot-uuids", "5A4B-9C2D\n");
    tu_write(dir, "sys/firmware/acpi/tables/DMAR", "DMAR");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.cmdline_file, "/etc/default/grub");
    assert_string_equal(b.refresh_command, "proxmox-boot-tool refresh");
    assert_true(b.proxmox_boot_tool);
    char *s = args_string(&b);
    assert_string_equal(s, "quiet intel_iommu=on iommu=pt");
    free(s);
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

/* The EFI variables are the strongest sign: BootCurrent → Boot0003 starting
 * \EFI\systemd\systemd-bootx64.efi makes systemd-boot even though
 * /etc/default/grub exists and nothing else says so; without
 * proxmox-boot-tool the refresh is kernel-install. And a shim entry makes
 * GRUB even on a proxmox-boot-tool UEFI node. */
static void test_probe_efivars(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
    tu_write(dir, "etc/kernel/cmdline", "root=UUID=1234 rw quiet\n");
    write_efi_boot(dir, 3, "Linux Boot Manager", "\\EFI\\systemd\\systemd-bootx64.efi");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_SYSTEMD_BOOT);
    assert_string_equal(b.refresh_command, "kernel-install add-all");
    assert_string_equal(b.efi_boot_path, "\\EFI\\systemd\\systemd-bootx64.efi");
    assert_true(has_evidence(&b, "Boot0003 \"Linux Boot Manager\""));
    assert_true(has_evidence(&b, "Decided by the EFI boot entry"));
    char *s = args_string(&b);
    assert_string_equal(s, "root=UUID=1234 rw quiet");
    free(s);
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);

    dir = tu_tmpdir();
    tu_write(dir, "etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
    tu_write(dir, "etc/kernel/proxmox-boot-uuids", "5A4B-9C2D\n");
    write_efi_boot(dir, 0x1a, "proxmox", "\\EFI\\proxmox\\shimx64.efi");
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.refresh_command, "proxmox-boot-tool refresh");
    assert_true(has_evidence(&b, "Boot001A"));
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

/* A damaged Boot#### is an error naming its path; the probe falls back to
 * the other signs. */
static void test_probe_bad_efivar(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n");
    write_efi_boot(dir, 1, "debian", "\\EFI\\debian\\grubx64.efi");
    const unsigned char junk[] = {7, 0, 0, 0, 1, 0, 0, 0, 0xff, 0x7f, 'd', 0};
    write_bin(dir, "sys/firmware/efi/efivars/Boot0001-" EFI_GUID, junk, sizeof(junk));
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_non_null(err_at(&errs, "/sys/firmware/efi/efivars/Boot0001-" EFI_GUID));
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_null(b.efi_boot_path);
    boot_info_free(&b);
    errs_free(&errs);
    tu_rm_rf(dir);
    free(dir);
}

/* An empty root: unknown loader, no file, no command, an explaining
 * sentence, no errors. */
static void test_probe_nothing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_UNKNOWN);
    assert_string_equal(b.loader_name, "unknown");
    assert_null(b.cmdline_file);
    assert_null(b.refresh_command);
    assert_int_equal(b.configured_args.n, 0);
    assert_true(has_evidence(&b, "No boot loader sign"));
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

/* A 1 GB sparse /etc/default/grub is not read: an error at
 * /etc/default/grub says it is too large, the probe returns normally
 * (GRUB, since the file exists) with no values from it. */
static void test_probe_huge_grub(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    tu_write(dir, "etc/default/grub", "");
    char *path = xasprintf("%s/etc/default/grub", dir);
    assert_int_equal(truncate(path, 1024L * 1024 * 1024), 0);
    free(path);
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    const err_entry_t *e = err_at(&errs, "/etc/default/grub");
    assert_non_null(e);
    assert_non_null(strstr(e->what, "larger than"));
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_null(b.grub_linux_default);
    assert_true(has_evidence(&b, "could not be read"));
    boot_info_free(&b);
    errs_free(&errs);
    tu_rm_rf(dir);
    free(dir);
}

/* An unterminated quote in /etc/default/grub shows up in errs with the file
 * and line; values read before it are kept. */
static void test_probe_broken_grub(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *text = data_file("unterminated.grub", NULL);
    tu_write(dir, "etc/default/grub", text);
    free(text);
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    const err_entry_t *e = err_at(&errs, "/etc/default/grub");
    assert_non_null(e);
    assert_non_null(strstr(e->what, "line 3"));
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.grub_linux, "");
    assert_null(b.grub_linux_default);
    boot_info_free(&b);
    errs_free(&errs);
    tu_rm_rf(dir);
    free(dir);
}

/* A cloud image's /etc/default/grub.d/50-cloudimg-settings.cfg overrides
 * GRUB_CMDLINE_LINUX_DEFAULT after /etc/default/grub, as update-grub does;
 * the probe applies it, lists it and says so. A drop-in that does not touch
 * the command line is not listed; a non-.cfg file is not read. */
static void test_probe_grub_dropins(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *text = data_file("proxmox8-iommu.grub", NULL);
    tu_write(dir, "etc/default/grub", text);
    free(text);
    text = data_file("50-cloudimg-settings.cfg", NULL);
    tu_write(dir, "etc/default/grub.d/50-cloudimg-settings.cfg", text);
    free(text);
    tu_write(dir, "etc/default/grub.d/10-timeout.cfg", "GRUB_TIMEOUT=1\n");
    tu_write(dir, "etc/default/grub.d/99-iommu.cfg.disabled",
             "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT nope\"\n");
    tu_write(dir, "etc/default/grub.d/90-iommu.cfg",
             "GRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT iommu=pt\"\n");
    boot_info_t b;
    errs_t errs = ERRS_INIT;
    probe(dir, &b, &errs);
    assert_int_equal(errs.n, 0);
    assert_int_equal(b.loader, BOOT_GRUB);
    assert_string_equal(b.grub_linux_default, "console=tty1 console=ttyS0 iommu=pt");
    assert_int_equal(b.grub_dropins.n, 2);
    assert_string_equal(b.grub_dropins.v[0], "/etc/default/grub.d/50-cloudimg-settings.cfg");
    assert_string_equal(b.grub_dropins.v[1], "/etc/default/grub.d/90-iommu.cfg");
    assert_true(has_evidence(&b, "50-cloudimg-settings.cfg sets GRUB_CMDLINE_LINUX_DEFAULT"));
    assert_null(kargs_find_last(&b.configured_args, "intel_iommu"));
    boot_info_free(&b);
    tu_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grub_debian_default),
        cmocka_unit_test(test_grub_proxmox),
        cmocka_unit_test(test_grub_hand_edited),
        cmocka_unit_test(test_grub_unterminated),
        cmocka_unit_test(test_grub_shell_cases),
        cmocka_unit_test(test_grub_hostile),
        cmocka_unit_test(test_kernel_cmdline_file),
        cmocka_unit_test(test_efi_load_option),
        cmocka_unit_test(test_probe_plain_grub),
        cmocka_unit_test(test_probe_proxmox_systemd_boot),
        cmocka_unit_test(test_probe_proxmox_esp_unmounted),
        cmocka_unit_test(test_probe_proxmox_grub_bios),
        cmocka_unit_test(test_probe_efivars),
        cmocka_unit_test(test_probe_bad_efivar),
        cmocka_unit_test(test_probe_nothing),
        cmocka_unit_test(test_probe_huge_grub),
        cmocka_unit_test(test_probe_broken_grub),
        cmocka_unit_test(test_probe_grub_dropins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
