/* pcifleet — the operator's command line for a pcifleet controller.
 *
 * `keygen` and `fingerprint` run locally; every other command is sent as
 * one AdminRequest to the controller's admin socket and its AdminReply is
 * printed: the body to stdout, the error sentence to stderr, and the reply's
 * status becomes the exit status (0 ok, 1 refused or failed, 2 bad usage).
 * A controller that cannot be reached or does not answer within --timeout
 * gives exit status 3. */
#include "buf.h"
#include "config.h"
#include "json.h"
#include "keyfp.h"
#include "keys.h"
#include "wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PCIFLEET_VERSION
#define PCIFLEET_VERSION "0.0.0"
#endif

#define DEFAULT_ADMIN "ipc:///run/pcifleet/admin.sock"
#define EXIT_UNREACHABLE 3
#define MAX_REPLY (256u * 1024 * 1024)

/* Commands the controller answers; anything else is a usage error here. */
static const char *const remote_commands[] = {"keys",   "nodes",   "nics",      "groups", "vms",  "show", "events",
                                              "sql",    "status",  "assign",    "release", "conflicts", "plan",
                                              "rollout", NULL};

/* `pcifleet COMMAND --help`: synopsis and what it does, in the order of
 * remote_commands. */
static const char *const remote_usage[][2] = {
    {"keys\n       pcifleet [OPTIONS] keys accept NODE",
     "Lists the accepted and pending agent keys with their fingerprints, or accepts the\n"
     "key NODE's agent tried to connect with (compare its fingerprint with\n"
     "`pcifleet fingerprint NODE.key` on the node first)."},
    {"nodes", "Every node: online, IOMMU verdict, boot loader, NIC and VM counts, last seen."},
    {"nics [--node N] [--model VVVV:DDDD] [--free]",
     "The fleet's NICs. --free keeps those in no VM's config, not the management NIC,\n"
     "and assignable alone (isolated IOMMU group)."},
    {"groups NODE", "A node's IOMMU groups, their devices, and whether each is isolated."},
    {"vms [--non-migratable]", "VMs and their passthrough devices, with the reasons a VM cannot migrate."},
    {"show NODE", "Everything known about one node."},
    {"events [OPTIONS]",
     "The event log: online/offline, IOMMU changes, devices appearing or vanishing,\n"
     "VMs holding devices, keys accepted. The controller names the OPTIONS it takes\n"
     "when one is wrong."},
    {"sql \"SELECT ...\"",
     "Read-only SQL over the views v_nodes, v_devices, v_nics, v_groups, v_vms\n"
     "(docs/db.md), run by the controller with a time and a row limit."},
    {"status", "The controller's version, endpoints and counters."},
    {"assign NODE ADDRESS VMID [--group] [--apply]",
     "Claims the device at ADDRESS on NODE for VM VMID (exit 0), or refuses with the\n"
     "reason and what to do instead (exit 1): device or node unknown, node offline or\n"
     "its IOMMU not ready, already claimed or in another VM's config, an IOMMU group\n"
     "shared with other endpoints (--group claims the whole group), a management NIC,\n"
     "an SR-IOV PF whose VFs are in use or a VF whose PF is, a VM on another node.\n"
     "--apply also adds the hostpciN entry to the VM's config through the node's agent\n"
     "(qm set); the claim is rolled back if that fails."},
    {"release NODE ADDRESS [--apply]",
     "Drops the claim on ADDRESS (and every device claimed with it); --apply also\n"
     "removes the VM's hostpciN entry through the node's agent."},
    {"conflicts", "What the fleet's reports already show wrong: one device in several VMs' configs,\n"
                  "entries pointing at addresses that no longer exist, pcie=1 on i440fx, a PF passed\n"
                  "while its VFs are in use, a device passed without the rest of its IOMMU group,\n"
                  "claims that disagree with the VM configs."},
    {"plan drain NODE\n       pcifleet [OPTIONS] plan migrate VMID --to NODE",
     "Read-only plans. drain: for every VM on NODE, live-migratable or must stop, and\n"
     "where it could run instead with the device it would get there. migrate: whether\n"
     "VMID can run on NODE, and why (not)."},
    {"rollout start iommu [--nodes a,b | --all] [--batch N] [--pt] [--dry-run] [--allow-downtime]\n"
     "                 [--reboot-timeout S] [--grub-variable GRUB_CMDLINE_LINUX]\n"
     "       pcifleet [OPTIONS] rollout status|watch|pause|resume|abort [ID]",
     "Turns the IOMMU on across nodes, a batch at a time (default 1; never so many that a\n"
     "Proxmox cluster loses quorum): nodes already ready are skipped, nodes that need a\n"
     "firmware change are reported and skipped, a node with a running VM that cannot\n"
     "live-migrate is refused unless --allow-downtime; each node gets its kernel\n"
     "arguments (--pt adds iommu=pt), vfio modules, boot and initramfs refresh, a reboot\n"
     "where its agent allows it (else it waits in awaiting-reboot for you), and a\n"
     "verification. The first node that fails halts the rollout. start prints the id;\n"
     "status shows every node; watch refreshes until done (exit 0) or halted (exit 1).\n"
     "GRUB nodes get the arguments in GRUB_CMDLINE_LINUX_DEFAULT unless --grub-variable\n"
     "GRUB_CMDLINE_LINUX says otherwise (arguments already in either count as present)."},
};

