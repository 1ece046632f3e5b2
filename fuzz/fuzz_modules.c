/* Fuzzes the /etc/modules and /proc/modules readers and the kernel release
 * comparison. */
#include "buf.h"
#include "vfio.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    strv_t a = STRV_INIT;
    modules_list_parse((const char *)data, size, &a);
    for (size_t i = 0; i < a.n; i++)
        if (!a.v[i][0] || strchr(a.v[i], '-'))
            abort(); /* names are never empty and always normalised */
    strv_free(&a);
    proc_modules_parse((const char *)data, size, &a);
    strv_free(&a);
    char *s = xstrndup((const char *)data, size);
    kernel_release_at_least(s, 6, 2);
    kernel_release_at_least(s, 0, 0);
    free(s);
    return 0;
}
