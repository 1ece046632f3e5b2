/* bench_scan — how fast and how small is `pcifleet-agent scan --json` on a big node?
 *
 * Generates, deterministically, a host tree the size of a loaded two-socket
 * server (512 PCI functions, 64 NIC ports with netdevs, 100 Proxmox VMs, 40 of
 * them holding hostpci devices), checks with one agent run that the tree is
 * what it claims, then times N runs each of
 *   (a) pcifleet-agent scan --root T --json
 *   (b) lspci -A linux-sysfs -O sysfs.path=T/sys/bus/pci -vvv
 *   (c) the usual shell loop over T/sys/kernel/iommu_groups/ * /devices/ *
 *       calling lspci -nns once per function
 * with fork/exec + wait4: wall time from CLOCK_MONOTONIC, peak RSS from the
 * rusage wait4 returns (ru_maxrss). For (c) wait4 reaps bash, and Linux
 * reports there the largest peak of bash and every descendant it waited for
 * (RUSAGE_CHILDREN semantics): the biggest single process, not a sum.
 *
 * A benchmark is a program, never a timed assertion in the test suite: it
 * prints a markdown table and exits 0, or non-zero when the generated tree
 * fails its check or a command cannot be run. Figures go to docs/BENCHMARKS.md. */
#include "buf.h"
#include "strv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_FUNCS 512
#define N_NICS 64
#define N_VMS 100
#define N_VMS_HOSTPCI 40
#define N_VMS_RUNNING 30
#define N_CPUS 64
#define RUNS_DEFAULT 10
#define RUNS_MAX 1000
#define RUN_TIMEOUT_S 600       /* one run of one command */
#define CHECK_OUTPUT_MAX (64u << 20)
#define RSS_TARGET_KB 8192
#define CFG_SIZE 4096

/* ------------------------------------------------------------------ errors */

static char *cleanup_dir; /* removed at exit unless the user should look at it */

static void remove_tree(const char *dir);

static void cleanup_at_exit(void)
{
    if (cleanup_dir) {
        remove_tree(cleanup_dir);
        free(cleanup_dir);
        cleanup_dir = NULL;
    }
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
    va_list ap;
    fputs("bench_scan: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* A root-relative path built with printf; dies rather than truncate. */
typedef struct {
    char s[512];
} path_t;

static path_t __attribute__((format(printf, 1, 2))) P(const char *fmt, ...)
{
    path_t p;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p.s, sizeof(p.s), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(p.s))
        die("internal: path too long (%s...)", fmt);
    return p;
}

/* ------------------------------------------------------------ file output */

typedef struct {
    char *root;      /* absolute or as given; no trailing slash */
    size_t files;    /* regular files written */
    size_t links;
    size_t bytes;
} gen_t;

static void mkdirs(char *path)
{
    /* path is modified in place and restored; every prefix is created. */
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            die("mkdir %s: %s", path, strerror(errno));
        path[i] = c;
    }
}

static char *full_path(const gen_t *g, const char *rel)
{
    return xasprintf("%s/%s", g->root, rel);
}

static void make_parent(const gen_t *g, const char *rel)
{
    char *full = full_path(g, rel);
    char *slash = strrchr(full, '/');
    if (slash && slash != full) {
        *slash = '\0';
        mkdirs(full);
    }
    free(full);
}

static void put_dir(gen_t *g, const char *rel)
{
    char *full = full_path(g, rel);
    mkdirs(full);
    free(full);
}

static void put_bytes(gen_t *g, const char *rel, const void *data, size_t len)
{
    char *full = full_path(g, rel);
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == ENOENT) {
        make_parent(g, rel);
        fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    }
    if (fd < 0)
        die("create %s: %s", full, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write %s: %s", full, w < 0 ? strerror(errno) : "short write");
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) < 0)
        die("close %s: %s", full, strerror(errno));
    free(full);
    g->files++;
    g->bytes += len;
}

static void put_buf(gen_t *g, const char *rel, const buf_t *b)
{
    put_bytes(g, rel, b->p ? b->p : "", b->len);
}

static void __attribute__((format(printf, 3, 4))) put_text(gen_t *g, const char *rel, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    put_buf(g, rel, &b);
    buf_free(&b);
}

/* A symbolic link at rel pointing at the root-relative path target, written
 * relative ("../../../bus/pci/drivers/i40e") the way sysfs writes them. */
static void put_link(gen_t *g, const char *rel, const char *target)
{
    const char *dir_end = strrchr(rel, '/');
    size_t dir_len = dir_end ? (size_t)(dir_end - rel) : 0;
    /* Common leading components of the link's directory and the target. */
    size_t common = 0; /* bytes of target consumed, at a component boundary */
    size_t i = 0;
    for (;;) {
        size_t a = i, b = i;
        while (a < dir_len && rel[a] != '/')
            a++;
        while (target[b] && target[b] != '/')
            b++;
        if (a == i || a != b || memcmp(rel + i, target + i, a - i) != 0 || target[b] != '/')
            break;
        common = b + 1;
        i = a + 1;
        if (a >= dir_len)
            break;
    }
    buf_t t = BUF_INIT;
    buf_reset(&t);
    /* One ".." per directory component of rel left after the common part. */
    if (dir_len > 0 && common <= dir_len) {
        for (size_t k = common; k < dir_len; k++)
            if (k == common || rel[k - 1] == '/')
                buf_puts(&t, "../");
    }
    buf_puts(&t, target + common);
    char *full = full_path(g, rel);
    if (symlink(t.p, full) < 0) {
        if (errno != ENOENT)
            die("symlink %s -> %s: %s", full, t.p, strerror(errno));
        make_parent(g, rel);
        if (symlink(t.p, full) < 0)
            die("symlink %s -> %s: %s", full, t.p, strerror(errno));
    }
    free(full);
    buf_free(&t);
    g->links++;
}

/* Deterministic pseudo-random numbers (MACs, counters, serials). */
static uint32_t lcg_state = 0x2545f491u;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

/* ----------------------------------------------------------- the machine */

typedef enum {
    K_HOSTBRIDGE, K_CBDMA, K_VTD, K_RAS, K_IOAPIC, K_UBOX, K_ROOTPORT, K_PCH_ROOTPORT,
    K_PCIE_PCI_BRIDGE, K_VGA, K_SSATA, K_SATA, K_XHCI, K_THERMAL, K_MEI, K_LPC, K_PMC,
    K_SMBUS, K_SPI, K_X710, K_I350, K_NVME, K_UNCORE,
} kind_t;

enum { BAR_NONE, BAR_MEM32, BAR_MEM64, BAR_MEM64P, BAR_IO };

typedef struct {
    int type;
    uint64_t size;
    uint64_t start; /* assigned */
} bar_t;

typedef struct {
    unsigned bus, dev, fn;
    kind_t kind;
    uint16_t vendor, device, svid, sdid;
    uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
    uint8_t rev;
    bool multifunction;
    int parent;          /* upstream bridge (index), -1 on a root bus */
    unsigned root_bus;   /* the host bridge this hierarchy hangs off */
    unsigned sec, sub;   /* bridges: secondary and subordinate bus */
    const char *driver;  /* NULL when unbound */
    int group;
    int numa;
    int irq;
    int nic;             /* index among NIC ports, -1 */
    int port_no;         /* root ports: PCIe port number and slot */
    int cap_speed, cap_width, link_speed, link_width; /* PCIe link, 0 when none */
    bar_t bar[6];
    /* bridge windows, filled from the functions below it */
    uint64_t win_mem[2], win_pref[2], win_io[2];
    char path[160];      /* sys/devices/pci0000:BB/... */
    char addr[16];
} fn_t;

typedef struct {
    int fn;              /* index into funcs */
    char ifname[16];
    uint8_t mac[6];
    bool up;
    int speed;
    bool management;
    int ifindex;
} nic_t;

typedef struct {
    fn_t f[N_FUNCS];
    size_t n;
    nic_t nic[N_NICS];
    size_t n_nics;
    int n_groups;
    uint64_t next_mem32, next_mem64, next_io;
} machine_t;

static const uint16_t uncore_ids[] = {0x208d, 0x208e, 0x2054, 0x2055, 0x2056, 0x2057, 0x2058, 0x2066,
                                      0x2068, 0x2069, 0x2040, 0x2041, 0x2042, 0x2043, 0x2044, 0x2045,
                                      0x2046, 0x2047, 0x204c, 0x204d, 0x204e, 0x2088};

