-- 0003: IOMMU rollouts as a state machine (controller/rollout.c). Every
-- transition is a committed row change made before the message it causes is
-- sent, so a controller killed at any moment continues where it was: the
-- step in flight is sent again under the same id, and agents answer a
-- repeated id with the stored result.

CREATE TABLE rollouts (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('iommu')),
    state          TEXT NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'done', 'aborted')),
    batch          INTEGER NOT NULL CHECK (batch >= 1),
    pt             INTEGER NOT NULL CHECK (pt IN (0, 1)),
    dry_run        INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    allow_downtime INTEGER NOT NULL CHECK (allow_downtime IN (0, 1)),
    reboot_timeout INTEGER NOT NULL,  -- seconds a node may take to come back
    grub_variable  TEXT NOT NULL DEFAULT 'GRUB_CMDLINE_LINUX_DEFAULT'
                   CHECK (grub_variable IN ('GRUB_CMDLINE_LINUX_DEFAULT', 'GRUB_CMDLINE_LINUX')),
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    reason         TEXT               -- why it halted or was aborted
);

-- One row per node of a rollout, in the rollout's order (pos).
--   waiting -> stepping -> [rebooting | awaiting-reboot] -> verifying -> done
--   waiting -> skipped (already ready, or needs firmware) | refused (drain guard)
--   any active state -> failed (halts the rollout)
CREATE TABLE rollout_nodes (
    rollout   INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
    node      TEXT NOT NULL,
    pos       INTEGER NOT NULL,
    state     TEXT NOT NULL CHECK (state IN ('waiting', 'skipped', 'refused', 'stepping', 'rebooting',
                                              'awaiting-reboot', 'verifying', 'done', 'failed')),
    steps     TEXT NOT NULL DEFAULT '[]',  -- JSON array of step kinds, in order
    step      INTEGER NOT NULL DEFAULT 0,  -- index of the step in flight (or next)
    sent      TEXT,                        -- step_id sent and not answered yet
    sent_at   INTEGER,
    boot_id   TEXT,                        -- the boot id before the reboot
    reboot_at INTEGER,
    detail    TEXT,                        -- the last answer, or why
    backups   TEXT NOT NULL DEFAULT '[]',  -- JSON array of backup files the steps wrote
    diffs     TEXT NOT NULL DEFAULT '',    -- dry run: what would change
    updated   INTEGER NOT NULL,
    PRIMARY KEY (rollout, node)
) WITHOUT ROWID;
-- A node is in at most one rollout step at a time.
CREATE UNIQUE INDEX rollout_nodes_active ON rollout_nodes(node)
    WHERE state IN ('stepping', 'rebooting', 'awaiting-reboot', 'verifying');

-- The Proxmox cluster a node belongs to (etc/pve/corosync.conf), for quorum.
-- The key columns come first: SQLite 3.40's integrity_check misreads a
-- WITHOUT ROWID table whose key columns are not its leading ones.
CREATE TABLE clusters (
    node    TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE ON UPDATE CASCADE,
    member  TEXT NOT NULL,
    cluster TEXT NOT NULL,
    PRIMARY KEY (node, member)
) WITHOUT ROWID;

CREATE VIEW v_rollouts AS
SELECT r.id, r.kind, r.state, r.batch, r.pt, r.dry_run, r.allow_downtime, r.created, r.updated, r.reason,
       (SELECT count(*) FROM rollout_nodes n WHERE n.rollout = r.id) AS nodes,
       (SELECT count(*) FROM rollout_nodes n WHERE n.rollout = r.id AND n.state IN ('done', 'skipped', 'refused'))
           AS finished,
       (SELECT count(*) FROM rollout_nodes n WHERE n.rollout = r.id AND n.state = 'failed') AS failed
FROM rollouts r;

CREATE VIEW v_rollout_nodes AS
SELECT n.rollout, n.node, n.pos, n.state, n.steps, n.step, n.sent, n.boot_id, n.detail, n.backups, n.diffs,
       n.updated
FROM rollout_nodes n;
