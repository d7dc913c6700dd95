-- rookery-store PostgreSQL schema, version 3 (embedded by src/postgres/migrate.rs): fewer
-- writes per stream-management outbox row.
--
-- 1. sm_outbox loses its UNIQUE (session, origin) index, as in the SQLite schema's version 3:
--    every row cost an entry there (and its removal with the row), written to the WAL with each
--    group commit, repeating sm_seen, which holds every origin that parses (the only ones core
--    produces); an Append with an origin that does not parse looks for it among the session's
--    live rows instead (src/postgres/sm.rs, APPEND).
-- 2. sm_outbox and sm_seen lose their foreign keys to sm_sessions. Each row inserted ran the
--    key's check, a query of its own per row, which the APPEND statement has already done
--    once per session for the whole batch (it locks the records it appends to); removing the
--    checks took a batch of 256 appends from about 26,000 to about 38,000 rows/s here. The
--    cascade they gave is done by the statements that delete records (END, remove_account),
--    which delete the rows and origins by session id.

ALTER TABLE sm_outbox DROP CONSTRAINT sm_outbox_session_origin_key;
ALTER TABLE sm_outbox DROP CONSTRAINT sm_outbox_session_fkey;
ALTER TABLE sm_seen DROP CONSTRAINT sm_seen_session_fkey;