_Static_assert(sizeof remote_usage / sizeof remote_usage[0] ==
                   sizeof remote_commands / sizeof remote_commands[0] - 1,
               "every remote command has its usage");

#define DEFAULT_CONFIG "/etc/pcifleet/pcifleet.conf"
/* Keys of the config file: the long options, without "--". */
static const char *const config_keys[] = {"admin", "json", "timeout", "share", NULL};

static void usage(FILE *f)
{
    fputs("usage: pcifleet [--admin EP] [--json] [--timeout SECONDS] [--config FILE] COMMAND [ARGS]\n"
          "\n"
          "Asks the pcifleet controller (pcifleetd) about the fleet.\n"
          "\n"
          "Fleet queries (answered by the controller):\n"
          "  nodes                        every node: online, IOMMU verdict, loader, NICs, VMs,\n"
          "                               last seen\n"
          "  nics [--node N] [--model VVVV:DDDD] [--free]\n"
          "                               the fleet's NICs; --free: in no VM's config, not the\n"
          "                               management NIC, and assignable alone (isolated group)\n"
          "  groups NODE                  a node's IOMMU groups and whether each is isolated\n"
          "  vms [--non-migratable]       VMs with passthrough, and why they cannot migrate\n"
          "  show NODE                    everything known about one node\n"
          "  events [OPTIONS]             the event log (online/offline, IOMMU changes, devices,\n"
          "                               VMs holding devices, keys accepted)\n"
          "  sql \"SELECT ...\"             read-only SQL over the views v_nodes, v_devices,\n"
          "                               v_nics, v_groups, v_vms (time- and row-limited)\n"
          "  status                       the controller's version, endpoints and counters\n"
          "  conflicts                    what the reports already show wrong (shared devices,\n"
          "                               stale addresses, pcie=1 on i440fx, PFs and VFs, groups)\n"
          "\n"
          "Assignments and plans:\n"
          "  assign NODE ADDRESS VMID [--group] [--apply]\n"
          "                               claim a device for a VM, or say why not; --apply also\n"
          "                               adds it to the VM's config (qm set, through the agent)\n"
          "  release NODE ADDRESS [--apply]\n"
          "                               drop a claim; --apply also removes the config entry\n"
          "  plan drain NODE              per VM on NODE: live-migrate, or stop and where it could\n"
          "                               run instead, with the device it would get\n"
          "  plan migrate VMID --to NODE  whether VMID can run on NODE, and why (not)\n"
          "\n"
          "IOMMU rollouts:\n"
          "  rollout start iommu [--nodes a,b | --all] [--batch N] [--pt] [--dry-run]\n"
          "                      [--allow-downtime]\n"
          "                               turn the IOMMU on across nodes, a batch at a time;\n"
          "                               prints the rollout's id\n"
          "  rollout status|watch|pause|resume|abort [ID]\n"
          "                               every node's state; watch refreshes until it ends\n"
          "\n"
          "Agent keys:\n"
          "  keys                         accepted and pending agent keys with fingerprints\n"
          "  keys accept NODE             accept the key NODE's agent tried to connect with\n"
          "  keygen --dir DIR NAME        (local) write DIR/NAME.key and DIR/NAME.key_secret\n"
          "  fingerprint FILE             (local) the fingerprint of a .key or .key_secret file,\n"
          "                               to compare with `pcifleet keys` before accepting\n"
          "\n"
          "Options:\n"
          "  --admin EP          the controller's admin socket (default $PCIFLEET_ADMIN, else\n"
          "                      the config file's, else " DEFAULT_ADMIN ",\n"
          "                      which only root can open)\n"
          "  --json              JSON for scripts instead of a table (also after the command)\n"
          "  --timeout SECONDS   how long to wait for the controller (default 5)\n"
          "  --no-share          take a long answer over the socket even when it could be\n"
          "                      read from the controller's memory (see pcifleet(1))\n"
          "  --config FILE       read options from FILE (\"name = value\" lines: admin, json,\n"
          "                      timeout, share); default " DEFAULT_CONFIG ", only if it\n"
          "                      exists.\n"
          "                      Command-line options override the file.\n"
          "  -h, --help          show this help (COMMAND --help: that command's)\n"
          "  -V, --version       print the version\n"
          "\n"
          "Exit status: 0 done, 1 refused or failed, 2 bad usage, 3 no answer from the\n"
          "controller.\n",
          f);
}

