-- rookery-store PostgreSQL schema, version 1 (embedded by src/postgres/migrate.rs). The same
-- tables, columns and meaning as migrations/sqlite/0001_initial.sql, in PostgreSQL types.
--
-- Every per-account table references accounts(id) ON DELETE CASCADE, so deleting an
-- account row removes all of its data in the same statement. The composite primary keys
-- start with account_id, which doubles as the index those cascades need.
--
-- Text that the store sorts or compares (names, JIDs, keys) is COLLATE "C": byte order of
-- the UTF-8 encoding, which is Rust's `Ord` on `String` and SQLite's BINARY collation, so
-- listings come out in the order the store contract promises whatever the database's
-- default collation is. Tables are created in the connection's search_path (the
-- configured schema).

CREATE TABLE accounts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT COLLATE "C" NOT NULL,
    domain         TEXT COLLATE "C" NOT NULL,
    -- XEP-0237: the latest roster version; +1 on every roster change.
    roster_version BIGINT NOT NULL DEFAULT 0,
    -- Oldest version a roster delta can still start from: tombstones at or below it have
    -- been pruned.
    roster_floor   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (domain, username)
);

-- RFC 5802 server-side SCRAM credentials, one row per hash; never the password.
CREATE TABLE scram_credentials (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    hash       TEXT COLLATE "C" NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256')),
    salt       BYTEA NOT NULL,
    iterations BIGINT NOT NULL CHECK (iterations BETWEEN 0 AND 4294967295),
    stored_key BYTEA NOT NULL,
    server_key BYTEA NOT NULL,
    PRIMARY KEY (account_id, hash)
);

CREATE TABLE roster_items (
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid          TEXT COLLATE "C" NOT NULL,
    name         TEXT,
    subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out      BOOLEAN NOT NULL,
    approved     BOOLEAN NOT NULL,
    -- Roster version at which this item last changed.
    version      BIGINT NOT NULL,
    PRIMARY KEY (account_id, jid)
);
CREATE INDEX roster_items_by_version ON roster_items (account_id, version);

CREATE TABLE roster_groups (
    account_id BIGINT NOT NULL,
    jid        TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, jid, name),
    FOREIGN KEY (account_id, jid)
        REFERENCES roster_items (account_id, jid) ON DELETE CASCADE
);

-- Removed roster items, so "changes since version N" can report removals.
CREATE TABLE roster_tombstones (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (account_id, jid)
);
CREATE INDEX roster_tombstones_by_version ON roster_tombstones (account_id, version);

-- RFC 6121 §3.1.3: inbound subscribe stanzas kept until answered. seq is the arrival
-- order for redelivery; a re-sent request updates the row in place and keeps its place.
CREATE TABLE roster_pending_in (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact    TEXT COLLATE "C" NOT NULL,
    stanza     TEXT NOT NULL,
    UNIQUE (account_id, contact)
);

-- XEP-0160. seq comes from a sequence, so it grows with every insert; pushes to one account
-- are serialised on the account row (src/postgres/offline.rs), so within an account seq order
-- is arrival order.
CREATE TABLE offline_messages (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stanza     TEXT NOT NULL,
    stamp_ms   BIGINT NOT NULL
);
CREATE INDEX offline_messages_by_account ON offline_messages (account_id, seq);

-- Small per-account documents: vcard-temp, private XML storage, last activity, ...
CREATE TABLE kv (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    store      TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account_id, store, key)
);

-- XEP-0191.
CREATE TABLE blocklist (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, jid)
);
