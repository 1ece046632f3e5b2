/* pcifleet-agent — inventories one node for PCIe passthrough.
 *
 * Subcommands: scan (print the node's inventory), run (report it to the
 * controller, daemon.h), plan (the IOMMU setup steps this node needs,
 * steps.h) and apply (carry them out here, one at a time, each shown first). Exit status of scan: 0 when a report was produced
 * (read problems are listed inside it), 1 on usage errors, 2 when the root
 * cannot be used at all. Exit status of run: 0 after SIGTERM/SIGINT, 1 on
 * usage or config errors, 2 when it cannot start (root, keys, endpoint). */
#include "config.h"
#include "daemon.h"
#include "inventory.h"
#include "log.h"
#include "privs.h"
#include "runner.h"
#include "stepmem.h"
#include "steps.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Each command keeps only what its work needs (privs.h) before it reads
 * the node; failing to drop is an error, never a reason to go on as is. */
static int drop_to(const char *cmd, privs_level_t level, bool reboot)
{
    char *err = NULL;
    if (privs_restrict(privs_mask(level, reboot), NULL, &err) < 0) {
        fprintf(stderr, "pcifleet-agent %s: %s\n", cmd, err);
        free(err);
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: pcifleet-agent [-V|--version] [-h|--help] COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  scan      inventory this node: IOMMU state and verdict, bootloader, vfio\n"
          "            modules, PCI devices, IOMMU groups, NICs and VMs\n"
          "  run       report this node to the controller and keep reporting (daemon)\n"
          "  plan      the IOMMU setup steps this node needs to become ready\n"
          "  apply     carry out those steps here, showing each one first\n"
          "\n"
          "Run 'pcifleet-agent COMMAND --help' for a command's options.\n",
          f);
}

static void scan_usage(FILE *f)
{
    fputs("usage: pcifleet-agent scan [--root DIR] [--json] [--node NAME] [--pci-ids FILE]\n"
          "                           [--config FILE]\n"
          "\n"
          "Reads the node through DIR (default /) and prints a summary, or with --json\n"
          "the full report the agent sends to the controller.\n"
          "\n"
          "  --root DIR       read the host tree under DIR instead of / (fixtures, tests)\n"
          "  --json           print one JSON document instead of the summary\n"
          "  --node NAME      node name to report (default: DIR/etc/hostname)\n"
          "  --pci-ids FILE   pci.ids file used to name devices (default: libpci's)\n"
          "  --config FILE    the agent's config file (default " AGENT_DEFAULT_CONFIG ", read\n"
          "                   when it exists): its root, node and pci-ids apply here too, so\n"
          "                   scan reports the node as `run` does; options given here win\n"
          "  -h, --help       show this help\n"
          "\n"
          "Exit status: 0 report printed (problems reading the node are listed in it),\n"
          "1 bad usage or config, 2 the root cannot be read at all.\n",
          f);
}

static int cmd_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
        {"node", required_argument, NULL, 'n'}, {"pci-ids", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    scan_opts_t so = {NULL, NULL, NULL};
    const char *config_path = NULL;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': so.root = optarg; break;
        case 'j': as_json = true; break;
        case 'n': so.node = optarg; break;
        case 'i': so.ids_file = optarg; break;
        case 'f': config_path = optarg; break;
        case 'h': scan_usage(stdout); return 0;
        default: scan_usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pcifleet-agent scan: unexpected argument '%s'\n", argv[optind]);
        scan_usage(stderr);
        return 1;
    }
    /* The same file `run` reads (never under --root); the options that mean
     * something to a scan come from it unless given here. */
    config_t file = CONFIG_INIT;
    char *err = NULL;
    if (!config_path && access(AGENT_DEFAULT_CONFIG, F_OK) == 0)
        config_path = AGENT_DEFAULT_CONFIG;
    if (config_path && config_load(config_path, agent_daemon_config_keys, &file, &err) < 0) {
        fprintf(stderr, "pcifleet-agent scan: %s\n", err);
        free(err);
        return 1;
    }
    if (!so.root)
        so.root = config_get(&file, "root");
    if (!so.node)
        so.node = config_get(&file, "node");
    if (!so.ids_file)
        so.ids_file = config_get(&file, "pci-ids");
    if (drop_to("scan", PRIVS_PROBE, false) < 0) {
        config_free(&file);
        return 1;
    }
    inventory_t *inv = NULL;
    int rc = inventory_scan(&so, &inv, &err);
    config_free(&file);
    if (rc < 0) {
        fprintf(stderr, "pcifleet-agent: %s\n", err);
        free(err);
        return 2;
    }
    if (as_json) {
        json_t *j = json_new(2);
        inventory_to_json(inv, j);
        size_t len;
        const char *text = json_text(j, &len);
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        json_destroy(&j);
    } else {
        buf_t b = BUF_INIT;
        inventory_summary(inv, &b);
        fwrite(b.p, 1, b.len, stdout);
        buf_free(&b);
    }
    inventory_destroy(&inv);
    return fflush(stdout) == 0 ? 0 : 1;
}