static int remote_index(const char *cmd)
{
    for (int i = 0; remote_commands[i]; i++)
        if (strcmp(cmd, remote_commands[i]) == 0)
            return i;
    return -1;
}

static bool is_remote(const char *cmd)
{
    return remote_index(cmd) >= 0;
}

static void command_usage(const char *cmd)
{
    int i = remote_index(cmd);
    printf("usage: pcifleet [OPTIONS] %s\n\n%s\n\n"
           "OPTIONS: --admin EP, --json (also after the command), --timeout SECONDS,\n"
           "--config FILE; see 'pcifleet --help'.\n",
           remote_usage[i][0], remote_usage[i][1]);
}

static bool is_help(const char *word)
{
    return strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0;
}

/* "true"/"yes"/"on"/"1" or "false"/"no"/"off"/"0"; -1 for anything else. */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL}, *const no[] = {"false", "no", "off", "0", NULL};
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
    for (int i = 0; no[i]; i++)
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    return -1;
}

static bool parse_timeout(const char *v, double *out)
{
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(t) || t <= 0 || t > 86400)
        return false;
    *out = t;
    return true;
}

/* ---- local commands ---- */

static int cmd_keygen(int argc, char **argv, bool json)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'h': puts("usage: pcifleet keygen --dir DIR NAME\n\nWrites DIR/NAME.key (public, give it to the "
                       "other side) and DIR/NAME.key_secret\n(mode 0600, keep it on this machine). Refuses to "
                       "overwrite an existing pair.");
            return 0;
        default: fputs("usage: pcifleet keygen --dir DIR NAME\n", stderr); return 2;
        }
    }
    if (!dir || optind + 1 != argc) {
        fputs("pcifleet: usage: pcifleet keygen --dir DIR NAME\n", stderr);
        return 2;
    }
    const char *name = argv[optind];
    if (!keys_valid_node_name(name)) {
        fprintf(stderr, "pcifleet: '%s' is not a valid key name (1-63 of A-Z a-z 0-9 . _ -, not starting with . or -)\n",
                name);
        return 2;
    }
    char *err = NULL;
    if (keys_generate(dir, name, &err) < 0) {
        fprintf(stderr, "pcifleet: %s\n", err ? err : "cannot write the key pair");
        free(err);
        return 1;
    }
    char *pubpath = xasprintf("%s/%s.key", dir, name);
    char pub[KEY_Z85_LEN + 1], fp[KEYFP_LEN + 1] = "unknown";
    if (keys_load_public(pubpath, pub, &err) == 0)
        keyfp_of(pub, fp);
    free(err);
    if (json) {
        json_t *j = json_new(2);
        json_obj_open(j, NULL);
        json_str(j, "public", pubpath);
        char *secpath = xasprintf("%s/%s.key_secret", dir, name);
        json_str(j, "secret", secpath);
        free(secpath);
        json_str(j, "fingerprint", fp);
        json_obj_close(j);
        size_t len;
        const char *text = json_text(j, &len);
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        json_destroy(&j);
    } else {
        printf("wrote %s and %s/%s.key_secret\nfingerprint %s\n", pubpath, dir, name, fp);
    }
    free(pubpath);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_fingerprint(int argc, char **argv, bool json)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: pcifleet fingerprint FILE\n", argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    char pub[KEY_Z85_LEN + 1], fp[KEYFP_LEN + 1];
    char *err = NULL;
    if (keys_load_public(argv[1], pub, &err) < 0) {
        fprintf(stderr, "pcifleet: %s\n", err ? err : "cannot read the key");
        free(err);
        return 1;
    }
    keyfp_of(pub, fp);
    if (json) {
        json_t *j = json_new(0);
        json_obj_open(j, NULL);
        json_str(j, "file", argv[1]);
        json_str(j, "fingerprint", fp);
        json_str(j, "key", pub);
        json_obj_close(j);
        size_t len;
        const char *text = json_text(j, &len);
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        json_destroy(&j);
    } else
        printf("%s  %s  %s\n", fp, pub, argv[1]);
    return 0;
}

