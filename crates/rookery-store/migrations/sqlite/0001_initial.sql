-- rookery-store SQLite schema, version 1 (embedded by src/sqlite/migrate.rs).
--
-- Every per-account table references accounts(id) ON DELETE CASCADE, so deleting an
-- account row removes all of its data in the same statement. The composite primary keys
-- start with account_id, which doubles as the index those cascades need.
-- Column names avoid SQL keywords (no "user") so a PostgreSQL schema can mirror this one.

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL,
    domain         TEXT NOT NULL,
    -- XEP-0237: the latest roster version; +1 on every roster change.
    roster_version INTEGER NOT NULL DEFAULT 0,
    -- Oldest version a roster delta can still start from: tombstones at or below it have
    -- been pruned.
    roster_floor   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (domain, username)
);

-- RFC 5802 server-side SCRAM credentials, one row per hash; never the password.
CREATE TABLE scram_credentials (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256')),
    salt       BLOB NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations BETWEEN 0 AND 4294967295),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (account_id, hash)
) WITHOUT ROWID;

CREATE TABLE roster_items (
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid          TEXT NOT NULL,
    name         TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      INTEGER NOT NULL CHECK (ask_out IN (0, 1)),
    approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
    -- Roster version at which this item last changed.
    version      INTEGER NOT NULL,
    PRIMARY KEY (account_id, jid)
) WITHOUT ROWID;
CREATE INDEX roster_items_by_version ON roster_items (account_id, version);

CREATE TABLE roster_groups (
    account_id INTEGER NOT NULL,
    jid        TEXT NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, jid, name),
    FOREIGN KEY (account_id, jid)
        REFERENCES roster_items (account_id, jid) ON DELETE CASCADE
) WITHOUT ROWID;

-- Removed roster items, so "changes since version N" can report removals.
CREATE TABLE roster_tombstones (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (account_id, jid)
) WITHOUT ROWID;
CREATE INDEX roster_tombstones_by_version ON roster_tombstones (account_id, version);

-- RFC 6121 §3.1.3: inbound subscribe stanzas kept until answered. seq is the arrival
-- order for redelivery; a re-sent request updates the row in place and keeps its place.
CREATE TABLE roster_pending_in (
    seq        INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact    TEXT NOT NULL,
    stanza     TEXT NOT NULL,
    UNIQUE (account_id, contact)
);

-- XEP-0160. seq is a rowid alias: a new row gets max(seq)+1, so within an account it is
-- always larger than every message still stored, which is all arrival order needs.
CREATE TABLE offline_messages (
    seq        INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stanza     TEXT NOT NULL,
    stamp_ms   INTEGER NOT NULL
);
CREATE INDEX offline_messages_by_account ON offline_messages (account_id, seq);

-- Small per-account documents: vcard-temp, private XML storage, last activity, ...
CREATE TABLE kv (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    store      TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account_id, store, key)
) WITHOUT ROWID;

-- XEP-0191.
CREATE TABLE blocklist (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT NOT NULL,
    PRIMARY KEY (account_id, jid)
) WITHOUT ROWID;
