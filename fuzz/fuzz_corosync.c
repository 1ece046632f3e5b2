/* Fuzzes the corosync.conf reader: any bytes give either a cluster whose
 * members are sorted, unique and non-empty, or a refusal with a sentence. */
#include "corosync.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cluster_t c;
    char *why = NULL;
    int rc = corosync_parse((const char *)data, size, &c, &why);
    if (rc == 0) {
        if (why)
            abort();
        for (size_t i = 0; i < c.members.n; i++)
            if (!c.members.v[i][0] || (i && strcmp(c.members.v[i - 1], c.members.v[i]) >= 0))
                abort();
    } else if (!why || c.name || c.members.n) {
        abort(); /* a refusal says why and keeps nothing */
    }
    free(why);
    cluster_free(&c);
    return 0;
}