static void kind_defaults(fn_t *f, unsigned variant)
{
    /* Board-level devices carry the mainboard's subsystem (Supermicro X11DPi). */
    f->svid = 0x15d9;
    f->sdid = 0x095d;
    f->vendor = 0x8086;
    f->rev = 0x04;
    switch (f->kind) {
    case K_HOSTBRIDGE: f->device = 0x2020; f->class_code = 0x060000; break;
    case K_CBDMA:
        f->device = 0x2021; f->class_code = 0x088000; f->driver = "ioatdma";
        f->bar[0] = (bar_t){BAR_MEM64, 16 << 10, 0};
        break;
    case K_VTD: f->device = 0x2024; f->class_code = 0x088000; break;
    case K_RAS: f->device = 0x2025; f->class_code = 0x088000; break;
    case K_IOAPIC:
        f->device = 0x2026; f->class_code = 0x080020;
        f->bar[0] = (bar_t){BAR_MEM32, 4 << 10, 0};
        break;
    case K_UBOX: f->device = (uint16_t)(0x2014 + variant); f->class_code = 0x088000; break;
    case K_ROOTPORT:
        f->device = (uint16_t)(0x2030 + variant); f->class_code = 0x060400; f->driver = "pcieport";
        f->svid = 0x8086; f->sdid = 0x0000;
        break;
    case K_PCH_ROOTPORT:
        f->device = 0xa190; f->class_code = 0x060400; f->rev = 0xf9; f->driver = "pcieport";
        break;
    case K_PCIE_PCI_BRIDGE:
        f->vendor = 0x1a03; f->device = 0x1150; f->class_code = 0x060400; f->svid = f->sdid = 0;
        break;
    case K_VGA:
        f->vendor = 0x1a03; f->device = 0x2000; f->class_code = 0x030000; f->rev = 0x41; f->driver = "ast";
        f->bar[0] = (bar_t){BAR_MEM32, 16 << 20, 0};
        f->bar[1] = (bar_t){BAR_MEM32, 128 << 10, 0};
        f->bar[2] = (bar_t){BAR_IO, 128, 0};
        break;
    case K_SSATA:
    case K_SATA:
        f->device = f->kind == K_SSATA ? 0xa1d2 : 0xa182; f->class_code = 0x010601; f->rev = 0x09;
        f->driver = "ahci";
        f->bar[0] = (bar_t){BAR_MEM32, 8 << 10, 0};
        f->bar[1] = (bar_t){BAR_MEM32, 256, 0};
        f->bar[2] = (bar_t){BAR_IO, 8, 0};
        f->bar[3] = (bar_t){BAR_IO, 4, 0};
        f->bar[4] = (bar_t){BAR_IO, 32, 0};
        f->bar[5] = (bar_t){BAR_MEM32, 512 << 10, 0};
        break;
    case K_XHCI:
        f->device = 0xa1af; f->class_code = 0x0c0330; f->rev = 0x09; f->driver = "xhci_hcd";
        f->bar[0] = (bar_t){BAR_MEM64, 64 << 10, 0};
        break;
    case K_THERMAL:
        f->device = 0xa1b1; f->class_code = 0x118000; f->rev = 0x09; f->driver = "intel_pch_thermal";
        f->bar[0] = (bar_t){BAR_MEM64, 4 << 10, 0};
        break;
    case K_MEI:
        f->device = (uint16_t)(0xa1ba + variant); f->class_code = 0x078000; f->rev = 0x09;
        f->driver = variant ? NULL : "mei_me";
        f->bar[0] = (bar_t){BAR_MEM64, 4 << 10, 0};
        break;
    case K_LPC: f->device = 0xa1c1; f->class_code = 0x060100; f->rev = 0x09; break;
    case K_PMC:
        f->device = 0xa1a1; f->class_code = 0x058000; f->rev = 0x09;
        f->bar[0] = (bar_t){BAR_MEM32, 16 << 10, 0};
        break;
    case K_SMBUS:
        f->device = 0xa1a3; f->class_code = 0x0c0500; f->rev = 0x09; f->driver = "i801_smbus";
        f->bar[0] = (bar_t){BAR_MEM64, 256, 0};
        f->bar[4] = (bar_t){BAR_IO, 32, 0};
        break;
    case K_SPI:
        f->device = 0xa1a4; f->class_code = 0x0c8000; f->rev = 0x09;
        f->bar[0] = (bar_t){BAR_MEM32, 4 << 10, 0};
        break;
    case K_X710:
        f->device = 0x1572; f->class_code = 0x020000; f->rev = 0x02; f->svid = 0x8086; f->sdid = 0x0004;
        f->driver = "i40e";
        f->bar[0] = (bar_t){BAR_MEM64P, 8 << 20, 0};
        f->bar[3] = (bar_t){BAR_MEM64P, 32 << 10, 0};
        f->cap_speed = f->link_speed = 3;
        f->cap_width = f->link_width = 8;
        break;
    case K_I350:
        f->device = 0x1521; f->class_code = 0x020000; f->rev = 0x01; f->svid = 0x8086; f->sdid = 0x0001;
        f->driver = "igb";
        f->bar[0] = (bar_t){BAR_MEM32, 1 << 20, 0};
        f->bar[2] = (bar_t){BAR_IO, 32, 0};
        f->bar[3] = (bar_t){BAR_MEM32, 16 << 10, 0};
        f->cap_speed = f->link_speed = 2;
        f->cap_width = f->link_width = 4;
        break;
    case K_NVME:
        f->device = 0x0a54; f->class_code = 0x010802; f->rev = 0x00; f->svid = 0x8086; f->sdid = 0x4702;
        f->driver = "nvme";
        f->bar[0] = (bar_t){BAR_MEM64, 16 << 10, 0};
        f->cap_speed = f->link_speed = 3;
        f->cap_width = f->link_width = 4;
        break;
    case K_UNCORE:
        f->device = uncore_ids[variant % (sizeof(uncore_ids) / sizeof(uncore_ids[0]))];
        f->class_code = 0x088000; f->rev = 0x04;
        f->svid = 0x8086; f->sdid = 0x0000;
        f->driver = (variant % 4 == 0) ? "skx_uncore" : NULL;
        break;
    }
}

