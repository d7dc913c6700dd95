//! rookery-store, SQLite backend: `SmStore` (XEP-0198 stream management made durable).
//!
//! Called through `Stores::sm` by core's group-commit writer (`rookery-core/src/outbox.rs`):
//! `apply` with batches of a few hundred ops, mostly `Append` and `Ack`, as the sessions
//! work; `load` once at start. `apply` is one writer job (sqlite/db.rs): its ops run in order
//! on statements prepared once per connection, inside the job's savepoint, so a failing op
//! rolls back the whole batch and nothing else of the writer's group transaction. Ops on a
//! session without a record change nothing: their statements are all keyed by the session
//! id, and an `Append` inserts only `WHERE EXISTS` the record. The pruning of `sm_seen` by a
//! sender's `Handled` or `End` is keyed by the sender and runs with or without its record.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, Row};

use super::db::Db;
use super::{Ctx, now_unix_ms, to_i64, to_unsigned};
use crate::sm::parse_origin;
use crate::{DeadLetter, OutboxRow, SmOp, SmSession, SmStore, StoreError};

pub(crate) struct SqliteSm(pub(crate) Arc<Db>);

const PUT: &str = "INSERT INTO sm_sessions (id, username, domain, resource, node, handled, acked,
                                            parked_until, presence, priority, interested,
                                            directed, created_ms, updated_ms)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)
                   ON CONFLICT (id) DO UPDATE SET
                       username = excluded.username, domain = excluded.domain,
                       resource = excluded.resource, node = excluded.node,
                       handled = excluded.handled, acked = excluded.acked,
                       parked_until = excluded.parked_until, presence = excluded.presence,
                       priority = excluded.priority, interested = excluded.interested,
                       directed = excluded.directed, updated_ms = excluded.updated_ms";
// `ON CONFLICT DO NOTHING`, not `INSERT OR IGNORE`: only a duplicate seq is to be ignored,
// while OR IGNORE would also drop a row that breaks a CHECK. A duplicate origin is found in
// sm_seen, which holds every origin that parses, live or acknowledged (?6, ?7: the parts of
// origin ?8); no index on sm_outbox repeats it (migration 0003).
const APPEND: &str = "INSERT INTO sm_outbox (session, seq, stanza_id, xml, attempts, origin)
                      SELECT ?1, ?2, ?3, ?4, ?5, ?8
                      WHERE EXISTS (SELECT 1 FROM sm_sessions WHERE id = ?1)
                        AND NOT EXISTS (SELECT 1 FROM sm_seen
                                        WHERE session = ?1 AND origin_session = ?6
                                          AND origin_n = ?7)
                      ON CONFLICT DO NOTHING";
// A row without an origin, or with one that does not parse (?6; NULL for none): such an
// origin is a duplicate only of a live row's, looked for in the session's primary-key range.
// Core never makes one; the store still keeps `SmOp::Append`'s promise for it.
const APPEND_UNPARSED: &str = "INSERT INTO sm_outbox (session, seq, stanza_id, xml, attempts,
                                                     origin)
                               SELECT ?1, ?2, ?3, ?4, ?5, ?6
                               WHERE EXISTS (SELECT 1 FROM sm_sessions WHERE id = ?1)
                                 AND (?6 IS NULL
                                      OR NOT EXISTS (SELECT 1 FROM sm_outbox
                                                     WHERE session = ?1 AND origin = ?6))
                               ON CONFLICT DO NOTHING";
// Run after an APPEND that stored its row, so the record is there.
const SEEN: &str = "INSERT INTO sm_seen (session, origin_session, origin_n) VALUES (?1, ?2, ?3)
                    ON CONFLICT DO NOTHING";
const ACK_ROWS: &str = "DELETE FROM sm_outbox WHERE session = ?1 AND seq <= ?2";
const ACK_SESSION: &str = "UPDATE sm_sessions SET acked = max(acked, ?2), updated_ms = ?3
                           WHERE id = ?1";
