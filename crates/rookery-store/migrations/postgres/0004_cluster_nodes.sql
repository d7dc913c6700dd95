-- rookery-store PostgreSQL schema, version 4 (embedded by src/postgres/migrate.rs): the nodes
-- of a cluster (`NodeStore`, src/nodes.rs; decision 0018).
CREATE TABLE cluster_nodes (
    node         TEXT COLLATE "C" PRIMARY KEY,
    -- Raised by one at every start of the node (`claim`); guards everything it writes.
    epoch        BIGINT NOT NULL CHECK (epoch >= 1),
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
