//! rookery-store, SQLite backend: `OfflineStore` (XEP-0160 offline messages).
//!
//! Called by the offline-message module in rookery-mods through `Stores::offline`: `push`
//! when a message arrives for an account with no available resource, `take_all` when the
//! account next sends initial presence.

use std::sync::Arc;

use async_trait::async_trait;

use super::db::Db;
use super::{Ctx, account_id, require_account, to_unsigned};
use crate::{OfflineStore, StoreError};

pub(crate) struct SqliteOffline(pub(crate) Arc<Db>);

#[async_trait]
impl OfflineStore for SqliteOffline {
    async fn push(
        &self,
        user: &str,
        domain: &str,
        stanza_xml: &str,
        stamp_unix_ms: i64,
        limit: usize,
    ) -> Result<(), StoreError> {
        let (user, domain, stanza) = (user.to_owned(), domain.to_owned(), stanza_xml.to_owned());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                // Count and insert in one writer job: no other write can slip in between,
                // in this process (single writer) or another (IMMEDIATE transaction).
                let stored: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM offline_messages WHERE account_id = ?1")
                    .and_then(|mut stmt| stmt.query_row([account], |row| row.get(0)))
                    .ctx("counting offline messages")?;
                if to_unsigned::<usize>(stored, "message count")? >= limit {
                    return Err(StoreError::Limit);
                }
                conn.prepare_cached(
                    "INSERT INTO offline_messages (account_id, stanza, stamp_ms)
                     VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut stmt| stmt.execute((account, &stanza, stamp_unix_ms)))
                .ctx("storing offline message")?;
                Ok(())
            })
            .await
    }

    async fn take_all(&self, user: &str, domain: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        // A write job even though it mostly reads: select and delete must be one
        // transaction, or a message pushed in between would be deleted unseen.
        self.0
            .write(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(Vec::new());
                };
                let messages = {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT stanza, stamp_ms FROM offline_messages
                             WHERE account_id = ?1 ORDER BY seq",
                        )
                        .ctx("preparing offline query")?;
                    let rows = stmt
                        .query_map([account], |row| Ok((row.get(0)?, row.get(1)?)))
                        .ctx("querying offline messages")?;
                    rows.collect::<Result<Vec<_>, _>>()
                        .ctx("reading offline messages")?
                };
                conn.prepare_cached("DELETE FROM offline_messages WHERE account_id = ?1")
                    .and_then(|mut stmt| stmt.execute([account]))
                    .ctx("deleting offline messages")?;
                Ok(messages)
            })
            .await
    }

    async fn count(&self, user: &str, domain: &str) -> Result<usize, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(0);
                };
                let n: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM offline_messages WHERE account_id = ?1")
                    .and_then(|mut stmt| stmt.query_row([account], |row| row.get(0)))
                    .ctx("counting offline messages")?;
                to_unsigned(n, "message count")
            })
            .await
    }
}
