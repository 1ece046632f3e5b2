-- 0005: the plans' model index by node first. 0002's devices_model, keyed by
-- the model, put each of an inventory's ~50 endpoint rows at a random place
-- in one fleet-wide index: bench_store measured it at a quarter of the time
-- of storing an inventory. Keyed by node, a node's entries sit together like
-- the table's own rows. Plans walk the nodes in name order and look up the
-- model in each (plan.c), one index seek per node.
DROP INDEX devices_model;
CREATE INDEX devices_node_model ON devices(node, vendor_id, device_id) WHERE bridge = 0 AND assignable_alone = 1;
