//! rookery-store, SQLite backend: `KvStore` (small per-account documents).
//!
//! Called through `Stores::kv` by the rookery-mods modules that keep one small document
//! per account and key: vcard-temp (XEP-0054), private XML storage (XEP-0049), last
//! activity (XEP-0012). Values are opaque text to the store.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::db::Db;
use super::{Ctx, account_id, require_account};
use crate::{KvStore, StoreError};

pub(crate) struct SqliteKv(pub(crate) Arc<Db>);

#[async_trait]
impl KvStore for SqliteKv {
    async fn get(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        let (store, key) = (store.to_owned(), key.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(None);
                };
                conn.prepare_cached(
                    "SELECT value FROM kv WHERE account_id = ?1 AND store = ?2 AND key = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row((account, &store, &key), |row| row.get(0))
                        .optional()
                })
                .ctx("reading kv entry")
            })
            .await
    }

    async fn put(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        let (store, key, value) = (store.to_owned(), key.to_owned(), value.to_owned());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                conn.prepare_cached(
                    "INSERT INTO kv (account_id, store, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account_id, store, key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut stmt| stmt.execute((account, &store, &key, &value)))
                .ctx("writing kv entry")?;
                Ok(())
            })
            .await
    }

    async fn delete(
        &self,
        user: &str,
        domain: &str,
        store: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        let (store, key) = (store.to_owned(), key.to_owned());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                conn.prepare_cached(
                    "DELETE FROM kv WHERE account_id = ?1 AND store = ?2 AND key = ?3",
                )
                .and_then(|mut stmt| stmt.execute((account, &store, &key)))
                .ctx("deleting kv entry")?;
                Ok(())
            })
            .await
    }
}
