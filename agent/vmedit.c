/* vmedit — add/remove a hostpciN entry (see vmedit.h). */
#include "vmedit.h"

#include "buf.h"
#include "pve_edit.h"
#include "vms.h"
#include "wire.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PVE_CONF_DIR "etc/pve/qemu-server"
#define PCI_DEVICES "sys/bus/pci/devices"
/* A detail is a sentence plus a command's output: keep it well inside the
 * wire's string limit (wire.h) and an operator's screen. */
#define DETAIL_MAX 4096u

typedef Pcifleet__StepResult__Outcome outcome_t;
#define DONE PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE
#define UNCHANGED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED
#define REFUSED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED
#define FAILED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED

/* Sets the outcome and the detail (printf); the detail is made fit for the
 * wire, since it may quote a command's output. */
static void __attribute__((format(printf, 3, 4))) result(Pcifleet__StepResult *out, outcome_t o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_t b = BUF_INIT;
    buf_reset(&b);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (out->detail != protobuf_c_empty_string)
        free(out->detail);
    out->detail = wire_text_dup(b.p, DETAIL_MAX);
    buf_free(&b);
    out->outcome = o;
}

static bool valid_vmid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > 9 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static int hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : isxdigit((unsigned char)c) ? tolower((unsigned char)c) - 'a' + 10 : -1;
}

/* n hex digits at s into *v; false unless all are hex. */
static bool hexn(const char *s, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hexval(s[i]);
        if (d < 0)
            return false;
        *v = *v * 16 + (unsigned)d;
    }
    return true;
}

/* "[DDDD:]BB:DD.F" (hex, any case) to "dddd:bb:dd.f"; NULL when not one. */
static char *address_norm(const char *s)
{
    unsigned dom = 0, bus, dev, fn;
    size_t n = strlen(s);
    if (n == 12) {
        if (s[4] != ':' || !hexn(s, 4, &dom))
            return NULL;
        s += 5;
    } else if (n != 7) {
        return NULL;
    }
    if (!hexn(s, 2, &bus) || s[2] != ':' || !hexn(s + 3, 2, &dev) || s[5] != '.' || !hexn(s + 6, 1, &fn))
        return NULL;
    if (dev > 0x1f || fn > 7)
        return NULL;
    return xasprintf("%04x:%02x:%02x.%x", dom, bus, dev, fn);
}

/* Same set of addresses (each list without duplicates)? */
static bool same_set(const strv_t *a, const strv_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!strv_contains(b, a->v[i]))
            return false;
    return true;
}

static char *join(const strv_t *l, const char *sep)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            buf_puts(&b, sep);
        buf_puts(&b, l->v[i]);
    }
    return buf_steal(&b);
}

/* The VM's live config as the probe reads it, and its raw text. */
typedef struct {
    char *text;
    size_t len;
    vm_t vm;
} conf_t;

static int conf_read(const root_t *root, const char *vmid, const strv_t *present, conf_t *c)
{
    memset(c, 0, sizeof(*c));
    char *rel = xasprintf("%s/%s.conf", PVE_CONF_DIR, vmid);
    int rc = root_read(root, rel, ROOT_READ_MAX, &c->text, &c->len);
    free(rel);
    if (rc < 0)
        return rc;
    errs_t errs = ERRS_INIT;
    /* Damage elsewhere in the file is the probe's to report; an unreadable
     * hostpci entry still holds its index here. */
    pve_conf_parse(c->text, c->len, vmid, NULL, present, &c->vm, &errs);
    errs_free(&errs);
    return 0;
}

static void conf_free(conf_t *c)
{
    free(c->text);
    vm_clear(&c->vm);
    memset(c, 0, sizeof(*c));
}

/* The live entry (not a mapping) passing through exactly addrs, or NULL. */
static const hostpci_t *conf_find(const conf_t *c, const strv_t *addrs)
{
    for (size_t i = 0; i < c->vm.n_hostpci; i++) {
        const hostpci_t *h = &c->vm.hostpci[i];
        if (!h->mapping && same_set(&h->addresses, addrs))
            return h;
    }
    return NULL;
}