static void run_usage(FILE *f)
{
    fputs("usage: pcifleet-agent run --controller EP --controller-key FILE --key FILE [--node NAME]\n"
          "                          [--root DIR] [--interval SECONDS] [--rescan SECONDS]\n"
          "                          [--config FILE] [--log-level LEVEL] [--pci-ids FILE]\n"
          "                          [--simulate] [--no-vm-edits] [--allow-reboot] [--allow-steps LIST]\n"
          "                          [--state-dir DIR]\n"
          "\n"
          "Scans the node and reports it to the controller over ZeroMQ with CURVE: hello and\n"
          "the full inventory, then a heartbeat every interval; rescans periodically and sends\n"
          "the full inventory again only when it changed. Reconnects on its own. Runs until\n"
          "SIGTERM or SIGINT. Logs go to stderr.\n"
          "\n"
          "It also carries out the VM config edits the controller sends (pcifleet assign\n"
          "--apply): `qm set VMID --hostpciN ...` or `--delete hostpciN`, after checking the\n"
          "VM's config, and answers each with its result. On this host (--root /) it runs the\n"
          "real qm; with --simulate the node simulator edits the files under --root instead\n"
          "and nothing is executed; with another --root and no --simulate it refuses them.\n"
          "The same holds for the IOMMU setup steps of a rollout (pcifleet rollout start):\n"
          "kernel arguments, modules, boot and initramfs refresh, verify, restore, and a\n"
          "reboot only with --allow-reboot. A step sent again is answered with the result\n"
          "kept from the first time, also after a restart, and nothing runs. With\n"
          "--simulate a reboot boots the fixture tree (docs/simulator.md) and the agent\n"
          "comes back as after a restart, with a new boot id.\n"
          "\n"
          "  --controller EP        the controller's endpoint, e.g. tcp://10.0.0.1:7300\n"
          "  --controller-key FILE  the controller's public key (its controller.key)\n"
          "  --key FILE             this agent's key pair, NAME.key_secret (from pcifleet keygen)\n"
          "  --node NAME            node name to report (default: the host's, ROOT/etc/hostname)\n"
          "  --root DIR             read the host tree under DIR instead of / (fixtures, tests)\n"
          "  --interval SECONDS     heartbeat interval (default 5; fractions allowed, e.g. 0.5)\n"
          "  --rescan SECONDS       rescan period (default 60)\n"
          "  --config FILE          config file (default " AGENT_DEFAULT_CONFIG ", read when it\n"
          "                         exists): \"key = value\" lines, keys are the option names\n"
          "                         above without --; options given here override it\n"
          "  --log-level LEVEL      error, warn, info (default) or debug\n"
          "  --pci-ids FILE         pci.ids file used to name devices (default: libpci's)\n"
          "  --simulate             send every command to the node simulator acting on the\n"
          "                         files under --root (fixtures, tests); refused for --root /\n"
          "                         (config: simulate = true)\n"
          "  --no-vm-edits          refuse the controller's VM config edits, answering why\n"
          "                         (config: allow-vm-edits = false; default true)\n"
          "  --allow-reboot         let the controller's reboot steps through (config:\n"
          "                         allow-reboot = true; default false: refused, and the\n"
          "                         rollout waits for the operator to reboot)\n"
          "  --allow-steps LIST     the setup steps the controller may ask for, comma-separated\n"
          "                         (config: allow-steps; default all: set-kernel-args,\n"
          "                         ensure-modules, refresh-boot, refresh-initramfs, reboot,\n"
          "                         verify, restore-backup); others are answered refused\n"
          "  --state-dir DIR        where step results are kept across restarts (config:\n"
          "                         state-dir; default " AGENT_DEFAULT_STATE_DIR ", or\n"
          "                         ROOT/var/lib/pcifleet for another --root)\n"
          "  -h, --help             show this help\n"
          "\n"
          "Until the controller's operator runs `pcifleet keys accept NAME`, the controller\n"
          "refuses the agent; it says so in its log and keeps trying.\n"
          "\n"
          "Exit status: 0 stopped by a signal, 1 bad usage or config, 2 cannot start.\n",
          f);
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"controller", required_argument, NULL, 'c'}, {"controller-key", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'k'},        {"node", required_argument, NULL, 'n'},
        {"root", required_argument, NULL, 'r'},       {"interval", required_argument, NULL, 'i'},
        {"rescan", required_argument, NULL, 's'},     {"config", required_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},  {"pci-ids", required_argument, NULL, 'p'},
        {"simulate", no_argument, NULL, 'S'},         {"no-vm-edits", no_argument, NULL, 'E'},
        {"allow-reboot", no_argument, NULL, 'R'},     {"state-dir", required_argument, NULL, 'D'},
        {"allow-steps", required_argument, NULL, 'A'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    config_t cli = CONFIG_INIT;
    const char *config_path = NULL;
    int c, idx = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (c == 'h') {
            run_usage(stdout);
            config_free(&cli);
            return 0;
        }
        if (c == '?' || c == ':') {
            run_usage(stderr);
            config_free(&cli);
            return 1;
        }
        if (c == 'f') {
            config_path = optarg;
            continue;
        }
        const char *name = opts[idx].name;
        for (size_t i = 0; opts[i].name; i++)
            if (opts[i].val == c)
                name = opts[i].name;
        /* Flags are the config keys they stand for, with their value. */
        const char *value = optarg;
        if (c == 'S' || c == 'R') {
            value = "true";
        } else if (c == 'E') {
            name = "allow-vm-edits";
            value = "false";
        }
        if (config_get(&cli, name)) {
            fprintf(stderr, "pcifleet-agent run: --%s is given twice\n", name);
            config_free(&cli);
            return 1;
        }
        strv_add(&cli.keys, name);
        strv_add(&cli.values, value);
    }
    if (optind < argc) {
        fprintf(stderr, "pcifleet-agent run: unexpected argument '%s'\n", argv[optind]);
        run_usage(stderr);
        config_free(&cli);
        return 1;
    }
    /* The agent's own config: never under --root. */
    config_t file = CONFIG_INIT;
    char *err = NULL;
    if (!config_path && access(AGENT_DEFAULT_CONFIG, F_OK) == 0)
        config_path = AGENT_DEFAULT_CONFIG;
    if (config_path && config_load(config_path, agent_daemon_config_keys, &file, &err) < 0) {
        fprintf(stderr, "pcifleet-agent run: %s\n", err);
        free(err);
        config_free(&cli);
        return 1;
    }
    config_t merged = CONFIG_INIT;
    for (size_t i = 0; agent_daemon_config_keys[i]; i++) {
        const char *k = agent_daemon_config_keys[i];
        const char *v = config_get(&cli, k);
        if (!v)
            v = config_get(&file, k);
        if (v) {
            strv_add(&merged.keys, k);
            strv_add(&merged.values, v);
        }
    }
    config_free(&cli);
    config_free(&file);
    agent_daemon_opts_t o;
    if (agent_daemon_opts_parse(&merged, &o, &err) < 0) {
        fprintf(stderr, "pcifleet-agent run: %s\n", err);
        free(err);
        run_usage(stderr);
        config_free(&merged);
        return 1;
    }
    log_init("pcifleet-agent", (log_level_t)o.log_level);
    int rc = agent_daemon_run(&o, &err);
    if (rc < 0) {
        log_error("cannot start: %s", err ? err : "unknown error");
        free(err);
    }
    config_free(&merged);
    return rc < 0 ? 2 : 0;
}

