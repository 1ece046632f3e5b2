/* pcifleet-agent — inventories one node for PCIe passthrough.
 *
 * Subcommands: scan (print the node's inventory). Exit status: 0 when a
 * report was produced (read problems are listed inside it), 1 on usage
 * errors, 2 when the root cannot be used at all. */
#include "inventory.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: pcifleet-agent [--version] [--help] COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  scan      inventory this node: IOMMU state and verdict, bootloader, vfio\n"
          "            modules, PCI devices, IOMMU groups, NICs and VMs\n"
          "\n"
          "Run 'pcifleet-agent COMMAND --help' for a command's options.\n",
          f);
}

static void scan_usage(FILE *f)
{
    fputs("usage: pcifleet-agent scan [--root DIR] [--json] [--node NAME] [--pci-ids FILE]\n"
          "\n"
          "Reads the node through DIR (default /) and prints a summary, or with --json\n"
          "the full report the agent sends to the controller.\n"
          "\n"
          "  --root DIR       read the host tree under DIR instead of / (fixtures, tests)\n"
          "  --json           print one JSON document instead of the summary\n"
          "  --node NAME      node name to report (default: DIR/etc/hostname)\n"
          "  --pci-ids FILE   pci.ids file used to name devices (default: libpci's)\n"
          "  -h, --help       show this help\n"
          "\n"
          "Exit status: 0 report printed (problems reading the node are listed in it),\n"
          "1 bad usage, 2 the root cannot be read at all.\n",
          f);
}

static int cmd_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},
        {"node", required_argument, NULL, 'n'}, {"pci-ids", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    scan_opts_t so = {NULL, NULL, NULL};
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': so.root = optarg; break;
        case 'j': as_json = true; break;
        case 'n': so.node = optarg; break;
        case 'i': so.ids_file = optarg; break;
        case 'h': scan_usage(stdout); return 0;
        default: scan_usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pcifleet-agent scan: unexpected argument '%s'\n", argv[optind]);
        scan_usage(stderr);
        return 1;
    }
    inventory_t *inv = NULL;
    char *err = NULL;
    if (inventory_scan(&so, &inv, &err) < 0) {
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
    if (strcmp(cmd, "--version") == 0) {
        printf("pcifleet-agent %s\n", agent_version());
        return 0;
    }
    if (strcmp(cmd, "scan") == 0)
        return cmd_scan(argc - 1, argv + 1);
    fprintf(stderr, "pcifleet-agent: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
