/* Tests for controller/claims.c, the conflicts query and plan.c on a
 * hand-built fleet of four nodes with the situations operators meet:
 *
 * fw1 (ready): I210 01:00.0 carrying the management route; a free I225
 *   02:00.0; an I225 03:00.0 configured in firewall VM 100 (stopped) and in
 *   VM 101 too; an 82599 PF 04:00.0 whose VF 04:10.0 is in VM 102 (04:10.2
 *   free); a second 82599 PF 06:00.0 with a free VF 06:10.0; an X710 pair
 *   05:00.0/.1 sharing group 5, of which VM 104 passes only .0; VM 101 on
 *   i440fx with pcie=1; VM 105 naming an address that is gone; VM 103 with
 *   no passthrough (live-migratable).
 * fw2 (ready): a free I225 02:00.0 (PCIe 5GT/s x1, like fw1's) and an I225
 *   03:00.0 on a 2.5GT/s link (not equivalent).
 * fw3 (needs-kernel-args): a free I225 — not a target.
 * fw4 (offline): a free I225 — not a target. */
#include "testutil.h"

#include "buf.h"
#include "claims.h"
#include "inv_builder.h"
#include "plan.h"
#include "query.h"
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

typedef struct {
    char *dir, *path;
    store_t *s;
} fx_t;

static void ingest(store_t *s, const char *node, ib_t *b, int64_t now)
{
    char *err = NULL;
    if (store_ingest_inventory(s, node, &b->inv, now, &err))
        fail_msg("ingest %s: %s", node, err);
    ib_free(&b);
}

static ib_t *fw1(void)
{
    ib_t *b = ib_new("ready", "grub");
    ib_device(b, "0000:00:00.0", 0x0600, 0x8086, 0x4c43, 0, "Host bridge", "");
    ib_device(b, "0000:01:00.0", 0x0200, 0x8086, 0x1533, 1, "I210", "igb");
    ib_device(b, "0000:02:00.0", 0x0200, 0x8086, 0x15f3, 2, "I225-V", "igc");
    ib_device(b, "0000:03:00.0", 0x0200, 0x8086, 0x15f3, 3, "I225-V", "igc");
    Pcifleet__Device *pf = ib_device(b, "0000:04:00.0", 0x0200, 0x8086, 0x10fb, 4, "82599ES", "ixgbe");
    pf->has_sriov = true, pf->sriov_total = 63, pf->sriov_num = 2;
    Pcifleet__Device *vf = ib_device(b, "0000:04:10.0", 0x0200, 0x8086, 0x10ed, 40, "82599 VF", "ixgbevf");
    vf->physfn = ib_str(b, "0000:04:00.0");
    vf = ib_device(b, "0000:04:10.2", 0x0200, 0x8086, 0x10ed, 41, "82599 VF", "ixgbevf");
    vf->physfn = ib_str(b, "0000:04:00.0");
    ib_device(b, "0000:05:00.0", 0x0200, 0x8086, 0x1572, 5, "X710", "i40e");
    ib_device(b, "0000:05:00.1", 0x0200, 0x8086, 0x1572, 5, "X710", "i40e");
    pf = ib_device(b, "0000:06:00.0", 0x0200, 0x8086, 0x10fb, 6, "82599ES", "ixgbe");
    pf->has_sriov = true, pf->sriov_total = 63, pf->sriov_num = 1;
    vf = ib_device(b, "0000:06:10.0", 0x0200, 0x8086, 0x10ed, 60, "82599 VF", "ixgbevf");
    vf->physfn = ib_str(b, "0000:06:00.0");
    ib_group(b, 0, "0000:00:00.0", false);
    ib_group(b, 1, "0000:01:00.0", false);
    ib_group(b, 2, "0000:02:00.0", false);
    ib_group(b, 3, "0000:03:00.0", false);
    ib_group(b, 4, "0000:04:00.0", false);
    ib_group(b, 40, "0000:04:10.0", false);
    ib_group(b, 41, "0000:04:10.2", false);
    ib_group(b, 5, "0000:05:00.0,0000:05:00.1", true);
    ib_group(b, 6, "0000:06:00.0", false);
    ib_group(b, 60, "0000:06:10.0", false);
    ib_nic(b, "0000:01:00.0", "eno1", "3c:ec:ef:00:00:01", true);
    ib_nic(b, "0000:02:00.0", "enp2s0", "3c:ec:ef:00:00:02", false);
    ib_nic(b, "0000:03:00.0", "enp3s0", "3c:ec:ef:00:00:03", false);
    ib_nic(b, "0000:05:00.0", "enp5s0f0", "3c:ec:ef:00:00:05", false);
    ib_nic(b, "0000:05:00.1", "enp5s0f1", "3c:ec:ef:00:00:06", false);
    ib_vm(b, "100", "firewall", PCIFLEET__TRI__TRI_FALSE, "0000:03:00.0", "hostpci0 passes through 0000:03:00.0");
    Pcifleet__Vm *v = ib_vm(b, "101", "router", PCIFLEET__TRI__TRI_FALSE, "0000:03:00.0",
                            "hostpci0 passes through 0000:03:00.0");
    v->machine = ib_str(b, "pc-i440fx-8.1");
    ib_vm(b, "102", "dpdk", PCIFLEET__TRI__TRI_TRUE, "0000:04:10.0", "hostpci0 passes through 0000:04:10.0");
    ib_vm(b, "103", "web", PCIFLEET__TRI__TRI_TRUE, "", "");
    ib_vm(b, "104", "lb", PCIFLEET__TRI__TRI_TRUE, "0000:05:00.0", "hostpci0 passes through 0000:05:00.0");
    ib_vm(b, "105", "old", PCIFLEET__TRI__TRI_FALSE, "0000:09:00.0", "hostpci0 passes through 0000:09:00.0");
    return b;
}