/* ---- the admin socket ---- */

/* For ipc:// endpoints, a useful sentence instead of a timeout when nothing
 * listens or the socket is not ours to open. check_ipc, before connecting,
 * looks at the socket file only (a missing file, no write permission), so
 * the controller does not handle a second connection for every command;
 * probe_ipc connects, for when the answer is late: a socket file left
 * behind by a controller that is gone refuses the connection. Each returns
 * 0, or -1 and fills *why (caller frees). */
static char *unreachable(const char *ep, const char *path, int e)
{
    if (e == ENOENT)
        return xasprintf("no controller at %s: %s does not exist (is pcifleetd running? see --admin)", ep, path);
    if (e == EACCES || e == EPERM)
        return xasprintf("cannot open the admin socket %s: permission denied (it is root-only)", path);
    if (e == ECONNREFUSED)
        return xasprintf("no controller at %s: nothing is listening on %s (is pcifleetd running?)", ep, path);
    return xasprintf("cannot reach the controller at %s: %s", ep, strerror(e));
}

/* The socket file of an ipc:// endpoint, or NULL (not ipc, abstract, too long). */
static const char *ipc_path(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) != 0)
        return NULL;
    const char *path = ep + 6;
    struct sockaddr_un sa;
    if (!*path || *path == '@' || strlen(path) >= sizeof sa.sun_path)
        return NULL;
    return path;
}

