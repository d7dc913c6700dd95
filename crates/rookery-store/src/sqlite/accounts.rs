//! rookery-store, SQLite backend: `AccountStore` (accounts and SCRAM credentials).
//!
//! Called by the SASL/registration code in rookery-mods and by the admin CLI through
//! `Stores::accounts`. Credentials live in `scram_credentials`, one row per hash, so a
//! further SCRAM variant is a new row rather than new columns.

use std::sync::Arc;

use async_trait::async_trait;
use rookery_proto::sasl::{Credentials, HashAlg, ScramCredential};
use rusqlite::{Connection, OptionalExtension};

use super::db::Db;
use super::{Ctx, account_id, require_account, to_unsigned};
use crate::{AccountStore, StoreError};

pub(crate) struct SqliteAccounts(pub(crate) Arc<Db>);

/// The value of `scram_credentials.hash` for each algorithm (the SCRAM mechanism suffix).
fn hash_name(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha1 => "SHA-1",
        HashAlg::Sha256 => "SHA-256",
    }
}

fn write_credentials(
    conn: &Connection,
    account: i64,
    creds: &Credentials,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO scram_credentials
                 (account_id, hash, salt, iterations, stored_key, server_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (account_id, hash) DO UPDATE SET
                 salt = excluded.salt, iterations = excluded.iterations,
                 stored_key = excluded.stored_key, server_key = excluded.server_key",
        )
        .ctx("preparing credential write")?;
    for (alg, c) in [
        (HashAlg::Sha1, &creds.sha1),
        (HashAlg::Sha256, &creds.sha256),
    ] {
        stmt.execute((
            account,
            hash_name(alg),
            &c.salt,
            i64::from(c.iterations),
            &c.stored_key,
            &c.server_key,
        ))
        .ctx("writing credentials")?;
    }
    Ok(())
}

fn read_credential(
    conn: &Connection,
    account: i64,
    alg: HashAlg,
) -> Result<ScramCredential, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT salt, iterations, stored_key, server_key FROM scram_credentials
             WHERE account_id = ?1 AND hash = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row((account, hash_name(alg)), |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()
        })
        .ctx("reading credentials")?;
    // Accounts are always created with both hashes in one transaction, so a missing row
    // means the database was edited by hand or is damaged.
    let (salt, iterations, stored_key, server_key) = row.ok_or_else(|| {
        StoreError::Backend(format!("account has no {} credential", hash_name(alg)))
    })?;
    Ok(ScramCredential {
        salt,
        iterations: to_unsigned(iterations, "iteration count")?,
        stored_key,
        server_key,
    })
}

#[async_trait]
impl AccountStore for SqliteAccounts {
    async fn create(
        &self,
        user: &str,
        domain: &str,
        creds: &Credentials,
    ) -> Result<(), StoreError> {
        let (user, domain, creds) = (user.to_owned(), domain.to_owned(), creds.clone());
        self.0
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO accounts (username, domain) VALUES (?1, ?2)
                         ON CONFLICT (domain, username) DO NOTHING",
                    )
                    .and_then(|mut stmt| stmt.execute((&user, &domain)))
                    .ctx("creating account")?;
                if inserted == 0 {
                    return Err(StoreError::Conflict);
                }
                write_credentials(conn, conn.last_insert_rowid(), &creds)
            })
            .await
    }

    async fn credentials(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(None);
                };
                Ok(Some(Credentials {
                    sha1: read_credential(conn, account, HashAlg::Sha1)?,
                    sha256: read_credential(conn, account, HashAlg::Sha256)?,
                }))
            })
            .await
    }

    async fn set_credentials(
        &self,
        user: &str,
        domain: &str,
        creds: &Credentials,
    ) -> Result<(), StoreError> {
        let (user, domain, creds) = (user.to_owned(), domain.to_owned(), creds.clone());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                write_credentials(conn, account, &creds)
            })
            .await
    }

    async fn exists(&self, user: &str, domain: &str) -> Result<bool, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| Ok(account_id(conn, &user, &domain)?.is_some()))
            .await
    }

    async fn delete(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .write(move |conn| {
                // One statement: ON DELETE CASCADE (foreign keys are verified on at open)
                // removes credentials, roster, pending, offline, kv and blocklist rows.
                let deleted = conn
                    .prepare_cached("DELETE FROM accounts WHERE domain = ?1 AND username = ?2")
                    .and_then(|mut stmt| stmt.execute((&domain, &user)))
                    .ctx("deleting account")?;
                if deleted == 0 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
            })
            .await
    }

    async fn list(&self, domain: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let domain = domain.map(str::to_owned);
        self.0
            .read(move |conn| {
                // `?1 IS NULL` keeps one cached statement for both the filtered and the
                // unfiltered listing. BINARY collation = byte order = Rust's String order.
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT username, domain FROM accounts
                         WHERE ?1 IS NULL OR domain = ?1
                         ORDER BY username, domain",
                    )
                    .ctx("preparing account list")?;
                let rows = stmt
                    .query_map([&domain], |row| Ok((row.get(0)?, row.get(1)?)))
                    .ctx("listing accounts")?;
                rows.collect::<Result<Vec<_>, _>>().ctx("listing accounts")
            })
            .await
    }
}
