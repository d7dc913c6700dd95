//! rookery-store, SQLite backend: `BlockStore` (XEP-0191 blocklists).
//!
//! Called through `Stores::blocking` by the blocking-command module in rookery-mods, which
//! also consults `is_blocked` on the stanza routing path, so that lookup is a primary-key
//! probe on a reader connection.

use std::sync::Arc;

use async_trait::async_trait;

use super::db::Db;
use super::{Ctx, account_id, require_account};
use crate::{BlockStore, StoreError};

pub(crate) struct SqliteBlocking(pub(crate) Arc<Db>);

#[async_trait]
impl BlockStore for SqliteBlocking {
    async fn list(&self, user: &str, domain: &str) -> Result<Vec<String>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(Vec::new());
                };
                let mut stmt = conn
                    .prepare_cached("SELECT jid FROM blocklist WHERE account_id = ?1 ORDER BY jid")
                    .ctx("preparing blocklist query")?;
                let rows = stmt
                    .query_map([account], |row| row.get(0))
                    .ctx("querying blocklist")?;
                rows.collect::<Result<Vec<_>, _>>().ctx("reading blocklist")
            })
            .await
    }

    async fn add(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError> {
        let (user, domain, jids) = (user.to_owned(), domain.to_owned(), jids.to_vec());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO blocklist (account_id, jid) VALUES (?1, ?2)",
                    )
                    .ctx("preparing blocklist insert")?;
                for jid in &jids {
                    stmt.execute((account, jid)).ctx("adding to blocklist")?;
                }
                Ok(())
            })
            .await
    }

    async fn remove(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError> {
        let (user, domain, jids) = (user.to_owned(), domain.to_owned(), jids.to_vec());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                let mut stmt = conn
                    .prepare_cached("DELETE FROM blocklist WHERE account_id = ?1 AND jid = ?2")
                    .ctx("preparing blocklist delete")?;
                for jid in &jids {
                    stmt.execute((account, jid))
                        .ctx("removing from blocklist")?;
                }
                Ok(())
            })
            .await
    }

    async fn clear(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                conn.prepare_cached("DELETE FROM blocklist WHERE account_id = ?1")
                    .and_then(|mut stmt| stmt.execute([account]))
                    .ctx("clearing blocklist")?;
                Ok(())
            })
            .await
    }

    async fn is_blocked(&self, user: &str, domain: &str, jid: &str) -> Result<bool, StoreError> {
        let (user, domain, jid) = (user.to_owned(), domain.to_owned(), jid.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(false);
                };
                conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM blocklist WHERE account_id = ?1 AND jid = ?2)",
                )
                .and_then(|mut stmt| stmt.query_row((account, &jid), |row| row.get(0)))
                .ctx("checking blocklist")
            })
            .await
    }
}
