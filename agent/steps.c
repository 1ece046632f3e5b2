/* steps — carrying out SetupSteps and planning them (see steps.h). */
#include "steps.h"

#include "atomic.h"
#include "buf.h"
#include "kargs_edit.h"
#include "root.h"
#include "stepmem.h"
#include "udiff.h"
#include "wire.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A detail may quote a command's output: keep it inside the wire's limits. */
#define DETAIL_MAX 4096u
#define DIFF_MAX (256u * 1024)
#define BOOT_ID "proc/sys/kernel/random/boot_id"
#define STATE_DEFAULT "var/lib/pcifleet"
#define INDEX_NAME "backups"

typedef Pcifleet__StepResult__Outcome outcome_t;
#define DONE PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE
#define UNCHANGED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED
#define REFUSED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED
#define FAILED PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED

#define K(x) PCIFLEET__SETUP_STEP__KIND__KIND_##x

static void set_str(char **field, const char *s, size_t max)
{
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = wire_text_dup(s, max);
}

static void __attribute__((format(printf, 4, 5)))
result(Pcifleet__StepResult *out, const Pcifleet__SetupStep *s, outcome_t o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_t b = BUF_INIT;
    buf_reset(&b);
    if (s->dry_run)
        buf_puts(&b, "dry run: ");
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    set_str(&out->detail, b.p, DETAIL_MAX);
    buf_free(&b);
    out->outcome = o;
}

static void add_backup(Pcifleet__StepResult *out, const char *path)
{
    out->backups = xrealloc(out->backups, (out->n_backups + 1) * sizeof(char *));
    out->backups[out->n_backups++] = xasprintf("/%s", path);
}

/* Step ids become part of file names: keep them to a safe alphabet. */
static char *safe_id(const char *id)
{
    char *s = xstrndup(id, strnlen(id, 64)); /* xstrndup copies exactly n bytes */
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            *p = '_';
    return s;
}

static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static int mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                rc = -errno;
            *q = c;
            if (!c || rc < 0)
                break;
        }
    }
    free(p);
    return rc;
}

/* ---- the backups index ---- */

typedef struct {
    char *step, *file, *backup; /* backup "-": the step created the file */
} entry_t;

typedef struct {
    root_t *dir; /* the state folder as a root of its own */
    entry_t *v;
    size_t n;
} index_t;

static void index_free(index_t *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->v[i].step);
        free(ix->v[i].file);
        free(ix->v[i].backup);
    }
    free(ix->v);
    root_destroy(&ix->dir);
    memset(ix, 0, sizeof(*ix));
}

static int index_load(const char *root, const step_policy_t *policy, index_t *ix, char **err)
{
    memset(ix, 0, sizeof(*ix));
    char *dir = policy && policy->state_dir ? xstrdup(policy->state_dir)
                                            : xasprintf("%s/%s", strcmp(root, "/") ? root : "", STATE_DEFAULT);
    int rc = mkdir_p(dir);
    if (rc == 0)
        rc = root_new(dir, &ix->dir);
    if (rc < 0) {
        *err = xasprintf("cannot use the state folder %s: %s", dir, strerror(-rc));
        free(dir);
        return rc;
    }
    free(dir);
    char *raw = NULL, *text;
    size_t len = 0;
    rc = root_read(ix->dir, INDEX_NAME, ROOT_READ_MAX, &raw, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        *err = xasprintf("cannot read the backups index: %s", strerror(-rc));
        return rc;
    }
    text = xstrndup(raw ? raw : "", len); /* an empty index may come back unterminated */
    free(raw);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2)
            continue; /* a torn last line: the edit it names was not made yet */
        *t1 = *t2 = '\0';
        ix->v = xrealloc(ix->v, (ix->n + 1) * sizeof(*ix->v));
        ix->v[ix->n++] = (entry_t){xstrdup(line), xstrdup(t1 + 1), xstrdup(t2 + 1)};
    }
    free(text);
    return 0;
}

static int index_save(index_t *ix, char **err)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    for (size_t i = 0; i < ix->n; i++)
        buf_printf(&b, "%s\t%s\t%s\n", ix->v[i].step, ix->v[i].file, ix->v[i].backup);
    int rc = atomic_replace(ix->dir, INDEX_NAME, b.p, b.len, err);
    buf_free(&b);
    return rc;
}

