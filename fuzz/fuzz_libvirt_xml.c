/* Fuzzes libvirt_domain_parse: any bytes, no crash, no leak, no output from
 * libxml2 (the harness would show it), addresses always full and lowercase. */
#include "vms.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vm_t vm = {0};
    errs_t errs = ERRS_INIT;
    libvirt_domain_parse((const char *)data, size, &vm, &errs);
    if (!vm.source || strcmp(vm.source, "libvirt") != 0)
        abort();
    for (size_t i = 0; i < vm.n_hostpci; i++) {
        const hostpci_t *h = &vm.hostpci[i];
        if (h->index != (int)i || h->addresses.n > 1 || !h->raw)
            abort();
        if (h->addresses.n && strlen(h->addresses.v[0]) < 12)
            abort();
    }
    if (vm.n_hostpci && vm.migratable)
        abort();
    vm_clear(&vm);
    errs_free(&errs);
    return 0;
}
