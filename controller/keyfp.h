/* keyfp — short fingerprints of CURVE public keys, for people to compare.
 *
 * Contract: a fingerprint is "sha256:" followed by the first 16 hex digits of
 * the SHA-256 of the 32-byte public key (not of its Z85 text), so the same
 * key gives the same fingerprint whatever file it came from. `pcifleet
 * keygen` and `pcifleet fingerprint FILE` print it on the agent's side;
 * `pcifleet keys` prints it on the controller's side. */
#ifndef PCIFLEET_KEYFP_H
#define PCIFLEET_KEYFP_H

#define KEYFP_LEN 23 /* "sha256:" + 16 hex digits, without the NUL */

/* Writes the fingerprint of the Z85 public key into out (NUL-terminated).
 * Returns 0, or -EINVAL (out = "invalid") when z85 is not a 40-character
 * Z85 key. */
int keyfp_of(const char *z85, char out[KEYFP_LEN + 1]);

#endif