/* ---- commands ---- */

/* Runs argv (or, dry, only names it). Returns whether it ran. */
static bool run_command(runner_t *r, const char *const *argv, const Pcifleet__SetupStep *s, const char *what,
                        Pcifleet__StepResult *out)
{
    char *line = runner_command_line(argv);
    set_str(&out->command, line, DETAIL_MAX);
    bool ran = false;
    if (!r) {
        result(out, s, REFUSED,
               "no command runner fits this root (a fixture root without --simulate would run `%s` on this "
               "host); nothing was run",
               line);
    } else if (s->dry_run) {
        result(out, s, DONE, "would run `%s` (%s)", line, what);
    } else {
        runner_result_t res = RUNNER_RESULT_INIT;
        int rr = runner_run(r, argv, &res);
        ran = rr == 0;
        trim_end(res.output);
        if (rr < 0)
            result(out, s, FAILED, "could not run `%s`: %s", line, res.output);
        else if (res.timed_out)
            result(out, s, FAILED, "`%s` did not finish in time and was killed: %s", line, res.output);
        else if (res.status != 0)
            result(out, s, FAILED, "`%s` exited with status %d: %s%s", line, res.status,
                   *res.output ? res.output : "(no output)", res.truncated ? " [output cut]" : "");
        else
            result(out, s, DONE, "ran `%s` (%s)%s%s", line, what, *res.output ? ": " : "", res.output);
        runner_result_clear(&res);
    }
    free(line);
    return ran;
}

/* ---- file edits ---- */

/* Writes new text to rel after keeping the old one (once per step and file)
 * and recording it. dry: only the diff. Returns 0 or negative errno with
 * the result filled. */
static int write_edit(const root_t *rt, const char *root, const char *rel, const char *old, size_t old_len,
                      bool existed, const char *text, size_t len, const Pcifleet__SetupStep *s,
                      const step_policy_t *policy, Pcifleet__StepResult *out)
{
    char *an = xasprintf("a/%s", rel), *bn = xasprintf("b/%s", rel);
    char *d = udiff(existed ? an : "/dev/null", old, old_len, bn, text, len);
    set_str(&out->diff, d, DIFF_MAX);
    free(d);
    free(an);
    free(bn);
    if (s->dry_run)
        return 0;
    char *err = NULL, *sid = safe_id(s->step_id);
    index_t ix;
    int rc = index_load(root, policy, &ix, &err);
    char *bak = existed ? xasprintf("%s.pcifleet-%s.bak", rel, sid) : xstrdup("-");
    bool recorded = false;
    for (size_t i = 0; rc == 0 && i < ix.n; i++)
        if (strcmp(ix.v[i].step, sid) == 0 && strcmp(ix.v[i].file, rel) == 0)
            recorded = true;
    if (rc == 0 && !recorded) {
        /* The original first, then its record, then the edit: a crash
         * between any two leaves something restore can use. */
        if (existed && !root_exists(rt, bak))
            rc = atomic_replace(rt, bak, old, old_len, &err);
        if (rc == 0) {
            ix.v = xrealloc(ix.v, (ix.n + 1) * sizeof(*ix.v));
            ix.v[ix.n++] = (entry_t){xstrdup(sid), xstrdup(rel), xstrdup(bak)};
            rc = index_save(&ix, &err);
        }
    }
    if (rc == 0) {
        char *dir = root_path(rt, rel);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        rc = mkdir_p(dir);
        free(dir);
        if (rc < 0)
            err = xasprintf("cannot create the folder of /%s: %s", rel, strerror(-rc));
    }
    if (rc == 0)
        rc = atomic_replace(rt, rel, text, len, &err);
    if (rc == 0 && existed)
        add_backup(out, bak);
    if (rc < 0)
        result(out, s, FAILED, "/%s was not changed: %s", rel, err ? err : strerror(-rc));
    free(err);
    free(bak);
    free(sid);
    index_free(&ix);
    return rc;
}

