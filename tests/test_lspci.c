/* Cross-check against lspci: for every fixture host, `lspci -vvv` run by
 * pciutils itself over the same sysfs tree must list the same functions,
 * ids, classes, capability offsets, ACS bits, SR-IOV counts and link state
 * as the agent's inventory. lspci is an independent reader of the tree, so
 * this proves both the fixtures (built from real dumps) and the agent. */
#include "testutil.h"

#include "buf.h"
#include "inventory.h"

#include <dirent.h>

typedef struct {
    char address[16];
    unsigned cls, vendor, device;
    unsigned caps[64];
    size_t n_caps;
    int acs; /* -1 absent */
    unsigned acs_cap, acs_ctl;
    long sriov_total, sriov_num; /* -1 absent */
    char lnk_speed[16];
    int lnk_width; /* -1 absent */
} lsdev_t;

static unsigned acs_bits(const char *s)
{
    unsigned v = 0;
    for (unsigned b = 0; pci_acs_bit_name(b); b++) {
        char want[32];
        snprintf(want, sizeof(want), "%s+", pci_acs_bit_name(b));
        if (strstr(s, want))
            v |= 1u << b;
    }
    return v;
}

/* Parses `lspci -D -nn -vvv` text into devs; returns the count. */
static size_t parse_lspci(char *text, lsdev_t *devs, size_t max)
{
    size_t n = 0;
    lsdev_t *cur = NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        unsigned d, b, s, f;
        int used = 0;
        if (line[0] != '\t' && line[0] != ' ' &&
            sscanf(line, "%4x:%2x:%2x.%1x %n", &d, &b, &s, &f, &used) == 4 && used > 0) {
            assert_true(n < max);
            cur = &devs[n++];
            memset(cur, 0, sizeof(*cur));
            cur->acs = -1;
            cur->sriov_total = cur->sriov_num = -1;
            cur->lnk_width = -1;
            snprintf(cur->address, sizeof(cur->address), "%04x:%02x:%02x.%x", d, b, s, f);
            /* "Class name [cccc]: Vendor Device [vvvv:dddd]" */
            char *cls = strstr(line, "]: ");
            assert_non_null(cls);
            assert_int_equal(sscanf(cls - 4, "%4x", &cur->cls), 1);
            char *ids = NULL;
            for (char *p = line; (p = strchr(p, '[')) != NULL; p++) {
                unsigned v, dv;
                char close;
                if (sscanf(p, "[%4x:%4x%c", &v, &dv, &close) == 3 && close == ']')
                    ids = p;
            }
            assert_non_null(ids);
            assert_int_equal(sscanf(ids, "[%4x:%4x]", &cur->vendor, &cur->device), 2);
            continue;
        }
        if (!cur)
            continue;
        char *p;
        unsigned off;
        if ((p = strstr(line, "Capabilities: [")) != NULL && sscanf(p, "Capabilities: [%x", &off) == 1) {
            assert_true(cur->n_caps < 64);
            cur->caps[cur->n_caps++] = off;
        } else if ((p = strstr(line, "ACSCap:")) != NULL) {
            cur->acs = 1;
            cur->acs_cap = acs_bits(p);
        } else if ((p = strstr(line, "ACSCtl:")) != NULL) {
            cur->acs_ctl = acs_bits(p);
        } else if ((p = strstr(line, "Total VFs: ")) != NULL) {
            sscanf(p, "Total VFs: %ld, Number of VFs: %ld", &cur->sriov_total, &cur->sriov_num);
        } else if ((p = strstr(line, "LnkSta:")) != NULL) {
            char *sp = strstr(p, "Speed ");
            char *w = strstr(p, "Width x");
            if (sp)
                sscanf(sp, "Speed %15[^ ,(]", cur->lnk_speed);
            if (w)
                sscanf(w, "Width x%d", &cur->lnk_width);
        }
    }
    return n;
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

static void check_fixture(const char *name)
{
    char *dir = tu_fixture_src(name);
    char *cmd = xasprintf("lspci -A linux-sysfs -O sysfs.path='%s/sys/bus/pci' -D -nn -vvv 2>/dev/null", dir);
    int status;
    char *text = tu_run(cmd, &status);
    assert_int_equal(status, 0);
    static lsdev_t ls[1024];
    size_t n = parse_lspci(text, ls, 1024);

    scan_opts_t o = {dir, NULL, NULL};
    inventory_t *inv = NULL;
    char *err = NULL;
    assert_int_equal(inventory_scan(&o, &inv, &err), 0);
    if (n != inv->devices.n)
        fail_msg("%s: lspci lists %zu functions, the agent %zu", name, n, inv->devices.n);
    for (size_t i = 0; i < n; i++) {
        const lsdev_t *l = &ls[i];
        const pci_dev_info_t *d = pci_devs_find(&inv->devices, l->address);
        if (!d)
            fail_msg("%s: lspci lists %s, the agent does not", name, l->address);
        assert_int_equal(d->vendor_id, l->vendor);
        assert_int_equal(d->device_id, l->device);
        assert_int_equal(d->class_code, l->cls);
        unsigned mine[64];
        size_t nm = 0;
        for (size_t k = 0; k < d->n_caps && nm < 64; k++)
            mine[nm++] = d->caps[k].offset;
        unsigned theirs[64];
        memcpy(theirs, l->caps, sizeof(theirs));
        qsort(mine, nm, sizeof(unsigned), cmp_unsigned);
        qsort(theirs, l->n_caps, sizeof(unsigned), cmp_unsigned);
        if (nm != l->n_caps)
            fail_msg("%s %s: lspci shows %zu capabilities, the agent %zu", name, l->address, l->n_caps, nm);
        for (size_t k = 0; k < nm; k++)
            assert_int_equal(mine[k], theirs[k]);
        assert_int_equal(d->has_acs, l->acs == 1);
        if (d->has_acs) {
            assert_int_equal(d->acs_cap & 0x7f, l->acs_cap);
            assert_int_equal(d->acs_ctl & 0x7f, l->acs_ctl);
        }
        if (l->sriov_total >= 0) {
            assert_true(d->has_sriov);
            assert_int_equal(d->sriov_total, l->sriov_total);
            assert_int_equal(d->sriov_num, l->sriov_num);
        }
        if (l->lnk_width >= 0) {
            assert_int_equal(d->link_width, l->lnk_width);
            const char *sp = pci_link_speed_name(d->link_speed);
            if (sp || strcmp(l->lnk_speed, "unknown") != 0)
                assert_string_equal(sp ? sp : "unknown", l->lnk_speed);
        }
    }
    inventory_destroy(&inv);
    free(text);
    free(cmd);
    free(dir);
}

/* Every fixture host, and at least the one built from a whole real machine. */
static void test_lspci_agrees(void **state)
{
    (void)state;
    char *base = tu_fixture_src("");
    DIR *d = opendir(base);
    assert_non_null(d);
    struct dirent *de;
    int checked = 0;
    bool real_machine = false;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *pci = xasprintf("%s/%s/sys/bus/pci/devices", base, de->d_name);
        DIR *probe = opendir(pci);
        free(pci);
        if (!probe)
            continue;
        closedir(probe);
        check_fixture(de->d_name);
        checked++;
        real_machine |= strcmp(de->d_name, "intel-grub-vtd-off") == 0;
    }
    closedir(d);
    free(base);
    assert_true(checked >= 6);
    assert_true(real_machine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lspci_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
