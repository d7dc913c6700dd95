//! rookery-store, PostgreSQL backend: `OfflineStore` (XEP-0160 offline messages).
//!
//! Called by the offline-message module in rookery-mods through `Stores::offline`: `push`
//! when a message arrives for an account with no available resource, `take_all` when the
//! account next sends initial presence.
//!
//! `push` is a pipelined transaction of two statements: lock the account row, then insert
//! only if the account holds fewer than `limit` messages. The lock makes concurrent pushes
//! to one account take turns (the count cannot go stale between check and insert, and the
//! sequence numbers follow arrival order); the count runs as a statement of its own after
//! the lock is held, so under READ COMMITTED it sees every push committed before it.

use std::sync::Arc;

use async_trait::async_trait;

use super::db::{Begin, Pg, params};
use super::{Ctx, to_bigint, to_unsigned};
use crate::{OfflineStore, StoreError};

pub(crate) struct PgOffline(pub(crate) Arc<Pg>);

#[async_trait]
impl OfflineStore for PgOffline {
    async fn push(
        &self,
        user: &str,
        domain: &str,
        stanza_xml: &str,
        stamp_unix_ms: i64,
        limit: usize,
    ) -> Result<(), StoreError> {
        let (user, domain, stanza) = (user.to_owned(), domain.to_owned(), stanza_xml.to_owned());
        let limit = to_bigint(limit);
        self.0
            .run(move |mut c| async move {
                let lock = c
                    .prepare(
                        "SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text
                         FOR NO KEY UPDATE",
                    )
                    .await?;
                // The count stops at `limit` rows: a full mailbox costs no more to refuse
                // than to fill.
                let insert = c
                    .prepare(
                        "INSERT INTO offline_messages (account_id, stanza, stamp_ms)
                         SELECT a.id, $3::text, $4::bigint FROM accounts a
                         WHERE a.username = $1::text AND a.domain = $2::text
                           AND (SELECT count(*) FROM (
                                    SELECT 1 FROM offline_messages o
                                    WHERE o.account_id = a.id LIMIT $5::bigint) AS stored)
                               < $5::bigint
                         RETURNING 1",
                    )
                    .await?;
                let results = c
                    .pipeline(
                        "storing offline message",
                        Begin::Write,
                        &[
                            (&lock, params![user, domain]),
                            (&insert, params![user, domain, stanza, stamp_unix_ms, limit]),
                        ],
                    )
                    .await?;
                match results.as_slice() {
                    [account, _] if account.is_empty() => Err(StoreError::NotFound),
                    [_, inserted] if inserted.is_empty() => Err(StoreError::Limit),
                    _ => Ok(()),
                }
            })
            .await
    }

    async fn take_all(&self, user: &str, domain: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                // One statement reads and deletes, so a message is handed out exactly once:
                // a concurrent take skips the rows this one deleted, and a push committed
                // meanwhile is not in this statement's snapshot and stays for the next take.
                let stmt = c
                    .prepare(
                        "DELETE FROM offline_messages o USING accounts a
                         WHERE a.username = $1::text AND a.domain = $2::text
                           AND o.account_id = a.id
                         RETURNING o.seq, o.stanza, o.stamp_ms",
                    )
                    .await?;
                let rows = c
                    .query("taking offline messages", &stmt, &[&user, &domain])
                    .await?;
                let mut messages = rows
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?))))
                    .collect::<Result<Vec<(i64, (String, i64))>, tokio_postgres::Error>>()
                    .ctx("reading offline messages")?;
                // RETURNING has no order of its own; seq is arrival order.
                messages.sort_unstable_by_key(|(seq, _)| *seq);
                Ok(messages.into_iter().map(|(_, m)| m).collect())
            })
            .await
    }

    async fn count(&self, user: &str, domain: &str) -> Result<usize, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT count(*) FROM accounts a
                         JOIN offline_messages o ON o.account_id = a.id
                         WHERE a.username = $1::text AND a.domain = $2::text",
                    )
                    .await?;
                let n: i64 = c
                    .query_one("counting offline messages", &stmt, &[&user, &domain])
                    .await?
                    .try_get(0)
                    .ctx("counting offline messages")?;
                to_unsigned(n, "message count")
            })
            .await
    }
}