static void plan_usage(FILE *f)
{
    fputs("usage: pcifleet-agent plan [--root DIR] [--pt] [--json]\n"
          "\n"
          "Prints the setup steps this node needs to become ready for passthrough, in\n"
          "order: kernel arguments, vfio modules, boot refresh, initramfs refresh, reboot,\n"
          "verify. Prints nothing when the node is ready; a node that needs firmware\n"
          "changes gets no steps, and the reason goes to stderr. Reads only.\n"
          "\n"
          "  --root DIR   read the host tree under DIR instead of / (fixtures, tests)\n"
          "  --pt         also ask for iommu=pt (identity mapping for host devices)\n"
          "  --json       one JSON document: {\"steps\": [...], \"why\": ...}\n"
          "  -h, --help   show this help\n"
          "\n"
          "Exit status: 0 steps printed (or none needed), 1 bad usage, 2 the root cannot\n"
          "be read.\n",
          f);
}

static void apply_usage(FILE *f)
{
    fputs("usage: pcifleet-agent apply [--root DIR] [--pt] [--yes] [--simulate] [--allow-reboot]\n"
          "\n"
          "Carries out the steps `plan` prints, one at a time: shows each step's diff or\n"
          "command first and asks before doing it (unless --yes). Stops at the first step\n"
          "that fails or is refused. Every edit keeps a backup beside the file\n"
          "(FILE.pcifleet-STEPID.bak, listed in ROOT/var/lib/pcifleet/backups).\n"
          "\n"
          "  --root DIR      the host tree to act on (default /). Any other root than / is a\n"
          "                  fixture: without --simulate its commands would run on this host,\n"
          "                  so apply refuses it\n"
          "  --pt            also set iommu=pt\n"
          "  --yes           do not ask; needed when stdin is not a terminal\n"
          "  --simulate      send every command to the node simulator acting on the files\n"
          "                  under --root; refused for --root /\n"
          "  --allow-reboot  let the reboot step reboot the node; without it apply stops\n"
          "                  before the reboot and says so\n"
          "  -h, --help      show this help\n"
          "\n"
          "Exit status: 0 every step done (or none needed), 1 bad usage, a step failed or\n"
          "was refused, or the answer was no, 2 the root cannot be read, 3 stopped before the\n"
          "reboot (not allowed): reboot, then run apply again to verify.\n",
          f);
}

