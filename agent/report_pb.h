/* report_pb — the agent's inventory as the protobuf Inventory it sends.
 *
 * Contract: report_to_pb deep-copies a scanned inventory_t into a new
 * Pcifleet__Inventory (pcifleet.proto) that owns every string and array it
 * holds; the caller frees it with report_pb_free. It fills every field the
 * message has from the same facts `pcifleet-agent scan --json` prints, and
 * sets hash = report_hash(message). Strings are made fit for the wire: bytes
 * that are not UTF-8 become U+FFFD and a string is cut to fit
 * WIRE_MAX_STRING, so the controller never refuses a report for the host's
 * odd bytes (wire.h).
 *
 * The hash is SHA-256 over the packed message with hash left empty. It
 * covers everything in the message, deliberately including boot_id (a
 * reboot sends one full report, so the controller never holds an inventory
 * from an earlier boot under a matching hash), NIC link state and speed, VM
 * running state and the scan's error list: each is a fact the controller
 * shows, and each changes only when the node does. Nothing in the message
 * changes between two scans of an unchanged node: no timestamps, no root
 * path, and every list comes out in a fixed order (devices and NICs by
 * address, groups by id, VMs by source and id, mappings by name, files by
 * name). So an unchanged node hashes the same scan after scan, and the agent
 * sends the full inventory only when the hash changes. */
#ifndef PCIFLEET_REPORT_PB_H
#define PCIFLEET_REPORT_PB_H

#include "inventory.h"
#include "pcifleet.pb-c.h"

#include <stdint.h>

/* Returns 0 (allocation failure aborts, as everywhere; see buf.h). */
int report_to_pb(const inventory_t *inv, Pcifleet__Inventory **out);
/* Frees a message made by report_to_pb (NULL-safe; sets *pb to NULL). */
void report_pb_free(Pcifleet__Inventory **pb);

/* SHA-256 of pb packed with its hash field empty. pb is not modified. */
void report_hash(const Pcifleet__Inventory *pb, uint8_t out[32]);

#endif
