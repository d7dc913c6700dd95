//! rookery-store, SQLite backend: `RosterStore` (RFC 6121 rosters, XEP-0237 versions,
//! pending inbound subscriptions).
//!
//! Called by the roster and presence-subscription modules in rookery-mods through
//! `Stores::roster`. The account row holds the roster version counter and the "floor"
//! below which deltas can no longer be computed; items carry the version of their last
//! change; removals leave rows in `roster_tombstones`, pruned to `MAX_TOMBSTONES` per
//! account so a long-lived account's history does not grow forever.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use super::db::Db;
use super::{Ctx, account_id, require_account, to_unsigned};
use crate::{RosterChange, RosterItem, RosterStore, StoreError, Subscription};

pub(crate) struct SqliteRoster(pub(crate) Arc<Db>);

pub(crate) use crate::roster::MAX_TOMBSTONES;

/// Which items `load_items` returns.
enum Select<'a> {
    All,
    ChangedAfter(i64),
    One(&'a str),
}

/// Items with their groups (one query, folded) and the version each last changed at.
fn load_items(
    conn: &Connection,
    account: i64,
    select: Select<'_>,
) -> Result<Vec<(i64, RosterItem)>, StoreError> {
    const COLUMNS: &str = "SELECT i.jid, i.name, i.subscription, i.ask_out, i.approved,
                                  i.version, g.name
                           FROM roster_items i LEFT JOIN roster_groups g
                             ON g.account_id = i.account_id AND g.jid = i.jid
                           WHERE i.account_id = ?1";
    // Rows of one item are adjacent in every ordering below, which the fold relies on.
    let (sql, extra): (String, Option<Value>) = match select {
        Select::All => (format!("{COLUMNS} ORDER BY i.jid, g.name"), None),
        Select::ChangedAfter(v) => (
            format!("{COLUMNS} AND i.version > ?2 ORDER BY i.version, g.name"),
            Some(v.into()),
        ),
        Select::One(jid) => (
            format!("{COLUMNS} AND i.jid = ?2 ORDER BY g.name"),
            Some(jid.to_owned().into()),
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).ctx("preparing roster query")?;
    let args = std::iter::once(Value::from(account)).chain(extra);
    let mut rows = stmt.query(params_from_iter(args)).ctx("querying roster")?;
    let mut items: Vec<(i64, RosterItem)> = Vec::new();
    while let Some(row) = rows.next().ctx("reading roster row")? {
        let jid: String = row.get(0).ctx("reading roster jid")?;
        let group: Option<String> = row.get(6).ctx("reading roster group")?;
        match items.last_mut() {
            Some((_, item)) if item.jid == jid => item.groups.extend(group),
            _ => {
                let (version, mut item) = item_from_row(row, jid)?;
                item.groups.extend(group);
                items.push((version, item));
            }
        }
    }
    Ok(items)
}

fn item_from_row(row: &Row<'_>, jid: String) -> Result<(i64, RosterItem), StoreError> {
    let subscription: String = row.get(2).ctx("reading subscription")?;
    let subscription = subscription
        .parse::<Subscription>()
        .map_err(|e| StoreError::backend("sqlite: roster row", e))?;
    let item = RosterItem {
        jid,
        name: row.get(1).ctx("reading roster name")?,
        subscription,
        ask_out: row.get(3).ctx("reading ask_out")?,
        approved: row.get(4).ctx("reading approved")?,
        groups: Vec::new(),
    };
    Ok((row.get(5).ctx("reading item version")?, item))
}

/// Increments the account's roster version and returns the new value.
fn bump_version(conn: &Connection, account: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "UPDATE accounts SET roster_version = roster_version + 1 WHERE id = ?1
         RETURNING roster_version",
    )
    .and_then(|mut stmt| stmt.query_row([account], |row| row.get(0)))
    .ctx("bumping roster version")
}