static bool is_bridge(const fn_t *f)
{
    return f->kind == K_ROOTPORT || f->kind == K_PCH_ROOTPORT || f->kind == K_PCIE_PCI_BRIDGE;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static int add_fn(machine_t *m, unsigned bus, unsigned dev, unsigned fn, kind_t kind, unsigned variant,
                  int parent)
{
    if (m->n >= N_FUNCS)
        die("internal: more than %d functions generated", N_FUNCS);
    fn_t *f = &m->f[m->n];
    memset(f, 0, sizeof(*f));
    f->bus = bus;
    f->dev = dev;
    f->fn = fn;
    f->kind = kind;
    f->parent = parent;
    f->nic = -1;
    f->group = -1;
    f->root_bus = parent >= 0 ? m->f[parent].root_bus : bus;
    f->numa = f->root_bus >= 0x80 ? 1 : 0;
    kind_defaults(f, variant);
    snprintf(f->addr, sizeof(f->addr), "0000:%02x:%02x.%x", bus & 0xff, dev & 0x1f, fn & 7);
    path_t path = parent >= 0 ? P("%s/%s", m->f[parent].path, f->addr)
                              : P("sys/devices/pci0000:%02x/%s", f->root_bus & 0xff, f->addr);
    if (strlen(path.s) >= sizeof(f->path))
        die("internal: device path too long");
    memcpy(f->path, path.s, strlen(path.s) + 1);
    /* INTx: endpoints with a driver or BARs get a pin and a legacy line. */
    bool pin = !is_bridge(f) && kind != K_UNCORE && kind != K_VTD && kind != K_RAS && kind != K_UBOX &&
               kind != K_HOSTBRIDGE && kind != K_LPC;
    f->irq = pin ? 16 + (int)((dev + fn) % 8) : (is_bridge(f) ? 24 + (int)(m->n % 32) : 0);
    /* BARs, each aligned to its size, from three bump allocators. */
    for (int i = 0; i < 6; i++) {
        bar_t *b = &f->bar[i];
        /* Non-prefetchable BARs live below 4 GiB even when 64-bit capable. */
        uint64_t *next = b->type == BAR_IO ? &m->next_io
                         : b->type == BAR_MEM64P ? &m->next_mem64
                                                 : &m->next_mem32;
        if (b->type == BAR_NONE)
            continue;
        b->start = align_up(*next, b->size);
        *next = b->start + b->size;
    }
    return (int)m->n++;
}

/* Starts a bridge's window: children allocate from 1 MiB / 4 KiB boundaries. */
static void align_windows(machine_t *m)
{
    m->next_mem32 = align_up(m->next_mem32, 1 << 20);
    m->next_mem64 = align_up(m->next_mem64, 1 << 20);
    m->next_io = align_up(m->next_io, 4 << 10);
}

static bool below(const machine_t *m, int f, int bridge)
{
    for (int p = m->f[f].parent, hops = 0; p >= 0 && hops < 8; p = m->f[p].parent, hops++)
        if (p == bridge)
            return true;
    return false;
}

static void compute_windows(machine_t *m)
{
    for (size_t b = 0; b < m->n; b++) {
        fn_t *br = &m->f[b];
        if (!is_bridge(br))
            continue;
        uint64_t lo[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX}, hi[3] = {0, 0, 0};
        for (size_t i = 0; i < m->n; i++) {
            if (!below(m, (int)i, (int)b))
                continue;
            for (int k = 0; k < 6; k++) {
                const bar_t *bar = &m->f[i].bar[k];
                int w = bar->type == BAR_IO ? 2 : bar->type == BAR_MEM64P ? 1 : bar->type ? 0 : -1;
                if (w < 0)
                    continue;
                if (bar->start < lo[w])
                    lo[w] = bar->start;
                if (bar->start + bar->size > hi[w])
                    hi[w] = bar->start + bar->size;
            }
        }
        uint64_t *win[3] = {br->win_mem, br->win_pref, br->win_io};
        uint64_t gran[3] = {1 << 20, 1 << 20, 4 << 10};
        for (int w = 0; w < 3; w++) {
            if (lo[w] == UINT64_MAX) {
                win[w][0] = 1; /* base > limit: window closed */
                win[w][1] = 0;
            } else {
                win[w][0] = lo[w] & ~(gran[w] - 1);
                win[w][1] = align_up(hi[w], gran[w]) - 1;
            }
        }
    }
}

static int cmp_fn_addr(const void *a, const void *b)
{
    const fn_t *x = *(const fn_t *const *)a, *y = *(const fn_t *const *)b;
    unsigned kx = x->bus << 8 | x->dev << 3 | x->fn, ky = y->bus << 8 | y->dev << 3 | y->fn;
    return (kx > ky) - (kx < ky);
}

/* IOMMU groups as the kernel forms them here: every root port has ACS, so
 * each slot below one is its own group; functions of one slot without ACS
 * share it; whatever sits behind a PCIe-to-PCI bridge shares the bridge's. */
static void assign_groups(machine_t *m)
{
    fn_t *order[N_FUNCS];
    for (size_t i = 0; i < m->n; i++)
        order[i] = &m->f[i];
    qsort(order, m->n, sizeof(order[0]), cmp_fn_addr);
    int next = 0;
    for (size_t i = 0; i < m->n; i++) {
        fn_t *f = order[i];
        if (f->parent >= 0 && m->f[f->parent].kind == K_PCIE_PCI_BRIDGE) {
            f->group = m->f[f->parent].group;
            continue;
        }
        if (i > 0 && order[i - 1]->bus == f->bus && order[i - 1]->dev == f->dev) {
            f->group = order[i - 1]->group;
            continue;
        }
        f->group = next++;
    }
    m->n_groups = next;
}

static const unsigned pstack_buses[6] = {0x17, 0x3a, 0x5d, 0x85, 0xae, 0xd7};
static const unsigned uncore_buses[2] = {0x16, 0x97};

/* The board, function by function. */
static void build_machine(machine_t *m)
{
    memset(m, 0, sizeof(*m));
    m->next_mem32 = 0x90000000u;
    m->next_mem64 = 0x380000000000ull;
    m->next_io = 0x2000;

    /* Socket 0 CSTACK and the C620 PCH on bus 0. */
    add_fn(m, 0, 0, 0, K_HOSTBRIDGE, 0, -1);
    for (unsigned fn = 0; fn < 8; fn++)
        m->f[add_fn(m, 0, 4, fn, K_CBDMA, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 5, 0, K_VTD, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 5, 2, K_RAS, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 5, 4, K_IOAPIC, 0, -1)].multifunction = true;
    for (unsigned fn = 0; fn < 3; fn++)
        m->f[add_fn(m, 0, 8, fn, K_UBOX, fn, -1)].multifunction = true;
    m->f[add_fn(m, 0, 0x11, 5, K_SSATA, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 0x14, 0, K_XHCI, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 0x14, 2, K_THERMAL, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 0x16, 0, K_MEI, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0, 0x16, 1, K_MEI, 1, -1)].multifunction = true;
    add_fn(m, 0, 0x17, 0, K_SATA, 0, -1);
    align_windows(m);
    int pch_rp = add_fn(m, 0, 0x1c, 0, K_PCH_ROOTPORT, 0, -1);
    m->f[pch_rp].sec = 2;
    m->f[pch_rp].sub = 3;
    m->f[pch_rp].port_no = 1;
    m->f[pch_rp].cap_speed = m->f[pch_rp].link_speed = 1;
    m->f[pch_rp].cap_width = m->f[pch_rp].link_width = 1;
    int aspeed = add_fn(m, 2, 0, 0, K_PCIE_PCI_BRIDGE, 0, pch_rp);
    m->f[aspeed].sec = m->f[aspeed].sub = 3;
    m->f[aspeed].cap_speed = m->f[aspeed].link_speed = 1;
    m->f[aspeed].cap_width = m->f[aspeed].link_width = 1;
    add_fn(m, 3, 0, 0, K_VGA, 0, aspeed);
    align_windows(m);
    kind_t pch_tail[] = {K_LPC, K_PMC, K_SMBUS, K_SPI};
    unsigned pch_fn[] = {0, 2, 4, 5};
    for (int i = 0; i < 4; i++)
        m->f[add_fn(m, 0, 0x1f, pch_fn[i], pch_tail[i], 0, -1)].multifunction = true;

    /* Socket 1 CSTACK. */
    for (unsigned fn = 0; fn < 8; fn++)
        m->f[add_fn(m, 0x80, 4, fn, K_CBDMA, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0x80, 5, 0, K_VTD, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0x80, 5, 2, K_RAS, 0, -1)].multifunction = true;
    m->f[add_fn(m, 0x80, 5, 4, K_IOAPIC, 0, -1)].multifunction = true;
    for (unsigned fn = 0; fn < 3; fn++)
        m->f[add_fn(m, 0x80, 8, fn, K_UBOX, fn, -1)].multifunction = true;

    /* Six PCIe stacks with four root ports each: 16 quad-port NICs (X710 and
     * I350 in turn), 4 NVMe drives, 4 empty slots. */
    int port = 0, card = 0;
    for (int s = 0; s < 6; s++) {
        unsigned rb = pstack_buses[s];
        for (unsigned rp = 0; rp < 4; rp++, port++) {
            align_windows(m);
            int r = add_fn(m, rb, rp, 0, K_ROOTPORT, rp, -1);
            fn_t *root = &m->f[r];
            root->sec = root->sub = rb + 1 + rp;
            root->port_no = (int)(s * 4 + rp + 1);
            root->cap_speed = 3;
            root->cap_width = 16;
            if (port < 16) {
                kind_t k = card % 2 == 0 ? K_X710 : K_I350;
                for (unsigned fn = 0; fn < 4; fn++) {
                    int i = add_fn(m, rb + 1 + rp, 0, fn, k, 0, r);
                    m->f[i].multifunction = true;
                    if (m->n_nics >= N_NICS)
                        die("internal: too many NICs");
                    m->f[i].nic = (int)m->n_nics;
                    m->nic[m->n_nics++].fn = i;
                }
                m->f[r].link_speed = m->f[r + 1].cap_speed;
                m->f[r].link_width = m->f[r + 1].cap_width;
                card++;
            } else if (port < 20) {
                int i = add_fn(m, rb + 1 + rp, 0, 0, K_NVME, 0, r);
                m->f[r].link_speed = m->f[i].cap_speed;
                m->f[r].link_width = m->f[i].cap_width;
            } else {
                m->f[r].link_speed = 1; /* no link: lspci shows 2.5GT/s x0 */
                m->f[r].link_width = 0;
            }
        }
        align_windows(m);
        m->f[add_fn(m, rb, 5, 0, K_VTD, 0, -1)].multifunction = true;
        m->f[add_fn(m, rb, 5, 2, K_RAS, 0, -1)].multifunction = true;
        m->f[add_fn(m, rb, 5, 4, K_IOAPIC, 0, -1)].multifunction = true;
    }

    /* Uncore (CHA, IMC, KTI, ...) fills the rest up to N_FUNCS. */
    unsigned variant = 0;
    for (int u = 0; u < 2 && m->n < N_FUNCS; u++)
        for (unsigned dev = 8; dev < 0x20 && m->n < N_FUNCS; dev++)
            for (unsigned fn = 0; fn < 8 && m->n < N_FUNCS; fn++)
                m->f[add_fn(m, uncore_buses[u], dev, fn, K_UNCORE, variant++, -1)].multifunction = true;
    if (m->n != N_FUNCS || m->n_nics != N_NICS)
        die("internal: generated %zu functions and %zu NICs", m->n, m->n_nics);

    compute_windows(m);
    assign_groups(m);

    /* NIC ports: netdev names from the slot, MACs from the vendor's OUI. */
    for (size_t i = 0; i < m->n_nics; i++) {
        nic_t *n = &m->nic[i];
        const fn_t *f = &m->f[n->fn];
        snprintf(n->ifname, sizeof(n->ifname), "enp%us0f%u", f->bus, f->fn);
        bool x710 = f->kind == K_X710;
        n->mac[0] = x710 ? 0x3c : 0xa0;
        n->mac[1] = x710 ? 0xfd : 0x36;
        n->mac[2] = x710 ? 0xfe : 0x9f;
        n->mac[3] = (uint8_t)(lcg() & 0xff);
        n->mac[4] = (uint8_t)f->bus;
        n->mac[5] = (uint8_t)(f->fn);
        /* I350 ports 2 and 3 have no cable. */
        n->up = x710 || f->fn < 2;
        n->speed = n->up ? (x710 ? 10000 : 1000) : -1;
        n->ifindex = 3 + (int)i;
    }
    /* The host's own uplink: port 0 of the first I350, in vmbr0. */
    for (size_t i = 0; i < m->n_nics; i++)
        if (m->f[m->nic[i].fn].kind == K_I350) {
            m->nic[i].management = true;
            break;
        }
}

/* ------------------------------------------------------- config space */

static void w8(uint8_t *c, unsigned off, unsigned v) { c[off] = (uint8_t)v; }
static void w16(uint8_t *c, unsigned off, unsigned v)
{
    c[off] = (uint8_t)v;
    c[off + 1] = (uint8_t)(v >> 8);
}
static void w32(uint8_t *c, unsigned off, uint32_t v)
{
    w16(c, off, v & 0xffff);
    w16(c, off + 2, v >> 16);
}

enum { PCIE_EP = 0, PCIE_RP = 4, PCIE_PCI_BRIDGE = 7, PCIE_RCIEP = 9 };

static int pcie_type(const fn_t *f)
{
    switch (f->kind) {
    case K_ROOTPORT:
    case K_PCH_ROOTPORT: return PCIE_RP;
    case K_PCIE_PCI_BRIDGE: return PCIE_PCI_BRIDGE;
    case K_X710:
    case K_I350:
    case K_NVME: return PCIE_EP;
    default: return PCIE_RCIEP;
    }
}

static void cap_pcie(uint8_t *c, unsigned o, const fn_t *f)
{
    int type = pcie_type(f);
    bool rp = type == PCIE_RP;
    w16(c, o + 2, 0x0002 | (unsigned)type << 4 | (rp ? 0x0100 : 0)); /* v2, slot implemented */
    w32(c, o + 4, rp ? 0x00008001 : 0x10008fc2);                     /* DevCap */
    w16(c, o + 8, rp ? 0x002f : 0x293f);                             /* DevCtl */
    if (type == PCIE_RCIEP)
        return; /* no link */
    uint32_t lnkcap = (uint32_t)f->cap_speed | (uint32_t)f->cap_width << 4 | 0x00000c00 /* ASPM L0s L1 */ |
                      (rp ? 0x00100000u : 0) | (uint32_t)f->port_no << 24;
    w32(c, o + 0x0c, lnkcap);
    w16(c, o + 0x10, 0x0040); /* common clock */
    bool linked = f->link_width > 0;
    w16(c, o + 0x12, (unsigned)f->link_speed | (unsigned)f->link_width << 4 | 0x1000 |
                         (rp && linked ? 0x2000 : 0));
    if (rp) {
        w32(c, o + 0x14, (uint32_t)f->port_no << 19 | 0x00000040);
        w16(c, o + 0x1a, linked ? 0x0040 : 0x0000); /* presence detect */
    }
    w32(c, o + 0x24, rp ? 0x0000003f : 0x0000001f); /* DevCap2 (ARI forwarding on ports) */
    w32(c, o + 0x2c, ((1u << f->cap_speed) - 1) << 1); /* LnkCap2: speeds vector */
    w16(c, o + 0x30, (unsigned)f->cap_speed);
}

static void cap_msi(uint8_t *c, unsigned o, bool enabled)
{
    w16(c, o + 2, 0x0086 | (enabled ? 1 : 0)); /* 64-bit, 8 vectors capable */
    if (enabled) {
        w32(c, o + 4, 0xfee00000u | (lcg() & 0xff) << 12);
        w16(c, o + 0x0c, lcg() & 0xffff);
    }
}

static void cap_msix(uint8_t *c, unsigned o, unsigned size, unsigned bir)
{
    w16(c, o + 2, 0x8000 | (size - 1));
    w32(c, o + 4, 0x00000000 | bir);
    w32(c, o + 8, 0x00001000 | bir);
}

static void ext_hdr(uint8_t *c, unsigned o, unsigned id, unsigned ver, unsigned next)
{
    w32(c, o, id | ver << 16 | next << 20);
}

/* Writes the capability list: normal[] and ext[] give ids and offsets in
 * chain order; the bodies depend on the function. */
typedef struct {
    unsigned id, off;
} capspec_t;

static void write_caps(uint8_t *c, const fn_t *f, const capspec_t *normal, size_t nn, const capspec_t *ext,
                       size_t ne)
{
    if (nn == 0)
        return;
    w16(c, 0x06, 0x0010); /* status: capabilities list */
    w8(c, 0x34, normal[0].off);
    for (size_t i = 0; i < nn; i++) {
        unsigned o = normal[i].off;
        w8(c, o, normal[i].id);
        w8(c, o + 1, i + 1 < nn ? normal[i + 1].off : 0);
        switch (normal[i].id) {
        case 0x01: /* power management */
            w16(c, o + 2, is_bridge(f) ? 0xc803 : 0xc823);
            w16(c, o + 4, 0x0008);
            break;
        case 0x05: cap_msi(c, o, is_bridge(f) || f->kind == K_XHCI || f->kind == K_SATA || f->kind == K_SSATA ||
                                     f->kind == K_MEI); break;
        case 0x0d: /* bridge subsystem id */
            w16(c, o + 4, f->svid);
            w16(c, o + 6, f->sdid);
            break;
        case 0x10: cap_pcie(c, o, f); break;
        case 0x11:
            cap_msix(c, o, f->kind == K_X710 ? 129 : f->kind == K_I350 ? 10 : f->kind == K_NVME ? 32 : 1,
                     f->kind == K_X710 || f->kind == K_I350 ? 3 : 0);
            break;
        case 0x12: /* SATA index/data pair */
            w16(c, o + 2, 0x0010);
            w32(c, o + 4, 0x00000048);
            break;
        }
    }
    for (size_t i = 0; i < ne; i++) {
        unsigned o = ext[i].off, id = ext[i].id;
        ext_hdr(c, o, id, id == 0x0001 ? 2 : 1, i + 1 < ne ? ext[i + 1].off : 0);
        switch (id) {
        case 0x0001: /* AER */
            w32(c, o + 0x0c, 0x00462030); /* severity */
            w32(c, o + 0x14, 0x00002000); /* corrected mask */
            w32(c, o + 0x18, 0x000000a0);
            break;
        case 0x0003: { /* device serial number */
            w32(c, o + 4, lcg());
            w32(c, o + 8, 0x3cfdfe00u | (f->bus & 0xff));
            break;
        }
        case 0x000d: /* ACS: SrcValid TransBlk ReqRedir CmpltRedir UpstreamFwd, all but TransBlk on */
            w16(c, o + 4, 0x001f);
            w16(c, o + 6, 0x001d);
            break;
        case 0x000e: /* ARI: next function */
            w16(c, o + 4, (f->fn < 3 ? f->fn + 1 : 0) << 8);
            break;
        case 0x0010: /* SR-IOV: 32 VFs, none enabled */
            w32(c, o + 4, 0x00000000);
            w16(c, o + 8, 0x0010);
            w16(c, o + 0x0c, 32);
            w16(c, o + 0x0e, 32);
            w16(c, o + 0x10, 0);
            w16(c, o + 0x14, (unsigned)(0x100 + 32 * f->fn - f->fn));
            w16(c, o + 0x16, 1);
            w16(c, o + 0x1a, 0x154c);
            w32(c, o + 0x1c, 0x00000553);
            w32(c, o + 0x20, 0x00000001);
            w32(c, o + 0x24, 0x0000000c);
            w32(c, o + 0x30, 0x0000000c);
            break;
        case 0x0019: /* secondary PCIe */
            break;
        }
    }
}

static void build_config(const fn_t *f, uint8_t *c)
{
    memset(c, 0, CFG_SIZE);
    w16(c, 0x00, f->vendor);
    w16(c, 0x02, f->device);
    bool has_io = false, has_mem = false;
    for (int i = 0; i < 6; i++) {
        has_io |= f->bar[i].type == BAR_IO;
        has_mem |= f->bar[i].type != BAR_NONE && f->bar[i].type != BAR_IO;
    }
    unsigned cmd = 0x0004 | (has_mem || is_bridge(f) ? 0x0002 : 0) | (has_io || is_bridge(f) ? 0x0001 : 0);
    w8(c, 0x08, f->rev);
    w8(c, 0x09, f->class_code & 0xff);
    w8(c, 0x0a, (f->class_code >> 8) & 0xff);
    w8(c, 0x0b, (f->class_code >> 16) & 0xff);
    w8(c, 0x0c, 0x10);
    w8(c, 0x0e, (is_bridge(f) ? 0x01 : 0x00) | (f->multifunction ? 0x80 : 0x00));
    if (is_bridge(f)) {
        const fn_t *br = f; /* type 1 header: buses and windows */
        w8(c, 0x18, f->bus);
        w8(c, 0x19, br->sec);
        w8(c, 0x1a, br->sub);
        if (br->win_io[0] <= br->win_io[1]) {
            w8(c, 0x1c, (unsigned)((br->win_io[0] >> 8) & 0xf0) | 0x01);
            w8(c, 0x1d, (unsigned)((br->win_io[1] >> 8) & 0xf0) | 0x01);
        } else {
            w8(c, 0x1c, 0xf1);
            w8(c, 0x1d, 0x01);
        }
        if (br->win_mem[0] <= br->win_mem[1]) {
            w16(c, 0x20, (unsigned)((br->win_mem[0] >> 16) & 0xfff0));
            w16(c, 0x22, (unsigned)((br->win_mem[1] >> 16) & 0xfff0));
        } else {
            w16(c, 0x20, 0xfff0);
            w16(c, 0x22, 0x0000);
        }
        if (br->win_pref[0] <= br->win_pref[1]) {
            w16(c, 0x24, (unsigned)((br->win_pref[0] >> 16) & 0xfff0) | 1);
            w16(c, 0x26, (unsigned)((br->win_pref[1] >> 16) & 0xfff0) | 1);
            w32(c, 0x28, (uint32_t)(br->win_pref[0] >> 32));
            w32(c, 0x2c, (uint32_t)(br->win_pref[1] >> 32));
        } else {
            w16(c, 0x24, 0xfff1);
            w16(c, 0x26, 0x0001);
        }
        w16(c, 0x3e, 0x0010);
    } else {
        w16(c, 0x2c, f->svid);
        w16(c, 0x2e, f->sdid);
        for (int i = 0; i < 6; i++) {
            const bar_t *b = &f->bar[i];
            unsigned o = 0x10 + 4 * (unsigned)i;
            switch (b->type) {
            case BAR_MEM32: w32(c, o, (uint32_t)b->start); break;
            case BAR_IO: w32(c, o, (uint32_t)b->start | 1); break;
            case BAR_MEM64:
            case BAR_MEM64P:
                w32(c, o, (uint32_t)b->start | 0x4 | (b->type == BAR_MEM64P ? 0x8 : 0));
                if (i < 5)
                    w32(c, o + 4, (uint32_t)(b->start >> 32));
                break;
            }
        }
    }
    bool pin = (f->irq >= 16 && f->irq < 24) || is_bridge(f);
    w8(c, 0x3c, (unsigned)f->irq & 0xff);
    w8(c, 0x3d, pin ? 1 : 0);

    capspec_t n[6], e[6];
    size_t nn = 0, ne = 0;
#define NCAP(i, o) (n[nn++] = (capspec_t){(i), (o)})
#define ECAP(i, o) (e[ne++] = (capspec_t){(i), (o)})
    switch (f->kind) {
    case K_HOSTBRIDGE:
        NCAP(0x10, 0x90);
        NCAP(0x01, 0xe0);
        break;
    case K_CBDMA:
        NCAP(0x11, 0x80);
        NCAP(0x10, 0x90);
        NCAP(0x01, 0xe0);
        ECAP(0x0001, 0x100);
        break;
    case K_VTD:
    case K_RAS:
    case K_IOAPIC:
    case K_UBOX:
    case K_UNCORE: NCAP(0x10, 0x40); break;
    case K_ROOTPORT:
        NCAP(0x0d, 0x40);
        NCAP(0x05, 0x60);
        NCAP(0x10, 0x90);
        NCAP(0x01, 0xe0);
        ECAP(0x0001, 0x100);
        ECAP(0x000d, 0x148);
        ECAP(0x0019, 0x250);
        break;
    case K_PCH_ROOTPORT:
        NCAP(0x10, 0x40);
        NCAP(0x05, 0x80);
        NCAP(0x0d, 0x90);
        NCAP(0x01, 0xa0);
        ECAP(0x0001, 0x100);
        break;
    case K_PCIE_PCI_BRIDGE:
        NCAP(0x10, 0x50);
        NCAP(0x01, 0xc8);
        break;
    case K_VGA:
        NCAP(0x01, 0x40);
        NCAP(0x05, 0x50);
        break;
    case K_SSATA:
    case K_SATA:
        NCAP(0x05, 0x80);
        NCAP(0x01, 0x70);
        NCAP(0x12, 0xa8);
        break;
    case K_XHCI:
        NCAP(0x01, 0x70);
        NCAP(0x05, 0x80);
        break;
    case K_THERMAL:
    case K_MEI:
        NCAP(0x01, 0x50);
        NCAP(0x05, 0x8c);
        break;
    case K_LPC:
    case K_PMC:
    case K_SMBUS:
    case K_SPI: break; /* no capability list */
    case K_X710:
        NCAP(0x01, 0x40);
        NCAP(0x05, 0x50);
        NCAP(0x11, 0x70);
        NCAP(0x10, 0xa0);
        ECAP(0x0001, 0x100);
        ECAP(0x0003, 0x140);
        ECAP(0x000e, 0x150);
        ECAP(0x0010, 0x160);
        break;
    case K_I350:
        NCAP(0x01, 0x40);
        NCAP(0x05, 0x50);
        NCAP(0x11, 0x70);
        NCAP(0x10, 0xa0);
        ECAP(0x0001, 0x100);
        ECAP(0x0003, 0x140);
        ECAP(0x000e, 0x150);
        break;
    case K_NVME:
        NCAP(0x01, 0x40);
        NCAP(0x11, 0x50);
        NCAP(0x10, 0x60);
        ECAP(0x0001, 0x100);
        ECAP(0x0003, 0x150);
        break;
    }
#undef NCAP
#undef ECAP
    bool msix = false;
    for (size_t i = 0; i < nn; i++)
        msix |= n[i].id == 0x11;
    if (msix || f->kind == K_XHCI || f->kind == K_SATA || f->kind == K_SSATA || f->kind == K_MEI)
        cmd |= 0x0400; /* INTx disabled: MSI/MSI-X in use */
    w16(c, 0x04, cmd);
    write_caps(c, f, n, nn, e, ne);
}

/* --------------------------------------------------------- the sysfs tree */

static uint64_t resource_flags(int type)
{
    switch (type) {
    case BAR_MEM32: return 0x00040200;
    case BAR_MEM64: return 0x00140204;
    case BAR_MEM64P: return 0x0014220c;
    case BAR_IO: return 0x00040101;
    default: return 0;
    }
}

static void write_function(gen_t *g, const fn_t *f, uint8_t *cfg)
{
    const char *d = f->path;
    build_config(f, cfg);
    put_bytes(g, P("%s/config", d).s, cfg, CFG_SIZE);
    put_text(g, P("%s/vendor", d).s, "0x%04x\n", f->vendor);
    put_text(g, P("%s/device", d).s, "0x%04x\n", f->device);
    put_text(g, P("%s/class", d).s, "0x%06x\n", f->class_code);
    put_text(g, P("%s/revision", d).s, "0x%02x\n", f->rev);
    uint16_t svid = is_bridge(f) ? 0 : f->svid, sdid = is_bridge(f) ? 0 : f->sdid;
    put_text(g, P("%s/subsystem_vendor", d).s, "0x%04x\n", svid);
    put_text(g, P("%s/subsystem_device", d).s, "0x%04x\n", sdid);
    put_text(g, P("%s/irq", d).s, "%d\n", f->irq);
    put_text(g, P("%s/numa_node", d).s, "%d\n", f->numa);
    put_text(g, P("%s/local_cpulist", d).s, "%s\n", f->numa ? "16-31,48-63" : "0-15,32-47");
    put_text(g, P("%s/enable", d).s, "1\n");
    put_text(g, P("%s/modalias", d).s, "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X\n", f->vendor, f->device,
             svid, sdid, f->class_code >> 16, (f->class_code >> 8) & 0xff, f->class_code & 0xff);
    buf_t res = BUF_INIT;
    for (int i = 0; i < 7; i++) {
        const bar_t *b = i < 6 ? &f->bar[i] : NULL;
        if (b && b->type != BAR_NONE)
            buf_printf(&res, "0x%016llx 0x%016llx 0x%016llx\n", (unsigned long long)b->start,
                       (unsigned long long)(b->start + b->size - 1), (unsigned long long)resource_flags(b->type));
        else
            buf_puts(&res, "0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
    }
    put_buf(g, P("%s/resource", d).s, &res);
    buf_free(&res);
    for (int i = 0; i < 6; i++)
        if (f->bar[i].type != BAR_NONE)
            put_bytes(g, P("%s/resource%d", d, i).s, "", 0);
    if (f->kind == K_X710) {
        put_text(g, P("%s/sriov_totalvfs", d).s, "32\n");
        put_text(g, P("%s/sriov_numvfs", d).s, "0\n");
    }
    if (f->driver) {
        put_link(g, P("%s/driver", d).s, P("sys/bus/pci/drivers/%s", f->driver).s);
        put_link(g, P("sys/bus/pci/drivers/%s/%s", f->driver, f->addr).s, d);
    }
    put_link(g, P("%s/iommu_group", d).s, P("sys/kernel/iommu_groups/%d", f->group).s);
    put_link(g, P("%s/subsystem", d).s, "sys/bus/pci");
    put_link(g, P("sys/bus/pci/devices/%s", f->addr).s, d);
    put_link(g, P("sys/kernel/iommu_groups/%d/devices/%s", f->group, f->addr).s, d);
}

static void write_netdev(gen_t *g, const machine_t *m, const nic_t *n)
{
    const fn_t *f = &m->f[n->fn];
    path_t dir = P("%s/net/%s", f->path, n->ifname);
    put_text(g, P("%s/address", dir.s).s, "%02x:%02x:%02x:%02x:%02x:%02x\n", n->mac[0], n->mac[1], n->mac[2],
             n->mac[3], n->mac[4], n->mac[5]);
    put_text(g, P("%s/speed", dir.s).s, "%d\n", n->speed);
    put_text(g, P("%s/duplex", dir.s).s, "%s\n", n->up ? "full" : "unknown");
    put_text(g, P("%s/operstate", dir.s).s, "%s\n", n->up ? "up" : "down");
    put_text(g, P("%s/carrier", dir.s).s, "%d\n", n->up ? 1 : 0);
    put_text(g, P("%s/mtu", dir.s).s, "%d\n", n->management ? 1500 : 9000);
    put_text(g, P("%s/ifindex", dir.s).s, "%d\n", n->ifindex);
    put_text(g, P("%s/type", dir.s).s, "1\n");
    put_text(g, P("%s/addr_len", dir.s).s, "6\n");
    put_link(g, P("%s/device", dir.s).s, f->path);
    put_link(g, P("%s/subsystem", dir.s).s, "sys/class/net");
    put_link(g, P("sys/class/net/%s", n->ifname).s, dir.s);
    if (n->management) {
        put_link(g, P("%s/master", dir.s).s, "sys/devices/virtual/net/vmbr0");
        put_link(g, P("%s/brport/bridge", dir.s).s, "sys/devices/virtual/net/vmbr0");
        put_link(g, P("sys/devices/virtual/net/vmbr0/brif/%s", n->ifname).s, P("%s/brport", dir.s).s);
        put_link(g, P("sys/devices/virtual/net/vmbr0/lower_%s", n->ifname).s, dir.s);
    }
}

static void write_virtual_netdevs(gen_t *g, const machine_t *m)
{
    const char *lo = "sys/devices/virtual/net/lo";
    put_text(g, P("%s/address", lo).s, "00:00:00:00:00:00\n");
    put_text(g, P("%s/operstate", lo).s, "unknown\n");
    put_text(g, P("%s/ifindex", lo).s, "1\n");
    put_text(g, P("%s/type", lo).s, "772\n");
    put_link(g, "sys/class/net/lo", lo);
    const char *br = "sys/devices/virtual/net/vmbr0";
    const nic_t *mgmt = NULL;
    for (size_t i = 0; i < m->n_nics; i++)
        if (m->nic[i].management)
            mgmt = &m->nic[i];
    put_text(g, P("%s/address", br).s, "%02x:%02x:%02x:%02x:%02x:%02x\n", mgmt->mac[0], mgmt->mac[1],
             mgmt->mac[2], mgmt->mac[3], mgmt->mac[4], mgmt->mac[5]);
    put_text(g, P("%s/operstate", br).s, "up\n");
    put_text(g, P("%s/ifindex", br).s, "2\n");
    put_text(g, P("%s/type", br).s, "1\n");
    put_text(g, P("%s/bridge/stp_state", br).s, "0\n");
    put_text(g, P("%s/bridge/forward_delay", br).s, "0\n");
    put_link(g, "sys/class/net/vmbr0", br);
}

static void write_sysfs(gen_t *g, const machine_t *m)
{
    uint8_t *cfg = xmalloc(CFG_SIZE);
    for (size_t i = 0; i < m->n; i++)
        write_function(g, &m->f[i], cfg);
    free(cfg);
    for (int grp = 0; grp < m->n_groups; grp++) {
        put_text(g, P("sys/kernel/iommu_groups/%d/type", grp).s, "DMA-FQ\n");
        put_text(g, P("sys/kernel/iommu_groups/%d/reserved_regions", grp).s,
                 "0x00000000fee00000 0x00000000feefffff msi\n");
    }
    for (size_t i = 0; i < m->n_nics; i++)
        write_netdev(g, m, &m->nic[i]);
    write_virtual_netdevs(g, m);
    put_dir(g, "sys/bus/pci/slots");
    put_dir(g, "sys/module/vfio");
    /* One DMAR unit per PCIe stack (two CSTACKs, six PSTACKs), as on Skylake-SP. */
    for (unsigned u = 0; u < 8; u++) {
        path_t dev = P("sys/devices/virtual/iommu/dmar%u", u);
        put_text(g, P("%s/intel-iommu/version", dev.s).s, "1:0\n");
        put_text(g, P("%s/intel-iommu/address", dev.s).s, "%llx\n", 0xc5ffc000ull - u * 0x1000000ull);
        put_link(g, P("sys/class/iommu/dmar%u", u).s, dev.s);
    }
    put_dir(g, "sys/firmware/acpi/tables");
    put_dir(g, "sys/module/vfio_pci");
    put_dir(g, "sys/module/vfio_iommu_type1");
}

/* ACPI DMAR: header, host address width, INTR_REMAP, one DRHD per unit. */
static void write_dmar(gen_t *g)
{
    uint8_t t[48 + 8 * 16];
    memset(t, 0, sizeof(t));
    memcpy(t, "DMAR", 4);
    w32(t, 4, sizeof(t));
    t[8] = 1;
    memcpy(t + 10, "INTEL ", 6);
    memcpy(t + 16, "INTEL ID", 8);
    w32(t, 24, 1);
    memcpy(t + 28, "INTL", 4);
    w32(t, 32, 0x20091013);
    t[36] = 45; /* host address width - 1 */
    t[37] = 0x01;
    for (unsigned u = 0; u < 8; u++) {
        unsigned o = 48 + 16 * u;
        w16(t, o, 0);  /* DRHD */
        w16(t, o + 2, 16);
        t[o + 4] = u == 0 ? 1 : 0; /* INCLUDE_PCI_ALL on the PCH unit */
        uint64_t base = 0xc5ffc000ull - u * 0x1000000ull;
        w32(t, o + 8, (uint32_t)base);
        w32(t, o + 12, (uint32_t)(base >> 32));
    }
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(t); i++)
        sum += t[i];
    t[9] = (uint8_t)(0x100 - (sum & 0xff));
    put_bytes(g, "sys/firmware/acpi/tables/DMAR", t, sizeof(t));
}

/* ------------------------------------------------------------ proc, etc */

#define KERNEL_RELEASE "6.8.12-4-pve"
#define BOOT_ARGS "root=/dev/mapper/pve-root ro quiet intel_iommu=on"
#define CMDLINE "BOOT_IMAGE=/boot/vmlinuz-" KERNEL_RELEASE " " BOOT_ARGS

static void write_cpuinfo(gen_t *g)
{
    static const char flags[] =
        "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr "
        "sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good "
        "nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 "
        "ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes "
        "xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single pti "
        "intel_ppin ssbd mba ibrs ibpb stibp tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust "
        "bmi1 hle avx2 smep bmi2 erms invpcid rtm cqm mpx rdt_a avx512f avx512dq rdseed adx smap clflushopt "
        "clwb intel_pt avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc "
        "cqm_mbm_total cqm_mbm_local dtherm ida arat pln pts pku ospke md_clear flush_l1d arch_capabilities";
    buf_t b = BUF_INIT;
    for (int cpu = 0; cpu < N_CPUS; cpu++) {
        int socket = (cpu / 16) % 2, core = cpu % 16;
        buf_printf(&b,
                   "processor\t: %d\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
                   "model name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\nstepping\t: 4\n"
                   "microcode\t: 0x2007006\ncpu MHz\t\t: %d.%03d\ncache size\t: 22528 KB\nphysical id\t: %d\n"
                   "siblings\t: 32\ncore id\t\t: %d\ncpu cores\t: 16\napicid\t\t: %d\ninitial apicid\t: %d\n"
                   "fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 22\nwp\t\t: yes\nflags\t\t: %s\n"
                   "vmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb "
                   "flexpriority apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg "
                   "vid ple shadow_vmcs pml\n"
                   "bugs\t\t: cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs taa "
                   "itlb_multihit mmio_stale_data retbleed gds\nbogomips\t: 4200.00\nclflush size\t: 64\n"
                   "cache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n"
                   "power management:\n\n",
                   cpu, 2000 + (int)(lcg() % 1700), (int)(lcg() % 1000), socket, core,
                   socket * 64 + core * 2 + cpu / 32, socket * 64 + core * 2 + cpu / 32, flags);
    }
    put_buf(g, "proc/cpuinfo", &b);
    buf_free(&b);
}

static void irq_line(buf_t *b, int irq, const char *chip, const char *hw, const char *name)
{
    buf_printf(b, "%4d:", irq);
    for (int c = 0; c < N_CPUS; c++)
        buf_printf(b, " %10u", (lcg() % 7 == 0) ? lcg() % 5000000 : 0);
    buf_printf(b, "  %-26s %-10s %s\n", chip, hw, name);
}

static void write_interrupts(gen_t *g, const machine_t *m)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "     ");
    for (int c = 0; c < N_CPUS; c++)
        buf_printf(&b, " %10s", P("CPU%d", c).s);
    buf_putc(&b, '\n');
    irq_line(&b, 0, "IR-IO-APIC", "2-edge", "timer");
    irq_line(&b, 8, "IR-IO-APIC", "8-edge", "rtc0");
    irq_line(&b, 9, "IR-IO-APIC", "9-fasteoi", "acpi");
    irq_line(&b, 16, "IR-IO-APIC", "16-fasteoi", "i801_smbus");
    int irq = 24;
    for (int u = 0; u < 8; u++)
        irq_line(&b, irq++, "DMAR-MSI", P("%d-edge", u).s, P("dmar%d", u).s);
    char chip[64];
    for (size_t i = 0; i < m->n; i++) {
        const fn_t *f = &m->f[i];
        snprintf(chip, sizeof(chip), "IR-PCI-MSI-%s", f->addr);
        if (f->kind == K_ROOTPORT || f->kind == K_PCH_ROOTPORT)
            irq_line(&b, irq++, chip, "0-edge", "PCIe PME, aerdrv, pciehp");
        else if (f->kind == K_XHCI)
            irq_line(&b, irq++, chip, "0-edge", "xhci_hcd");
        else if (f->kind == K_SATA || f->kind == K_SSATA)
            irq_line(&b, irq++, chip, "0-edge", P("ahci[%s]", f->addr).s);
        else if (f->kind == K_MEI && f->driver)
            irq_line(&b, irq++, chip, "0-edge", "mei_me");
        snprintf(chip, sizeof(chip), "IR-PCI-MSIX-%s", f->addr);
        if (f->kind == K_CBDMA)
            irq_line(&b, irq++, chip, "0-edge", "ioat-msix");
        else if (f->kind == K_NVME)
            for (int q = 0; q < 9; q++)
                irq_line(&b, irq++, chip, P("%d-edge", q).s, P("nvme%dq%d", f->bus % 4, q).s);
        else if (f->nic >= 0) {
            const nic_t *n = &m->nic[f->nic];
            bool x710 = f->kind == K_X710;
            irq_line(&b, irq++, chip, "0-edge", x710 ? P("i40e-%s:misc", f->addr).s : n->ifname);
            for (int q = 0; q < 8; q++)
                irq_line(&b, irq++, chip, P("%d-edge", q + 1).s,
                         x710 ? P("i40e-%s-TxRx-%d", n->ifname, q).s : P("%s-TxRx-%d", n->ifname, q).s);
        }
    }
    static const char *const tail[][2] = {
        {"NMI", "Non-maskable interrupts"}, {"LOC", "Local timer interrupts"},
        {"SPU", "Spurious interrupts"},     {"PMI", "Performance monitoring interrupts"},
        {"IWI", "IRQ work interrupts"},     {"RTR", "APIC ICR read retries"},
        {"RES", "Rescheduling interrupts"}, {"CAL", "Function call interrupts"},
        {"TLB", "TLB shootdowns"},          {"TRM", "Thermal event interrupts"},
        {"THR", "Threshold APIC interrupts"}, {"DFR", "Deferred Error APIC interrupts"},
        {"MCE", "Machine check exceptions"}, {"MCP", "Machine check polls"},
        {"PIN", "Posted-interrupt notification event"}, {"NPI", "Nested posted-interrupt event"},
        {"PIW", "Posted-interrupt wakeup event"},
    };
    for (size_t t = 0; t < sizeof(tail) / sizeof(tail[0]); t++) {
        buf_printf(&b, "%4s:", tail[t][0]);
        for (int c = 0; c < N_CPUS; c++)
            buf_printf(&b, " %10u", lcg() % 100000);
        buf_printf(&b, "   %s\n", tail[t][1]);
    }
    buf_puts(&b, " ERR:          0\n MIS:          0\n");
    put_buf(g, "proc/interrupts", &b);
    buf_free(&b);
}