/* A node with free I225s: fw2 also has one on a slower link. */
static ib_t *spare(const char *verdict, bool slow_too)
{
    ib_t *b = ib_new(verdict, "grub");
    bool ready = strcmp(verdict, "ready") == 0;
    ib_device(b, "0000:01:00.0", 0x0200, 0x8086, 0x1533, ready ? 1 : -1, "I210", "igb");
    ib_device(b, "0000:02:00.0", 0x0200, 0x8086, 0x15f3, ready ? 2 : -1, "I225-V", "igc");
    if (slow_too) {
        Pcifleet__Device *d = ib_device(b, "0000:03:00.0", 0x0200, 0x8086, 0x15f3, 3, "I225-V", "igc");
        d->link_speed = ib_str(b, "2.5GT/s");
        ib_group(b, 3, "0000:03:00.0", false);
    }
    if (ready) {
        ib_group(b, 1, "0000:01:00.0", false);
        ib_group(b, 2, "0000:02:00.0", false);
    }
    ib_nic(b, "0000:01:00.0", "eno1", "3c:ec:ef:00:01:01", true);
    ib_nic(b, "0000:02:00.0", "enp2s0", "3c:ec:ef:00:01:02", false);
    ib_vm(b, "200", "spare-vm", PCIFLEET__TRI__TRI_TRUE, "", "");
    return b;
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->dir = tu_tmpdir();
    f->path = xasprintf("%s/fleet.db", f->dir);
    char *err = NULL;
    if (store_open(f->path, &f->s, &err))
        fail_msg("store_open: %s", err);
    ingest(f->s, "fw4", spare("ready", false), NOW - 1000);
    strv_t gone = STRV_INIT;
    assert_int_equal(store_mark_offline(f->s, NOW - 1, 15, &gone, &err), 0);
    strv_free(&gone);
    ingest(f->s, "fw1", fw1(), NOW);
    ingest(f->s, "fw2", spare("ready", true), NOW);
    ingest(f->s, "fw3", spare("needs-kernel-args", false), NOW);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    store_close(&f->s);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static int64_t count(fx_t *f, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_db(f->s), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(store_db(f->s)));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* assign must be refused with a sentence containing want; nothing stored. */
static void refused(fx_t *f, const char *node, const char *addr, const char *vm, bool group, const char *want)
{
    claim_t c;
    char *why = NULL;
    int64_t before = count(f, "SELECT count(*) FROM claims");
    int rc = claims_assign(f->s, node, addr, vm, group, NOW + 1, &c, &why);
    if (rc != CLAIM_REFUSED)
        fail_msg("assign %s %s %s: got %d (%s), want refused with \"%s\"", node, addr, vm, rc, why ? why : "", want);
    if (!why || !strstr(why, want))
        fail_msg("assign %s %s %s: \"%s\" does not say \"%s\"", node, addr, vm, why ? why : "", want);
    assert_int_equal(count(f, "SELECT count(*) FROM claims"), before);
    free(why);
}

static void claimed(fx_t *f, const char *node, const char *addr, const char *vm, bool group, size_t n, claim_t *c)
{
    char *why = NULL;
    int rc = claims_assign(f->s, node, addr, vm, group, NOW + 1, c, &why);
    if (rc != 0)
        fail_msg("assign %s %s %s: %d %s", node, addr, vm, rc, why ? why : "");
    assert_int_equal(c->addresses.n, n);
    free(why);
}

/* Every refusal the issue lists, each with its reason and nothing stored. */
static void test_assign_refusals(void **state)
{
    fx_t *f = *state;
    refused(f, "fw9", "0000:02:00.0", "103", false, "no node named fw9");
    refused(f, "fw1", "0000:0a:00.0", "103", false, "has no device at 0000:0a:00.0");
    refused(f, "fw1", "not-an-address", "103", false, "is not a PCI address");
    refused(f, "fw4", "0000:02:00.0", "200", false, "is offline");
    refused(f, "fw3", "0000:02:00.0", "200", false, "is not ready (verdict needs-kernel-args)");
    refused(f, "fw1", "0000:00:00.0", "103", false, "PCI bridge");
    refused(f, "fw1", "0000:01:00.0", "103", false, "management NIC");
    refused(f, "fw1", "0000:05:00.1", "103", false, "shares IOMMU group 5 with 0000:05:00.0");
    refused(f, "fw1", "0000:03:00.0", "103", false, "already in the config of VM 100 (hostpci0, stopped), 101");
    refused(f, "fw1", "0000:04:00.0", "103", false, "SR-IOV PF whose VFs are in use (0000:04:10.0)");
    refused(f, "fw2", "0000:02:00.0", "103", false, "VM 103 lives on fw1, not on fw2");
    refused(f, "fw1", "0000:02:00.0", "999", false, "no VM 999 on node fw1");
    /* a VF whose PF is claimed */
    claim_t c;
    claimed(f, "fw1", "0000:06:00.0", "103", false, 1, &c);
    refused(f, "fw1", "0000:06:10.0", "103", false, "is a VF of 0000:06:00.0");
    claim_clear(&c);
}

/* A claim makes the NIC not free and is exclusive; --group claims the whole
 * group; release frees everything claimed together; short addresses work. */
static void test_assign_and_release(void **state)
{
    fx_t *f = *state;
    assert_int_equal(count(f, "SELECT free FROM v_nics WHERE node = 'fw1' AND address = '0000:02:00.0'"), 1);
    claim_t c;
    claimed(f, "fw1", "02:00.0", "103", false, 1, &c);
    assert_string_equal(c.addresses.v[0], "0000:02:00.0");
    assert_true(c.q35);
    assert_int_equal(c.next_index, 0);
    assert_string_equal(c.source, "proxmox");
    assert_int_equal(count(f, "SELECT free FROM v_nics WHERE node = 'fw1' AND address = '0000:02:00.0'"), 0);
    assert_int_equal(count(f, "SELECT claimed_by FROM v_nics WHERE node = 'fw1' AND address = '0000:02:00.0'"), 103);
    refused(f, "fw1", "0000:02:00.0", "103", false, "already claimed for VM 103");
    refused(f, "fw1", "0000:02:00.0", "104", false, "already claimed for VM 103");
    claim_clear(&c);

    claimed(f, "fw1", "0000:05:00.1", "104", true, 2, &c);
    assert_string_equal(c.addresses.v[0], "0000:05:00.0");
    assert_string_equal(c.addresses.v[1], "0000:05:00.1");
    assert_int_equal(c.next_index, 1); /* hostpci0 is taken */
    char *id = xstrdup(c.claim_id);
    claim_clear(&c);
    assert_int_equal(count(f, "SELECT count(*) FROM claims"), 2 + 1);

    char *why = NULL;
    assert_int_equal(claims_release(f->s, "fw1", "0000:05:00.0", NOW + 2, &c, &why), 0);
    assert_string_equal(c.claim_id, id);
    assert_int_equal(c.addresses.n, 2);
    claim_clear(&c);
    assert_int_equal(claims_release(f->s, "fw1", "0000:05:00.1", NOW + 2, &c, &why), CLAIM_REFUSED);
    assert_non_null(strstr(why, "nothing is claimed"));
    free(why);
    free(id);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'device-claimed'"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM events WHERE kind = 'device-released'"), 1);
    /* the claim survives a new inventory of the node */
    ingest(f->s, "fw1", fw1(), NOW + 10);
    assert_int_equal(count(f, "SELECT count(*) FROM claims WHERE node = 'fw1' AND address = '0000:02:00.0'"), 1);
}