fn put_item(conn: &Connection, account: i64, item: &RosterItem) -> Result<i64, StoreError> {
    let version = bump_version(conn, account)?;
    conn.prepare_cached(
        "INSERT INTO roster_items
             (account_id, jid, name, subscription, ask_out, approved, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (account_id, jid) DO UPDATE SET
             name = excluded.name, subscription = excluded.subscription,
             ask_out = excluded.ask_out, approved = excluded.approved,
             version = excluded.version",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            account,
            &item.jid,
            &item.name,
            item.subscription.as_str(),
            item.ask_out,
            item.approved,
            version,
        ))
    })
    .ctx("writing roster item")?;
    conn.prepare_cached("DELETE FROM roster_groups WHERE account_id = ?1 AND jid = ?2")
        .and_then(|mut stmt| stmt.execute((account, &item.jid)))
        .ctx("clearing roster groups")?;
    // OR IGNORE: duplicate group names collapse, groups being a set.
    let mut insert_group = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO roster_groups (account_id, jid, name) VALUES (?1, ?2, ?3)",
        )
        .ctx("preparing roster group write")?;
    for group in &item.groups {
        insert_group
            .execute((account, &item.jid, group))
            .ctx("writing roster group")?;
    }
    // The item exists again; its newer version now speaks for it in deltas.
    conn.prepare_cached("DELETE FROM roster_tombstones WHERE account_id = ?1 AND jid = ?2")
        .and_then(|mut stmt| stmt.execute((account, &item.jid)))
        .ctx("clearing roster tombstone")?;
    Ok(version)
}

fn remove_item(conn: &Connection, account: i64, jid: &str) -> Result<Option<i64>, StoreError> {
    // Groups go with the item via ON DELETE CASCADE.
    let removed = conn
        .prepare_cached("DELETE FROM roster_items WHERE account_id = ?1 AND jid = ?2")
        .and_then(|mut stmt| stmt.execute((account, jid)))
        .ctx("removing roster item")?;
    if removed == 0 {
        return Ok(None);
    }
    let version = bump_version(conn, account)?;
    conn.prepare_cached(
        "INSERT INTO roster_tombstones (account_id, jid, version) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, jid) DO UPDATE SET version = excluded.version",
    )
    .and_then(|mut stmt| stmt.execute((account, jid, version)))
    .ctx("writing roster tombstone")?;
    prune_tombstones(conn, account, MAX_TOMBSTONES)?;
    Ok(Some(version))
}

/// Keeps the newest `keep` tombstones. Deleting older ones loses the ability to answer
/// deltas from before them, so the floor is raised to the newest deleted version: a
/// delta from version v needs every removal after v, which is still there iff v >= floor.
pub(crate) fn prune_tombstones(
    conn: &Connection,
    account: i64,
    keep: i64,
) -> Result<(), StoreError> {
    let cutoff: Option<i64> = conn
        .prepare_cached(
            "SELECT version FROM roster_tombstones WHERE account_id = ?1
             ORDER BY version DESC LIMIT 1 OFFSET ?2",
        )
        .and_then(|mut stmt| stmt.query_row((account, keep), |row| row.get(0)).optional())
        .ctx("finding tombstone cutoff")?;
    let Some(cutoff) = cutoff else {
        return Ok(());
    };
    conn.prepare_cached("DELETE FROM roster_tombstones WHERE account_id = ?1 AND version <= ?2")
        .and_then(|mut stmt| stmt.execute((account, cutoff)))
        .ctx("pruning tombstones")?;
    conn.prepare_cached("UPDATE accounts SET roster_floor = MAX(roster_floor, ?2) WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute((account, cutoff)))
        .ctx("raising roster floor")?;
    Ok(())
}

/// `(version, floor)` of an account's roster.
fn roster_bounds(conn: &Connection, account: i64) -> Result<(i64, i64), StoreError> {
    conn.prepare_cached("SELECT roster_version, roster_floor FROM accounts WHERE id = ?1")
        .and_then(|mut stmt| stmt.query_row([account], |row| Ok((row.get(0)?, row.get(1)?))))
        .ctx("reading roster version")
}

fn changes_since(
    conn: &Connection,
    account: i64,
    since: u64,
) -> Result<Option<(u64, Vec<RosterChange>)>, StoreError> {
    let (current, floor) = roster_bounds(conn, account)?;
    // A version beyond i64 was never handed out by us, so it is unknown like any other.
    let Ok(since) = i64::try_from(since) else {
        return Ok(None);
    };
    if since > current || since < floor {
        return Ok(None);
    }
    let mut changes = Vec::new();
    for (version, item) in load_items(conn, account, Select::ChangedAfter(since))? {
        let version = to_unsigned(version, "roster version")?;
        changes.push(RosterChange::Updated { version, item });
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT jid, version FROM roster_tombstones
             WHERE account_id = ?1 AND version > ?2",
        )
        .ctx("preparing tombstone query")?;
    let tombstones = stmt
        .query_map((account, since), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .ctx("querying tombstones")?;
    for tombstone in tombstones {
        let (jid, version) = tombstone.ctx("reading tombstone")?;
        let version = to_unsigned(version, "roster version")?;
        changes.push(RosterChange::Removed { version, jid });
    }
    // Every version belongs to exactly one change, so this is a total order.
    changes.sort_by_key(RosterChange::version);
    Ok(Some((to_unsigned(current, "roster version")?, changes)))
}

fn pending_exists(conn: &Connection, account: i64, contact: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM roster_pending_in WHERE account_id = ?1 AND contact = ?2)",
    )
    .and_then(|mut stmt| stmt.query_row((account, contact), |row| row.get(0)))
    .ctx("checking pending subscription")
}

