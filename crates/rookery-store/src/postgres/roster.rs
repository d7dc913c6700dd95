//! rookery-store, PostgreSQL backend: `RosterStore` (RFC 6121 rosters, XEP-0237 versions,
//! pending inbound subscriptions).
//!
//! Called by the roster and presence-subscription modules in rookery-mods through
//! `Stores::roster`. Same model as the SQLite backend (`sqlite/roster.rs`): the account row
//! holds the roster version counter and the floor below which deltas can no longer be
//! computed, items carry the version of their last change, removals leave tombstones,
//! pruned to `MAX_TOMBSTONES` per account.
//!
//! `put` and `remove` are pipelined transactions whose first statement takes the account
//! row's lock (the version bump, or `FOR NO KEY UPDATE`), so writes to one roster take turns
//! and always lock in the same order. Every later statement finds the account by name
//! again instead of waiting for the first one's answer, which is what lets the whole
//! transaction go out as one pipeline; under READ COMMITTED each statement sees the ones
//! before it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Row;

use super::db::{Begin, Conn, Pg, params};
use super::{Ctx, to_unsigned};
use crate::roster::MAX_TOMBSTONES;
use crate::{RosterChange, RosterItem, RosterStore, StoreError, Subscription};

pub(crate) struct PgRoster(pub(crate) Arc<Pg>);

/// Item columns and their group, for [`fold_items`]: jid, name, subscription, ask_out,
/// approved, version, group name. A macro so `concat!` can build whole statements from it.
macro_rules! item_columns {
    () => {
        "i.jid, i.name, i.subscription, i.ask_out, i.approved, i.version, g.name"
    };
}

/// Folds rows of (item columns, group) into items, starting at column `first`. Rows of one
/// item must be adjacent; a row whose jid is NULL (an account without items, LEFT JOIN) is
/// skipped.
fn fold_items(rows: &[Row], first: usize) -> Result<Vec<(i64, RosterItem)>, StoreError> {
    let mut items: Vec<(i64, RosterItem)> = Vec::new();
    for row in rows {
        let Some(jid) = row
            .try_get::<_, Option<String>>(first)
            .ctx("reading roster jid")?
        else {
            continue;
        };
        let group: Option<String> = row.try_get(first + 6).ctx("reading roster group")?;
        match items.last_mut() {
            Some((_, item)) if item.jid == jid => item.groups.extend(group),
            _ => {
                let subscription: String = row.try_get(first + 2).ctx("reading subscription")?;
                let subscription = subscription
                    .parse::<Subscription>()
                    .map_err(|e| StoreError::backend("postgres: roster row", e))?;
                let item = RosterItem {
                    jid,
                    name: row.try_get(first + 1).ctx("reading roster name")?,
                    subscription,
                    ask_out: row.try_get(first + 3).ctx("reading ask_out")?,
                    approved: row.try_get(first + 4).ctx("reading approved")?,
                    groups: group.into_iter().collect(),
                };
                let version: i64 = row.try_get(first + 5).ctx("reading item version")?;
                items.push((version, item));
            }
        }
    }
    Ok(items)
}

fn version_of(row: &Row, column: usize) -> Result<u64, StoreError> {
    let v: i64 = row.try_get(column).ctx("reading roster version")?;
    to_unsigned(v, "roster version")
}

/// Deletes all but the newest `keep` tombstones of the account and raises its floor to the
/// newest deleted version: a delta from version v needs every removal after v, which is
/// still there iff v >= floor. Parameters: user, domain, keep.
const PRUNE: &str =
    "WITH a AS (SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text),
     cutoff AS (SELECT t.account_id, t.version FROM roster_tombstones t, a
                WHERE t.account_id = a.id
                ORDER BY t.version DESC LIMIT 1 OFFSET $3::bigint),
     gone AS (DELETE FROM roster_tombstones t USING cutoff
              WHERE t.account_id = cutoff.account_id AND t.version <= cutoff.version)
     UPDATE accounts SET roster_floor = GREATEST(roster_floor, cutoff.version)
     FROM cutoff WHERE accounts.id = cutoff.account_id";