static int check_ipc(const char *ep, char **why)
{
    const char *path = ipc_path(ep);
    if (!path)
        return 0;
    /* connect(2) on a unix socket needs write permission on the file, and
     * search permission on the way to it: the same checks, effective ids */
    if (faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
        return 0;
    *why = unreachable(ep, path, errno);
    return -1;
}

static int probe_ipc(const char *ep, char **why)
{
    const char *path = ipc_path(ep);
    if (!path)
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 0;
    *why = unreachable(ep, path, e);
    return -1;
}

/* How long the first answer may take before probe_ipc looks for a reason:
 * a cached answer comes in milliseconds, a new one of a large fleet in a
 * few hundred. */
#define PROBE_AFTER_MS 100

/* A long answer's body, after the reply: chunks messages of raw bytes,
 * length bytes in all (pcifleet.proto AdminReply). Each chunk is checked
 * (size, UTF-8, no NUL) and printed as it comes, so a large fleet's answer
 * is never held whole. -1 with a message on stderr when the controller
 * stops short or sends what it announced wrongly; what was printed by then
 * stays printed, and the exit status says it is incomplete. */
/* The answer goes to stdout, or into capture when the caller wants it
 * (rollout watch). */
static void emit(buf_t *capture, const char *data, size_t n)
{
    if (capture)
        buf_append(capture, data, n);
    else
        fwrite(data, 1, n, stdout);
}

static int receive_body(zsock_t *sock, const char *ep, uint64_t length, uint32_t chunks, double timeout,
                        buf_t *capture)
{
    uint64_t got = 0;
    char last = '\n';
    zpoller_t *poller = zpoller_new(sock, NULL);
    int rc = 0;
    for (uint32_t i = 0; i < chunks && rc == 0; i++) {
        if (!zpoller_wait(poller, (int)(timeout * 1000))) {
            fprintf(stderr, "pcifleet: the controller at %s stopped after %" PRIu64 " of %" PRIu64
                            " bytes of its answer\n", ep, got, length);
            rc = -1;
            break;
        }
        zmsg_t *m = zmsg_recv(sock);
        zframe_t *f = m ? zmsg_last(m) : NULL;
        size_t n = f ? zframe_size(f) : 0;
        const char *data = f ? (const char *)zframe_data(f) : NULL;
        if (!f || n == 0 || n > WIRE_ADMIN_CHUNK || got + n > length || !wire_text_valid(data, n)) {
            fprintf(stderr, "pcifleet: the controller at %s sent a part of its answer this pcifleet cannot "
                            "read (chunk %u of %u)\n", ep, i + 1, chunks);
            rc = -1;
        } else {
            emit(capture, data, n);
            got += n;
            last = data[n - 1];
        }
        zmsg_destroy(&m);
    }
    zpoller_destroy(&poller);
    if (rc == 0 && got != length) {
        fprintf(stderr, "pcifleet: the controller at %s announced %" PRIu64 " bytes and sent %" PRIu64 "\n", ep,
                length, got);
        rc = -1;
    }
    if (rc == 0 && last != '\n')
        emit(capture, "\n", 1);
    return rc;
}

/* --no-share / "share = false": never ask for a SharedAnswer. */
static bool share_answers = true;

/* What print_shared says when the answer cannot be read here: ask again
 * for it over the socket. */
#define ASK_UNSHARED (-2)

/* Writes n bytes of fd from offset 0 to stdout in the kernel (sendfile:
 * page references into a pipe, no copy through this process); with a
 * stdout sendfile cannot write to, through a buffer. 0, or -1 with errno. */
static int copy_to_stdout(int fd, uint64_t n)
{
    off_t off = 0;
    while ((uint64_t)off < n) {
        size_t want = n - (uint64_t)off > (1u << 30) ? (1u << 30) : (size_t)(n - (uint64_t)off);
        ssize_t w = sendfile(STDOUT_FILENO, fd, &off, want);
        if (w > 0)
            continue;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EINVAL || errno == ENOSYS)) {
            char b[65536];
            while ((uint64_t)off < n) {
                ssize_t r = pread(fd, b, sizeof b, off);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    if (r == 0)
                        errno = EIO;
                    return -1;
                }
                for (ssize_t done = 0; done < r;) {
                    ssize_t k = write(STDOUT_FILENO, b + done, (size_t)(r - done));
                    if (k < 0 && errno == EINTR)
                        continue;
                    if (k <= 0)
                        return -1;
                    done += k;
                }
                off += r;
            }
            return 0;
        }
        if (w == 0)
            errno = EIO; /* the sealed file cannot shrink: should not happen */
        return -1;
    }
    return 0;
}

/* A SharedAnswer (pcifleet.proto): the controller's sealed memfd holding
 * the answer, opened through /proc/PID/fd/FD. Before a byte is printed the
 * file must be that memfd by its unique name, length + 1 bytes, sealed
 * against writes and resizing: the controller made the text and can no
 * longer change it, so it is not checked again byte by byte. ASK_UNSHARED
 * when it cannot be opened or is not what the reply named (another pid or
 * mount namespace, no rights, the answer gone meanwhile); 1 when writing
 * stdout failed; 0 printed. */
static int print_shared(const Pcifleet__SharedAnswer *sa)
{
    if (!sa->pid || sa->fd < 0 || !sa->name || !*sa->name || strlen(sa->name) > 200 || !sa->length ||
        sa->length > WIRE_ADMIN_MAX_BODY)
        return ASK_UNSHARED;
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/fd/%d", sa->pid, sa->fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ASK_UNSHARED;
    char self[64], target[256], want[256];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    snprintf(want, sizeof want, "/memfd:%s (deleted)", sa->name);
    ssize_t tl = readlink(self, target, sizeof target - 1);
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    const int need = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;
    char last = 0;
    if (tl <= 0 || (target[tl] = '\0', strcmp(target, want) != 0) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != sa->length + 1 || seals < 0 || (seals & need) != need ||
        pread(fd, &last, 1, (off_t)sa->length - 1) != 1) {
        close(fd);
        return ASK_UNSHARED;
    }
    fflush(stdout);
    int rc = copy_to_stdout(fd, sa->length);
    int e = errno;
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "pcifleet: cannot write the answer to stdout: %s\n", strerror(e));
        return 1;
    }
    if (last != '\n')
        fputc('\n', stdout);
    return 0;
}

