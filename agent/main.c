/* pcifleet-agent — inventories one node for PCIe passthrough.
 *
 * Subcommands: scan (print the node's inventory) and run (report it to the
 * controller, daemon.h). Exit status of scan: 0 when a report was produced
 * (read problems are listed inside it), 1 on usage errors, 2 when the root
 * cannot be used at all. Exit status of run: 0 after SIGTERM/SIGINT, 1 on
 * usage or config errors, 2 when it cannot start (root, keys, endpoint). */
#include "config.h"
#include "daemon.h"
#include "inventory.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: pcifleet-agent [-V|--version] [-h|--help] COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  scan      inventory this node: IOMMU state and verdict, bootloader, vfio\n"
          "            modules, PCI devices, IOMMU groups, NICs and VMs\n"
          "  run       report this node to the controller and keep reporting (daemon)\n"
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
          "                          [--simulate] [--no-vm-edits]\n"
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
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
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
        if (c == 'S') {
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
    fprintf(stderr, "pcifleet-agent: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