const HANDLED: &str = "UPDATE sm_sessions SET handled = ?2, updated_ms = ?3 WHERE id = ?1";
// What sender ?1 will never resend once it has handled ?2: the origins at most 2^31 - 1
// behind ?2 modulo 2^32 (see `SmOp::Handled`), as two ranges of the sm_seen_by_origin index.
const PRUNE_HANDLED: &str = "DELETE FROM sm_seen
                             WHERE origin_session = ?1
                               AND ((origin_n <= ?2 AND origin_n > ?2 - 2147483648)
                                    OR origin_n > ?2 + 2147483648)";
const STATE: &str = "UPDATE sm_sessions
                     SET presence = ?2, priority = ?3, interested = ?4, directed = ?5,
                         updated_ms = ?6
                     WHERE id = ?1";
const PARK: &str = "UPDATE sm_sessions SET parked_until = ?2, updated_ms = ?3 WHERE id = ?1";
// A row already written to `max_attempts` connections (?2) is given up on; the others are
// about to be written once more. The bury runs first, so the two sets never overlap.
const BURY: &str = "INSERT INTO sm_dead_letters (username, domain, session, resource, seq,
                                                 stanza_id, xml, attempts, died_at)
                    SELECT s.username, s.domain, s.id, s.resource, o.seq, o.stanza_id, o.xml,
                           o.attempts, ?3
                    FROM sm_outbox o JOIN sm_sessions s ON s.id = o.session
                    WHERE o.session = ?1 AND o.attempts >= ?2
                    ORDER BY o.seq";
const BURIED: &str = "DELETE FROM sm_outbox WHERE session = ?1 AND attempts >= ?2";
const ATTEMPT: &str = "UPDATE sm_outbox SET attempts = attempts + 1 WHERE session = ?1";
// The cascade takes the live rows and the session's sm_seen; dead letters do not reference
// the session. What it sent goes with PRUNE_SENT.
const END: &str = "DELETE FROM sm_sessions WHERE id = ?1";
const PRUNE_SENT: &str = "DELETE FROM sm_seen WHERE origin_session = ?1";
// A node's remembered origins, but those of live rows (on the rows already): the text is
// the one the row holds, as only plain-decimal origins are remembered (`parse_origin`).
const LOAD_SEEN: &str = "SELECT v.session, v.origin_session || '#' || v.origin_n
                         FROM sm_seen v JOIN sm_sessions s ON s.id = v.session
                         WHERE s.node = ?1
                           AND NOT EXISTS (SELECT 1 FROM sm_outbox o
                                           WHERE o.session = v.session
                                             AND o.origin = v.origin_session || '#' || v.origin_n)
                         ORDER BY v.session, v.origin_session, v.origin_n";

#[async_trait]
impl SmStore for SqliteSm {
    async fn apply_shared(&self, ops: Arc<[SmOp]>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        self.0
            .write(move |conn| {
                let now = now_unix_ms();
                ops.iter().try_for_each(|op| apply_one(conn, op, now))
            })
            .await
    }

