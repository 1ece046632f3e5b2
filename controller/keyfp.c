#include "keyfp.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int keyfp_of(const char *z85, char out[KEYFP_LEN + 1])
{
    uint8_t key[32], hash[crypto_hash_sha256_BYTES];
    if (!z85 || strlen(z85) != 40 || !zmq_z85_decode(key, z85)) {
        snprintf(out, KEYFP_LEN + 1, "invalid");
        return -EINVAL;
    }
    crypto_hash_sha256(hash, key, sizeof key);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 8; i++) {
        out[7 + 2 * i] = hex[hash[i] >> 4];
        out[8 + 2 * i] = hex[hash[i] & 15];
    }
    out[KEYFP_LEN] = '\0';
    return 0;
}