/* The options plan and apply share. */
typedef struct {
    const char *root;
    bool pt, json, yes, simulate, allow_reboot;
} steps_cli_t;

static int steps_cli_parse(int argc, char **argv, bool apply, steps_cli_t *o)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'}, {"pt", no_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"yes", no_argument, NULL, 'y'},
        {"simulate", no_argument, NULL, 'S'},   {"allow-reboot", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->root = "/";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            apply ? apply_usage(stdout) : plan_usage(stdout);
            return 0;
        }
        /* Each command takes only its own options. */
        bool ok = c == 'r' || c == 'p' || (!apply && c == 'j') || (apply && (c == 'y' || c == 'S' || c == 'R'));
        if (!ok) {
            apply ? apply_usage(stderr) : plan_usage(stderr);
            return 1;
        }
        switch (c) {
        case 'r': o->root = optarg; break;
        case 'p': o->pt = true; break;
        case 'j': o->json = true; break;
        case 'y': o->yes = true; break;
        case 'S': o->simulate = true; break;
        case 'R': o->allow_reboot = true; break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pcifleet-agent %s: unexpected argument '%s'\n", apply ? "apply" : "plan", argv[optind]);
        apply ? apply_usage(stderr) : plan_usage(stderr);
        return 1;
    }
    return -1; /* go on */
}

