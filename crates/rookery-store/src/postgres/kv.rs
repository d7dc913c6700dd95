//! rookery-store, PostgreSQL backend: `KvStore` (small per-account documents).
//!
//! Called through `Stores::kv` by the rookery-mods modules that keep one small document
//! per account and key: vcard-temp (XEP-0054), private XML storage (XEP-0049), last
//! activity (XEP-0012). Values are opaque text to the store. Every call is one statement
//! that finds the account itself.

use std::sync::Arc;

use async_trait::async_trait;

use super::Ctx;
use super::db::Pg;
use crate::{KvStore, StoreError};

pub(crate) struct PgKv(pub(crate) Arc<Pg>);

#[async_trait]
impl KvStore for PgKv {
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
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT k.value FROM accounts a JOIN kv k ON k.account_id = a.id
                         WHERE a.username = $1::text AND a.domain = $2::text
                           AND k.store = $3::text AND k.key = $4::text",
                    )
                    .await?;
                let row = c
                    .query_opt("reading kv entry", &stmt, &[&user, &domain, &store, &key])
                    .await?;
                row.map(|row| row.try_get(0))
                    .transpose()
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
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "INSERT INTO kv (account_id, store, key, value)
                         SELECT id, $3::text, $4::text, $5::text FROM accounts
                         WHERE username = $1::text AND domain = $2::text
                         ON CONFLICT (account_id, store, key) DO UPDATE SET value = excluded.value",
                    )
                    .await?;
                let written = c
                    .execute(
                        "writing kv entry",
                        &stmt,
                        &[&user, &domain, &store, &key, &value],
                    )
                    .await?;
                if written == 0 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
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
            .run(move |c| async move {
                // Counts the account, so a missing one is NotFound while a missing key is not.
                let stmt = c
                    .prepare(
                        "WITH a AS (SELECT id FROM accounts
                                    WHERE username = $1::text AND domain = $2::text),
                         del AS (DELETE FROM kv k USING a
                                 WHERE k.account_id = a.id AND k.store = $3::text
                                   AND k.key = $4::text)
                         SELECT count(*) FROM a",
                    )
                    .await?;
                let accounts: i64 = c
                    .query_one("deleting kv entry", &stmt, &[&user, &domain, &store, &key])
                    .await?
                    .try_get(0)
                    .ctx("deleting kv entry")?;
                if accounts == 0 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
            })
            .await
    }
}
