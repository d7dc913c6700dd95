-- rookery-store SQLite schema, version 3 (embedded by src/sqlite/migrate.rs): fewer writes
-- per stream-management outbox row: sm_outbox without its UNIQUE (session, origin) index.
-- (The PostgreSQL version 3 also drops the foreign keys to sm_sessions, whose checks cost a
-- query per row there; SQLite's run in-process on the index at hand, and its cascade stays.)
--
-- Every outbox row cost a write to that index and its deletion one more, on the page of the
-- recipient's entries: per message, two more B-tree pages dirtied in each group commit and
-- written to the WAL. It duplicated sm_seen, which already holds every origin that parses
-- (the only ones core produces, `crate::sm::parse_origin`); an Append with an origin that
-- does not parse now looks for it among the session's live rows (its primary-key range)
-- instead (src/sqlite/sm.rs). SQLite cannot drop a table constraint, so the table is
-- rebuilt with its rows.

CREATE TABLE sm_outbox_v3 (
    session   TEXT NOT NULL REFERENCES sm_sessions (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    stanza_id TEXT NOT NULL,
    xml       TEXT NOT NULL,
    attempts  INTEGER NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    -- "<sending session>#<its stanza number>" for a stanza a stream-managed client sent; an
    -- Append with the origin of a live row, or of one in sm_seen, is a resent duplicate.
    origin    TEXT,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;

INSERT INTO sm_outbox_v3 (session, seq, stanza_id, xml, attempts, origin)
SELECT session, seq, stanza_id, xml, attempts, origin FROM sm_outbox;

DROP TABLE sm_outbox;
ALTER TABLE sm_outbox_v3 RENAME TO sm_outbox;
