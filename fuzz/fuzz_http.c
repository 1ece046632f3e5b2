/* Fuzzes http_parse: any bytes; the result is one of the four statuses, a
 * parsed request has a NUL-terminated method and a path starting with /,
 * and a refusal names its reason. */
#include "metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_req_t r;
    http_status_t st = http_parse((const char *)data, size, &r);
    if (st != HTTP_OK && st != HTTP_INCOMPLETE && st != HTTP_BAD && st != HTTP_TOO_LARGE)
        abort();
    if (st == HTTP_OK && (memchr(r.method, 0, sizeof r.method) == NULL || r.path[0] != '/' ||
                          memchr(r.path, 0, sizeof r.path) == NULL || r.minor < 0 || r.minor > 1))
        abort();
    if (st == HTTP_BAD && !r.why)
        abort();
    return 0;
}
