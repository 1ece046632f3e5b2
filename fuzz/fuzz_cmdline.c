/* Fuzzes kargs_parse and checks a property: printing the tokens with
 * kargs_to_string and parsing that again gives back the same tokens. */
#include "cmdline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kargs_t a = KARGS_INIT, b = KARGS_INIT;
    kargs_parse((const char *)data, size, &a);
    char *s = kargs_to_string(&a);
    kargs_parse(s, strlen(s), &b);
    if (a.n != b.n)
        abort();
    for (size_t i = 0; i < a.n; i++)
        if (!same(a.v[i].key, b.v[i].key) || !same(a.v[i].value, b.v[i].value))
            abort();
    for (size_t i = 0; i < a.n && i < 64; i++) { /* bounded: find_last is linear */
        const karg_t *last = kargs_find_last(&a, a.v[i].key);
        if (!last)
            abort();
        karg_has_option(last, "on");
        karg_has_option(last, "");
    }
    free(s);
    kargs_free(&a);
    kargs_free(&b);
    return 0;
}