static int read_file(const root_t *rt, const char *rel, char **text, size_t *len, bool *existed)
{
    *existed = true;
    int rc = root_read(rt, rel, ROOT_READ_MAX, text, len);
    if (rc == -ENOENT) {
        *existed = false;
        *text = xstrdup("");
        *len = 0;
        return 0;
    }
    return rc;
}

static char *join_args(char *const *v, size_t n)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "%s%s", i ? " " : "", v[i]);
    return buf_steal(&b);
}

static bool set_kernel_args(const root_t *rt, const char *root, const Pcifleet__SetupStep *s,
                            const step_policy_t *policy, Pcifleet__StepResult *out)
{
    if (s->n_add_args == 0 && s->n_remove_args == 0) {
        result(out, s, FAILED, "the step names no kernel argument to add or remove; nothing was changed");
        return false;
    }
    boot_info_t boot;
    errs_t errs = ERRS_INIT;
    boot_probe(rt, &boot, &errs);
    errs_free(&errs);
    bool changed_node = false;
    const char *rel = boot.loader == BOOT_GRUB ? "etc/default/grub"
                      : boot.loader == BOOT_SYSTEMD_BOOT ? "etc/kernel/cmdline"
                                                         : NULL;
    const char *var = s->grub_variable && *s->grub_variable ? s->grub_variable : "GRUB_CMDLINE_LINUX_DEFAULT";
    if (!rel) {
        result(out, s, FAILED, "pcifleet cannot tell which boot loader this node uses, so not where its kernel "
                               "command line lives; nothing was changed");
        goto done;
    }
    if (boot.loader == BOOT_GRUB && boot.grub_dropins.n > 0) {
        char *list = strv_join(&boot.grub_dropins, ", ");
        result(out, s, FAILED,
               "%s set the GRUB command line after /etc/default/grub, so an edit there would not count; edit "
               "them by hand; nothing was changed",
               list);
        free(list);
        goto done;
    }
    char *text = NULL, *edited = NULL, *err = NULL;
    size_t len = 0, elen = 0;
    bool existed, changed = false;
    int rc = read_file(rt, rel, &text, &len, &existed);
    if (rc < 0) {
        result(out, s, FAILED, "cannot read /%s: %s; nothing was changed", rel, strerror(-rc));
        goto done;
    }
    kargs_change_t ch = {(const char *const *)s->add_args, s->n_add_args, (const char *const *)s->remove_args,
                         s->n_remove_args};
    if (boot.loader == BOOT_GRUB)
        rc = kargs_edit_grub(text, len, var, &ch, &edited, &elen, &changed, &err);
    else
        rc = kargs_edit_cmdline_file(text, len, &ch, &edited, &elen, &changed, &err);
    char *adds = join_args(s->add_args, s->n_add_args), *rms = join_args(s->remove_args, s->n_remove_args);
    char *where = boot.loader == BOOT_GRUB ? xasprintf("%s in /%s", var, rel) : xasprintf("/%s", rel);
    if (rc < 0) {
        result(out, s, FAILED, "/%s cannot be edited safely: %s; nothing was changed", rel, err);
    } else if (!changed) {
        result(out, s, UNCHANGED, "%s already has %s%s%s%s; nothing was changed", where, *adds ? adds : "-",
               *rms ? " and none of " : "", rms, *rms ? "" : "");
    } else if (write_edit(rt, root, rel, text, len, existed, edited, elen, s, policy, out) == 0) {
        changed_node = !s->dry_run;
        result(out, s, DONE, "%s %s%s%s%s%s: the next boot uses it after %s", s->dry_run ? "would edit" : "edited",
               where, *adds ? ", adding " : "", adds, *rms ? ", removing " : "", rms,
               boot.refresh_command ? boot.refresh_command : "the boot refresh");
    }
    free(where);
    free(adds);
    free(rms);
    free(text);
    free(edited);
    free(err);
done:
    boot_info_free(&boot);
    return changed_node;
}