/// Prunes the tombstones of one account down to `keep`, for tests with small numbers
/// (`remove` runs the same statement with `MAX_TOMBSTONES` in its own transaction).
#[cfg(test)]
pub(crate) async fn prune_tombstones(
    conn: &Conn,
    user: &str,
    domain: &str,
    keep: i64,
) -> Result<(), StoreError> {
    let stmt = conn.prepare(PRUNE).await?;
    conn.execute("pruning tombstones", &stmt, &[&user, &domain, &keep])
        .await?;
    Ok(())
}

async fn changes_since(
    mut c: Conn,
    user: String,
    domain: String,
    since: u64,
) -> Result<Option<(u64, Vec<RosterChange>)>, StoreError> {
    // A version beyond i64 was never handed out, so it is unknown like any other (and a
    // missing account only answers 0).
    let Ok(since) = i64::try_from(since) else {
        return Ok(None);
    };
    let bounds = c
        .prepare(
            "SELECT roster_version, roster_floor FROM accounts
             WHERE username = $1::text AND domain = $2::text",
        )
        .await?;
    // Rows of one item are adjacent (ordered by version, which is unique per account).
    let items = c
        .prepare(concat!(
            "SELECT ",
            item_columns!(),
            " FROM accounts a
             JOIN roster_items i ON i.account_id = a.id
             LEFT JOIN roster_groups g ON g.account_id = i.account_id AND g.jid = i.jid
             WHERE a.username = $1::text AND a.domain = $2::text AND i.version > $3::bigint
             ORDER BY i.version, g.name"
        ))
        .await?;
    let tombstones = c
        .prepare(
            "SELECT t.jid, t.version FROM accounts a
             JOIN roster_tombstones t ON t.account_id = a.id
             WHERE a.username = $1::text AND a.domain = $2::text AND t.version > $3::bigint",
        )
        .await?;
    // One snapshot: the bounds and the changes they describe.
    let results = c
        .pipeline(
            "reading roster changes",
            Begin::ReadSnapshot,
            &[
                (&bounds, params![user, domain]),
                (&items, params![user, domain, since]),
                (&tombstones, params![user, domain, since]),
            ],
        )
        .await?;
    let [bounds, items, tombstones] = results.as_slice() else {
        return Err(StoreError::Backend(
            "postgres: roster changes: wrong number of results".into(),
        ));
    };
    let Some(bounds) = bounds.first() else {
        // A missing account has the empty roster at version 0.
        return Ok((since == 0).then(|| (0, Vec::new())));
    };
    let current: i64 = bounds.try_get(0).ctx("reading roster version")?;
    let floor: i64 = bounds.try_get(1).ctx("reading roster floor")?;
    if since > current || since < floor {
        return Ok(None);
    }
    let mut changes = Vec::new();
    for (version, item) in fold_items(items, 0)? {
        let version = to_unsigned(version, "roster version")?;
        changes.push(RosterChange::Updated { version, item });
    }
    for row in tombstones {
        changes.push(RosterChange::Removed {
            jid: row.try_get(0).ctx("reading tombstone")?,
            version: version_of(row, 1)?,
        });
    }
    // Every version belongs to exactly one change, so this is a total order.
    changes.sort_by_key(RosterChange::version);
    Ok(Some((to_unsigned(current, "roster version")?, changes)))
}

