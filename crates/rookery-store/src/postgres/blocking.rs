//! rookery-store, PostgreSQL backend: `BlockStore` (XEP-0191 blocklists).
//!
//! Called through `Stores::blocking` by the blocking-command module in rookery-mods, which
//! also consults `is_blocked` on the stanza routing path, so that lookup is one index probe.
//! Adding or removing several JIDs is one statement over a `text[]` parameter, whatever the
//! number of JIDs. Each write also counts the account, so a missing one is `NotFound` even
//! when there is nothing to add or remove.

use std::sync::Arc;

use async_trait::async_trait;

use super::Ctx;
use super::db::Pg;
use crate::{BlockStore, StoreError};

pub(crate) struct PgBlocking(pub(crate) Arc<Pg>);

/// The JIDs of a write, without repeats (the array becomes rows of one statement).
fn distinct(jids: &[String]) -> Vec<String> {
    let mut jids = jids.to_vec();
    jids.sort_unstable();
    jids.dedup();
    jids
}

/// Runs a write statement whose single result is the number of matching accounts (0 or 1).
async fn write(
    pg: &Arc<Pg>,
    what: &'static str,
    sql: &'static str,
    user: &str,
    domain: &str,
    jids: Option<Vec<String>>,
) -> Result<(), StoreError> {
    let (user, domain) = (user.to_owned(), domain.to_owned());
    pg.run(move |c| async move {
        let stmt = c.prepare(sql).await?;
        let row = match &jids {
            Some(jids) => c.query_one(what, &stmt, &[&user, &domain, jids]).await?,
            None => c.query_one(what, &stmt, &[&user, &domain]).await?,
        };
        let accounts: i64 = row.try_get(0).ctx(what)?;
        if accounts == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    })
    .await
}

#[async_trait]
impl BlockStore for PgBlocking {
    async fn list(&self, user: &str, domain: &str) -> Result<Vec<String>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT b.jid FROM accounts a JOIN blocklist b ON b.account_id = a.id
                         WHERE a.username = $1::text AND a.domain = $2::text
                         ORDER BY b.jid",
                    )
                    .await?;
                let rows = c
                    .query("reading blocklist", &stmt, &[&user, &domain])
                    .await?;
                rows.iter()
                    .map(|row| row.try_get(0))
                    .collect::<Result<Vec<_>, _>>()
                    .ctx("reading blocklist")
            })
            .await
    }

    async fn add(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError> {
        write(
            &self.0,
            "adding to blocklist",
            "WITH a AS (SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text),
             ins AS (INSERT INTO blocklist (account_id, jid)
                     SELECT a.id, j FROM a, unnest($3::text[]) AS j
                     ON CONFLICT (account_id, jid) DO NOTHING)
             SELECT count(*) FROM a",
            user,
            domain,
            Some(distinct(jids)),
        )
        .await
    }

    async fn remove(&self, user: &str, domain: &str, jids: &[String]) -> Result<(), StoreError> {
        write(
            &self.0,
            "removing from blocklist",
            "WITH a AS (SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text),
             del AS (DELETE FROM blocklist b USING a
                     WHERE b.account_id = a.id AND b.jid = ANY ($3::text[]))
             SELECT count(*) FROM a",
            user,
            domain,
            Some(distinct(jids)),
        )
        .await
    }

    async fn clear(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        write(
            &self.0,
            "clearing blocklist",
            "WITH a AS (SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text),
             del AS (DELETE FROM blocklist b USING a WHERE b.account_id = a.id)
             SELECT count(*) FROM a",
            user,
            domain,
            None,
        )
        .await
    }

    async fn is_blocked(&self, user: &str, domain: &str, jid: &str) -> Result<bool, StoreError> {
        let (user, domain, jid) = (user.to_owned(), domain.to_owned(), jid.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT EXISTS (
                             SELECT 1 FROM accounts a JOIN blocklist b ON b.account_id = a.id
                             WHERE a.username = $1::text AND a.domain = $2::text
                               AND b.jid = $3::text)",
                    )
                    .await?;
                c.query_one("checking blocklist", &stmt, &[&user, &domain, &jid])
                    .await?
                    .try_get(0)
                    .ctx("checking blocklist")
            })
            .await
    }
}
