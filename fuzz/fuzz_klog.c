/* Fuzzes klog_parse: any bytes, and the evidence stays within its limits. */
#include "klog.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    klog_facts_t f;
    klog_parse((const char *)data, size, &f);
    if (f.evidence.n > KLOG_EVIDENCE_MAX || f.ir_enabled < -1 || f.ir_enabled > 1)
        abort();
    for (size_t i = 0; i < f.evidence.n; i++)
        if (strlen(f.evidence.v[i]) > KLOG_EVIDENCE_LINE_MAX)
            abort();
    klog_facts_free(&f);
    return 0;
}
