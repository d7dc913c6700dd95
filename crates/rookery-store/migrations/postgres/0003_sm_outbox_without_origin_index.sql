-- rookery-store PostgreSQL schema, version 3 (embedded by src/postgres/migrate.rs): sm_outbox
-- without its UNIQUE (session, origin) index, as in the SQLite schema's version 3.
--
-- Every outbox row cost an entry in that index (and its removal with the row), written to the
-- WAL with each group commit. It duplicated sm_seen, which already holds every origin that
-- parses (the only ones core produces); an Append with an origin that does not parse now looks
-- for it among the session's live rows instead (src/postgres/sm.rs, APPEND).

ALTER TABLE sm_outbox DROP CONSTRAINT sm_outbox_session_origin_key;