static bool index_taken(const conf_t *c, unsigned idx)
{
    for (size_t i = 0; i < c->vm.n_hostpci; i++)
        if (c->vm.hostpci[i].index == (int)idx)
            return true;
    /* A pending change to that index would clash when it is applied. */
    char key[16];
    snprintf(key, sizeof(key), "hostpci%u", idx);
    return pve_edit_has_key(c->text, c->len, "PENDING", key);
}

static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static bool edit(const root_t *root, runner_t *runner, const Pcifleet__VmDeviceEdit *e, Pcifleet__StepResult *out)
{
    const char *vmid = e->vm_id;
    if (!e->step_id || !*e->step_id) {
        result(out, FAILED, "the step has no step_id, so a repeat could not be recognized; nothing was run");
        return false;
    }
    if (!valid_vmid(vmid)) {
        result(out, FAILED, "'%.40s' is not a Proxmox VMID (100 to 999999999); nothing was run", vmid ? vmid : "");
        return false;
    }
    if (e->n_addresses == 0) {
        result(out, FAILED, "the step names no PCI address; nothing was run");
        return false;
    }
    if (e->n_addresses > PVE_MAX_HOSTPCI) {
        result(out, FAILED, "the step names %zu addresses; one hostpci entry takes at most %d here; nothing was run",
               e->n_addresses, PVE_MAX_HOSTPCI);
        return false;
    }
    strv_t addrs = STRV_INIT;
    for (size_t i = 0; i < e->n_addresses; i++) {
        char *a = address_norm(e->addresses[i] ? e->addresses[i] : "");
        if (!a) {
            result(out, FAILED, "'%.40s' is not a PCI address (DDDD:BB:DD.F); nothing was run",
                   e->addresses[i] ? e->addresses[i] : "");
            strv_free(&addrs);
            return false;
        }
        strv_add_unique(&addrs, a); /* a repeated address means the same entry */
        free(a);
    }

    strv_t present = STRV_INIT;
    bool have_present = root_list(root, PCI_DEVICES, &present) == 0 && present.n > 0;
    conf_t c;
    int rc = conf_read(root, vmid, have_present ? &present : NULL, &c);
    char *list = join(&addrs, ";");
    bool ran = false;
    if (rc == -ENOENT) {
        result(out, FAILED, "VM %s has no config on this node (/%s/%s.conf); nothing was run", vmid, PVE_CONF_DIR,
               vmid);
        goto done;
    }
    if (rc < 0) {
        result(out, FAILED, "cannot read /%s/%s.conf: %s; nothing was run", PVE_CONF_DIR, vmid, strerror(-rc));
        goto done;
    }

    const hostpci_t *have = conf_find(&c, &addrs);
    char key[32], opt[40];
    char *value = NULL;
    unsigned idx = 0;
    if (!e->remove) {
        if (have) {
            out->index = (uint32_t)have->index;
            result(out, UNCHANGED, "VM %s already passes through %s as hostpci%d%s; nothing was run", vmid, list,
                   have->index,
                   have->pcie != e->pcie ? (have->pcie ? " (with pcie=1, which the step did not ask for)"
                                                       : " (without the pcie=1 the step asked for)")
                                         : "");
            goto done;
        }
        if (e->index < PVE_MAX_HOSTPCI && !index_taken(&c, e->index)) {
            idx = e->index;
        } else {
            for (idx = 0; idx < PVE_MAX_HOSTPCI && index_taken(&c, idx); idx++)
                ;
            if (idx == PVE_MAX_HOSTPCI) {
                result(out, FAILED, "VM %s uses every hostpci index (0 to 15); nothing was run", vmid);
                goto done;
            }
        }
        value = xasprintf("%s%s", list, e->pcie ? ",pcie=1" : "");
        snprintf(opt, sizeof(opt), "--hostpci%u", idx);
    } else {
        if (!have) {
            result(out, UNCHANGED, "no hostpci entry of VM %s holds exactly %s; nothing was run", vmid, list);
            goto done;
        }
        idx = (unsigned)have->index;
        value = xasprintf("hostpci%u", idx);
        snprintf(opt, sizeof(opt), "--delete");
    }
    snprintf(key, sizeof(key), "hostpci%u", idx);
    out->index = idx;

    const char *argv[] = {"qm", "set", vmid, opt, value, NULL};
    char *line = runner_command_line(argv);
    free(out->command != protobuf_c_empty_string ? out->command : NULL);
    out->command = wire_text_dup(line, DETAIL_MAX);
    runner_result_t res = RUNNER_RESULT_INIT;
    if (!runner) {
        result(out, FAILED, "this agent has no command runner; nothing was run");
        free(line);
        free(value);
        goto done;
    }
    int rr = runner_run(runner, argv, &res);
    ran = rr == 0;
    trim_end(res.output);
    if (rr < 0) {
        result(out, FAILED, "could not run `%s`: %s", line, res.output);
    } else if (res.timed_out) {
        result(out, FAILED, "`%s` did not finish in time and was killed: %s", line, res.output);
    } else if (res.status != 0) {
        result(out, FAILED, "`%s` exited with status %d: %s%s", line, res.status,
               *res.output ? res.output : "(no output)", res.truncated ? " [output cut]" : "");
    } else {
        /* Read back what qm wrote: the controller's claim must match the
         * config, and a running VM's change lands in [PENDING]. */
        conf_t after;
        bool shows = false;
        if (conf_read(root, vmid, have_present ? &present : NULL, &after) == 0) {
            const hostpci_t *h = conf_find(&after, &addrs);
            shows = e->remove ? !(h && h->index == (int)idx) : (h && h->index == (int)idx);
            conf_free(&after);
        }
        const char *note = shows ? "" : " (but the live config does not show it yet: a running VM takes it as a "
                                        "pending change, applied at its next start)";
        if (e->remove)
            result(out, DONE, "removed hostpci%u (%s) from VM %s%s", idx, list, vmid, note);
        else
            result(out, DONE, "added hostpci%u: %s to VM %s%s", idx, value, vmid, note);
    }
    runner_result_clear(&res);
    free(line);
    free(value);
done:
    free(list);
    conf_free(&c);
    strv_free(&present);
    strv_free(&addrs);
    return ran;
}