    async fn load(&self, node: &str) -> Result<Vec<(SmSession, Vec<OutboxRow>)>, StoreError> {
        let node = node.to_owned();
        self.0
            .read(move |conn| {
                let sessions = {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT id, username, domain, resource, node, handled, acked,
                                    parked_until, presence, priority, interested, directed
                             FROM sm_sessions WHERE node = ?1 ORDER BY id",
                        )
                        .ctx("preparing sm session query")?;
                    let rows = stmt
                        .query_map([&node], |row| Ok(session_from(row)))
                        .ctx("querying sm sessions")?;
                    rows.collect::<Result<Vec<_>, _>>()
                        .ctx("reading sm sessions")?
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()?
                };
                let mut outboxes: HashMap<String, Vec<OutboxRow>> = HashMap::new();
                {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT o.session, o.seq, o.stanza_id, o.xml, o.attempts, o.origin
                             FROM sm_outbox o JOIN sm_sessions s ON s.id = o.session
                             WHERE s.node = ?1 ORDER BY o.session, o.seq",
                        )
                        .ctx("preparing sm outbox query")?;
                    let mut rows = stmt.query([&node]).ctx("querying sm outboxes")?;
                    while let Some(row) = rows.next().ctx("reading sm outboxes")? {
                        let session: String = row.get(0).ctx("reading sm outboxes")?;
                        let row = OutboxRow {
                            seq: to_unsigned(row.get(1).ctx("reading sm outboxes")?, "seq")?,
                            stanza_id: row.get(2).ctx("reading sm outboxes")?,
                            xml: row.get(3).ctx("reading sm outboxes")?,
                            attempts: to_unsigned(
                                row.get(4).ctx("reading sm outboxes")?,
                                "attempts",
                            )?,
                            origin: row.get(5).ctx("reading sm outboxes")?,
                        };
                        outboxes.entry(session).or_default().push(row);
                    }
                }
                let mut seen: HashMap<String, Vec<String>> = HashMap::new();
                {
                    let mut stmt = conn
                        .prepare_cached(LOAD_SEEN)
                        .ctx("preparing sm seen query")?;
                    let mut rows = stmt.query([&node]).ctx("querying sm seen")?;
                    while let Some(row) = rows.next().ctx("reading sm seen")? {
                        let session: String = row.get(0).ctx("reading sm seen")?;
                        let origin: String = row.get(1).ctx("reading sm seen")?;
                        seen.entry(session).or_default().push(origin);
                    }
                }
                Ok(sessions
                    .into_iter()
                    .map(|mut s| {
                        s.seen = seen.remove(&s.id).unwrap_or_default();
                        let rows = outboxes.remove(&s.id).unwrap_or_default();
                        (s, rows)
                    })
                    .collect())
            })
            .await
    }

    async fn dead_letters(&self, user: &str, domain: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT session, resource, seq, stanza_id, xml, attempts, died_at
                         FROM sm_dead_letters WHERE username = ?1 AND domain = ?2
                         ORDER BY died_at, id",
                    )
                    .ctx("preparing dead letter query")?;
                let mut rows = stmt.query((&user, &domain)).ctx("querying dead letters")?;
                let mut letters = Vec::new();
                while let Some(row) = rows.next().ctx("reading dead letters")? {
                    letters.push(DeadLetter {
                        session: row.get(0).ctx("reading dead letters")?,
                        resource: row.get(1).ctx("reading dead letters")?,
                        seq: to_unsigned(row.get(2).ctx("reading dead letters")?, "seq")?,
                        stanza_id: row.get(3).ctx("reading dead letters")?,
                        xml: row.get(4).ctx("reading dead letters")?,
                        attempts: to_unsigned(row.get(5).ctx("reading dead letters")?, "attempts")?,
                        died_at: row.get(6).ctx("reading dead letters")?,
                    });
                }
                Ok(letters)
            })
            .await
    }

    async fn remove_account(&self, user: &str, domain: &str) -> Result<usize, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .write(move |conn| {
                // What its sessions sent first, while they are there to name it; what they
                // received goes with them (cascade).
                conn.prepare_cached(
                    "DELETE FROM sm_seen WHERE origin_session IN
                         (SELECT id FROM sm_sessions WHERE username = ?1 AND domain = ?2)",
                )
                .and_then(|mut stmt| stmt.execute((&user, &domain)))
                .ctx("forgetting sent sm origins")?;
                conn.prepare_cached("DELETE FROM sm_sessions WHERE username = ?1 AND domain = ?2")
                    .and_then(|mut stmt| stmt.execute((&user, &domain)))
                    .ctx("deleting sm sessions")?;
                conn.prepare_cached(
                    "DELETE FROM sm_dead_letters WHERE username = ?1 AND domain = ?2",
                )
                .and_then(|mut stmt| stmt.execute((&user, &domain)))
                .ctx("deleting dead letters")
            })
            .await
    }
}