static void write_proc_etc(gen_t *g, const machine_t *m)
{
    write_cpuinfo(g);
    write_interrupts(g, m);
    put_text(g, "proc/cmdline", "%s\n", CMDLINE);
    put_text(g, "proc/sys/kernel/osrelease", "%s\n", KERNEL_RELEASE);
    put_text(g, "proc/sys/kernel/hostname", "bench-pve01\n");
    put_text(g, "proc/sys/kernel/random/boot_id", "6f1c2a4e-9d3b-4c8e-a7f0-2b5d8e1c4a90\n");
    put_text(g, "etc/hostname", "bench-pve01\n");

    static const char *const modules[] = {
        "vfio_pci 16384 0 - Live 0x0000000000000000",
        "vfio_pci_core 86016 1 vfio_pci, Live 0x0000000000000000",
        "irqbypass 12288 2 vfio_pci_core,kvm, Live 0x0000000000000000",
        "vfio_iommu_type1 49152 0 - Live 0x0000000000000000",
        "vfio 69632 3 vfio_pci,vfio_pci_core,vfio_iommu_type1, Live 0x0000000000000000",
        "iommufd 98304 1 vfio, Live 0x0000000000000000",
        "kvm_intel 409600 0 - Live 0x0000000000000000",
        "kvm 1376256 1 kvm_intel, Live 0x0000000000000000",
        "i40e 573440 0 - Live 0x0000000000000000",
        "igb 307200 0 - Live 0x0000000000000000",
        "nvme 57344 4 - Live 0x0000000000000000",
        "nvme_core 217088 5 nvme, Live 0x0000000000000000",
        "ahci 49152 0 - Live 0x0000000000000000",
        "libahci 53248 1 ahci, Live 0x0000000000000000",
        "xhci_pci 24576 0 - Live 0x0000000000000000",
        "ast 90112 0 - Live 0x0000000000000000",
        "ioatdma 73728 0 - Live 0x0000000000000000",
        "dca 16384 2 i40e,igb,ioatdma, Live 0x0000000000000000",
        "mei_me 53248 0 - Live 0x0000000000000000",
        "mei 167936 1 mei_me, Live 0x0000000000000000",
        "i2c_i801 36864 0 - Live 0x0000000000000000",
        "intel_pch_thermal 20480 0 - Live 0x0000000000000000",
        "skx_edac 28672 0 - Live 0x0000000000000000",
        "zfs 6311936 6 - Live 0x0000000000000000 (PO)",
        "spl 155648 1 zfs, Live 0x0000000000000000 (O)",
        "bridge 421888 0 - Live 0x0000000000000000",
        "stp 12288 1 bridge, Live 0x0000000000000000",
        "llc 16384 2 bridge,stp, Live 0x0000000000000000",
        "bonding 233472 0 - Live 0x0000000000000000",
        "tls 155648 1 bonding, Live 0x0000000000000000",
    };
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
        buf_printf(&b, "%s\n", modules[i]);
    put_buf(g, "proc/modules", &b);
    buf_reset(&b);

    /* The default route leaves through vmbr0. */
    buf_puts(&b, "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                 "vmbr0\t00000000\t010AA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                 "vmbr0\t000AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n");
    put_buf(g, "proc/net/route", &b);
    buf_free(&b);

    put_text(g, "etc/default/grub",
             "# If you change this file, run 'update-grub' afterwards to update\n"
             "# /boot/grub/grub.cfg.\n"
             "# For full documentation of the options in this file, see:\n"
             "#   info -f grub -n 'Simple configuration'\n\n"
             "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n"
             "GRUB_DISTRIBUTOR=`( . /etc/os-release && echo ${NAME} )`\n"
             "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\n"
             "GRUB_CMDLINE_LINUX=\"\"\n\n"
             "# Disable os-prober, it might add menu entries for each guest\n"
             "GRUB_DISABLE_OS_PROBER=true\n");
    put_text(g, "boot/grub/grub.cfg", "# generated by grub-mkconfig\nmenuentry 'Proxmox VE GNU/Linux' {\n"
                                      "\tlinux /boot/vmlinuz-%s %s\n}\n",
             KERNEL_RELEASE, BOOT_ARGS);
    put_text(g, "etc/modules",
             "# /etc/modules: kernel modules to load at boot time.\n#\n"
             "# This file contains the names of kernel modules that should be loaded\n"
             "# at boot time, one per line. Lines beginning with \"#\" are ignored.\n"
             "# Parameters can be specified after the module name.\n\n"
             "vfio\nvfio_iommu_type1\nvfio_pci\n");
}

