/* corosync — which Proxmox cluster a node belongs to, from
 * etc/pve/corosync.conf, so a rollout never takes down more of a cluster
 * than keeps it quorate.
 *
 * Contract: corosync_parse reads corosync's configuration syntax (blocks
 * `name {` ... `}`, `key: value` lines, `#` comments) and fills the
 * cluster's name (totem.cluster_name) and its members (every
 * nodelist.node's `name`, else its ring0_addr), sorted and unique. It never
 * trusts the text: an unbalanced brace, nesting deeper than 16 or a line
 * over 4 KiB is refused (-EINVAL, *why a sentence); what was parsed then is
 * dropped. corosync_probe reads the file under the root; a node without it
 * is in no cluster (no error); a file it cannot use adds a scan error.
 * cluster_free releases what either filled. */
#ifndef PCIFLEET_PROBE_COROSYNC_H
#define PCIFLEET_PROBE_COROSYNC_H

#include "errs.h"
#include "root.h"
#include "strv.h"

#include <stddef.h>

typedef struct {
    char *name;     /* NULL: in no cluster */
    strv_t members; /* node names, sorted */
} cluster_t;

int corosync_parse(const char *text, size_t len, cluster_t *out, char **why);
void corosync_probe(const root_t *root, cluster_t *out, errs_t *e);
void cluster_free(cluster_t *c);

#endif