static int scan_plan(const steps_cli_t *o, const char *prefix, inventory_t **inv, Pcifleet__SetupStep ***steps,
                     size_t *n, char **why, const char *cmd)
{
    scan_opts_t so = {o->root, NULL, NULL};
    char *err = NULL;
    if (inventory_scan(&so, inv, &err) < 0) {
        fprintf(stderr, "pcifleet-agent %s: %s\n", cmd, err);
        free(err);
        return 2;
    }
    if (steps_plan(*inv, o->pt, prefix, steps, n, why) < 0) {
        fprintf(stderr, "pcifleet-agent %s: %s\n", cmd, *why ? *why : "cannot plan");
        inventory_destroy(inv);
        return 2;
    }
    return 0;
}

static int cmd_plan(int argc, char **argv)
{
    steps_cli_t o;
    int rc = steps_cli_parse(argc, argv, false, &o);
    if (rc >= 0)
        return rc;
    if (drop_to("plan", PRIVS_PROBE, false) < 0)
        return 1;
    inventory_t *inv = NULL;
    Pcifleet__SetupStep **steps = NULL;
    size_t n = 0;
    char *why = NULL;
    if ((rc = scan_plan(&o, "plan", &inv, &steps, &n, &why, "plan")) != 0)
        return rc;
    if (o.json) {
        json_t *j = json_new(2);
        json_obj_open(j, NULL);
        json_str(j, "verdict", verdict_name(inv->iommu.verdict));
        json_arr_open(j, "steps");
        for (size_t i = 0; i < n; i++) {
            json_obj_open(j, NULL);
            json_str(j, "step_id", steps[i]->step_id);
            json_str(j, "kind", steps_kind_name(steps[i]->kind));
            json_arr_open(j, "add_args");
            for (size_t k = 0; k < steps[i]->n_add_args; k++)
                json_str(j, NULL, steps[i]->add_args[k]);
            json_arr_close(j);
            json_arr_open(j, "remove_args");
            for (size_t k = 0; k < steps[i]->n_remove_args; k++)
                json_str(j, NULL, steps[i]->remove_args[k]);
            json_arr_close(j);
            json_arr_open(j, "modules");
            for (size_t k = 0; k < steps[i]->n_modules; k++)
                json_str(j, NULL, steps[i]->modules[k]);
            json_arr_close(j);
            json_obj_close(j);
        }
        json_arr_close(j);
        if (n == 0 && why)
            json_str(j, "why", why);
        else
            json_null(j, "why");
        json_obj_close(j);
        size_t len;
        const char *text = json_text(j, &len);
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        json_destroy(&j);
    } else {
        for (size_t i = 0; i < n; i++) {
            char *d = steps_describe(steps[i]);
            printf("%zu. %s\n", i + 1, d);
            free(d);
        }
        if (n == 0 && why && inv->iommu.verdict != VERDICT_READY)
            fprintf(stderr, "pcifleet-agent plan: no steps: %s\n", why);
    }
    steps_plan_free(&steps, n);
    free(why);
    inventory_destroy(&inv);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Asks on the terminal; anything but y/yes is no. */
static bool confirm(const char *what)
{
    printf("%s? [y/N] ", what);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        return false;
    return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 || strcmp(line, "Y\n") == 0;
}

static void print_result(const Pcifleet__StepResult *res)
{
    printf("   %s: %s\n", step_outcome_name(res->outcome), res->detail);
    for (size_t i = 0; i < res->n_backups; i++)
        printf("   backup: %s\n", res->backups[i]);
}

static int cmd_apply(int argc, char **argv)
{
    steps_cli_t o;
    int rc = steps_cli_parse(argc, argv, true, &o);
    if (rc >= 0)
        return rc;
    if (!o.yes && !isatty(STDIN_FILENO)) {
        fprintf(stderr, "pcifleet-agent apply: stdin is not a terminal, so nobody can confirm each step: "
                        "run it interactively, or give --yes\n");
        return 1;
    }
    char *err = NULL;
    runner_t *runner = NULL;
    root_t *probe = NULL;
    if (root_new(o.root, &probe) < 0) {
        fprintf(stderr, "pcifleet-agent apply: the root %s cannot be used\n", o.root);
        return 2;
    }
    bool live = root_is_live(probe);
    root_destroy(&probe);
    if (!live && !o.simulate) {
        /* A fixture's edits would be harmless, its commands would not. */
        fprintf(stderr, "pcifleet-agent apply: %s is not this host's root, and its commands (update-grub, "
                        "reboot, ...) would run on this host: give --simulate to send them to the node simulator\n",
                o.root);
        return 1;
    }
    if (drop_to("apply", o.simulate ? PRIVS_EDIT : PRIVS_TOOLS, o.allow_reboot) < 0)
        return 1;
    if (runner_new(o.simulate ? RUNNER_SIMULATE : RUNNER_REAL, o.root, &runner, &err) < 0) {
        fprintf(stderr, "pcifleet-agent apply: %s\n", err);
        free(err);
        return 1;
    }
    /* Step ids name the backups: one run, one id. */
    char prefix[64];
    time_t now = time(NULL);
    strftime(prefix, sizeof(prefix), "apply-%Y%m%dT%H%M%S", gmtime(&now));
    inventory_t *inv = NULL;
    Pcifleet__SetupStep **steps = NULL;
    size_t n = 0;
    char *why = NULL;
    if ((rc = scan_plan(&o, prefix, &inv, &steps, &n, &why, "apply")) != 0) {
        runner_destroy(&runner);
        return rc;
    }
    inventory_destroy(&inv);
    if (n == 0)
        printf("nothing to do: %s\n", why ? why : "no steps");
    step_policy_t policy = {o.allow_reboot, NULL};
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Pcifleet__SetupStep *s = steps[i];
        char *d = steps_describe(s);
        printf("%zu/%zu %s\n", i + 1, n, d);
        free(d);
        Pcifleet__StepResult res;
        s->dry_run = true;
        steps_apply(o.root, runner, s, &policy, &res);
        s->dry_run = false;
        if (*res.diff)
            fputs(res.diff, stdout);
        else if (*res.command)
            printf("   command: %s\n", res.command);
        Pcifleet__StepResult__Outcome pre = res.outcome;
        if (pre == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED ||
            pre == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED ||
            pre == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED) {
            /* Nothing to confirm: already so, or it would not work. */
            print_result(&res);
        } else if (!o.yes && !confirm("   apply this step")) {
            printf("   not applied; stopping\n");
            rc = 1;
        }
        steps_result_clear(&res);
        if (rc)
            break;
        if (pre == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_UNCHANGED)
            continue;
        if (pre != PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_DONE) {
            rc = s->kind == PCIFLEET__SETUP_STEP__KIND__KIND_REBOOT &&
                         pre == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED
                     ? 3
                     : 1;
            break;
        }
        steps_apply(o.root, runner, s, &policy, &res);
        print_result(&res);
        if (res.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_FAILED ||
            res.outcome == PCIFLEET__STEP_RESULT__OUTCOME__OUTCOME_REFUSED)
            rc = 1;
        steps_result_clear(&res);
    }
    if (rc == 3)
        printf("stopped before the reboot: reboot this node (or give --allow-reboot), then run "
               "`pcifleet-agent apply` again to verify\n");
    steps_plan_free(&steps, n);
    free(why);
    runner_destroy(&runner);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("pcifleet-agent %s\n", agent_version());
        return 0;
    }
    if (strcmp(cmd, "scan") == 0)
        return cmd_scan(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "apply") == 0)
        return cmd_apply(argc - 1, argv + 1);
    fprintf(stderr, "pcifleet-agent: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
