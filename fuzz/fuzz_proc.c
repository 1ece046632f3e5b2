/* Fuzzes the agent's /proc readers: cpuinfo, interrupts, route, ipv6_route.
 * The first byte picks the parser; the rest is the file's content. */
#include "iommu.h"
#include "net.h"
#include "system.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        const char *vendor;
        char *model;
        int virt;
        cpuinfo_parse(buf, len, &vendor, &model, &virt);
        free(model);
        break;
    }
    case 1:
        (void)interrupts_ir_parse(buf, len);
        break;
    case 2: {
        strv_t out = STRV_INIT;
        route_default_ifaces_parse(buf, len, &out);
        strv_free(&out);
        break;
    }
    default: {
        strv_t out = STRV_INIT;
        route6_default_ifaces_parse(buf, len, &out);
        strv_free(&out);
        break;
    }
    }
    return 0;
}
