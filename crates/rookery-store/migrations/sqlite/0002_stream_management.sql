-- rookery-store SQLite schema, version 2 (embedded by src/sqlite/migrate.rs): XEP-0198 stream
-- management made durable, for `SmStore` (src/sm.rs, src/sqlite/sm.rs).
--
-- Keyed by session id, not by account row: a session's record is written by core's outbox
-- writer as the session runs, and must never fail because of the account table. An account's
-- sessions and dead letters go with `SmStore::remove_account`.

-- One row per resumable session (`SmSession`).
CREATE TABLE sm_sessions (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL,
    domain       TEXT NOT NULL,
    resource     TEXT NOT NULL,
    -- The cluster node holding the session; `load` reads one node's.
    node         TEXT NOT NULL,
    handled      INTEGER NOT NULL CHECK (handled BETWEEN 0 AND 4294967295),
    acked        INTEGER NOT NULL CHECK (acked >= 0),
    -- Unix ms until which a parked session may be resumed; NULL while attached.
    parked_until INTEGER,
    presence     TEXT,
    -- RFC 6121 §4.7.2.3: a presence priority is an integer from -128 to +127.
    priority     INTEGER NOT NULL CHECK (priority BETWEEN -128 AND 127),
    interested   INTEGER NOT NULL CHECK (interested IN (0, 1)),
    -- Directed-presence JIDs in the order sent, each followed by a newline (RFC 7622 JIDs
    -- hold no control characters); '' for none.
    directed     TEXT NOT NULL,
    -- Unix ms of the first Put and of the latest change, for the operator.
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sm_sessions_by_node ON sm_sessions (node);
CREATE INDEX sm_sessions_by_account ON sm_sessions (username, domain);

-- Stanzas written to a session's client and not acknowledged (`OutboxRow`). The rows go with
-- their session (End, remove_account) through the cascade.
CREATE TABLE sm_outbox (
    session   TEXT NOT NULL REFERENCES sm_sessions (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL CHECK (seq >= 0),
    stanza_id TEXT NOT NULL,
    xml       TEXT NOT NULL,
    attempts  INTEGER NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    -- "<sending session>#<its stanza number>" for a stanza a stream-managed client sent; a
    -- second row with the same origin is a resent duplicate. NULLs never conflict.
    origin    TEXT,
    PRIMARY KEY (session, seq),
    UNIQUE (session, origin)
) WITHOUT ROWID;

-- Origins delivered to a session (`SmSession::seen`): what `sm_outbox.origin` says of a live
-- row, kept after the row is acknowledged, so a stanza its sender resends after a restart (its
-- persisted `handled` lagged) is still recognised as a duplicate. Written by `Append` for an
-- origin of the form "<session>#<n>" (n a u32 in plain decimal), pruned by the sender's
-- progress (`Handled`, `End` of origin_session), gone with the recipient session (cascade).
CREATE TABLE sm_seen (
    session        TEXT NOT NULL REFERENCES sm_sessions (id) ON DELETE CASCADE,
    origin_session TEXT NOT NULL,
    origin_n       INTEGER NOT NULL CHECK (origin_n BETWEEN 0 AND 4294967295),
    PRIMARY KEY (session, origin_session, origin_n)
) WITHOUT ROWID;
-- The pruning looks rows up by sender, and by its stanza number.
CREATE INDEX sm_seen_by_origin ON sm_seen (origin_session, origin_n);

-- Stanzas given up on (`DeadLetter`). No reference to sm_sessions: they outlive the session.
-- id is the order they were given up in, the tie-break between equal died_at stamps.
CREATE TABLE sm_dead_letters (
    id        INTEGER PRIMARY KEY,
    username  TEXT NOT NULL,
    domain    TEXT NOT NULL,
    session   TEXT NOT NULL,
    resource  TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    stanza_id TEXT NOT NULL,
    xml       TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    died_at   INTEGER NOT NULL
);
CREATE INDEX sm_dead_letters_by_account ON sm_dead_letters (username, domain, died_at, id);