static int remote_once(const char *ep, double timeout, int argc, char **argv, bool json, buf_t *capture,
                       bool share)
{
    char *why = NULL;
    if (check_ipc(ep, &why) < 0) {
        fprintf(stderr, "pcifleet: %s\n", why);
        free(why);
        return EXIT_UNREACHABLE;
    }
    Pcifleet__AdminRequest req = PCIFLEET__ADMIN_REQUEST__INIT;
    req.version = PCIFLEET__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    req.n_argv = (size_t)argc;
    req.argv = argv;
    req.json = json;
    req.can_share = share;
    uint8_t *packed = NULL;
    size_t len = wire_encode_admin_request(&req, &packed);

    int status = EXIT_UNREACHABLE;
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock) {
        fprintf(stderr, "pcifleet: cannot create a ZeroMQ socket: %s\n", zmq_strerror(zmq_errno()));
        free(packed);
        return EXIT_UNREACHABLE;
    }
    zsock_set_linger(sock, 0);
    zsock_set_sndtimeo(sock, (int)(timeout * 1000));
    zsock_set_rcvbuf(sock, 4 * 1024 * 1024); /* answers can be megabytes */
    if (zsock_connect(sock, "%s", ep) < 0) {
        fprintf(stderr, "pcifleet: cannot connect to %s: %s\n", ep, zmq_strerror(zmq_errno()));
        goto out;
    }
    zmsg_t *msg = zmsg_new();
    zmsg_addmem(msg, NULL, 0);
    zmsg_addmem(msg, packed, len);
    if (zmsg_send(&msg, sock) < 0) {
        zmsg_destroy(&msg);
        fprintf(stderr, "pcifleet: no answer from the controller at %s\n", ep);
        goto out;
    }
    zpoller_t *poller = zpoller_new(sock, NULL);
    zpoller_set_nonstop(poller, false);
    int wait_ms = (int)(timeout * 1000);
    int first_ms = ipc_path(ep) && wait_ms > PROBE_AFTER_MS ? PROBE_AFTER_MS : wait_ms;
    void *ready = zpoller_wait(poller, first_ms);
    if (!ready && first_ms < wait_ms && !zpoller_terminated(poller)) {
        if (probe_ipc(ep, &why) < 0) {
            zpoller_destroy(&poller);
            fprintf(stderr, "pcifleet: %s\n", why);
            free(why);
            goto out;
        }
        ready = zpoller_wait(poller, wait_ms - first_ms);
    }
    zpoller_destroy(&poller);
    if (!ready) {
        fprintf(stderr, "pcifleet: no answer from the controller at %s within %g s\n", ep, timeout);
        goto out;
    }
    zmsg_t *rep = zmsg_recv(sock);
    zframe_t *body = rep ? zmsg_last(rep) : NULL;
    Pcifleet__AdminReply *r = NULL;
    char *err = NULL;
    if (!body || wire_decode_admin_reply(zframe_data(body), zframe_size(body), MAX_REPLY, &r, &err) != 0) {
        fprintf(stderr, "pcifleet: the controller at %s sent a reply this pcifleet cannot read: %s\n", ep,
                err ? err : "no reply frame");
        free(err);
        zmsg_destroy(&rep);
        status = 1;
        goto out;
    }
    zmsg_destroy(&rep);
    if (r->shared) {
        status = print_shared(r->shared);
        if (status == 0 && r->status != 0)
            status = r->status < 0 || r->status > 255 ? 1 : r->status;
        wire_admin_reply_free(&r);
        if (status == 0 && fflush(stdout) != 0)
            status = 1;
        goto out;
    }
    if (r->body && *r->body) {
        size_t blen = strlen(r->body);
        emit(capture, r->body, blen);
        if (r->body[blen - 1] != '\n')
            emit(capture, "\n", 1);
    }
    if (r->body_chunks && receive_body(sock, ep, r->body_length, r->body_chunks, timeout, capture) < 0) {
        wire_admin_reply_free(&r);
        status = 1;
        goto out;
    }
    if (r->status != 0 && r->error && *r->error)
        fprintf(stderr, "pcifleet: %s\n", r->error);
    status = r->status < 0 || r->status > 255 ? 1 : r->status;
    wire_admin_reply_free(&r);
    if (fflush(stdout) != 0 && status == 0)
        status = 1;