static void write_dmesg(gen_t *g, const machine_t *m)
{
    buf_t b = BUF_INIT;
    double t = 0.0;
#define KL(...) (buf_printf(&b, "[%5d.%06d] ", (int)t, (int)((t - (int)t) * 1e6)), buf_printf(&b, __VA_ARGS__), \
                 buf_putc(&b, '\n'), t += 0.000137)
    KL("Linux version %s (build@proxmox) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for "
       "Debian) 2.40) #1 SMP PREEMPT_DYNAMIC PMX %s (2024-11-26T12:01Z) ()", KERNEL_RELEASE, KERNEL_RELEASE);
    KL("Command line: %s", CMDLINE);
    KL("BIOS-provided physical RAM map:");
    KL("ACPI: DMAR 0x000000006F2C1000 0000C8 (v01 INTEL  INTEL ID 00000001 INTL 20091013)");
    KL("Kernel command line: %s", CMDLINE);
    KL("DMAR: IOMMU enabled");
    KL("DMAR: Host address width 46");
    for (int u = 0; u < 8; u++)
        KL("DMAR: DRHD base: 0x000000%08llx flags: 0x%d", 0xc5ffc000ull - (unsigned long long)u * 0x1000000ull,
           u == 0);
    for (int u = 0; u < 8; u++)
        KL("DMAR: dmar%d: reg_base_addr %llx ver 1:0 cap 8d2078c106f0466 ecap f020df", u,
           0xc5ffc000ull - (unsigned long long)u * 0x1000000ull);
    KL("DMAR-IR: IOAPIC id 12 under DRHD base  0xc5ffc000 IOMMU 0");
    KL("DMAR-IR: Enabled IRQ remapping in x2apic mode");
    KL("x2apic enabled");
    t = 1.2;
    for (size_t i = 0; i < m->n; i++) {
        const fn_t *f = &m->f[i];
        KL("pci %s: [%04x:%04x] type %02x class 0x%06x %s", f->addr, f->vendor, f->device, is_bridge(f) ? 1 : 0,
           f->class_code, pcie_type(f) == PCIE_RCIEP ? "conventional PCI endpoint" : "PCIe Endpoint");
    }
    t = 3.8;
    KL("DMAR: Intel(R) Virtualization Technology for Directed I/O");
    for (size_t i = 0; i < m->n; i++)
        KL("pci %s: Adding to iommu group %d", m->f[i].addr, m->f[i].group);
    for (size_t i = 0; i < m->n_nics; i++) {
        const fn_t *f = &m->f[m->nic[i].fn];
        if (f->kind == K_X710)
            KL("i40e %s: fw 8.5.67516 api 1.15 nvm 8.50 0x8000b6dc 1.3179.0 [8086:1572] [8086:0004]", f->addr);
        else
            KL("igb %s: Intel(R) Gigabit Ethernet Network Connection", f->addr);
        KL("%s %s %s: renamed from eth%zu", f->kind == K_X710 ? "i40e" : "igb", f->addr, m->nic[i].ifname, i);
    }
    KL("VFIO - User Level meta-driver version: 0.3");
    for (size_t i = 0; i < m->n_nics; i++)
        if (m->nic[i].management)
            KL("vmbr0: port 1(%s) entered forwarding state", m->nic[i].ifname);