static bool ensure_modules(const root_t *rt, const char *root, const Pcifleet__SetupStep *s,
                           const step_policy_t *policy, Pcifleet__StepResult *out)
{
    vfio_info_t vfio;
    errs_t errs = ERRS_INIT;
    vfio_probe(rt, NULL, &vfio, &errs);
    errs_free(&errs);
    const char *const *mods = (const char *const *)s->modules;
    size_t n = s->n_modules;
    if (n == 0) {
        mods = (const char *const *)vfio.required.v;
        n = vfio.required.n;
    }
    /* Modules other files configure count, ours does not: the editor reads it. */
    strv_t elsewhere = STRV_INIT;
    strv_t cfg = STRV_INIT;
    for (size_t i = 0; i < vfio.sources.n; i++) {
        if (strcmp(vfio.sources.v[i] + 1, STEPS_MODULES_FILE) == 0)
            continue;
        char *t = NULL;
        size_t l;
        if (root_read(rt, vfio.sources.v[i], ROOT_READ_MAX, &t, &l) == 0)
            modules_list_parse(t, l, &cfg);
        free(t);
    }
    for (size_t i = 0; i < cfg.n; i++)
        strv_add_unique(&elsewhere, cfg.v[i]);
    strv_free(&cfg);
    char *text = NULL, *edited = NULL, *err = NULL;
    size_t len = 0, elen = 0;
    bool existed, changed = false, changed_node = false;
    int rc = read_file(rt, STEPS_MODULES_FILE, &text, &len, &existed);
    if (rc == 0)
        rc = modules_conf_edit(text, len, mods, n, &elsewhere, &edited, &elen, &changed, &err);
    else
        err = xstrdup(strerror(-rc));
    char *list = join_args((char *const *)mods, n);
    if (rc < 0)
        result(out, s, FAILED, "/%s was not changed: %s", STEPS_MODULES_FILE, err);
    else if (!changed)
        result(out, s, UNCHANGED, "%s already configured to load at boot; nothing was changed", list);
    else if (write_edit(rt, root, STEPS_MODULES_FILE, text, len, existed, edited, elen, s, policy, out) == 0) {
        changed_node = !s->dry_run;
        result(out, s, DONE, "%s /%s so %s load at boot; refresh the initramfs next",
               s->dry_run ? "would write" : "wrote", STEPS_MODULES_FILE, list);
    }
    free(list);
    free(text);
    free(edited);
    free(err);
    strv_free(&elsewhere);
    vfio_info_free(&vfio);
    return changed_node;
}

static bool restore_backup(const root_t *rt, const char *root, const Pcifleet__SetupStep *s,
                           const step_policy_t *policy, Pcifleet__StepResult *out)
{
    index_t ix;
    char *err = NULL;
    if (index_load(root, policy, &ix, &err) < 0) {
        result(out, s, FAILED, "%s; nothing was restored", err);
        free(err);
        index_free(&ix);
        return false;
    }
    char *want = s->restore_of && *s->restore_of ? safe_id(s->restore_of) : NULL;
    buf_t diff = BUF_INIT, files = BUF_INIT;
    buf_reset(&diff);
    buf_reset(&files);
    size_t done = 0;
    bool failed = false;
    for (size_t k = ix.n; k-- > 0 && !failed;) {
        entry_t *e = &ix.v[k];
        if (want && strcmp(e->step, want) != 0)
            continue;
        char *cur = NULL, *old = NULL;
        size_t cl = 0, ol = 0;
        bool cur_exists;
        read_file(rt, e->file, &cur, &cl, &cur_exists);
        bool created = strcmp(e->backup, "-") == 0;
        int rc = created ? 0 : root_read(rt, e->backup, ROOT_READ_MAX, &old, &ol);
        if (rc < 0) {
            result(out, s, FAILED, "cannot read the backup /%s: %s; the files before it in this answer were "
                                   "restored", e->backup, strerror(-rc));
            failed = true;
        } else {
            char *an = xasprintf("a/%s", e->file), *bn = xasprintf("b/%s", e->file);
            char *d = udiff(an, cur, cl, created ? "/dev/null" : bn, created ? "" : old, ol);
            buf_puts(&diff, d);
            free(d);
            free(an);
            free(bn);
            buf_printf(&files, "%s/%s", files.len ? ", " : "", e->file);
            if (!s->dry_run) {
                if (created) {
                    char *p = root_path(rt, e->file);
                    if (unlink(p) < 0 && errno != ENOENT)
                        rc = -errno, err = xasprintf("cannot remove /%s: %s", e->file, strerror(errno));
                    free(p);
                } else {
                    rc = atomic_replace(rt, e->file, old, ol, &err);
                    if (rc == 0) {
                        char *p = root_path(rt, e->backup);
                        unlink(p); /* restored: the backup has done its work */
                        free(p);
                    }
                }
                if (rc < 0) {
                    result(out, s, FAILED, "%s", err);
                    failed = true;
                } else {
                    free(e->step);
                    e->step = xstrdup(""); /* dropped below */
                }
            }
            done++;
        }
        free(cur);
        free(old);
    }
    if (!s->dry_run && done) {
        size_t w = 0;
        for (size_t i = 0; i < ix.n; i++) {
            if (*ix.v[i].step) {
                ix.v[w++] = ix.v[i];
            } else {
                free(ix.v[i].step);
                free(ix.v[i].file);
                free(ix.v[i].backup);
            }
        }
        ix.n = w;
        free(err);
        err = NULL;
        if (index_save(&ix, &err) < 0 && !failed) {
            result(out, s, FAILED, "restored %s but could not update the backups index: %s", files.p, err);
            failed = true;
        }
    }
    set_str(&out->diff, diff.p, DIFF_MAX);
    if (!failed) {
        if (!done)
            result(out, s, UNCHANGED, "no backups are recorded for %s%s; nothing was restored",
                   want ? "step " : "any step", want ? s->restore_of : "");
        else
            result(out, s, DONE, "%s %s; run the boot refresh (and the initramfs refresh for modules) so the next "
                                 "boot uses them",
                   s->dry_run ? "would restore" : "restored", files.p);
    }
    free(err);
    free(want);
    buf_free(&diff);
    buf_free(&files);
    index_free(&ix);
    return !s->dry_run && done > 0;
}

