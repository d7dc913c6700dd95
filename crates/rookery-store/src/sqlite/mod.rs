//! rookery-store, SQLite backend: implements every store trait (`crate::accounts`,
//! `crate::roster`, ...) on one SQLite database file, one file here per feature.
//! `crate::open_sqlite` is the only way in; callers only ever see the `Stores` trait
//! objects, never these types.
//!
//! Threading scheme (db.rs), chosen so no call blocks the tokio runtime:
//! - One dedicated OS thread owns the only writing connection. Writes are boxed closures
//!   sent over a bounded tokio channel (async backpressure) and answered over a tokio
//!   oneshot. The thread drains whatever is queued (up to 64 jobs) into one
//!   `BEGIN IMMEDIATE` transaction, each job in its own savepoint, and replies only after
//!   the commit: group commit without one job's failure undoing another's. A single writer
//!   per process means writers in this process never contend for SQLite's lock at all.
//! - Reads run on 4 reader threads, each with its own `query_only` connection, each read in
//!   a deferred transaction so multi-statement reads see one snapshot. WAL lets these run
//!   concurrently with the writer (and with other processes).
//! - Other processes (the admin CLI while the server runs) have their own writer thread;
//!   the two meet at SQLite's file lock, where `busy_timeout` (5 s) makes the loser wait
//!   instead of failing, and `BEGIN IMMEDIATE` avoids the read-to-write upgrade deadlock
//!   that `busy_timeout` cannot resolve.
//! - In-memory databases have no second connection, so reads go through the writer too.
//! - Read-modify-write operations (offline limit check, roster version bump) are single
//!   writer jobs, so they are atomic without any locking of our own.

mod accounts;
mod blocking;
mod db;
mod kv;
mod migrate;
mod nodes;
mod offline;
mod roster;
mod sm;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension};

use crate::{StoreError, Stores};
use db::Db;

/// `(version, name)` of every SQLite migration, for the test that keeps the PostgreSQL
/// migrations numbered and named the same (`postgres/tests.rs`).
#[cfg(test)]
pub(crate) fn migration_names() -> Vec<(i64, &'static str)> {
    migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name))
        .collect()
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

/// Opens the database (creating and migrating it as needed) and wraps it in `Stores`.
pub(crate) async fn open(location: Location) -> Result<Stores, StoreError> {
    let described = match &location {
        Location::File(path) => path.display().to_string(),
        Location::Memory => ":memory:".to_owned(),
    };
    let db = Db::open(location).await?;
    tracing::debug!(database = %described, schema = migrate::newest(), "opened sqlite store");
    Ok(Stores {
        accounts: Arc::new(accounts::SqliteAccounts(Arc::clone(&db))),
        roster: Arc::new(roster::SqliteRoster(Arc::clone(&db))),
        offline: Arc::new(offline::SqliteOffline(Arc::clone(&db))),
        kv: Arc::new(kv::SqliteKv(Arc::clone(&db))),
        blocking: Arc::new(blocking::SqliteBlocking(Arc::clone(&db))),
        sm: Arc::new(sm::SqliteSm(Arc::clone(&db))),
        nodes: Arc::new(nodes::SqliteNodes(db)),
    })
}

/// Attaches "what we were doing" to a rusqlite error and turns it into `StoreError`.
/// Deliberately not a `From` impl: that would put rusqlite into the public API.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::backend(&format!("sqlite: {what}"), e))
    }
}

pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The row id of an account, `None` if it does not exist.
pub(crate) fn account_id(
    conn: &Connection,
    user: &str,
    domain: &str,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM accounts WHERE domain = ?1 AND username = ?2")
        .and_then(|mut stmt| stmt.query_row((domain, user), |row| row.get(0)).optional())
        .ctx("looking up account")
}

/// The row id of an account that a write is about; `NotFound` if it does not exist.
pub(crate) fn require_account(
    conn: &Connection,
    user: &str,
    domain: &str,
) -> Result<i64, StoreError> {
    account_id(conn, user, domain)?.ok_or(StoreError::NotFound)
}

/// Converts a stored non-negative integer (versions, counts) back to its Rust type.
pub(crate) fn to_unsigned<U: TryFrom<i64>>(value: i64, what: &str) -> Result<U, StoreError> {
    U::try_from(value)
        .map_err(|_| StoreError::Backend(format!("sqlite: stored {what} {value} out of range")))
}

/// An unsigned counter (a sequence number, an epoch) as the INTEGER it is stored as; beyond
/// `i64::MAX` is refused.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("sqlite: {what} {value} out of range")))
}
