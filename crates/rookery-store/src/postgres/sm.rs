//! rookery-store, PostgreSQL backend: `SmStore` (XEP-0198 stream management made durable).
//!
//! Called through `Stores::sm` by core's group-commit writer (`rookery-core/src/outbox.rs`):
//! `apply` with batches of a few hundred ops, mostly `Append` and `Ack`, as the sessions
//! work; `load` once at start. Same tables and meaning as the SQLite backend
//! (`sqlite/sm.rs`).
//!
//! `apply` is one pipelined transaction (`Conn::pipeline`): one round trip and one commit
//! for the whole batch. Per-statement cost on the server is what is left, so the batch is
//! first planned into few statements ([`plan`]): `Append`s go into one
//! `INSERT ... SELECT FROM unnest(...)` over arrays, `Ack`s into one `DELETE`+`UPDATE` over
//! arrays, and every other op is a statement of its own. Every op changes one session's
//! record and rows only, but for `sm_seen`: an `Append` with an origin from session S reads
//! and writes the origins S sent, which a `Handled` or `End` of S prunes. So ops commute
//! unless they name the same session, or one is such an `Append` and the other a pruning op
//! of S. An `Append` or `Ack` joins the first statement of its kind that comes no earlier
//! than the last statement holding an op it does not commute with (or starts a new one at
//! the end); the pruning ops are single statements, after everything before them. Each
//! session's ops therefore keep their order (within one statement, the order of its arrays),
//! and the result is the one running the ops one by one would give.
//!
//! An `Append` locks its session's record (`FOR KEY SHARE`, what the foreign key check
//! takes anyway) before inserting: a record deleted meanwhile by another connection's `End`
//! makes the row be skipped, like any append to an ended session, instead of failing the
//! whole batch on the foreign key.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::db::{Begin, Pg, params};
use super::{Ctx, checked_bigint, to_unsigned};
use crate::sm::parse_origin;
use crate::{DeadLetter, OutboxRow, SmOp, SmSession, SmStore, StoreError};

pub(crate) struct PgSm(pub(crate) Arc<Pg>);

const PUT: &str = "INSERT INTO sm_sessions (id, username, domain, resource, node, handled, acked,
                                            parked_until, presence, priority, interested,
                                            directed, created_ms, updated_ms)
                   VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint,
                           $7::bigint, $8::bigint, $9::text, $10::int, $11::bool, $12::text[],
                           (extract(epoch FROM now()) * 1000)::bigint,
                           (extract(epoch FROM now()) * 1000)::bigint)
                   ON CONFLICT (id) DO UPDATE SET
                       username = excluded.username, domain = excluded.domain,
                       resource = excluded.resource, node = excluded.node,
                       handled = excluded.handled, acked = excluded.acked,
                       parked_until = excluded.parked_until, presence = excluded.presence,
                       priority = excluded.priority, interested = excluded.interested,
                       directed = excluded.directed, updated_ms = excluded.updated_ms";
// The records are locked once each (a locking CTE is run once): a row is stored only for a
// session whose record exists and stays until the commit (no foreign key checks each row,
// migration 0003; `remove_account` waits for the lock). The rows are inserted in the order
// of the ops (ordinality). An origin already in sm_seen is a duplicate ($7, $8: its parts,
// NULL when it does not parse, matching nothing); one that does not parse is a duplicate of
// a live row's, looked for in the session's primary-key range (no index repeats sm_seen,
// migration 0003). Neither check sees the statement's own rows, so `plan` never
// puts two rows of one session with one origin in the same statement. The origins of the
// rows stored are then remembered: found again in the arrays by the row's key and origin.
const APPEND: &str = "WITH live AS (SELECT id FROM sm_sessions WHERE id = ANY ($1::text[])
                                    FOR KEY SHARE),
                           u AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[],
                                                      $4::text[], $5::bigint[], $6::text[],
                                                      $7::text[], $8::bigint[])
                                 WITH ORDINALITY AS u (session, seq, stanza_id, xml, attempts,
                                                       origin, origin_session, origin_n,
                                                       ord)),
                           stored AS (INSERT INTO sm_outbox (session, seq, stanza_id, xml,
                                                             attempts, origin)
                                      SELECT u.session, u.seq, u.stanza_id, u.xml, u.attempts,
                                             u.origin
                                      FROM u JOIN live ON live.id = u.session
                                      WHERE NOT EXISTS (
                                          SELECT 1 FROM sm_seen v
                                          WHERE v.session = u.session
                                            AND v.origin_session = u.origin_session
                                            AND v.origin_n = u.origin_n)
                                        AND (u.origin IS NULL OR u.origin_n IS NOT NULL
                                             OR NOT EXISTS (
                                                 SELECT 1 FROM sm_outbox o
                                                 WHERE o.session = u.session
                                                   AND o.origin = u.origin))
                                      ORDER BY u.ord
                                      ON CONFLICT DO NOTHING
                                      RETURNING session, seq, origin)
                      INSERT INTO sm_seen (session, origin_session, origin_n)
                      SELECT DISTINCT u.session, u.origin_session, u.origin_n
                      FROM stored JOIN u ON u.session = stored.session AND u.seq = stored.seq
                                        AND u.origin = stored.origin
                      WHERE u.origin_n IS NOT NULL
                      ON CONFLICT DO NOTHING";
