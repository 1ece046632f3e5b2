/* Fuzzes pve_conf_parse (and through it pve_hostpci_parse) with a fixed
 * pci.cfg and present list: any bytes, no crash, no leak, and what comes out
 * keeps its promises (full lowercase addresses, hostpci indexes 0..15 in
 * order, migratable only without reasons). */
#include "vms.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char MAPS[] = "nic\n"
                           "\tmap node=pve1,path=0000:01:00.0,id=8086:1572,iommugroup=3\n"
                           "\tmap node=pve1,path=0000:01:00.1;0000:02:00,id=8086:1572\n"
                           "\tmap node=pve2,path=0000:81:00.0,id=8086:1572\n"
                           "\n"
                           "mig\n"
                           "\tlive-migration-capable 1\n"
                           "\tmap node=pve1,path=0000:04:00.2,id=15b3:101e\n";

static bool address_ok(const char *a)
{
    /* DDDD[DDDD]:BB:SS.F, lowercase hex */
    size_t n = strlen(a);
    if (n < 12 || n > 16 || a[n - 2] != '.' || a[n - 5] != ':' || a[n - 8] != ':')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (i == n - 2 || i == n - 5 || i == n - 8)
            continue;
        if (!isxdigit((unsigned char)a[i]) || isupper((unsigned char)a[i]))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const present_list[] = {"0000:01:00.0", "0000:01:00.1", "0000:02:00.0",
                                               "0000:02:00.3", "0000:04:00.2", "0000:0a:1f.7"};
    pve_mappings_t maps = PVE_MAPPINGS_INIT;
    errs_t errs = ERRS_INIT;
    pve_mappings_parse(MAPS, sizeof(MAPS) - 1, "pve1", &maps, &errs);
    strv_t present = STRV_INIT;
    for (size_t i = 0; i < sizeof(present_list) / sizeof(present_list[0]); i++)
        strv_add(&present, present_list[i]);

    for (int pass = 0; pass < 2; pass++) {
        vm_t vm = {0};
        pve_conf_parse((const char *)data, size, "100", &maps, pass ? NULL : &present, &vm, &errs);
        if (vm.n_hostpci > PVE_MAX_HOSTPCI)
            abort();
        for (size_t i = 0; i < vm.n_hostpci; i++) {
            const hostpci_t *h = &vm.hostpci[i];
            if (h->index < 0 || h->index >= PVE_MAX_HOSTPCI || !h->raw)
                abort();
            if (i && vm.hostpci[i - 1].index >= h->index)
                abort();
            for (size_t k = 0; k < h->addresses.n; k++)
                if (!address_ok(h->addresses.v[k]))
                    abort();
        }
        if (vm.migratable && vm.reasons.n)
            abort();
        vm_clear(&vm);
    }

    /* The same bytes as a single hostpci value. */
    char *value = malloc(size + 1);
    if (value) {
        memcpy(value, data, size);
        value[size] = '\0';
        hostpci_t h = {0};
        char *err = NULL;
        int rc = pve_hostpci_parse(value, &maps, &present, &h, &err);
        if ((rc == 0) != (err == NULL))
            abort();
        free(err);
        hostpci_free(&h);
        free(value);
    }

    strv_free(&present);
    errs_free(&errs);
    pve_mappings_free(&maps);
    return 0;
}