bool vmedit_apply(const root_t *root, runner_t *runner, const Pcifleet__VmDeviceEdit *e,
                  const vmedit_policy_t *policy, Pcifleet__StepResult *out)
{
    pcifleet__step_result__init(out);
    out->step_id = xstrdup(e->step_id ? e->step_id : "");
    out->detail = xstrdup("");
    out->command = xstrdup("");
    out->index = e->index;
    if (!policy || !policy->allow_vm_edits) {
        result(out, REFUSED, "%s",
               policy && policy->refuse_reason
                   ? policy->refuse_reason
                   : "this agent's policy does not allow VM config edits (allow-vm-edits = false or --no-vm-edits)");
        return false;
    }
    return edit(root, runner, e, out);
}

bool vmedit_handle(stepmem_t *mem, const root_t *root, runner_t *runner, const Pcifleet__VmDeviceEdit *e,
                   const vmedit_policy_t *policy, Pcifleet__StepResult *out, bool *repeated)
{
    const Pcifleet__StepResult *seen = mem ? stepmem_find(mem, e->step_id) : NULL;
    *repeated = seen != NULL;
    if (seen) {
        step_result_copy(out, seen);
        return false;
    }
    bool ran = vmedit_apply(root, runner, e, policy, out);
    if (mem)
        stepmem_put(mem, out);
    return ran;
}
