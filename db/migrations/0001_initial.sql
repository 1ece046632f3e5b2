-- 0001_initial.sql — the fleet as the controller stores it.
--
-- Base tables hold what the agents report, one node's rows replaced in one
-- transaction by store_ingest_inventory (controller/store.c). Every table
-- below `nodes` hangs off it with ON DELETE CASCADE. Operators and scripts
-- read the v_* views at the end (documented column by column in docs/db.md);
-- the base tables may change between migrations, the views only grow.
--
-- Conventions: booleans are 0/1 with a CHECK; a fact the agent did not know
-- is NULL (never 0 or ''); lists the agent sends as repeated strings are JSON
-- arrays of strings in TEXT columns; ids (vendor, device, class) are integers
-- here and hex text in the views; times are unix seconds (UTC).

-- One row per node that ever reported. The narrow row a heartbeat touches:
-- store_heartbeat writes last_seen (and online, boot_id when they change).
CREATE TABLE nodes (
    name               TEXT NOT NULL PRIMARY KEY CHECK (name <> ''),
    online             INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    first_seen         INTEGER NOT NULL,
    last_seen          INTEGER NOT NULL,
    boot_id            TEXT,
    agent_version      TEXT,
    kernel             TEXT,
    cpu_vendor         TEXT,
    cpu_model          TEXT,
    cpu_virtualization INTEGER CHECK (cpu_virtualization IN (0, 1)),
    -- SHA-256 of the stored inventory (NULL: none stored yet); heartbeats
    -- carry the agent's current hash and are compared with it.
    inventory_hash     BLOB,
    inventory_at       INTEGER,
    -- counts of the stored inventory, kept with it (v_nodes reads them
    -- without touching the child tables)
    device_count       INTEGER NOT NULL DEFAULT 0,
    nic_count          INTEGER NOT NULL DEFAULT 0,
    vm_count           INTEGER NOT NULL DEFAULT 0,
    error_count        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- IOMMU, boot loader and vfio facts: one row per node with an inventory.
CREATE TABLE iommu (
    node                TEXT NOT NULL PRIMARY KEY
                        REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    firmware            TEXT CHECK (firmware IN ('DMAR', 'IVRS')),
    enabled             INTEGER CHECK (enabled IN (0, 1)),
    units               TEXT NOT NULL DEFAULT '[]',
    group_count         INTEGER,
    default_domain      TEXT CHECK (default_domain IN ('translated', 'identity')),
    interrupt_remapping INTEGER CHECK (interrupt_remapping IN (0, 1)),
    cmdline             TEXT,
    verdict             TEXT CHECK (verdict IN ('ready', 'needs-modules', 'needs-reboot',
                                                'needs-kernel-args', 'needs-firmware',
                                                'unsupported')),
    reasons             TEXT NOT NULL DEFAULT '[]',
    loader              TEXT CHECK (loader IN ('grub', 'systemd-boot', 'unknown')),
    cmdline_file        TEXT,
    configured_args     TEXT NOT NULL DEFAULT '[]',
    refresh_command     TEXT,
    proxmox_boot_tool   INTEGER CHECK (proxmox_boot_tool IN (0, 1)),
    vfio_required       TEXT NOT NULL DEFAULT '[]',
    vfio_loaded         TEXT NOT NULL DEFAULT '[]',
    vfio_configured     TEXT NOT NULL DEFAULT '[]',
    vfio_missing        TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

-- Every PCI function of a node.
CREATE TABLE devices (
    node                TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    address             TEXT NOT NULL CHECK (address <> ''),
    class_code          INTEGER NOT NULL,
    class_name          TEXT,
    vendor_id           INTEGER NOT NULL,
    device_id           INTEGER NOT NULL,
    subsystem_vendor_id INTEGER NOT NULL,
    subsystem_device_id INTEGER NOT NULL,
    revision            INTEGER NOT NULL,
    vendor_name         TEXT,
    device_name         TEXT,
    driver              TEXT,
    iommu_group         INTEGER,
    numa_node           INTEGER,
    bridge              INTEGER NOT NULL CHECK (bridge IN (0, 1)),
    has_acs             INTEGER NOT NULL CHECK (has_acs IN (0, 1)),
    acs_cap             INTEGER,
    acs_ctl             INTEGER,
    sriov_total         INTEGER,
    sriov_num           INTEGER,
    physfn              TEXT,
    link_speed          TEXT,
    link_width          INTEGER,
    -- the device as an endpoint of its IOMMU group (the inventory's
    -- groups[].endpoints[]); all three NULL for bridges and functions in no
    -- group. Group membership itself is iommu_group.
    assignable_alone    INTEGER CHECK (assignable_alone IN (0, 1)),
    slot_functions      TEXT,  -- JSON array: other functions of the slot in the group
    blockers            TEXT,  -- JSON array: endpoints that would have to go along
    PRIMARY KEY (node, address)
) WITHOUT ROWID;

-- IOMMU groups ("groups" is an SQL keyword); members are the devices whose
-- iommu_group is group_id.
CREATE TABLE iommu_groups (
    node     TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    group_id INTEGER NOT NULL,
    type     TEXT,
    isolated INTEGER NOT NULL CHECK (isolated IN (0, 1)),
    PRIMARY KEY (node, group_id)
) WITHOUT ROWID;

-- Network functions. The device and isolation facts a NIC query needs are
-- copied here at ingest (same transaction, same inventory), so v_nics reads
-- one table: vendor/device ids and names, group, NUMA node, whether the
-- function can be passed alone, and which VMs are configured with it.
CREATE TABLE nics (
    node             TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    address          TEXT NOT NULL CHECK (address <> ''),
    ifname           TEXT,
    mac              TEXT,
    speed_mbps       INTEGER,
    operstate        TEXT,
    management       INTEGER NOT NULL CHECK (management IN (0, 1)),
    management_via   TEXT,
    is_vf            INTEGER NOT NULL CHECK (is_vf IN (0, 1)),
    driver           TEXT,
    vendor_id        INTEGER,
    device_id        INTEGER,
    vendor_name      TEXT,
    device_name      TEXT,
    iommu_group      INTEGER,
    numa_node        INTEGER,
    assignable_alone INTEGER CHECK (assignable_alone IN (0, 1)),  -- NULL: not in any group
    configured_in    TEXT NOT NULL DEFAULT '[]',  -- JSON array of VM ids (running or not)
    PRIMARY KEY (node, address)
) WITHOUT ROWID;

-- Virtual machines found on the node (Proxmox configs, libvirt domains).
CREATE TABLE vms (
    node       TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    source     TEXT NOT NULL CHECK (source IN ('proxmox', 'libvirt')),
    vm_id      TEXT NOT NULL CHECK (vm_id <> ''),
    name       TEXT,
    machine    TEXT,
    running    INTEGER CHECK (running IN (0, 1)),
    migratable INTEGER NOT NULL CHECK (migratable IN (0, 1)),
    reasons    TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (node, source, vm_id)
) WITHOUT ROWID;

-- A VM's passthrough entries (hostpciN), one row per expanded address; an
-- entry that names no address on this node (an unresolved mapping) keeps one
-- row with address NULL. pos orders the addresses of one entry.
CREATE TABLE vm_passthrough (
    node    TEXT NOT NULL,
    source  TEXT NOT NULL,
    vm_id   TEXT NOT NULL,
    hostpci INTEGER NOT NULL,  -- N of hostpciN
    pos     INTEGER NOT NULL,
    address TEXT,
    mapping TEXT,
    pcie    INTEGER NOT NULL CHECK (pcie IN (0, 1)),
    raw     TEXT,
    PRIMARY KEY (node, source, vm_id, hostpci, pos),
    FOREIGN KEY (node, source, vm_id) REFERENCES vms(node, source, vm_id)
        ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;

-- What the agent could not read.
CREATE TABLE scan_errors (
    node     TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    seq      INTEGER NOT NULL,
    location TEXT,
    message  TEXT,
    PRIMARY KEY (node, seq)
) WITHOUT ROWID;

-- The event log. Kinds are an open vocabulary of lowercase words; the store
-- writes node-online, node-offline, node-rebooted, iommu-changed,
-- device-appeared, device-vanished, vm-holds-device. Events outlive their
-- node (no foreign key). Ids grow (max + 1): pruning the oldest events never
-- brings an id back, so "events after id N" is a safe cursor as long as the
-- newest event is kept.
CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    time   INTEGER NOT NULL,
    kind   TEXT NOT NULL CHECK (kind <> '' AND kind NOT GLOB '*[^a-z0-9-]*'),
    node   TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_node ON events(node, id);

-- Room for what comes next, as later migrations:
--  * claims (issue 4): claims(node, address, vm, since, ...) with
--    UNIQUE (node, address): one claim per device is a constraint, so two
--    racing assignments cannot both succeed; v_nics.free then also requires
--    NOT EXISTS a claim.
--  * rollouts (issue 5): rollouts(id, plan, state, ...), rollout_nodes(rollout,
--    node, batch, state, ...) with a partial UNIQUE index on node WHERE the
--    step is active: one active rollout step per node.

-- ---- stable views (docs/db.md) ----

CREATE VIEW v_nodes AS
SELECT n.name,
       n.online,
       i.verdict,
       i.loader,
       n.nic_count,
       n.vm_count,
       n.device_count,
       n.last_seen,
       n.first_seen,
       n.boot_id,
       n.agent_version,
       n.kernel,
       n.cpu_vendor,
       n.cpu_model,
       n.cpu_virtualization,
       i.firmware,
       i.enabled AS iommu_enabled,
       i.units AS iommu_units,
       i.group_count AS iommu_groups,
       i.default_domain,
       i.interrupt_remapping,
       i.cmdline,
       i.reasons,
       i.cmdline_file,
       i.configured_args,
       i.refresh_command,
       i.proxmox_boot_tool,
       i.vfio_required,
       i.vfio_loaded,
       i.vfio_configured,
       i.vfio_missing,
       n.error_count,
       CASE WHEN n.inventory_hash IS NOT NULL THEN lower(hex(n.inventory_hash)) END AS inventory_hash,
       n.inventory_at
FROM nodes n
LEFT JOIN iommu i ON i.node = n.name;

CREATE VIEW v_devices AS
SELECT d.node,
       d.address,
       printf('%04x', d.class_code) AS class,
       d.class_name,
       printf('%04x', d.vendor_id) AS vendor_id,
       printf('%04x', d.device_id) AS device_id,
       printf('%04x:%04x', d.vendor_id, d.device_id) AS model,
       printf('%04x', d.subsystem_vendor_id) AS subsystem_vendor_id,
       printf('%04x', d.subsystem_device_id) AS subsystem_device_id,
       d.revision,
       d.vendor_name,
       d.device_name,
       d.driver,
       d.iommu_group,
       d.numa_node,
       d.bridge,
       d.has_acs AS acs,
       CASE WHEN d.has_acs THEN printf('%04x', d.acs_cap) END AS acs_cap,
       CASE WHEN d.has_acs THEN printf('%04x', d.acs_ctl) END AS acs_ctl,
       d.sriov_total,
       d.sriov_num,
       d.physfn,
       d.link_speed,
       d.link_width,
       d.assignable_alone,
       d.slot_functions,
       d.blockers
FROM devices d;

CREATE VIEW v_groups AS
SELECT g.node,
       g.group_id,
       g.type,
       g.isolated,
       (SELECT count(*) FROM devices m
         WHERE m.node = g.node AND m.iommu_group = g.group_id) AS device_count,
       (SELECT json_group_array(a.address) FROM
          (SELECT m.address FROM devices m
            WHERE m.node = g.node AND m.iommu_group = g.group_id ORDER BY m.address) a) AS devices,
       (SELECT json_group_array(a.address) FROM
          (SELECT m.address FROM devices m
            WHERE m.node = g.node AND m.iommu_group = g.group_id
              AND m.assignable_alone = 0 ORDER BY m.address) a) AS blocked
FROM iommu_groups g;

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
       (c.management = 0 AND c.configured_in = '[]' AND c.assignable_alone IS 1) AS free
FROM nics c;

CREATE VIEW v_vms AS
SELECT v.node,
       v.source,
       v.vm_id,
       v.name,
       v.machine,
       v.running,
       v.migratable,
       v.reasons,
       (SELECT json_group_array(a.address) FROM
          (SELECT p.address FROM vm_passthrough p
            WHERE p.node = v.node AND p.source = v.source AND p.vm_id = v.vm_id
              AND p.address IS NOT NULL ORDER BY p.hostpci, p.pos) a) AS devices
FROM vms v;

CREATE VIEW v_passthrough AS
SELECT p.node,
       p.source,
       p.vm_id,
       v.name AS vm_name,
       v.running,
       p.hostpci,
       p.address,
       p.mapping,
       p.pcie,
       p.raw
FROM vm_passthrough p
JOIN vms v ON v.node = p.node AND v.source = p.source AND v.vm_id = p.vm_id;

CREATE VIEW v_scan_errors AS
SELECT e.node, e.seq, e.location, e.message FROM scan_errors e;

CREATE VIEW v_events AS
SELECT e.id, e.time, e.kind, e.node, e.detail FROM events e;