async fn put(
    mut c: Conn,
    user: String,
    domain: String,
    item: RosterItem,
) -> Result<u64, StoreError> {
    let bump = c
        .prepare(
            "UPDATE accounts SET roster_version = roster_version + 1
             WHERE username = $1::text AND domain = $2::text
             RETURNING roster_version",
        )
        .await?;
    let upsert = c
        .prepare(
            "INSERT INTO roster_items
                 (account_id, jid, name, subscription, ask_out, approved, version)
             SELECT id, $3::text, $4::text, $5::text, $6::boolean, $7::boolean, roster_version
             FROM accounts WHERE username = $1::text AND domain = $2::text
             ON CONFLICT (account_id, jid) DO UPDATE SET
                 name = excluded.name, subscription = excluded.subscription,
                 ask_out = excluded.ask_out, approved = excluded.approved,
                 version = excluded.version",
        )
        .await?;
    // Groups are a set: drop the ones no longer named, add the new ones; both are one
    // statement over the array of names however many groups there are.
    let drop_groups = c
        .prepare(
            "DELETE FROM roster_groups g USING accounts a
             WHERE a.username = $1::text AND a.domain = $2::text AND g.account_id = a.id
               AND g.jid = $3::text AND g.name <> ALL ($4::text[])",
        )
        .await?;
    let add_groups = c
        .prepare(
            "INSERT INTO roster_groups (account_id, jid, name)
             SELECT a.id, $3::text, n FROM accounts a, unnest($4::text[]) AS n
             WHERE a.username = $1::text AND a.domain = $2::text
             ON CONFLICT (account_id, jid, name) DO NOTHING",
        )
        .await?;
    // The item exists again; its newer version now speaks for it in deltas.
    let untomb = c
        .prepare(
            "DELETE FROM roster_tombstones t USING accounts a
             WHERE a.username = $1::text AND a.domain = $2::text AND t.account_id = a.id
               AND t.jid = $3::text",
        )
        .await?;
    let mut groups = item.groups.clone();
    groups.sort_unstable();
    groups.dedup();
    let (jid, name, sub) = (&item.jid, &item.name, item.subscription.as_str());
    let results = c
        .pipeline(
            "writing roster item",
            Begin::Write,
            &[
                (&bump, params![user, domain]),
                (
                    &upsert,
                    params![user, domain, jid, name, sub, item.ask_out, item.approved],
                ),
                (&drop_groups, params![user, domain, jid, groups]),
                (&add_groups, params![user, domain, jid, groups]),
                (&untomb, params![user, domain, jid]),
            ],
        )
        .await?;
    match results.first().and_then(|rows| rows.first()) {
        Some(row) => version_of(row, 0),
        // No account row to bump: every other statement found no account either.
        None => Err(StoreError::NotFound),
    }
}

async fn remove(
    mut c: Conn,
    user: String,
    domain: String,
    contact: String,
) -> Result<Option<u64>, StoreError> {
    let lock = c
        .prepare(
            "SELECT id FROM accounts WHERE username = $1::text AND domain = $2::text
             FOR NO KEY UPDATE",
        )
        .await?;
    // Delete the item; only if there was one, bump the version and leave a tombstone at it.
    // Groups go with the item via ON DELETE CASCADE.
    let delete = c
        .prepare(
            "WITH del AS (
                 DELETE FROM roster_items i USING accounts a
                 WHERE a.username = $1::text AND a.domain = $2::text
                   AND i.account_id = a.id AND i.jid = $3::text
                 RETURNING i.account_id),
             bump AS (
                 UPDATE accounts SET roster_version = roster_version + 1
                 WHERE id IN (SELECT account_id FROM del)
                 RETURNING id, roster_version)
             INSERT INTO roster_tombstones (account_id, jid, version)
             SELECT id, $3::text, roster_version FROM bump
             ON CONFLICT (account_id, jid) DO UPDATE SET version = excluded.version
             RETURNING version",
        )
        .await?;
    let prune = c.prepare(PRUNE).await?;
    let results = c
        .pipeline(
            "removing roster item",
            Begin::Write,
            &[
                (&lock, params![user, domain]),
                (&delete, params![user, domain, contact]),
                (&prune, params![user, domain, MAX_TOMBSTONES]),
            ],
        )
        .await?;
    match results.as_slice() {
        [account, ..] if account.is_empty() => Err(StoreError::NotFound),
        [_, removed, ..] => removed.first().map(|row| version_of(row, 0)).transpose(),
        _ => Err(StoreError::Backend(
            "postgres: removing roster item: wrong number of results".into(),
        )),
    }
}