// Several acks of one session in a statement amount to the highest of them.
const ACK: &str = "WITH a AS (SELECT u.session, max(u.upto) AS upto
                              FROM unnest($1::text[], $2::bigint[]) AS u (session, upto)
                              GROUP BY u.session),
                        acked AS (DELETE FROM sm_outbox o USING a
                                  WHERE o.session = a.session AND o.seq <= a.upto)
                   UPDATE sm_sessions s
                   SET acked = GREATEST(s.acked, a.upto),
                       updated_ms = (extract(epoch FROM now()) * 1000)::bigint
                   FROM a WHERE s.id = a.session";
// What sender $1 will never resend once it has handled $2 goes from sm_seen: the origins at
// most 2^31 - 1 behind $2 modulo 2^32 (see `SmOp::Handled`), as two ranges of the
// sm_seen_by_origin index. With or without a record.
const HANDLED: &str = "WITH pruned AS (DELETE FROM sm_seen
                                       WHERE origin_session = $1::text
                                         AND ((origin_n <= $2::bigint
                                               AND origin_n > $2::bigint - 2147483648)
                                              OR origin_n > $2::bigint + 2147483648))
                       UPDATE sm_sessions
                       SET handled = $2::bigint,
                           updated_ms = (extract(epoch FROM now()) * 1000)::bigint
                       WHERE id = $1::text";
const STATE: &str = "UPDATE sm_sessions
                     SET presence = $2::text, priority = $3::int, interested = $4::bool,
                         directed = $5::text[],
                         updated_ms = (extract(epoch FROM now()) * 1000)::bigint
                     WHERE id = $1::text";
const PARK: &str = "UPDATE sm_sessions
                    SET parked_until = $2::bigint,
                        updated_ms = (extract(epoch FROM now()) * 1000)::bigint
                    WHERE id = $1::text";
// A row already written to `max_attempts` connections ($2) is given up on; the others are
// about to be written once more. The two sets are disjoint: sub-statements of one query
// must not touch the same row.
const ATTEMPT: &str = "WITH dead AS (DELETE FROM sm_outbox
                                     WHERE session = $1::text AND attempts >= $2::bigint
                                     RETURNING seq, stanza_id, xml, attempts),
                            buried AS (INSERT INTO sm_dead_letters (username, domain, session,
                                                                    resource, seq, stanza_id,
                                                                    xml, attempts, died_at)
                                       SELECT s.username, s.domain, s.id, s.resource, d.seq,
                                              d.stanza_id, d.xml, d.attempts, $3::bigint
                                       FROM dead d JOIN sm_sessions s ON s.id = $1::text
                                       ORDER BY d.seq)
                       UPDATE sm_outbox SET attempts = attempts + 1
                       WHERE session = $1::text AND attempts < $2::bigint";
// The session's live rows and the origins it received go with it (no foreign key cascades
// them, migration 0003), and so do the origins it sent, with or without a record; dead
// letters stay. It runs right after END_LOCK, in a snapshot of its own (READ COMMITTED).
const END: &str = "WITH origins AS (DELETE FROM sm_seen
                                    WHERE origin_session = $1::text OR session = $1::text),
                        rows AS (DELETE FROM sm_outbox WHERE session = $1::text)
                   DELETE FROM sm_sessions WHERE id = $1::text";
