//! rookery-store, PostgreSQL backend: `AccountStore` (accounts and SCRAM credentials).
//!
//! Called by the SASL/registration code in rookery-mods and by the admin CLI through
//! `Stores::accounts`. Credentials live in `scram_credentials`, one row per hash, as in the
//! SQLite schema. Every call is one statement: creating an account and writing its two
//! credential rows is a single `INSERT` with a data-modifying `WITH`, so it is atomic
//! without a transaction block.

use std::sync::Arc;

use async_trait::async_trait;
use rookery_proto::sasl::{Credentials, HashAlg, ScramCredential};
use tokio_postgres::Row;

use super::db::Pg;
use super::{Ctx, to_unsigned};
use crate::{AccountStore, StoreError};

pub(crate) struct PgAccounts(pub(crate) Arc<Pg>);

/// The value of `scram_credentials.hash` for each algorithm (the SCRAM mechanism suffix).
fn hash_name(alg: HashAlg) -> &'static str {
    match alg {
        HashAlg::Sha1 => "SHA-1",
        HashAlg::Sha256 => "SHA-256",
    }
}

/// Creates the account row and both credential rows in one statement; parameters: user,
/// domain, then salt, iterations, stored key and server key of SHA-1 and of SHA-256. Writes
/// no row at all if the account exists (ON CONFLICT DO NOTHING returns no id).
const CREATE: &str = "WITH acc AS (
        INSERT INTO accounts (username, domain) VALUES ($1::text, $2::text)
        ON CONFLICT (domain, username) DO NOTHING
        RETURNING id)
    INSERT INTO scram_credentials (account_id, hash, salt, iterations, stored_key, server_key)
    SELECT acc.id, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
    FROM acc, (VALUES ('SHA-1', $3::bytea, $4::bigint, $5::bytea, $6::bytea),
                      ('SHA-256', $7::bytea, $8::bigint, $9::bytea, $10::bytea))
              AS c (hash, salt, iterations, stored_key, server_key)";

/// Replaces both credential rows of an existing account; same parameters as [`CREATE`].
/// Writes nothing if there is no such account.
const SET_CREDENTIALS: &str = "INSERT INTO scram_credentials
        (account_id, hash, salt, iterations, stored_key, server_key)
    SELECT a.id, c.hash, c.salt, c.iterations, c.stored_key, c.server_key
    FROM accounts a,
         (VALUES ('SHA-1', $3::bytea, $4::bigint, $5::bytea, $6::bytea),
                 ('SHA-256', $7::bytea, $8::bigint, $9::bytea, $10::bytea))
         AS c (hash, salt, iterations, stored_key, server_key)
    WHERE a.username = $1::text AND a.domain = $2::text
    ON CONFLICT (account_id, hash) DO UPDATE SET
        salt = excluded.salt, iterations = excluded.iterations,
        stored_key = excluded.stored_key, server_key = excluded.server_key";

/// Runs `CREATE` or `SET_CREDENTIALS` (both take user, domain, then both credentials) and
/// returns how many credential rows were written.
async fn write_credentials(
    conn: &super::db::Conn,
    sql: &str,
    what: &str,
    user: &str,
    domain: &str,
    creds: &Credentials,
) -> Result<u64, StoreError> {
    let stmt = conn.prepare(sql).await?;
    let (s1, s256) = (&creds.sha1, &creds.sha256);
    let (i1, i256) = (i64::from(s1.iterations), i64::from(s256.iterations));
    conn.execute(
        what,
        &stmt,
        &[
            &user,
            &domain,
            &s1.salt,
            &i1,
            &s1.stored_key,
            &s1.server_key,
            &s256.salt,
            &i256,
            &s256.stored_key,
            &s256.server_key,
        ],
    )
    .await
}

fn credential_from_row(row: &Row) -> Result<ScramCredential, StoreError> {
    let iterations: i64 = row.try_get(2).ctx("reading iterations")?;
    Ok(ScramCredential {
        salt: row.try_get(1).ctx("reading salt")?,
        iterations: to_unsigned(iterations, "iteration count")?,
        stored_key: row.try_get(3).ctx("reading stored key")?,
        server_key: row.try_get(4).ctx("reading server key")?,
    })
}

#[async_trait]
impl AccountStore for PgAccounts {
    async fn create(
        &self,
        user: &str,
        domain: &str,
        creds: &Credentials,
    ) -> Result<(), StoreError> {
        let (user, domain, creds) = (user.to_owned(), domain.to_owned(), creds.clone());
        self.0
            .run(move |c| async move {
                let written =
                    write_credentials(&c, CREATE, "creating account", &user, &domain, &creds)
                        .await?;
                // Nothing written: the account row already existed (ON CONFLICT DO NOTHING).
                if written == 0 {
                    Err(StoreError::Conflict)
                } else {
                    Ok(())
                }
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
            .run(move |c| async move {
                // LEFT JOIN: an account without credential rows reads as damaged, not absent.
                let stmt = c
                    .prepare(
                        "SELECT c.hash, c.salt, c.iterations, c.stored_key, c.server_key
                         FROM accounts a LEFT JOIN scram_credentials c ON c.account_id = a.id
                         WHERE a.username = $1::text AND a.domain = $2::text",
                    )
                    .await?;
                let rows = c
                    .query("reading credentials", &stmt, &[&user, &domain])
                    .await?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let found = |alg: HashAlg| -> Result<ScramCredential, StoreError> {
                    for row in &rows {
                        let hash: Option<String> = row.try_get(0).ctx("reading hash")?;
                        if hash.as_deref() == Some(hash_name(alg)) {
                            return credential_from_row(row);
                        }
                    }
                    // Accounts are always created with both hashes in one statement, so a
                    // missing row means the database was edited by hand or is damaged.
                    Err(StoreError::Backend(format!(
                        "account has no {} credential",
                        hash_name(alg)
                    )))
                };
                Ok(Some(Credentials {
                    sha1: found(HashAlg::Sha1)?,
                    sha256: found(HashAlg::Sha256)?,
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
            .run(move |c| async move {
                let written = write_credentials(
                    &c,
                    SET_CREDENTIALS,
                    "writing credentials",
                    &user,
                    &domain,
                    &creds,
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

    async fn exists(&self, user: &str, domain: &str) -> Result<bool, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT EXISTS (SELECT 1 FROM accounts
                                        WHERE username = $1::text AND domain = $2::text)",
                    )
                    .await?;
                c.query_one("looking up account", &stmt, &[&user, &domain])
                    .await?
                    .try_get(0)
                    .ctx("looking up account")
            })
            .await
    }

    async fn delete(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                // One statement: ON DELETE CASCADE removes credentials, roster, pending,
                // offline, kv and blocklist rows.
                let stmt = c
                    .prepare("DELETE FROM accounts WHERE username = $1::text AND domain = $2::text")
                    .await?;
                let deleted = c
                    .execute("deleting account", &stmt, &[&user, &domain])
                    .await?;
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
            .run(move |c| async move {
                // `$1 IS NULL` keeps one cached statement for both the filtered and the
                // unfiltered listing; the columns are COLLATE "C", so this is byte order.
                let stmt = c
                    .prepare(
                        "SELECT username, domain FROM accounts
                         WHERE $1::text IS NULL OR domain = $1::text
                         ORDER BY username, domain",
                    )
                    .await?;
                let rows = c.query("listing accounts", &stmt, &[&domain]).await?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    .ctx("listing accounts")
            })
            .await
    }
}