/// Runs one op's statements.
fn apply_one(conn: &Connection, op: &SmOp, now: i64) -> Result<(), StoreError> {
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql], what: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map(drop)
            .ctx(what)
    };
    match op {
        SmOp::Put(s) => {
            let directed = join_directed(&s.directed)?;
            run(
                PUT,
                &[
                    &s.id,
                    &s.user,
                    &s.domain,
                    &s.resource,
                    &s.node,
                    &s.handled,
                    &to_i64(s.acked, "acked")?,
                    &s.parked_until,
                    &s.presence,
                    &s.priority,
                    &s.interested,
                    &directed,
                    &now,
                ],
                "storing sm session",
            )
        }
        SmOp::Append { session, row } => {
            let seq = to_i64(row.seq, "seq")?;
            let Some((origin_session, n)) = row.origin.as_deref().and_then(parse_origin) else {
                return run(
                    APPEND_UNPARSED,
                    rusqlite::params![
                        session,
                        seq,
                        row.stanza_id,
                        row.xml,
                        row.attempts,
                        row.origin
                    ],
                    "appending sm outbox row",
                );
            };
            let stored = conn
                .prepare_cached(APPEND)
                .and_then(|mut stmt| {
                    stmt.execute(rusqlite::params![
                        session,
                        seq,
                        row.stanza_id,
                        row.xml,
                        row.attempts,
                        origin_session,
                        n,
                        row.origin,
                    ])
                })
                .ctx("appending sm outbox row")?;
            if stored == 0 {
                return Ok(());
            }
            run(
                SEEN,
                &[session, &origin_session, &n],
                "remembering an sm origin",
            )
        }
        SmOp::Ack { session, upto } => {
            let upto = to_i64(*upto, "acked sequence number")?;
            run(ACK_ROWS, &[session, &upto], "deleting acked sm rows")?;
            run(ACK_SESSION, &[session, &upto, &now], "raising sm acked")
        }
        SmOp::Handled { session, handled } => {
            run(HANDLED, &[session, handled, &now], "setting sm handled")?;
            run(
                PRUNE_HANDLED,
                &[session, handled],
                "forgetting handled sm origins",
            )
        }
        SmOp::State {
            session,
            presence,
            priority,
            interested,
            directed,
        } => run(
            STATE,
            &[
                session,
                presence,
                priority,
                interested,
                &join_directed(directed)?,
                &now,
            ],
            "setting sm presence state",
        ),
        SmOp::Attempt {
            session,
            max_attempts,
            now_ms,
        } => {
            run(
                BURY,
                &[session, max_attempts, now_ms],
                "moving sm rows to dead letters",
            )?;
            run(BURIED, &[session, max_attempts], "deleting dead sm rows")?;
            run(ATTEMPT, &[session], "counting sm attempts")
        }
        SmOp::Park { session, until_ms } => {
            run(PARK, &[session, until_ms, &now], "parking sm session")
        }
        SmOp::Attach { session } => {
            run(PARK, &[session, &None::<i64>, &now], "attaching sm session")
        }
        SmOp::End { session } => {
            run(END, &[session], "ending sm session")?;
            run(PRUNE_SENT, &[session], "forgetting sent sm origins")
        }
    }
}

/// A session record from a `load` row (the columns in `SmSession` order).
fn session_from(row: &Row<'_>) -> Result<SmSession, StoreError> {
    let text = |i| -> Result<String, StoreError> { row.get(i).ctx("reading sm sessions") };
    Ok(SmSession {
        id: text(0)?,
        user: text(1)?,
        domain: text(2)?,
        resource: text(3)?,
        node: text(4)?,
        handled: to_unsigned(row.get(5).ctx("reading sm sessions")?, "handled")?,
        acked: to_unsigned(row.get(6).ctx("reading sm sessions")?, "acked")?,
        parked_until: row.get(7).ctx("reading sm sessions")?,
        presence: row.get(8).ctx("reading sm sessions")?,
        priority: row.get(9).ctx("reading sm sessions")?,
        interested: row.get(10).ctx("reading sm sessions")?,
        directed: split_directed(&text(11)?),
        seen: Vec::new(),
    })
}

/// `directed` as stored: each JID followed by a newline, so an empty list and a list of one
/// empty string differ. JIDs hold no control characters (RFC 7622 §3), so a newline in one
/// is a caller's bug, refused rather than stored as two entries.
fn join_directed(jids: &[String]) -> Result<String, StoreError> {
    let mut text = String::with_capacity(jids.iter().map(|j| j.len() + 1).sum());
    for jid in jids {
        if jid.contains('\n') {
            return Err(StoreError::Backend(format!(
                "sqlite: directed presence JID {jid:?} holds a newline"
            )));
        }
        text.push_str(jid);
        text.push('\n');
    }
    Ok(text)
}

fn split_directed(text: &str) -> Vec<String> {
    text.split_terminator('\n').map(str::to_owned).collect()
}
