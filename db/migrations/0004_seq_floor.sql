-- 0004: the replay floor. The highest envelope seq the controller accepted
-- from each node (ingest.h); an envelope not above it is refused as
-- replayed. Written with last_seen (store_flush), so it survives restarts.
ALTER TABLE nodes ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
