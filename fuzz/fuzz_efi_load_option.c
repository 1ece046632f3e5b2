/* Fuzzes the EFI_LOAD_OPTION parser (as found in Boot#### after efivarfs's
 * 4-byte attribute prefix), and the loader classification of its path. */
#include "boot.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    efi_load_option_t o;
    if (efi_load_option_parse(data, size, &o) == 0) {
        if (!o.description)
            abort();
        efi_path_loader(o.file_path);
        efi_load_option_free(&o);
    } else if (o.description || o.file_path) {
        abort(); /* a failed parse leaves nothing to free */
    }
    return 0;
}