// Before END: locks the record, which waits for an APPEND in flight on another connection
// (it holds a key-share lock on the record) to commit and makes a later one wait for this
// transaction and then find no record. END's snapshot, taken after, sees every row such an
// append stored, so none is left behind without its record.
const END_LOCK: &str = "SELECT 1 FROM sm_sessions WHERE id = $1::text FOR UPDATE";
// A node's remembered origins, but those of live rows (on the rows already): the text is
// the one the row holds, as only plain-decimal origins are remembered (`parse_origin`).
const LOAD_SEEN: &str = "SELECT v.session, v.origin_session || '#' || v.origin_n::text
                         FROM sm_seen v JOIN sm_sessions s ON s.id = v.session
                         WHERE s.node = $1::text
                           AND NOT EXISTS (SELECT 1 FROM sm_outbox o
                                           WHERE o.session = v.session
                                             AND o.origin = v.origin_session || '#'
                                                            || v.origin_n::text)
                         ORDER BY v.session, v.origin_session, v.origin_n";

/// One statement of an `apply`, its parameters converted to the column types.
#[derive(Debug)]
pub(super) enum Step {
    Put {
        s: SmSession,
        handled: i64,
        acked: i64,
    },
    Append {
        sessions: Vec<String>,
        seqs: Vec<i64>,
        stanza_ids: Vec<String>,
        xmls: Vec<String>,
        attempts: Vec<i64>,
        origins: Vec<Option<String>>,
        /// Each origin's parts (`parse_origin`), `None` when it does not parse.
        origin_sessions: Vec<Option<String>>,
        origin_ns: Vec<Option<i64>>,
    },
    Ack {
        sessions: Vec<String>,
        uptos: Vec<i64>,
    },
    Handled {
        session: String,
        handled: i64,
    },
    State {
        session: String,
        presence: Option<String>,
        priority: i32,
        interested: bool,
        directed: Vec<String>,
    },
    Attempt {
        session: String,
        max_attempts: i64,
        now_ms: i64,
    },
    /// `Park`, and `Attach` (no time).
    Park {
        session: String,
        until_ms: Option<i64>,
    },
    End {
        session: String,
    },
    /// Right before an `End` (see END_LOCK).
    EndLock {
        session: String,
    },
}

/// Turns `ops` into statements: see the file header for why the result is the same as
/// running the ops one by one.
pub(super) fn plan(ops: &[SmOp]) -> Result<Vec<Step>, StoreError> {
    let mut steps: Vec<Step> = Vec::new();
    // The index of the last step holding an op on each session.
    let mut last: HashMap<&str, usize> = HashMap::new();
    // The index of the last step pruning the origins each session sent (`Handled`, `End`).
    let mut pruned: HashMap<&str, usize> = HashMap::new();
    // The append step holding each session's row with each origin, the latest.
    let mut with_origin: HashMap<(&str, &str), usize> = HashMap::new();
    // The indexes of the append and the ack steps, ascending.
    let (mut appends, mut acks): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for op in ops {
        let session = match op {
            SmOp::Put(s) => s.id.as_str(),
            SmOp::Append { session, .. }
            | SmOp::Ack { session, .. }
            | SmOp::Handled { session, .. }
            | SmOp::State { session, .. }
            | SmOp::Attempt { session, .. }
            | SmOp::Park { session, .. }
            | SmOp::Attach { session }
            | SmOp::End { session } => session.as_str(),
        };
        let origin = match op {
            SmOp::Append { row, .. } => row.origin.as_deref().and_then(parse_origin),
            _ => None,
        };
        // A row whose session and origin are already in an append step goes to a later one
        // (see APPEND: a statement does not see its own rows).
        let same_origin = match op {
            SmOp::Append { row, .. } => row.origin.as_deref().map(|o| (session, o)),
            _ => None,
        };
        let after = last
            .get(session)
            .copied()
            .max(origin.and_then(|(sender, _)| pruned.get(sender).copied()))
            .max(
                same_origin
                    .and_then(|key| with_origin.get(&key))
                    .map(|&i| i + 1),
            );
        // The first step of a kind this op may join: none before `after`.
        let joinable = |of_kind: &[usize]| {
            let from = after.unwrap_or(0);
            of_kind.get(of_kind.partition_point(|&i| i < from)).copied()
        };
        let index = match op {
            SmOp::Append { session, row } => {
                let i = joinable(&appends).unwrap_or_else(|| {
                    steps.push(Step::Append {
                        sessions: Vec::new(),
                        seqs: Vec::new(),
                        stanza_ids: Vec::new(),
                        xmls: Vec::new(),
                        attempts: Vec::new(),
                        origins: Vec::new(),
                        origin_sessions: Vec::new(),
                        origin_ns: Vec::new(),
                    });
                    appends.push(steps.len() - 1);
                    steps.len() - 1
                });
                let Some(Step::Append {
                    sessions,
                    seqs,
                    stanza_ids,
                    xmls,
                    attempts,
                    origins,
                    origin_sessions,
                    origin_ns,
                }) = steps.get_mut(i)
                else {
                    return Err(misplanned());
                };
                sessions.push(session.clone());
                seqs.push(checked_bigint(row.seq, "seq")?);
                stanza_ids.push(row.stanza_id.clone());
                xmls.push(row.xml.clone());
                attempts.push(i64::from(row.attempts));
                origins.push(row.origin.clone());
                origin_sessions.push(origin.map(|(sender, _)| sender.to_owned()));
                origin_ns.push(origin.map(|(_, n)| i64::from(n)));
                i
            }
            SmOp::Ack { session, upto } => {
                let i = joinable(&acks).unwrap_or_else(|| {
                    steps.push(Step::Ack {
                        sessions: Vec::new(),
                        uptos: Vec::new(),
                    });
                    acks.push(steps.len() - 1);
                    steps.len() - 1
                });
                let Some(Step::Ack { sessions, uptos }) = steps.get_mut(i) else {
                    return Err(misplanned());
                };
                sessions.push(session.clone());
                uptos.push(checked_bigint(*upto, "acked sequence number")?);
                i
            }
            single => {
                if let SmOp::End { session } = single {
                    // END's own statement, after its record is locked in one before it (see
                    // END_LOCK).
                    steps.push(Step::EndLock {
                        session: session.clone(),
                    });
                }
                steps.push(single_step(single)?);
                let i = steps.len() - 1;
                if let SmOp::Handled { .. } | SmOp::End { .. } = single {
                    pruned.insert(session, i);
                }
                i
            }
        };
        last.insert(session, index);
        if let Some(key) = same_origin {
            with_origin.insert(key, index);
        }
    }
    Ok(steps)
}

