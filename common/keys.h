/* keys — CURVE key pairs and the controller's key folder, over czmq's zcert.
 *
 * Files are czmq certificates: NAME.key holds the public key, NAME.key_secret
 * the pair; both are text ("curve" section, Z85 keys). The secret file is
 * written mode 0600.
 *
 * The controller's folder (pcifleetd --keys DIR):
 *   DIR/controller.key, DIR/controller.key_secret   the controller's own pair
 *   DIR/agents/NODE.key                              accepted agents, one per node
 *   DIR/pending/NODE.key                             keys that tried and are not accepted
 * A key is accepted for exactly one node name; that binding is what lets the
 * controller refuse an inventory that claims another node's name. */
#ifndef PCIFLEET_KEYS_H
#define PCIFLEET_KEYS_H

#include "strv.h"

#include <stdbool.h>

#define KEY_Z85_LEN 40

/* Writes DIR/NAME.key and DIR/NAME.key_secret (creating DIR). Refuses to
 * overwrite an existing pair. 0 or negative errno, *err set (caller frees). */
int keys_generate(const char *dir, const char *name, char **err);

/* Loads a public key (Z85, 40 chars + NUL) from a .key or .key_secret file. */
int keys_load_public(const char *path, char out[KEY_Z85_LEN + 1], char **err);
/* Loads public and secret keys from a .key_secret file. */
int keys_load_pair(const char *path, char pub[KEY_Z85_LEN + 1], char sec[KEY_Z85_LEN + 1], char **err);

typedef struct keystore keystore_t;

/* Opens DIR; creates agents/ and pending/ (mode 0700) when missing. */
int keystore_open(const char *dir, keystore_t **out, char **err);
void keystore_destroy(keystore_t **ks);
/* Re-reads agents/ and pending/ (after an accept, or an operator's edit).
 * A file that is not NODE.key with a valid key is skipped with a warning
 * (log.h); so is a second file holding a key already accepted for another
 * node. On failure (a folder cannot be listed) the previous view is kept. */
int keystore_reload(keystore_t *ks, char **err);
/* The node an accepted key belongs to (borrowed), or NULL when not accepted. */
const char *keystore_node_for(const keystore_t *ks, const char *key_z85);
/* The accepted key of a node (borrowed), or NULL. */
const char *keystore_key_for(const keystore_t *ks, const char *node);
/* Records an unknown key as pending for node (overwrites an older pending
 * key for the same node). Never touches agents/. Refuses (-EEXIST) a key
 * that is already accepted, for any node. */
int keystore_add_pending(keystore_t *ks, const char *node, const char *key_z85, char **err);
/* Moves pending/NODE.key to agents/NODE.key. Refuses when nothing is pending
 * for NODE, or the key is already accepted for another node. A node that
 * already had an accepted key gets the new one instead (a re-keyed agent). */
int keystore_accept(keystore_t *ks, const char *node, char **err);
/* Names (node) of accepted and pending keys, sorted. */
void keystore_list(const keystore_t *ks, strv_t *accepted, strv_t *pending);
/* The pending key of a node (borrowed), or NULL. */
const char *keystore_pending_key(const keystore_t *ks, const char *node);
/* Valid node name: 1-63 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool keys_valid_node_name(const char *name);

/* ---- additions ----
 * Loading checks every key with zmq_z85_decode (40 characters, valid Z85,
 * not all zeros), and a pair must match (public derived from secret).
 * keys_load_pair refuses a secret file that others can read or write (mode
 * & 077), as ssh does. keys_generate refuses a name that is not a valid node
 * name ("controller" is one). */

/* The czmq certificate of a .key_secret file, for zcert_apply: NULL with
 * *err set on failure; the caller destroys it with zcert_destroy. */
typedef struct _zcert_t zcert_t;
zcert_t *keys_load_cert(const char *path, char **err);
/* True when txt is a 40-character Z85 CURVE key (not all zeros). */
bool keys_valid_z85(const char *txt);
/* At most this many nodes have a pending key; keystore_add_pending refuses
 * more (-ENOSPC) so unknown clients cannot fill the disk. */
#define KEYS_MAX_PENDING 1024
/* The folder the store was opened on (borrowed). */
const char *keystore_dir(const keystore_t *ks);

#endif