out:
    zsock_destroy(&sock);
    free(packed);
    return status;
}

/* One command on the controller. A long kept answer may be read from the
 * controller's memory (SharedAnswer) instead of coming in chunks, when the
 * controller is on this host (ipc://) and the answer goes to a pipe or a
 * file: a terminal gets it through the checks of the chunked path. */
static int remote(const char *ep, double timeout, int argc, char **argv, bool json, buf_t *capture)
{
    bool share = share_answers && !capture && strncmp(ep, "ipc://", 6) == 0 && !isatty(STDOUT_FILENO);
    int st = remote_once(ep, timeout, argc, argv, json, capture, share);
    if (st == ASK_UNSHARED)
        st = remote_once(ep, timeout, argc, argv, json, capture, false);
    return st;
}

/* `rollout watch [ID]`: the rollout's status, refreshed every second until
 * it is done (exit 0), halted or aborted (exit 1); Ctrl-C stops watching
 * (the rollout goes on). On a terminal each refresh redraws the screen. */
static int rollout_watch(const char *ep, double timeout, int n, char **words, bool json)
{
    if (n > 3) {
        fputs("usage: pcifleet rollout watch [ID]\n", stderr);
        return 2;
    }
    char *argv[] = {"rollout", "status", n == 3 ? words[2] : NULL};
    int argc = n == 3 ? 3 : 2;
    bool tty = isatty(STDOUT_FILENO) && !json;
    for (;;) {
        buf_t b = BUF_INIT;
        buf_puts(&b, "");
        int st = remote(ep, timeout, argc, argv, false, &b);
        if (st != 0) {
            buf_free(&b);
            return st;
        }
        if (tty)
            fputs("\033[H\033[2J", stdout);
        if (!json) {
            fputs(b.p, stdout);
            fflush(stdout);
        }
        /* the first line says the state: "rollout N (iommu): STATE, ..." */
        const char *c = strstr(b.p, "): ");
        int done = -1;
        if (!c)
            done = 1; /* no rollout at all */
        else if (!strncmp(c + 3, "done", 4))
            done = 0;
        else if (!strncmp(c + 3, "halted", 6) || !strncmp(c + 3, "aborted", 7))
            done = 1;
        buf_free(&b);
        if (done >= 0) {
            if (json) { /* scripts get the final state once */
                argv[1] = "status";
                return remote(ep, timeout, argc, argv, true, NULL) == 0 ? done : 1;
            }
            return done;
        }
        sleep(1);
    }
}

/* --help or -h anywhere among a remote command's words, except as the
 * query of `sql`: `pcifleet nics --node n1 --help` shows help rather
 * than asking the controller. */
static bool words_have_help(int n, char **words)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(words[0], "sql") == 0 && i > 1)
            break;
        if (is_help(words[i]))
            return true;
    }
    return false;
}

/* A long answer (megabytes of JSON for a large fleet) comes in 256 KiB
 * chunks and goes straight to stdout. Keep freed chunks in the heap instead
 * of mapping and faulting in fresh pages for each, and give a pipe reader
 * (jq, a script) room for four chunks instead of 64 KiB, so the two sides
 * do not take turns every 64 KiB. Both only make it faster. */
static void tune_for_long_answers(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
        (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1024 * 1024); /* may be refused: then 64 KiB it is */
}

/* A true/false key of the config file: 1, 0, -1 when absent, -2 (said on
 * stderr) when it is neither. */
static int config_bool(const config_t *cfg, const char *path, const char *key)
{
    const char *v = config_get(cfg, key);
    if (!v)
        return -1;
    int b = parse_bool(v);
    if (b < 0)
        fprintf(stderr, "pcifleet: %s: %s must be true or false, not '%s'\n", path, key, v);
    return b < 0 ? -2 : b;
}

/* ZeroMQ's context setup starts OpenPGM, which looks up the "pgm" protocol
 * number in the protocols database (getprotobyname), and that makes glibc
 * load each NSS module nsswitch.conf names for it: Debian's "db files"
 * line has it probe some 45 paths for a libnss_db that is rarely there,
 * at every command. The CLI looks up nothing else there, and its DEALER
 * socket cannot use PGM (a PUB/SUB transport), so the lookup may as well
 * read /etc/protocols only (glibc's built-in "files" module). */
