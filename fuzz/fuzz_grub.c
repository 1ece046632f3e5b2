/* Fuzzes the /etc/default/grub reader and the /etc/kernel/cmdline reader,
 * then the command line tokenizer on what they return. */
#include "boot.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *lin = NULL, *def = NULL, *err = NULL;
    int rc = grub_defaults_parse((const char *)data, size, &lin, &def, &err);
    if ((rc < 0) != (err != NULL))
        abort(); /* an error always comes with its sentence */
    kargs_t a = KARGS_INIT;
    if (lin)
        kargs_parse(lin, strlen(lin), &a);
    if (def)
        kargs_parse(def, strlen(def), &a);
    kargs_free(&a);
    free(lin);
    free(def);
    free(err);

    char *line = NULL;
    err = NULL;
    rc = kernel_cmdline_file_parse((const char *)data, size, &line, &err);
    if ((rc < 0) != (err != NULL))
        abort();
    if (line)
        kargs_parse(line, strlen(line), &a);
    kargs_free(&a);
    free(line);
    free(err);
    return 0;
}