#[async_trait]
impl RosterStore for PgRoster {
    async fn get_all(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<(u64, Vec<RosterItem>), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                // One statement, so the version and the items are one snapshot. An account
                // without items gives one row of NULL item columns; no account, no rows.
                let stmt = c
                    .prepare(concat!(
                        "SELECT a.roster_version, ",
                        item_columns!(),
                        " FROM accounts a
                         LEFT JOIN roster_items i ON i.account_id = a.id
                         LEFT JOIN roster_groups g
                           ON g.account_id = i.account_id AND g.jid = i.jid
                         WHERE a.username = $1::text AND a.domain = $2::text
                         ORDER BY i.jid, g.name"
                    ))
                    .await?;
                let rows = c.query("reading roster", &stmt, &[&user, &domain]).await?;
                let Some(first) = rows.first() else {
                    return Ok((0, Vec::new()));
                };
                let version = version_of(first, 0)?;
                let items = fold_items(&rows, 1)?;
                Ok((version, items.into_iter().map(|(_, item)| item).collect()))
            })
            .await
    }

    async fn changes_since(
        &self,
        user: &str,
        domain: &str,
        version: u64,
    ) -> Result<Option<(u64, Vec<RosterChange>)>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| changes_since(c, user, domain, version))
            .await
    }

    async fn get(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<Option<RosterItem>, StoreError> {
        let (user, domain, contact) = (user.to_owned(), domain.to_owned(), contact.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(concat!(
                        "SELECT ",
                        item_columns!(),
                        " FROM accounts a
                         JOIN roster_items i ON i.account_id = a.id
                         LEFT JOIN roster_groups g
                           ON g.account_id = i.account_id AND g.jid = i.jid
                         WHERE a.username = $1::text AND a.domain = $2::text
                           AND i.jid = $3::text
                         ORDER BY g.name"
                    ))
                    .await?;
                let rows = c
                    .query("reading roster item", &stmt, &[&user, &domain, &contact])
                    .await?;
                Ok(fold_items(&rows, 0)?
                    .into_iter()
                    .next()
                    .map(|(_, item)| item))
            })
            .await
    }

    async fn put(&self, user: &str, domain: &str, item: &RosterItem) -> Result<u64, StoreError> {
        let (user, domain, item) = (user.to_owned(), domain.to_owned(), item.clone());
        self.0.run(move |c| put(c, user, domain, item)).await
    }

    async fn remove(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<Option<u64>, StoreError> {
        let (user, domain, contact) = (user.to_owned(), domain.to_owned(), contact.to_owned());
        self.0.run(move |c| remove(c, user, domain, contact)).await
    }

    async fn put_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
        stanza_xml: &str,
    ) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        let (contact, stanza) = (contact.to_owned(), stanza_xml.to_owned());
        self.0
            .run(move |c| async move {
                // The update keeps the row, and so its seq: its place in redelivery order.
                let stmt = c
                    .prepare(
                        "INSERT INTO roster_pending_in (account_id, contact, stanza)
                         SELECT id, $3::text, $4::text FROM accounts
                         WHERE username = $1::text AND domain = $2::text
                         ON CONFLICT (account_id, contact) DO UPDATE SET stanza = excluded.stanza",
                    )
                    .await?;
                let written = c
                    .execute(
                        "storing pending subscription",
                        &stmt,
                        &[&user, &domain, &contact, &stanza],
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

    async fn remove_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let (user, domain, contact) = (user.to_owned(), domain.to_owned(), contact.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "WITH a AS (SELECT id FROM accounts
                                    WHERE username = $1::text AND domain = $2::text),
                         del AS (DELETE FROM roster_pending_in p USING a
                                 WHERE p.account_id = a.id AND p.contact = $3::text
                                 RETURNING 1)
                         SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM del)",
                    )
                    .await?;
                let row = c
                    .query_one(
                        "removing pending subscription",
                        &stmt,
                        &[&user, &domain, &contact],
                    )
                    .await?;
                let accounts: i64 = row.try_get(0).ctx("removing pending subscription")?;
                let removed: i64 = row.try_get(1).ctx("removing pending subscription")?;
                if accounts == 0 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(removed > 0)
                }
            })
            .await
    }

    async fn pending_in(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT p.contact, p.stanza FROM accounts a
                         JOIN roster_pending_in p ON p.account_id = a.id
                         WHERE a.username = $1::text AND a.domain = $2::text
                         ORDER BY p.seq",
                    )
                    .await?;
                let rows = c
                    .query("reading pending subscriptions", &stmt, &[&user, &domain])
                    .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    .ctx("reading pending subscriptions")
            })
            .await
    }

    async fn has_pending_in(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let (user, domain, contact) = (user.to_owned(), domain.to_owned(), contact.to_owned());
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "SELECT EXISTS (
                             SELECT 1 FROM accounts a
                             JOIN roster_pending_in p ON p.account_id = a.id
                             WHERE a.username = $1::text AND a.domain = $2::text
                               AND p.contact = $3::text)",
                    )
                    .await?;
                c.query_one(
                    "checking pending subscription",
                    &stmt,
                    &[&user, &domain, &contact],
                )
                .await?
                .try_get(0)
                .ctx("checking pending subscription")
            })
            .await
    }
}