#ifdef __GLIBC__
/* glibc's <nss.h> declares it; czmq's flags put Mozilla NSS's nss.h first */
extern int __nss_configure_lookup(const char *dbname, const char *service_line);
#endif
static void protocols_from_files(void)
{
#ifdef __GLIBC__
    (void)__nss_configure_lookup("protocols", "files");
#endif
}

int main(int argc, char **argv)
{
    tune_for_long_answers();
    protocols_from_files();
    static const struct option opts[] = {
        {"admin", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'c'},
        {"no-share", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool no_share = false;
    const char *admin = NULL, *timeout_arg = NULL, *config_path = NULL;
    bool json = false;
    double timeout = 5;
    int c;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'a': admin = optarg; break;
        case 'j': json = true; break;
        case 't': timeout_arg = optarg; break;
        case 'c': config_path = optarg; break;
        case 'S': no_share = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("pcifleet %s\n", PCIFLEET_VERSION); return 0;
        default: fputs("Try 'pcifleet --help'.\n", stderr); return 2;
        }
    }
    if (timeout_arg && !parse_timeout(timeout_arg, &timeout)) {
        fprintf(stderr, "pcifleet: --timeout must be a number of seconds above 0, not '%s'\n", timeout_arg);
        return 2;
    }
    /* Command line, then $PCIFLEET_ADMIN (admin only), then the config file,
     * then the defaults. A named config file must exist; the default one is
     * read only when it does. */
    config_t cfg = CONFIG_INIT;
    if (!config_path && access(DEFAULT_CONFIG, F_OK) == 0)
        config_path = DEFAULT_CONFIG;
    if (config_path) {
        char *err = NULL;
        if (config_load(config_path, config_keys, &cfg, &err) < 0) {
            fprintf(stderr, "pcifleet: %s\n", err ? err : "cannot read the config file");
            free(err);
            return 2;
        }
        const char *v;
        if (!timeout_arg && (v = config_get(&cfg, "timeout")) && !parse_timeout(v, &timeout)) {
            fprintf(stderr, "pcifleet: %s: timeout must be a number of seconds above 0, not '%s'\n", config_path,
                    v);
            config_free(&cfg);
            return 2;
        }
        int json_b = config_bool(&cfg, config_path, "json"), share_b = config_bool(&cfg, config_path, "share");
        if (json_b == -2 || share_b == -2) {
            config_free(&cfg);
            return 2;
        }
        json = json || json_b == 1;
        no_share = no_share || share_b == 0;
    }
    share_answers = !no_share;
    if (!admin) {
        const char *env = getenv("PCIFLEET_ADMIN");
        const char *file = config_get(&cfg, "admin");
        admin = env && *env ? env : file && *file ? file : DEFAULT_ADMIN;
    }
    if (optind >= argc) {
        usage(stderr);
        config_free(&cfg);
        return 2;
    }
    /* The command's words, with "--json" taken out wherever it stands. */
    int n = 0;
    char **words = xcalloc((size_t)(argc - optind) + 1, sizeof *words);
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            words[n++] = argv[i];
    }
    int status;
    const char *cmd = words[0];
    if (!cmd) {
        usage(stderr);
        status = 2;
    } else if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        status = 0;
    } else if (is_remote(cmd) && words_have_help(n, words)) {
        command_usage(cmd);
        status = 0;
    } else if (strcmp(cmd, "keygen") == 0) {
        status = cmd_keygen(n, words, json);
    } else if (strcmp(cmd, "fingerprint") == 0) {
        status = cmd_fingerprint(n, words, json);
    } else if (is_remote(cmd)) {
        /* No czmq signal handler: Ctrl-C ends the CLI at once. */
        zsys_handler_set(NULL);
        /* an --apply waits for the node's agent (the controller gives it 30 s) */
        for (int i = 1; i < n; i++)
            if (strcmp(words[i], "--apply") == 0 && timeout < 40)
                timeout = 40;
        if (strcmp(cmd, "rollout") == 0 && n >= 2 && strcmp(words[1], "watch") == 0)
            status = rollout_watch(admin, timeout, n, words, json);
        else
            status = remote(admin, timeout, n, words, json, NULL);
    } else {
        fprintf(stderr, "pcifleet: unknown command '%s' (try --help)\n", cmd);
        status = 2;
    }
    free(words);
    config_free(&cfg);
    return status;
}