static bool refresh_boot(const root_t *rt, runner_t *r, const Pcifleet__SetupStep *s, Pcifleet__StepResult *out)
{
    boot_info_t boot;
    errs_t errs = ERRS_INIT;
    boot_probe(rt, &boot, &errs);
    errs_free(&errs);
    bool ran = false;
    if (!boot.refresh_command) {
        result(out, s, FAILED, "pcifleet cannot tell which boot loader this node uses, so not how to refresh it; "
                               "nothing was run");
    } else {
        /* The refresh commands are fixed strings of words (boot.h). */
        char *words = xstrdup(boot.refresh_command);
        const char *argv[8];
        size_t n = 0;
        for (char *save = NULL, *w = strtok_r(words, " ", &save); w && n < 7; w = strtok_r(NULL, " ", &save))
            argv[n++] = w;
        argv[n] = NULL;
        char *what = xasprintf("%s reads the new kernel command line", boot.loader_name);
        ran = run_command(r, argv, s, what, out);
        free(what);
        free(words);
    }
    boot_info_free(&boot);
    return ran;
}

static bool verify(const char *root, const Pcifleet__SetupStep *s, Pcifleet__StepResult *out)
{
    scan_opts_t so = {root, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    if (inventory_scan(&so, &inv, &err) < 0) {
        result(out, s, FAILED, "cannot scan the node: %s", err);
        free(err);
        return false;
    }
    const iommu_state_t *st = &inv->iommu;
    set_str(&out->verdict, verdict_name(st->verdict), 64);
    buf_t why = BUF_INIT;
    buf_reset(&why);
    if (st->verdict != VERDICT_READY) {
        buf_printf(&why, "the verdict is %s", verdict_name(st->verdict));
        for (size_t i = 0; i < st->reasons.n; i++)
            buf_printf(&why, "%s%s", i ? "; " : ": ", st->reasons.v[i]);
    }
    if (st->groups <= 0)
        buf_printf(&why, "%sno IOMMU groups are present", why.len ? "; " : "");
    if (st->interrupt_remapping != 1)
        buf_printf(&why, "%sinterrupt remapping is %s", why.len ? "; " : "",
                   st->interrupt_remapping == 0 ? "off" : "not reported");
    if (why.len)
        result(out, s, FAILED, "not ready: %s", why.p);
    else
        result(out, s, DONE, "ready: %ld IOMMU groups, interrupt remapping on", st->groups);
    buf_free(&why);
    inventory_destroy(&inv);
    return false;
}

static void read_boot_id(const root_t *rt, Pcifleet__StepResult *out)
{
    char *id = NULL;
    if (rt && root_read_line(rt, BOOT_ID, &id) == 0)
        set_str(&out->boot_id, id, 64);
    free(id);
}

bool steps_apply(const char *root, runner_t *r, const Pcifleet__SetupStep *s, const step_policy_t *policy,
                 Pcifleet__StepResult *out)
{
    pcifleet__step_result__init(out);
    out->step_id = xstrdup(s->step_id ? s->step_id : "");
    out->detail = xstrdup("");
    out->command = xstrdup("");
    out->diff = xstrdup("");
    out->boot_id = xstrdup("");
    out->verdict = xstrdup("");
    out->outcome = FAILED;
    if (!root || !*root)
        root = "/";
    root_t *rt = NULL;
    int rc = root_new(root, &rt);
    if (rc < 0) {
        result(out, s, FAILED, "the root %s cannot be used: %s", root, strerror(-rc));
        return false;
    }
    read_boot_id(rt, out);
    bool changed = false;
    if (!s->step_id || !*s->step_id) {
        result(out, s, FAILED, "the step has no step_id, so a repeat could not be recognized; nothing was done");
        root_destroy(&rt);
        return false;
    }
    switch (s->kind) {
    case K(SET_KERNEL_ARGS):
        changed = set_kernel_args(rt, root, s, policy, out);
        break;
    case K(ENSURE_MODULES):
        changed = ensure_modules(rt, root, s, policy, out);
        break;
    case K(REFRESH_BOOT):
        changed = refresh_boot(rt, r, s, out);
        break;
    case K(REFRESH_INITRAMFS): {
        const char *argv[] = {"update-initramfs", "-u", "-k", "all", NULL};
        changed = run_command(r, argv, s, "the initramfs gets the configured modules", out);
        break;
    }
    case K(REBOOT): {
        const char *argv[] = {"systemctl", "reboot", NULL};
        if (!policy || !policy->allow_reboot) {
            char *line = runner_command_line(argv);
            set_str(&out->command, line, DETAIL_MAX);
            free(line);
            result(out, s, REFUSED, "this agent's policy does not allow reboots (allow-reboot is off; "
                                    "--allow-reboot or allow-reboot = true in its config): reboot the node yourself");
        } else {
            changed = run_command(r, argv, s, "the reboot was started", out);
        }
        break;
    }
    case K(VERIFY):
        changed = verify(root, s, out);
        if (out->outcome == DONE || out->outcome == FAILED)
            read_boot_id(rt, out);
        break;
    case K(RESTORE_BACKUP):
        changed = restore_backup(rt, root, s, policy, out);
        break;
    default:
        result(out, s, FAILED, "unknown step kind %d: this agent carries out kinds 1 to 7; nothing was done",
               (int)s->kind);
        break;
    }
    root_destroy(&rt);
    return changed;
}

void steps_result_clear(Pcifleet__StepResult *out)
{
    step_result_clear(out);
}

const char *steps_kind_name(Pcifleet__SetupStep__Kind k)
{
    switch (k) {
    case K(SET_KERNEL_ARGS): return "set-kernel-args";
    case K(ENSURE_MODULES): return "ensure-modules";
    case K(REFRESH_BOOT): return "refresh-boot";
    case K(REFRESH_INITRAMFS): return "refresh-initramfs";
    case K(REBOOT): return "reboot";
    case K(VERIFY): return "verify";
    case K(RESTORE_BACKUP): return "restore-backup";
    default: return "unspecified";
    }
}

char *steps_describe(const Pcifleet__SetupStep *s)
{
    buf_t b = BUF_INIT;
    buf_reset(&b);
    buf_puts(&b, steps_kind_name(s->kind));
    if (s->kind == K(SET_KERNEL_ARGS)) {
        for (size_t i = 0; i < s->n_add_args; i++)
            buf_printf(&b, "%s%s", i ? " " : ": add ", s->add_args[i]);
        for (size_t i = 0; i < s->n_remove_args; i++)
            buf_printf(&b, "%s%s", i ? " " : (s->n_add_args ? "; remove " : ": remove "), s->remove_args[i]);
        if (s->grub_variable && *s->grub_variable)
            buf_printf(&b, " (%s)", s->grub_variable);
    } else if (s->kind == K(ENSURE_MODULES)) {
        for (size_t i = 0; i < s->n_modules; i++)
            buf_printf(&b, "%s%s", i ? " " : ": ", s->modules[i]);
    } else if (s->kind == K(RESTORE_BACKUP)) {
        buf_printf(&b, ": %s", s->restore_of && *s->restore_of ? s->restore_of : "every step");
    }
    return buf_steal(&b);
}

/* ---- planning ---- */

static char **strs(const strv_t *l)
{
    char **v = xcalloc(l->n + 1, sizeof(char *));
    for (size_t i = 0; i < l->n; i++)
        v[i] = xstrdup(l->v[i]);
    return v;
}

static Pcifleet__SetupStep *new_step(Pcifleet__SetupStep__Kind kind, const char *prefix, size_t idx)
{
    Pcifleet__SetupStep *s = xmalloc(sizeof(*s));
    pcifleet__setup_step__init(s);
    s->kind = kind;
    s->step_id = xasprintf("%s-%zu", prefix && *prefix ? prefix : "step", idx);
    s->grub_variable = xstrdup("");
    s->restore_of = xstrdup("");
    return s;
}

static bool cfg_has(const kargs_t *a, const char *key, const char *opt)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].key, key) == 0 && karg_has_option(&a->v[i], opt))
            return true;
    return false;
}