static char *query(fx_t *f, bool json, const char *a0, const char *a1, const char *a2, const char *a3,
                   const char *a4)
{
    char *argv[] = {(char *)a0, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    int argc = 0;
    while (argv[argc])
        argc++;
    query_opts_t o = {2000, 10000, NULL};
    buf_t out = BUF_INIT;
    char *err = NULL;
    int rc = query_run(f->s, &o, argc, argv, json, &out, &err);
    if (rc != 0)
        fail_msg("%s %s: %d %s", a0, a1 ? a1 : "", rc, err ? err : "");
    free(err);
    return buf_steal(&out);
}

static void has(const char *out, const char *want)
{
    if (!strstr(out, want))
        fail_msg("missing \"%s\" in:\n%s", want, out);
}

/* conflicts names each situation of the fleet, and no false ones. */
static void test_conflicts(void **state)
{
    fx_t *f = *state;
    char *out = query(f, true, "conflicts", NULL, NULL, NULL, NULL);
    has(out, "{\"kind\":\"shared-device\",\"node\":\"fw1\",\"vm\":\"100,101\",\"address\":\"0000:03:00.0\"");
    has(out, "{\"kind\":\"missing-device\",\"node\":\"fw1\",\"vm\":\"105\",\"address\":\"0000:09:00.0\"");
    has(out, "{\"kind\":\"pcie-on-i440fx\",\"node\":\"fw1\",\"vm\":\"101\",\"address\":\"0000:03:00.0\"");
    has(out, "{\"kind\":\"group-split\",\"node\":\"fw1\",\"vm\":\"104\",\"address\":\"0000:05:00.0\"");
    has(out, "also holds 0000:05:00.1");
    /* exactly these four: nothing on the clean nodes */
    size_t rows = 0;
    for (const char *p = out; (p = strstr(p, "{\"kind\"")); p++)
        rows++;
    assert_int_equal(rows, 4);
    free(out);

    /* a PF passed while its VF is in use, and a claim that went stale */
    ib_t *b = fw1();
    ib_vm(b, "106", "pf-user", PCIFLEET__TRI__TRI_FALSE, "0000:04:00.0", "hostpci0 passes through 0000:04:00.0");
    ingest(f->s, "fw1", b, NOW + 5);
    claim_t c;
    claimed(f, "fw1", "0000:02:00.0", "103", false, 1, &c);
    assert_int_equal(claims_set_state(f->s, c.claim_id, "applied", 1, NULL), 0);
    claim_clear(&c);
    out = query(f, false, "conflicts", NULL, NULL, NULL, NULL);
    if (getenv("PEEK"))
        fputs(out, stderr);
    has(out, "pf-with-vfs-in-use");
    has(out, "0000:04:10.0 are in use");
    has(out, "claim-not-in-config");
    free(out);
}

/* drain: plain VMs live-migrate; the firewall's I225 has an equivalent on
 * fw2 only (fw3 not ready, fw4 offline, fw2's slow-link I225 not equal);
 * the VF has none. migrate says yes or no with the reason. Nothing changes. */
static void test_plans(void **state)
{
    fx_t *f = *state;
    int64_t changes = sqlite3_total_changes64(store_db(f->s));
    char *out = query(f, true, "plan", "drain", "fw1", NULL, NULL);
    has(out, "{\"vm\":\"100\",\"source\":\"proxmox\",\"name\":\"firewall\",\"running\":false,\"targets\":["
             "{\"node\":\"fw2\",\"devices\":[{\"from\":\"0000:03:00.0\",\"to\":\"0000:02:00.0\"}]}],"
             "\"action\":\"stop-and-move\",\"more_targets\":false");
    has(out, "{\"vm\":\"103\",\"source\":\"proxmox\",\"name\":\"web\",\"running\":true,\"action\":\"live-migrate\"");
    has(out, "{\"vm\":\"102\",\"source\":\"proxmox\",\"name\":\"dpdk\",\"running\":true,\"targets\":[],"
             "\"action\":\"stop\",\"more_targets\":false");
    free(out);
    out = query(f, false, "plan", "drain", "fw1", NULL, NULL);
    if (getenv("PEEK"))
        fputs(out, stderr);
    has(out, "fw2 (0000:03:00.0 -> 0000:02:00.0)");
    has(out, "nowhere: no other online node with a ready IOMMU has a free 8086:10ed");
    free(out);

    out = query(f, false, "plan", "migrate", "100", "--to", "fw2");
    has(out, "yes: VM 100 must stop; on fw2 it would get 0000:02:00.0 (for 0000:03:00.0)");
    free(out);
    out = query(f, false, "plan", "migrate", "100", "--to", "fw3");
    has(out, "no: the IOMMU of fw3 is not ready");
    free(out);
    out = query(f, false, "plan", "migrate", "100", "--to", "fw4");
    has(out, "no: fw4 is offline");
    free(out);
    out = query(f, true, "plan", "migrate", "103", "--to", "fw2");
    has(out, "\"possible\":true,\"live\":true");
    free(out);
    out = query(f, false, "plan", "migrate", "102", "--to", "fw2");
    has(out, "no: fw2 has no free 8086:10ed (for 0000:04:10.0)");
    free(out);
    /* a claim on fw2's I225 takes it out of the plan */
    claim_t c;
    claimed(f, "fw2", "0000:02:00.0", "200", false, 1, &c);
    claim_clear(&c);
    int64_t after_claim = sqlite3_total_changes64(store_db(f->s));
    out = query(f, false, "plan", "migrate", "100", "--to", "fw2");
    has(out, "no: fw2 has no free 8086:15f3");
    free(out);
    assert_true(after_claim > changes);
    assert_int_equal(sqlite3_total_changes64(store_db(f->s)), after_claim); /* plans wrote nothing */

    /* many candidates: five shown and "more", --all lists every one */
    for (int i = 5; i <= 11; i++) {
        char name[8];
        snprintf(name, sizeof name, "fw%d", i);
        ingest(f->s, name, spare("ready", false), NOW);
    }
    out = query(f, true, "plan", "drain", "fw1", NULL, NULL);
    /* fw2's I225 is claimed by now: fw10, fw11, fw5, fw6, fw7 (name order) */
    has(out, "\"targets\":[{\"node\":\"fw10\"");
    has(out, "{\"node\":\"fw7\"");
    assert_null(strstr(out, "{\"node\":\"fw8\""));
    has(out, "\"more_targets\":true");
    free(out);
    out = query(f, false, "plan", "drain", "fw1", "--all", NULL);
    has(out, "fw10 (0000:03:00.0 -> 0000:02:00.0); fw11 (0000:03:00.0 -> 0000:02:00.0); fw5");
    has(out, "fw9 (0000:03:00.0 -> 0000:02:00.0)");
    assert_null(strstr(out, "and more"));
    free(out);

    buf_t b = BUF_INIT;
    char *why = NULL;
    char *bad[] = {"plan", "drain", NULL};
    query_opts_t o = {2000, 10000, NULL};
    assert_int_equal(query_run(f->s, &o, 2, bad, false, &b, &why), 2);
    free(why);
    why = NULL;
    char *unknown[] = {"plan", "drain", "fw99", NULL};
    assert_int_equal(query_run(f->s, &o, 3, unknown, false, &b, &why), 1);
    has(why, "no node named fw99");
    free(why);
    buf_free(&b);
}

/* A VM whose hostpci uses a Proxmox resource mapping can run where the same
 * mapping has a free device, whatever its address there. */
static void test_plan_mapping(void **state)
{
    fx_t *f = *state;
    ib_t *b = fw1();
    Pcifleet__Vm *v = ib_vm(b, "110", "mapped", PCIFLEET__TRI__TRI_FALSE, "0000:02:00.0",
                            "hostpci0 uses mapping uplink");
    v->hostpci[0]->mapping = ib_str(b, "uplink");
    ingest(f->s, "fw1", b, NOW + 1);
    /* fw2 maps "uplink" to its slow-link I225 03:00.0: a mapping is the
     * operator's statement of equivalence, so link and model do not matter */
    ib_t *t = spare("ready", true);
    static Pcifleet__PciMapping m = PCIFLEET__PCI_MAPPING__INIT;
    static char *addrs[] = {"0000:03:00.0"};
    static Pcifleet__PciMapping *maps[] = {&m};
    m.name = "uplink";
    m.addresses = addrs;
    m.n_addresses = 1;
    t->inv.mappings = maps;
    t->inv.n_mappings = 1;
    ingest(f->s, "fw2", t, NOW + 1);
    char *out = query(f, true, "plan", "drain", "fw1", NULL, NULL);
    has(out, "{\"vm\":\"110\",\"source\":\"proxmox\",\"name\":\"mapped\",\"running\":false,\"targets\":"
             "[{\"node\":\"fw2\",\"devices\":[{\"from\":\"0000:02:00.0\",\"mapping\":\"uplink\",\"to\":\"0000:03:00.0\"}]}]");
    free(out);
    out = query(f, false, "plan", "migrate", "110", "--to", "fw2");
    has(out, "yes: VM 110 must stop; on fw2 it would get 0000:03:00.0");
    free(out);
    out = query(f, false, "plan", "migrate", "110", "--to", "fw3");
    has(out, "no:");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_assign_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_mapping, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
