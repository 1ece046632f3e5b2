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
/* Re-reads agents/ (after an accept). */
int keystore_reload(keystore_t *ks, char **err);
/* The node an accepted key belongs to (borrowed), or NULL when not accepted. */
const char *keystore_node_for(const keystore_t *ks, const char *key_z85);
/* The accepted key of a node (borrowed), or NULL. */
const char *keystore_key_for(const keystore_t *ks, const char *node);
/* Records an unknown key as pending for node (overwrites an older pending
 * key for the same node). Never touches agents/. */
int keystore_add_pending(keystore_t *ks, const char *node, const char *key_z85, char **err);
/* Moves pending/NODE.key to agents/NODE.key. Refuses when nothing is pending
 * for NODE, or the key is already accepted for another node. */
int keystore_accept(keystore_t *ks, const char *node, char **err);
/* Names (node) of accepted and pending keys, sorted. */
void keystore_list(const keystore_t *ks, strv_t *accepted, strv_t *pending);
/* The pending key of a node (borrowed), or NULL. */
const char *keystore_pending_key(const keystore_t *ks, const char *node);
/* Valid node name: 1-63 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool keys_valid_node_name(const char *name);

#endif