/* The last value of key, for comparing running and configured lines. */
static const char *last_value(const kargs_t *a, const char *key)
{
    const karg_t *k = kargs_find_last(a, key);
    return k ? (k->value ? k->value : "") : NULL;
}

static bool differs(const kargs_t *run, const kargs_t *cfg, const char *key)
{
    const char *x = last_value(run, key), *y = last_value(cfg, key);
    return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
}

int steps_plan(const inventory_t *inv, bool pt, const char *prefix, Pcifleet__SetupStep ***out, size_t *n,
               char **why)
{
    *out = NULL;
    *n = 0;
    *why = NULL;
    const iommu_state_t *st = &inv->iommu;
    if (st->verdict == VERDICT_READY) {
        *why = xstrdup("the node is already ready for passthrough");
        return 0;
    }
    if (st->verdict == VERDICT_NEEDS_FIRMWARE || st->verdict == VERDICT_UNSUPPORTED) {
        buf_t b = BUF_INIT;
        buf_printf(&b, "%s: pcifleet cannot change firmware settings", verdict_name(st->verdict));
        for (size_t i = 0; i < st->reasons.n; i++)
            buf_printf(&b, "%s%s", i ? "; " : ": ", st->reasons.v[i]);
        *why = buf_steal(&b);
        return 0;
    }
    const boot_info_t *boot = &inv->boot;
    const kargs_t *cfg = &boot->configured_args;
    bool intel = strcmp(inv->sys.cpu_vendor, "intel") == 0 || (st->firmware && strcmp(st->firmware, "DMAR") == 0);
    strv_t add = STRV_INIT, rm = STRV_INIT;
    if (intel && (!st->enabled || cfg_has(cfg, "intel_iommu", "off")))
        strv_add(&add, "intel_iommu=on");
    if (!intel && cfg_has(cfg, "amd_iommu", "off"))
        strv_add(&rm, "amd_iommu=off");
    if (pt)
        strv_add(&add, "iommu=pt"); /* replaces an iommu=off too (kargs_edit.h) */
    else if (cfg_has(cfg, "iommu", "off"))
        strv_add(&rm, "iommu=off");

    Pcifleet__SetupStep **v = xcalloc(8, sizeof(*v));
    size_t k = 0;
    bool kargs = false;
    if (add.n || rm.n) {
        if (boot->loader == BOOT_UNKNOWN) {
            *why = xstrdup("kernel arguments are needed but pcifleet cannot tell which boot loader this node uses");
            strv_free(&add);
            strv_free(&rm);
            free(v);
            return 0;
        }
        /* Only when the edit would change the file: a node whose file is
         * already right but not yet booted gets refresh and reboot only. */
        root_t *rt = NULL;
        int rc = root_new(inv->root ? inv->root : "/", &rt);
        if (rc < 0) {
            *why = xasprintf("cannot read the root: %s", strerror(-rc));
            strv_free(&add);
            strv_free(&rm);
            free(v);
            return rc;
        }
        const char *rel = boot->loader == BOOT_GRUB ? "etc/default/grub" : "etc/kernel/cmdline";
        char *text = NULL, *edited = NULL, *err = NULL;
        size_t len = 0, elen;
        bool existed, changed = true;
        if (read_file(rt, rel, &text, &len, &existed) == 0) {
            kargs_change_t ch = {(const char *const *)add.v, add.n, (const char *const *)rm.v, rm.n};
            int erc = boot->loader == BOOT_GRUB ? kargs_edit_grub(text, len, NULL, &ch, &edited, &elen, &changed, &err)
                                                : kargs_edit_cmdline_file(text, len, &ch, &edited, &elen, &changed, &err);
            if (erc < 0)
                changed = true; /* the step will say why it cannot */
        }
        free(text);
        free(edited);
        free(err);
        root_destroy(&rt);
        if (changed) {
            Pcifleet__SetupStep *s = v[k] = new_step(K(SET_KERNEL_ARGS), prefix, k + 1);
            k++;
            s->add_args = strs(&add);
            s->n_add_args = add.n;
            s->remove_args = strs(&rm);
            s->n_remove_args = rm.n;
            kargs = true;
        }
    }
    strv_free(&add);
    strv_free(&rm);
    const kargs_t *run = &st->running_args;
    bool boot_stale = boot->loader != BOOT_UNKNOWN && (differs(run, cfg, "intel_iommu") ||
                                                       differs(run, cfg, "amd_iommu") || differs(run, cfg, "iommu"));
    bool mods = inv->vfio.missing.n > 0;
    if (mods) {
        Pcifleet__SetupStep *s = v[k] = new_step(K(ENSURE_MODULES), prefix, k + 1);
        k++;
        s->modules = strs(&inv->vfio.missing);
        s->n_modules = inv->vfio.missing.n;
    }
    bool unloaded = false;
    for (size_t i = 0; i < inv->vfio.configured.n; i++)
        if (!strv_contains(&inv->vfio.loaded, inv->vfio.configured.v[i]))
            unloaded = true;
    if (kargs || boot_stale) {
        v[k] = new_step(K(REFRESH_BOOT), prefix, k + 1);
        k++;
    }
    if (mods || unloaded) {
        v[k] = new_step(K(REFRESH_INITRAMFS), prefix, k + 1);
        k++;
    }
    if (k > 0 || st->verdict == VERDICT_NEEDS_REBOOT) {
        v[k] = new_step(K(REBOOT), prefix, k + 1);
        k++;
        v[k] = new_step(K(VERIFY), prefix, k + 1);
        k++;
    }
    if (k == 0) {
        free(v);
        v = NULL;
        *why = xasprintf("%s, but pcifleet finds nothing to change", verdict_name(st->verdict));
    }
    *out = v;
    *n = k;
    return 0;
}

void steps_plan_free(Pcifleet__SetupStep ***steps, size_t n)
{
    if (!steps || !*steps)
        return;
    for (size_t i = 0; i < n; i++) {
        Pcifleet__SetupStep *s = (*steps)[i];
        if (!s)
            continue;
        free(s->step_id);
        for (size_t j = 0; j < s->n_add_args; j++)
            free(s->add_args[j]);
        free(s->add_args);
        for (size_t j = 0; j < s->n_remove_args; j++)
            free(s->remove_args[j]);
        free(s->remove_args);
        for (size_t j = 0; j < s->n_modules; j++)
            free(s->modules[j]);
        free(s->modules);
        free(s->grub_variable);
        free(s->restore_of);
        free(s);
    }
    free(*steps);
    *steps = NULL;
}