/// The statement of an op that is never merged with others.
fn single_step(op: &SmOp) -> Result<Step, StoreError> {
    Ok(match op {
        SmOp::Put(s) => Step::Put {
            handled: i64::from(s.handled),
            acked: checked_bigint(s.acked, "acked")?,
            s: s.clone(),
        },
        SmOp::Handled { session, handled } => Step::Handled {
            session: session.clone(),
            handled: i64::from(*handled),
        },
        SmOp::State {
            session,
            presence,
            priority,
            interested,
            directed,
        } => Step::State {
            session: session.clone(),
            presence: presence.clone(),
            priority: *priority,
            interested: *interested,
            directed: directed.clone(),
        },
        SmOp::Attempt {
            session,
            max_attempts,
            now_ms,
        } => Step::Attempt {
            session: session.clone(),
            max_attempts: i64::from(*max_attempts),
            now_ms: *now_ms,
        },
        SmOp::Park { session, until_ms } => Step::Park {
            session: session.clone(),
            until_ms: Some(*until_ms),
        },
        SmOp::Attach { session } => Step::Park {
            session: session.clone(),
            until_ms: None,
        },
        SmOp::End { session } => Step::End {
            session: session.clone(),
        },
        SmOp::Append { .. } | SmOp::Ack { .. } => return Err(misplanned()),
    })
}

/// `plan` put an op in a step of another kind: a bug here, reported rather than dropping
/// the op.
fn misplanned() -> StoreError {
    StoreError::Backend("postgres: sm ops planned into the wrong statement".into())
}