#undef KL
    put_buf(g, "dmesg.txt", &b);
    buf_free(&b);
}

/* 100 Proxmox VMs; 40 pass NIC ports or NVMe drives through. */
static void write_vms(gen_t *g, const machine_t *m)
{
    /* Devices to hand out: NIC ports in address order (not the uplink), then NVMe. */
    const fn_t *pool[N_FUNCS];
    size_t np = 0, next = 0;
    const fn_t *sorted[N_FUNCS];
    for (size_t i = 0; i < m->n; i++)
        sorted[i] = &m->f[i];
    qsort(sorted, m->n, sizeof(sorted[0]), cmp_fn_addr);
    for (size_t i = 0; i < m->n; i++)
        if (sorted[i]->nic >= 0 && !m->nic[sorted[i]->nic].management)
            pool[np++] = sorted[i];
    size_t nvme_first = np;
    for (size_t i = 0; i < m->n; i++)
        if (sorted[i]->kind == K_NVME)
            pool[np++] = sorted[i];

    static const char *const roles[] = {"fw", "router", "dpdk", "lb", "vpn", "web", "db", "ci", "mon", "dns"};
    buf_t b = BUF_INIT;
    int running = 0;
    for (int v = 0; v < N_VMS; v++) {
        int id = 100 + v;
        buf_reset(&b);
        bool passthrough = v < N_VMS_HOSTPCI;
        const char *role = passthrough ? roles[v % 5] : roles[5 + v % 5];
        buf_printf(&b, "#%s node %d, managed by pcifleet bench\n", role, v);
        buf_printf(&b, "boot: order=scsi0;net0\ncores: %d\ncpu: host\n", passthrough ? 8 : 2 + v % 4);
        if (passthrough) {
            if (v < 24) {
                buf_printf(&b, "hostpci0: %s,pcie=1\n", pool[next++]->addr);
            } else if (v < 36) {
                /* two ports; every other VM in the short form Proxmox also accepts */
                const char *a0 = pool[next++]->addr, *a1 = pool[next++]->addr;
                if (v % 2)
                    buf_printf(&b, "hostpci0: %s,pcie=1\nhostpci1: %s,pcie=1,rombar=0\n", a0 + 5, a1 + 5);
                else
                    buf_printf(&b, "hostpci0: %s,pcie=1\nhostpci1: %s,pcie=1,rombar=0\n", a0, a1);
            } else {
                buf_printf(&b, "hostpci0: %s,pcie=1\n", pool[nvme_first + (size_t)(v - 36)]->addr);
            }
        }
        buf_printf(&b, "machine: %s\nmemory: %d\n", passthrough ? "q35" : "pc-i440fx-8.1",
                   passthrough ? 16384 : 2048 << (v % 3));
        buf_printf(&b, "meta: creation-qemu=8.1.5,ctime=%d\nname: %s-%02d\n", 1700000000 + v * 3600, role, v);
        buf_printf(&b, "net0: virtio=BC:24:11:%02X:%02X:%02X,bridge=vmbr0,firewall=1\n", v, lcg() & 0xff,
                   lcg() & 0xff);
        buf_printf(&b, "numa: %d\nonboot: 1\nostype: l26\n", passthrough ? 1 : 0);
        buf_printf(&b, "scsi0: local-zfs:vm-%d-disk-0,iothread=1,size=%dG\nscsihw: virtio-scsi-single\n", id,
                   16 << (v % 4));
        buf_printf(&b, "smbios1: uuid=%08x-%04x-4%03x-8%03x-%08x%04x\nsockets: 1\n", lcg(), lcg() & 0xffff,
                   lcg() & 0xfff, lcg() & 0xfff, lcg(), lcg() & 0xffff);
        buf_printf(&b, "vmgenid: %08x-%04x-4%03x-9%03x-%08x%04x\n", lcg(), lcg() & 0xffff, lcg() & 0xfff,
                   lcg() & 0xfff, lcg(), lcg() & 0xffff);
        if (v % 10 == 3)
            buf_printf(&b, "\n[before-upgrade]\nboot: order=scsi0\ncores: 2\nmemory: 2048\nname: %s-%02d\n"
                           "snaptime: %d\n", role, v, 1690000000 + v);
        put_buf(g, P("etc/pve/qemu-server/%d.conf", id).s, &b);
        /* Passthrough VMs are stopped (their devices still on host drivers);
         * most of the others run. */
        if (!passthrough && running < N_VMS_RUNNING) {
            int pid = 20000 + v * 17;
            put_text(g, P("run/qemu-server/%d.pid", id).s, "%d\n", pid);
            put_text(g, P("proc/%d/comm", pid).s, "kvm\n");
            running++;
        }
    }
    buf_free(&b);
    if (next > nvme_first)
        die("internal: hostpci pool overrun");
}

