#include "privs.h"

#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIT(c) ((uint64_t)1 << (c))

/* Names as capabilities(7) spells them, by number; later ones are shown as numbers. */
static const char *const cap_names[] = {
    "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid", "cap_kill",
    "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
    "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module",
    "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot",
    "cap_sys_nice", "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
    "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
    "cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
    "cap_checkpoint_restore",
};

uint64_t privs_mask(privs_level_t level, bool reboot)
{
    /* Reading: config space past 64 bytes needs CAP_SYS_ADMIN, /dev/kmsg
     * CAP_SYSLOG under dmesg_restrict, root-only files CAP_DAC_READ_SEARCH. */
    uint64_t m = BIT(CAP_SYS_ADMIN) | BIT(CAP_DAC_READ_SEARCH) | BIT(CAP_SYSLOG);
    if (level >= PRIVS_EDIT) /* replacing a file keeps its owner and mode */
        m |= BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FOWNER) | BIT(CAP_CHOWN) | BIT(CAP_FSETID);
    if (level >= PRIVS_TOOLS) {
        /* update-grub, proxmox-boot-tool (mounts the ESPs: CAP_SYS_ADMIN),
         * update-initramfs and qm are scripts that fork helpers, change ids,
         * build device nodes in the image and talk to pmxcfs over IPC. */
        m |= BIT(CAP_SETUID) | BIT(CAP_SETGID) | BIT(CAP_KILL) | BIT(CAP_MKNOD) | BIT(CAP_SYS_CHROOT) |
             BIT(CAP_SYS_RESOURCE) | BIT(CAP_IPC_LOCK) | BIT(CAP_IPC_OWNER);
        if (reboot)
            m |= BIT(CAP_SYS_BOOT);
    }
    return m;
}

const char *privs_level_name(privs_level_t level)
{
    switch (level) {
    case PRIVS_PROBE: return "probe";
    case PRIVS_EDIT: return "edit";
    case PRIVS_TOOLS: return "tools";
    }
    return "?";
}

void privs_describe(uint64_t mask, buf_t *out)
{
    if (!mask) {
        buf_puts(out, "none");
        return;
    }
    const char *sep = "";
    for (unsigned c = 0; c < 64; c++) {
        if (!(mask & BIT(c)))
            continue;
        if (c < sizeof cap_names / sizeof cap_names[0])
            buf_printf(out, "%s%s", sep, cap_names[c]);
        else
            buf_printf(out, "%scap_%u", sep, c);
        sep = ",";
    }
}

static int cap_get(uint64_t *eff, uint64_t *prm, char **err)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) < 0) {
        int e = errno;
        *err = xasprintf("cannot read the process's capabilities: %s", strerror(e));
        return -e;
    }
    *eff = (uint64_t)d[0].effective | (uint64_t)d[1].effective << 32;
    *prm = (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
    return 0;
}

int privs_restrict(uint64_t mask, uint64_t *effective, char **err)
{
    *err = NULL;
    /* First: without it a setuid or file-capability binary run by a step
     * could hand back what is dropped below. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        int e = errno;
        *err = xasprintf("cannot set no_new_privs: %s", strerror(e));
        return -e;
    }
    uint64_t eff, prm;
    int rc = cap_get(&eff, &prm, err);
    if (rc < 0)
        return rc;
    /* The bounding set limits what an exec'd command gets as root; leaving
     * it needs CAP_SETPCAP, so it goes before the effective set does. */
    if (eff & BIT(CAP_SETPCAP)) {
        for (unsigned c = 0; c < 64; c++) {
            if (mask & BIT(c))
                continue;
            int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
            if (in < 0)
                break; /* past the running kernel's last capability */
            if (in == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
                int e = errno;
                *err = xasprintf("cannot drop capability %u from the bounding set: %s", c, strerror(e));
                return -e;
            }
        }
    }
    /* Ambient capabilities would survive exec on their own. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        int e = errno;
        *err = xasprintf("cannot clear the ambient capabilities: %s", strerror(e));
        return -e;
    }
    uint64_t keep = prm & mask;
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].permitted = d[0].effective = (uint32_t)keep;
    d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
    if (syscall(SYS_capset, &h, d) < 0) {
        int e = errno;
        *err = xasprintf("cannot drop capabilities: %s", strerror(e));
        return -e;
    }
    if (effective) {
        if ((rc = cap_get(&eff, &prm, err)) < 0)
            return rc;
        *effective = eff;
    }
    return 0;
}