impl Step {
    fn sql(&self) -> &'static str {
        match self {
            Step::Put { .. } => PUT,
            Step::Append { .. } => APPEND,
            Step::Ack { .. } => ACK,
            Step::Handled { .. } => HANDLED,
            Step::State { .. } => STATE,
            Step::Attempt { .. } => ATTEMPT,
            Step::Park { .. } => PARK,
            Step::End { .. } => END,
            Step::EndLock { .. } => END_LOCK,
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            Step::Put { s, handled, acked } => params![
                s.id,
                s.user,
                s.domain,
                s.resource,
                s.node,
                *handled,
                *acked,
                s.parked_until,
                s.presence,
                s.priority,
                s.interested,
                s.directed,
            ]
            .to_vec(),
            Step::Append {
                sessions,
                seqs,
                stanza_ids,
                xmls,
                attempts,
                origins,
                origin_sessions,
                origin_ns,
            } => params![
                *sessions,
                *seqs,
                *stanza_ids,
                *xmls,
                *attempts,
                *origins,
                *origin_sessions,
                *origin_ns,
            ]
            .to_vec(),
            Step::Ack { sessions, uptos } => params![*sessions, *uptos].to_vec(),
            Step::Handled { session, handled } => params![*session, *handled].to_vec(),
            Step::State {
                session,
                presence,
                priority,
                interested,
                directed,
            } => params![*session, *presence, *priority, *interested, *directed].to_vec(),
            Step::Attempt {
                session,
                max_attempts,
                now_ms,
            } => params![*session, *max_attempts, *now_ms].to_vec(),
            Step::Park { session, until_ms } => params![*session, *until_ms].to_vec(),
            Step::End { session } | Step::EndLock { session } => params![*session].to_vec(),
        }
    }
}

#[async_trait]
impl SmStore for PgSm {
    async fn apply_shared(&self, ops: Arc<[SmOp]>) -> Result<(), StoreError> {
        let steps = plan(&ops)?;
        if steps.is_empty() {
            return Ok(());
        }
        self.0
            .run(move |mut c| async move {
                let mut statements = Vec::with_capacity(steps.len());
                for step in &steps {
                    statements.push(c.prepare(step.sql()).await?);
                }
                let params: Vec<Vec<&(dyn ToSql + Sync)>> =
                    steps.iter().map(Step::params).collect();
                let pipeline: Vec<_> = statements
                    .iter()
                    .zip(&params)
                    .map(|(stmt, params)| (stmt, params.as_slice()))
                    .collect();
                c.pipeline("applying sm ops", Begin::Write, &pipeline)
                    .await
                    .map(drop)
            })
            .await
    }

    async fn load(&self, node: &str) -> Result<Vec<(SmSession, Vec<OutboxRow>)>, StoreError> {
        let node = node.to_owned();
        self.0
            .run(move |mut c| async move {
                let sessions = c
                    .prepare(
                        "SELECT id, username, domain, resource, node, handled, acked,
                                parked_until, presence, priority, interested, directed
                         FROM sm_sessions WHERE node = $1::text ORDER BY id",
                    )
                    .await?;
                let rows = c
                    .prepare(
                        "SELECT o.session, o.seq, o.stanza_id, o.xml, o.attempts, o.origin
                         FROM sm_outbox o JOIN sm_sessions s ON s.id = o.session
                         WHERE s.node = $1::text ORDER BY o.session, o.seq",
                    )
                    .await?;
                let seen = c.prepare(LOAD_SEEN).await?;
                let results = c
                    .pipeline(
                        "loading sm sessions",
                        Begin::ReadSnapshot,
                        &[
                            (&sessions, params![node]),
                            (&rows, params![node]),
                            (&seen, params![node]),
                        ],
                    )
                    .await?;
                let [sessions, rows, seen] = results.as_slice() else {
                    return Err(StoreError::Backend(
                        "postgres: loading sm sessions: wrong number of results".into(),
                    ));
                };
                let mut outboxes: HashMap<String, Vec<OutboxRow>> = HashMap::new();
                for row in rows {
                    let session: String = row.try_get(0).ctx("reading sm outboxes")?;
                    outboxes
                        .entry(session)
                        .or_default()
                        .push(outbox_row_from(row)?);
                }
                let mut origins: HashMap<String, Vec<String>> = HashMap::new();
                for row in seen {
                    let session: String = row.try_get(0).ctx("reading sm seen")?;
                    origins
                        .entry(session)
                        .or_default()
                        .push(row.try_get(1).ctx("reading sm seen")?);
                }
                sessions
                    .iter()
                    .map(|row| {
                        let mut s = session_from(row)?;
                        s.seen = origins.remove(&s.id).unwrap_or_default();
                        let rows = outboxes.remove(&s.id).unwrap_or_default();
                        Ok((s, rows))
                    })
                    .collect()
            })
            .await
    }