static void generate(gen_t *g, machine_t *m)
{
    build_machine(m);
    write_sysfs(g, m);
    write_dmar(g);
    write_proc_etc(g, m);
    write_dmesg(g, m);
    write_vms(g, m);
}

/* ------------------------------------------------------------ processes */

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
}

typedef struct {
    int status;
    double ms;      /* wall */
    double cpu_ms;  /* user + system, the child and every descendant it waited for */
    long maxrss_kb;
    bool killed;
} run_t;

/* Runs argv (PATH lookup) with stdin from /dev/null, stdout to out_fd and
 * stderr to err_fd, in its own process group, killed after RUN_TIMEOUT_S. */
static int run_cmd(char *const argv[], int out_fd, int err_fd, run_t *r)
{
    memset(r, 0, sizeof(*r));
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return -errno;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(devnull);
        return e;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        dprintf(2, "bench_scan: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(devnull);
    timed_out = 0;
    alarm(RUN_TIMEOUT_S);
    struct rusage ru;
    int st = 0;
    for (int tries = 0;; tries++) {
        pid_t w = wait4(pid, &st, 0, &ru);
        if (w == pid)
            break;
        if (w < 0 && errno == EINTR && tries < 1000) {
            if (timed_out && !r->killed) {
                kill(-pid, SIGKILL);
                r->killed = true;
            }
            continue;
        }
        alarm(0);
        return w < 0 ? -errno : -ECHILD;
    }
    alarm(0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->status = st;
    r->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    r->cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    r->maxrss_kb = ru.ru_maxrss;
    return 0;
}

static bool run_ok(const run_t *r)
{
    return !r->killed && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

static void describe_status(const run_t *r, char *out, size_t n)
{
    if (r->killed)
        snprintf(out, n, "killed after %d s", RUN_TIMEOUT_S);
    else if (WIFEXITED(r->status))
        snprintf(out, n, "exit status %d", WEXITSTATUS(r->status));
    else if (WIFSIGNALED(r->status))
        snprintf(out, n, "killed by signal %d", WTERMSIG(r->status));
    else
        snprintf(out, n, "wait status 0x%x", (unsigned)r->status);
}

/* Reads up to max bytes of fd into b; -EFBIG past that. */
static int read_all(int fd, buf_t *b, size_t max)
{
    char chunk[65536];
    for (size_t total = 0; total <= max;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        total += (size_t)n;
        if (total > max)
            break;
        buf_append(b, chunk, (size_t)n);
    }
    return -EFBIG;
}

static void show_file_head(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char text[4096];
    ssize_t n = read(fd, text, max < sizeof(text) ? max : sizeof(text));
    close(fd);
    if (n > 0)
        fprintf(stderr, "%.*s%s", (int)n, text, text[n - 1] == '\n' ? "" : "\n");
}

/* ------------------------------------------------------- checking the tree */

static const char *j_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

static const char *j_str(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* The end of the JSON value at p, or NULL when it is malformed. */
static const char *j_val(const char *p, const char *e, int depth)
{
    p = j_ws(p, e);
    if (p >= e || depth > 64)
        return NULL;
    if (*p == '"')
        return j_str(p, e);
    if (*p == '{' || *p == '[') {
        bool obj = *p == '{';
        char close = obj ? '}' : ']';
        p = j_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        while (p && p < e) {
            if (obj) {
                if (*p != '"' || !(p = j_str(p, e)))
                    return NULL;
                p = j_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = j_val(p, e, depth + 1)))
                return NULL;
            p = j_ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p = j_ws(p + 1, e);
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && (strchr("0123456789+-.eE", *p) || (*p >= 'a' && *p <= 'z')))
        p++;
    return p > s ? p : NULL;
}

/* The value of key in the object at obj (NULL when absent); *vend its end. */
static const char *j_member(const char *obj, const char *e, const char *key, const char **vend)
{
    const char *p = j_ws(obj, e);
    if (p >= e || *p != '{')
        return NULL;
    p = j_ws(p + 1, e);
    size_t kl = strlen(key);
    while (p < e && *p == '"') {
        const char *ks = p + 1, *ke = j_str(p, e);
        if (!ke)
            return NULL;
        p = j_ws(ke, e);
        if (p >= e || *p != ':')
            return NULL;
        const char *v = j_ws(p + 1, e), *ve = j_val(v, e, 1);
        if (!ve)
            return NULL;
        if ((size_t)(ke - 1 - ks) == kl && memcmp(ks, key, kl) == 0) {
            *vend = ve;
            return v;
        }
        p = j_ws(ve, e);
        if (p < e && *p == ',')
            p = j_ws(p + 1, e);
    }
    return NULL;
}

/* Elements of the array at p, -1 when p is not an array. */
static long j_count(const char *p, const char *e)
{
    p = j_ws(p, e);
    if (p >= e || *p != '[')
        return -1;
    p = j_ws(p + 1, e);
    if (p < e && *p == ']')
        return 0;
    long n = 0;
    while (p && p < e) {
        if (!(p = j_val(p, e, 1)))
            return -1;
        n++;
        p = j_ws(p, e);
        if (p < e && *p == ']')
            return n;
        if (p >= e || *p != ',')
            return -1;
        p++;
    }
    return -1;
}

typedef struct {
    long devices, nics, vms, groups, errors;
    char verdict[32];
} scan_counts_t;

static bool parse_scan(const char *text, size_t len, scan_counts_t *c, const char **err_s, const char **err_e)
{
    const char *e = text + len, *ve = NULL;
    if (!j_val(text, e, 0))
        return false;
    const char *v;
    long *dst[] = {&c->devices, &c->nics, &c->vms, &c->groups, &c->errors};
    const char *keys[] = {"devices", "nics", "vms", "groups", "errors"};
    for (int i = 0; i < 5; i++) {
        v = j_member(text, e, keys[i], &ve);
        *dst[i] = v ? j_count(v, ve) : -1;
        if (i == 4 && v) {
            *err_s = v;
            *err_e = ve;
        }
    }
    snprintf(c->verdict, sizeof(c->verdict), "?");
    const char *io = j_member(text, e, "iommu", &ve);
    if (io && (v = j_member(io, ve, "verdict", &ve)) && *v == '"' && ve - v >= 2)
        snprintf(c->verdict, sizeof(c->verdict), "%.*s", (int)(ve - v - 2), v + 1);
    return true;
}

static bool check_tree(const char *agent, const char *root, const char *workdir, const machine_t *m)
{
    char *argv[] = {(char *)agent, "scan", "--root", (char *)root, "--json", NULL};
    char *tmpl = xasprintf("%s/check.json", workdir);
    char *errpath = xasprintf("%s/check.stderr", workdir);
    int out = open(tmpl, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || err < 0)
        die("cannot create %s: %s", tmpl, strerror(errno));
    run_t r;
    int rc = run_cmd(argv, out, err, &r);
    close(err);
    bool ok = false;
    if (rc < 0 || !run_ok(&r)) {
        char why[64];
        if (rc < 0)
            snprintf(why, sizeof(why), "%s", strerror(-rc));
        else
            describe_status(&r, why, sizeof(why));
        fprintf(stderr, "bench_scan: CHECK FAILED: %s scan --root %s --json: %s\n", agent, root, why);
        show_file_head(errpath, 2000);
        goto done;
    }
    buf_t json = BUF_INIT;
    lseek(out, 0, SEEK_SET);
    if (read_all(out, &json, CHECK_OUTPUT_MAX) < 0) {
        fprintf(stderr, "bench_scan: CHECK FAILED: cannot read the agent's output (or it is over %u MiB)\n",
                CHECK_OUTPUT_MAX >> 20);
        buf_free(&json);
        goto done;
    }
    scan_counts_t c;
    const char *es = NULL, *ee = NULL;
    if (!parse_scan(json.p ? json.p : "", json.len, &c, &es, &ee)) {
        fprintf(stderr, "bench_scan: CHECK FAILED: the agent's output is not one JSON document\n");
        buf_free(&json);
        goto done;
    }
    ok = c.devices == N_FUNCS && c.nics == N_NICS && c.vms == N_VMS && c.errors == 0 &&
         c.groups == m->n_groups;
    fprintf(stderr, "bench_scan: check: %ld devices, %ld NICs, %ld VMs, %ld IOMMU groups, %ld errors, verdict %s "
                    "(%zu bytes of JSON)\n",
            c.devices, c.nics, c.vms, c.groups, c.errors, c.verdict, json.len);
    if (!ok) {
        fprintf(stderr, "bench_scan: CHECK FAILED: expected %d devices, %d NICs, %d VMs, %d IOMMU groups and no "
                        "errors\n",
                N_FUNCS, N_NICS, N_VMS, m->n_groups);
        if (es && c.errors > 0)
            fprintf(stderr, "errors: %.*s%s\n", (int)(ee - es > 3000 ? 3000 : ee - es), es,
                    ee - es > 3000 ? " ..." : "");
    }
    buf_free(&json);
done:
    close(out);
    unlink(tmpl);
    unlink(errpath);
    free(tmpl);
    free(errpath);
    return ok;
}

/* ---------------------------------------------------------------- timing */

typedef struct {
    const char *label;  /* markdown cell */
    char **argv;
    double ms[RUNS_MAX];
    double cpu[RUNS_MAX];
    int n;
    long maxrss_kb;
    const char *missing; /* program not found: the row is not run */
    bool skipped;
    bool stderr_seen;
} series_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void time_one(series_t *s, const char *errpath, bool record)
{
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || err < 0)
        die("cannot open /dev/null or %s: %s", errpath, strerror(errno));
    run_t r;
    int rc = run_cmd(s->argv, out, err, &r);
    close(out);
    off_t errlen = lseek(err, 0, SEEK_END);
    close(err);
    if (rc < 0)
        die("cannot run %s: %s", s->argv[0], strerror(-rc));
    if (!run_ok(&r)) {
        char why[64];
        describe_status(&r, why, sizeof(why));
        fprintf(stderr, "bench_scan: %s failed (%s):\n", s->label, why);
        show_file_head(errpath, 2000);
        exit(3);
    }
    if (errlen > 0 && !s->stderr_seen) {
        s->stderr_seen = true;
        fprintf(stderr, "bench_scan: note: %s wrote to stderr:\n", s->label);
        show_file_head(errpath, 600);
    }
    if (!record)
        return;
    s->cpu[s->n] = r.cpu_ms;
    s->ms[s->n++] = r.ms;
    if (r.maxrss_kb > s->maxrss_kb)
        s->maxrss_kb = r.maxrss_kb;
}

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    strv_t dirs = STRV_INIT;
    for (const char *p = path; *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        strv_addn(&dirs, n ? p : ".", n ? n : 1);
        p += n + (c ? 1 : 0);
    }
    bool found = false;
    for (size_t i = 0; i < dirs.n && !found; i++) {
        char *full = xasprintf("%s/%s", dirs.v[i], prog);
        found = access(full, X_OK) == 0;
        free(full);
    }
    strv_free(&dirs);
    return found;
}

/* ------------------------------------------------------------ utilities */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static char *default_agent(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/'); /* .../build/bench/bench_scan */
    if (!slash)
        return NULL;
    *slash = '\0';
    slash = strrchr(self, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return xasprintf("%s/pcifleet-agent", self[0] ? self : "/");
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_scan [--agent PATH] [--runs N] [--keep DIR] [--help]\n"
            "\n"
            "Generates a large host tree (%d PCI functions, %d NICs, %d Proxmox VMs), checks it\n"
            "with one 'pcifleet-agent scan --json', then times N runs each of the agent scan,\n"
            "'lspci -vvv' over the same tree and a shell loop calling 'lspci -nns' for every\n"
            "function in /sys/kernel/iommu_groups. Prints a markdown table.\n"
            "\n"
            "  --agent PATH   pcifleet-agent to time (default: ../pcifleet-agent from this program)\n"
            "  --runs N       timed runs per command, 0-%d (default %d; 0: generate and check only)\n"
            "  --keep DIR     generate the tree in DIR (new or empty) and leave it there\n"
            "  -h, --help     show this help\n"
            "\n"
            "Exit status: 0 figures printed, 1 bad usage, 2 the tree could not be generated or\n"
            "failed its check, 3 a timed command failed.\n",
            N_FUNCS, N_NICS, N_VMS, RUNS_MAX, RUNS_DEFAULT);
}

/* True when dir holds nothing but "." and ".." (reads at most a few entries). */
static bool dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    int seen = 0;
    struct dirent *de;
    while (seen < 3 && (de = readdir(d)) != NULL)
        seen++;
    closedir(d);
    return seen == 2;
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"agent", required_argument, NULL, 'a'}, {"runs", required_argument, NULL, 'r'},
        {"keep", required_argument, NULL, 'k'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *agent_opt = NULL, *keep = NULL;
    long runs = RUNS_DEFAULT;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': agent_opt = optarg; break;
        case 'r': {
            char *end;
            errno = 0;
            runs = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || runs < 0 || runs > RUNS_MAX) {
                fprintf(stderr, "bench_scan: --runs wants a number from 0 to %d, not '%s'\n", RUNS_MAX, optarg);
                return 1;
            }
            break;
        }
        case 'k': keep = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_scan: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    char *agent = agent_opt ? xstrdup(agent_opt) : default_agent();
    if (!agent || access(agent, X_OK) != 0) {
        fprintf(stderr, "bench_scan: cannot run the agent at %s; pass --agent PATH\n", agent ? agent : "(unknown)");
        free(agent);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);

    /* Work directory (stderr captures; the tree unless --keep). */
    const char *tmp = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/pcifleet-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl))
        die("mkdtemp %s: %s", tmpl, strerror(errno));
    cleanup_dir = tmpl;
    atexit(cleanup_at_exit);
    char *root;
    if (keep) {
        if (mkdir(keep, 0755) < 0 && errno != EEXIST)
            die("--keep %s: %s", keep, strerror(errno));
        if (!dir_is_empty(keep))
            die("--keep %s: not an empty directory; the tree is only written into a new or empty one", keep);
        root = realpath(keep, NULL);
        if (!root)
            die("--keep %s: %s", keep, strerror(errno));
    } else {
        root = xasprintf("%s/root", tmpl);
        if (mkdir(root, 0755) < 0)
            die("mkdir %s: %s", root, strerror(errno));
    }

    /* Generate. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gen_t g = {root, 0, 0, 0};
    machine_t *m = xcalloc(1, sizeof(*m));
    generate(&g, m);
    fprintf(stderr, "bench_scan: generated %s: %zu PCI functions, %zu NICs, %d IOMMU groups, %d VMs; %zu files, "
                    "%zu links, %zu KiB in %.0f ms\n",
            root, m->n, m->n_nics, m->n_groups, N_VMS, g.files, g.links, g.bytes >> 10, elapsed_ms(&t0));

    int ret = 0;
    if (!check_tree(agent, root, tmpl, m)) {
        if (!keep) {
            /* Leave the tree for whoever has to find out why. */
            fprintf(stderr, "bench_scan: the tree is left in %s for inspection\n", tmpl);
            free(cleanup_dir);
            cleanup_dir = NULL;
        }
        ret = 2;
        goto out;
    }
    if (runs == 0)
        goto out;

    /* Time. */
    char *sysfs_opt = xasprintf("sysfs.path=%s/sys/bus/pci", root);
    char *a_argv[] = {agent, "scan", "--root", root, "--json", NULL};
    char *b_argv[] = {"lspci", "-A", "linux-sysfs", "-O", sysfs_opt, "-vvv", NULL};
    char *c_argv[] = {"bash", "-c",
                      "for d in \"$1\"/sys/kernel/iommu_groups/*/devices/*; do "
                      "lspci -A linux-sysfs -O sysfs.path=\"$1\"/sys/bus/pci -nns \"${d##*/}\"; done",
                      "bench_scan", root, NULL};
    char *t_argv[] = {"true", NULL};
    static series_t series[4];
    series[0] = (series_t){.label = "`pcifleet-agent scan --root T --json`", .argv = a_argv};
    series[1] = (series_t){.label = "`lspci -A linux-sysfs -O sysfs.path=T/sys/bus/pci -vvv`", .argv = b_argv};
    series[2] = (series_t){.label = "`for d in T/sys/kernel/iommu_groups/*/devices/*; do lspci -A linux-sysfs "
                                    "-O sysfs.path=T/sys/bus/pci -nns \"${d##*/}\"; done`",
                           .argv = c_argv};
    series[3] = (series_t){.label = "`true` (floor: fork/exec/wait4 and the RSS this method reports for nothing)",
                           .argv = t_argv};
    bool have_lspci = in_path("lspci");
    series[1].missing = have_lspci ? NULL : "lspci";
    series[2].missing = !have_lspci ? "lspci" : !in_path("bash") ? "bash" : NULL;
    series[3].missing = in_path("true") ? NULL : "true";
    for (int s = 0; s < 4; s++)
        series[s].skipped = series[s].missing != NULL;
    char *errpath = xasprintf("%s/run.stderr", tmpl);
    /* One untimed round (caches warm, commands known to work), then rounds
     * that take every command in turn so drift hits them all alike. */
    for (long r = -1; r < runs; r++)
        for (int s = 0; s < 4; s++)
            if (!series[s].skipped)
                time_one(&series[s], errpath, r >= 0);
    free(errpath);

    printf("Fixture: %d PCI functions, %d NICs, %d IOMMU groups, %d Proxmox VMs (%d with hostpci); T = %s\n\n",
           N_FUNCS, N_NICS, m->n_groups, N_VMS, N_VMS_HOSTPCI, root);
    printf("| command | runs | wall min ms | wall median ms | wall max ms | CPU median ms | peak RSS |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    double med[4] = {0, 0, 0, 0}, cpu[4] = {0, 0, 0, 0};
    for (int s = 0; s < 4; s++) {
        series_t *x = &series[s];
        if (x->skipped) {
            printf("| %s | not run: %s not found | | | | | |\n", x->label, x->missing);
            continue;
        }
        med[s] = median(x->ms, x->n);
        cpu[s] = median(x->cpu, x->n);
        printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f MiB |\n", x->label, x->n, x->ms[0], med[s],
               x->ms[x->n - 1], cpu[s], (double)x->maxrss_kb / 1024.0);
    }
    printf("\nWall time from CLOCK_MONOTONIC around fork/exec/wait4; CPU is user+system from wait4's\n"
           "rusage (for the shell loop: bash and every lspci it ran). Peak RSS is ru_maxrss from wait4,\n"
           "the largest over all runs; for the shell loop it is the largest single process (bash or one\n"
           "lspci), not a sum. A forked child starts with this program's own pages counted, so RSS\n"
           "below the `true` row cannot be resolved.\n\n");
    bool time_ok = !series[1].skipped && med[0] <= med[1];
    bool mem_ok = series[0].maxrss_kb < RSS_TARGET_KB;
    if (series[1].skipped)
        printf("Targets: scan no slower than one `lspci -vvv` — not measured (no lspci); ");
    else
        printf("Targets: scan no slower than one `lspci -vvv` — %s (wall median %.1f vs %.1f ms, ratio %.2f; "
               "CPU median %.1f vs %.1f ms, ratio %.2f); ",
               time_ok ? "met" : "MISSED", med[0], med[1], med[0] / med[1], cpu[0], cpu[1],
               cpu[1] > 0 ? cpu[0] / cpu[1] : 0.0);
    printf("peak RSS under 8 MiB — %s (%.1f MiB).\n", mem_ok ? "met" : "MISSED",
           (double)series[0].maxrss_kb / 1024.0);
    free(sysfs_opt);

out:
    if (keep)
        fprintf(stderr, "bench_scan: the tree is kept in %s\n", root);
    free(m);
    free(root);
    free(agent);
    return ret;
}
