/* Fuzzes pve_mappings_parse (pci.cfg) and resolving each mapping it finds
 * through pve_hostpci_parse: any bytes, no crash, no leak. */
#include "vms.h"

#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const present_list[] = {"0000:01:00.0", "0000:01:00.1", "0000:41:00.0"};
    strv_t present = STRV_INIT;
    for (size_t i = 0; i < sizeof(present_list) / sizeof(present_list[0]); i++)
        strv_add(&present, present_list[i]);
    pve_mappings_t maps = PVE_MAPPINGS_INIT;
    errs_t errs = ERRS_INIT;
    pve_mappings_parse((const char *)data, size, "pve1", &maps, &errs);
    for (size_t i = 0; i < maps.n; i++) {
        const pve_mapping_t *m = &maps.v[i];
        if (!m->name || pve_mappings_find(&maps, m->name) != m)
            abort();
        for (size_t k = 0; k < m->n_alts; k++)
            if (m->alts[k].ids.n == 0 || m->alts[k].iommugroup < -1)
                abort();
        char *value = xasprintf("mapping=%s,pcie=1", m->name);
        for (int pass = 0; pass < 2; pass++) {
            hostpci_t h = {0};
            char *err = NULL;
            pve_hostpci_parse(value, &maps, pass ? NULL : &present, &h, &err);
            free(err);
            hostpci_free(&h);
        }
        free(value);
    }
    pve_mappings_free(&maps);
    errs_free(&errs);
    strv_free(&present);
    return 0;
}
