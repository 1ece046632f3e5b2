-- 0002: device claims, the nodes' Proxmox resource mappings, and views that
-- know both. docs/db.md documents the views.

-- A device given to a VM through pcifleet (`pcifleet assign`). One claim per
-- device is the primary key, so two racing assignments cannot both win.
-- Claims outlive inventory replacement (the store replaces a node's devices,
-- never its claims); a claim whose device vanished shows in `conflicts`.
CREATE TABLE claims (
    node     TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    address  TEXT NOT NULL CHECK (address <> ''),
    vm_id    TEXT NOT NULL CHECK (vm_id <> ''),
    claim_id TEXT NOT NULL,  -- one assign: endpoints claimed together (--group) share it
    state    TEXT NOT NULL CHECK (state IN ('claimed', 'applying', 'applied')),
    hostpci  INTEGER,        -- N of the VM's hostpciN entry, once applied
    created  INTEGER NOT NULL,
    PRIMARY KEY (node, address)
) WITHOUT ROWID;
CREATE INDEX claims_id ON claims(claim_id);

-- What `mapping=NAME` resolves to on each node (etc/pve/mapping/pci.cfg),
-- replaced with the node's inventory like the other inventory tables.
CREATE TABLE mappings (
    node    TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    name    TEXT NOT NULL CHECK (name <> ''),
    pos     INTEGER NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (node, name, pos)
) WITHOUT ROWID;

-- Passthrough entries by address, for the claim checks and conflicts.
CREATE INDEX vm_passthrough_address ON vm_passthrough(node, address);
-- VFs by their PF.
CREATE INDEX devices_physfn ON devices(node, physfn) WHERE physfn IS NOT NULL;

DROP VIEW v_nics;
CREATE VIEW v_nics AS
SELECT c.node,
       c.address,
       c.ifname,
       c.mac,
       CASE WHEN c.vendor_id IS NOT NULL
            THEN printf('%04x:%04x', c.vendor_id, c.device_id) END AS model,
       c.vendor_name,
       c.device_name,
       c.driver,
       c.speed_mbps,
       c.operstate,
       c.management,
       c.management_via,
       c.is_vf,
       c.iommu_group,
       c.numa_node,
       c.assignable_alone,
       c.configured_in,
       (c.management = 0 AND c.configured_in = '[]' AND c.assignable_alone IS 1
        AND NOT EXISTS (SELECT 1 FROM claims k WHERE k.node = c.node AND k.address = c.address)) AS free,
       (SELECT k.vm_id FROM claims k WHERE k.node = c.node AND k.address = c.address) AS claimed_by
FROM nics c;

CREATE VIEW v_claims AS
SELECT k.node,
       k.address,
       k.vm_id,
       k.claim_id,
       k.state,
       k.hostpci,
       k.created,
       EXISTS (SELECT 1 FROM devices d WHERE d.node = k.node AND d.address = k.address) AS present
FROM claims k;

CREATE VIEW v_mappings AS
SELECT m.node, m.name, m.pos, m.address FROM mappings m;

-- Plans look for free devices of a model across the fleet; only endpoints
-- that can be passed alone are ever candidates.
CREATE INDEX devices_model ON devices(vendor_id, device_id) WHERE bridge = 0 AND assignable_alone = 1;
