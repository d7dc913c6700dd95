-- rookery-store SQLite schema, version 4 (embedded by src/sqlite/migrate.rs): the nodes of a
-- cluster (`NodeStore`, src/nodes.rs; decision 0018). A cluster runs on PostgreSQL; the table
-- is here too so that a schema version means the same tables on both backends.
CREATE TABLE cluster_nodes (
    node         TEXT PRIMARY KEY,
    -- Raised by one at every start of the node (`claim`); guards everything it writes.
    epoch        INTEGER NOT NULL CHECK (epoch >= 1),
    started_ms   INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
) WITHOUT ROWID;