#[async_trait]
impl RosterStore for SqliteRoster {
    async fn get_all(
        &self,
        user: &str,
        domain: &str,
    ) -> Result<(u64, Vec<RosterItem>), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_owned());
        self.0
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok((0, Vec::new()));
                };
                let (version, _) = roster_bounds(conn, account)?;
                let items = load_items(conn, account, Select::All)?;
                Ok((
                    to_unsigned(version, "roster version")?,
                    items.into_iter().map(|(_, item)| item).collect(),
                ))
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
            .read(move |conn| match account_id(conn, &user, &domain)? {
                Some(account) => changes_since(conn, account, version),
                // A missing account has the empty roster at version 0.
                None => Ok((version == 0).then(|| (0, Vec::new()))),
            })
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
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(None);
                };
                let items = load_items(conn, account, Select::One(&contact))?;
                Ok(items.into_iter().next().map(|(_, item)| item))
            })
            .await
    }

    async fn put(&self, user: &str, domain: &str, item: &RosterItem) -> Result<u64, StoreError> {
        let (user, domain, item) = (user.to_owned(), domain.to_owned(), item.clone());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                to_unsigned(put_item(conn, account, &item)?, "roster version")
            })
            .await
    }

    async fn remove(
        &self,
        user: &str,
        domain: &str,
        contact: &str,
    ) -> Result<Option<u64>, StoreError> {
        let (user, domain, contact) = (user.to_owned(), domain.to_owned(), contact.to_owned());
        self.0
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                remove_item(conn, account, &contact)?
                    .map(|v| to_unsigned(v, "roster version"))
                    .transpose()
            })
            .await
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
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                conn.prepare_cached(
                    "INSERT INTO roster_pending_in (account_id, contact, stanza)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (account_id, contact) DO UPDATE SET stanza = excluded.stanza",
                )
                .and_then(|mut stmt| stmt.execute((account, &contact, &stanza)))
                .ctx("storing pending subscription")?;
                Ok(())
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
            .write(move |conn| {
                let account = require_account(conn, &user, &domain)?;
                let removed = conn
                    .prepare_cached(
                        "DELETE FROM roster_pending_in WHERE account_id = ?1 AND contact = ?2",
                    )
                    .and_then(|mut stmt| stmt.execute((account, &contact)))
                    .ctx("removing pending subscription")?;
                Ok(removed > 0)
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
            .read(move |conn| {
                let Some(account) = account_id(conn, &user, &domain)? else {
                    return Ok(Vec::new());
                };
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT contact, stanza FROM roster_pending_in
                         WHERE account_id = ?1 ORDER BY seq",
                    )
                    .ctx("preparing pending query")?;
                let rows = stmt
                    .query_map([account], |row| Ok((row.get(0)?, row.get(1)?)))
                    .ctx("querying pending subscriptions")?;
                rows.collect::<Result<Vec<_>, _>>()
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
            .read(move |conn| match account_id(conn, &user, &domain)? {
                Some(account) => pending_exists(conn, account, &contact),
                None => Ok(false),
            })
            .await
    }
}