    async fn dead_letters(&self, user: &str, domain: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT session, resource, seq, stanza_id, xml, attempts, died_at
                         FROM sm_dead_letters WHERE username = $1::text AND domain = $2::text
                         ORDER BY died_at, id",
                    )
                    .await?;
                let rows = c
                    .query("reading dead letters", &stmt, &[&user, &domain])
                    .await?;
                rows.iter().map(dead_letter_from).collect()
            })
            .await
    }

    async fn remove_account(&self, user: &str, domain: &str) -> Result<usize, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |mut c| async move {
                // First the records are locked: that waits for an append in flight on
                // another connection (it holds a key-share lock on its records) to commit,
                // and makes later ones wait for this transaction and then find no record. The
                // second statement, with a snapshot of its own (READ COMMITTED), sees every
                // row those appends stored, and deletes them with their records (no foreign
                // key cascades them, migration 0003).
                let lock = c
                    .prepare(
                        "SELECT id FROM sm_sessions
                         WHERE username = $1::text AND domain = $2::text FOR UPDATE",
                    )
                    .await?;
                let delete = c
                    .prepare(
                        "WITH sessions AS (DELETE FROM sm_sessions
                                           WHERE username = $1::text AND domain = $2::text
                                           RETURNING id),
                              origins AS (DELETE FROM sm_seen
                                          WHERE origin_session IN (SELECT id FROM sessions)
                                             OR session IN (SELECT id FROM sessions)),
                              rows AS (DELETE FROM sm_outbox
                                       WHERE session IN (SELECT id FROM sessions)),
                              letters AS (DELETE FROM sm_dead_letters
                                          WHERE username = $1::text AND domain = $2::text
                                          RETURNING 1)
                         SELECT count(*) FROM letters",
                    )
                    .await?;
                let params: &[&(dyn ToSql + Sync)] = &[&user, &domain];
                let results = c
                    .pipeline(
                        "removing an account's sm data",
                        Begin::Write,
                        &[(&lock, params), (&delete, params)],
                    )
                    .await?;
                let n: i64 = results
                    .get(1)
                    .and_then(|rows| rows.first())
                    .ok_or_else(|| StoreError::Backend("no dead letter count".into()))?
                    .try_get(0)
                    .ctx("counting removed dead letters")?;
                to_unsigned(n, "dead letter count")
            })
            .await
    }
}

fn session_from(row: &Row) -> Result<SmSession, StoreError> {
    const WHAT: &str = "reading sm sessions";
    Ok(SmSession {
        id: row.try_get(0).ctx(WHAT)?,
        user: row.try_get(1).ctx(WHAT)?,
        domain: row.try_get(2).ctx(WHAT)?,
        resource: row.try_get(3).ctx(WHAT)?,
        node: row.try_get(4).ctx(WHAT)?,
        handled: to_unsigned(row.try_get(5).ctx(WHAT)?, "handled")?,
        acked: to_unsigned(row.try_get(6).ctx(WHAT)?, "acked")?,
        parked_until: row.try_get(7).ctx(WHAT)?,
        presence: row.try_get(8).ctx(WHAT)?,
        priority: row.try_get(9).ctx(WHAT)?,
        interested: row.try_get(10).ctx(WHAT)?,
        directed: row.try_get(11).ctx(WHAT)?,
        seen: Vec::new(),
    })
}

/// An outbox row from columns 1.. (column 0 is its session).
fn outbox_row_from(row: &Row) -> Result<OutboxRow, StoreError> {
    const WHAT: &str = "reading sm outboxes";
    Ok(OutboxRow {
        seq: to_unsigned(row.try_get(1).ctx(WHAT)?, "seq")?,
        stanza_id: row.try_get(2).ctx(WHAT)?,
        xml: row.try_get(3).ctx(WHAT)?,
        attempts: to_unsigned(row.try_get(4).ctx(WHAT)?, "attempts")?,
        origin: row.try_get(5).ctx(WHAT)?,
    })
}

fn dead_letter_from(row: &Row) -> Result<DeadLetter, StoreError> {
    const WHAT: &str = "reading dead letters";
    Ok(DeadLetter {
        session: row.try_get(0).ctx(WHAT)?,
        resource: row.try_get(1).ctx(WHAT)?,
        seq: to_unsigned(row.try_get(2).ctx(WHAT)?, "seq")?,
        stanza_id: row.try_get(3).ctx(WHAT)?,
        xml: row.try_get(4).ctx(WHAT)?,
        attempts: to_unsigned(row.try_get(5).ctx(WHAT)?, "attempts")?,
        died_at: row.try_get(6).ctx(WHAT)?,
    })
}
