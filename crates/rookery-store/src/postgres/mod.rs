//! rookery-store, PostgreSQL backend: implements every store trait (`crate::accounts`,
//! `crate::roster`, ...) on one schema of a PostgreSQL database, one file here per feature,
//! like `sqlite/`. `crate::open_postgres` is the only way in; callers only ever see the
//! `Stores` trait objects. Why this driver and pool: docs/decisions/0015-postgres-driver.md.
//!
//! Scheme (db.rs):
//! - A deadpool pool of tokio-postgres connections (`[storage] pool_size`). Every connection
//!   starts with `search_path` set to the configured schema, so the SQL never names a schema
//!   and tests can run side by side in schemas of their own.
//! - Every store call runs as its own tokio task holding one pooled connection, and the
//!   caller awaits that task: a caller that stops waiting does not cut a call short half way
//!   (the crate-wide convention in `lib.rs`), exactly as the SQLite writer thread finishes a
//!   job whose caller is gone.
//! - Statements are prepared once per connection (`prepare_cached`). A call that needs more
//!   than one statement sends them all at once, `BEGIN` to `COMMIT`, as one pipeline
//!   ([`db::Conn::pipeline`]), so a roster push or an offline message costs one round trip
//!   and one commit, not one per statement. Many-valued writes (blocklist items, roster
//!   groups) are one statement over an array parameter.
//! - Group commit comes from PostgreSQL itself: concurrent commits on the pool's connections
//!   share WAL flushes.
//! - Read-modify-write calls serialise on the account row: the first statement of such a
//!   pipeline locks it (`FOR NO KEY UPDATE`, or the roster version `UPDATE`), so the offline
//!   limit check and the roster version bump are atomic, and every multi-statement write
//!   takes its locks account row first, which keeps them free of deadlocks. Reads that need
//!   several statements run in one `REPEATABLE READ READ ONLY` transaction (one snapshot).
//! - A write whose account disappears under it (deleted by another connection between the
//!   lookup and the insert) fails the foreign key check; that is reported as `NotFound`,
//!   what the same write gets once the deletion is visible.
//!
//! Limits: no TLS to the database (`NoTls`): run PostgreSQL on the same host or a trusted
//! network. Text values cannot hold NUL characters (PostgreSQL refuses them); JIDs and XML
//! never do.

mod accounts;
mod blocking;
mod db;
mod kv;
mod migrate;
mod nodes;
mod offline;
mod roster;
mod sm;

#[cfg(any(test, feature = "contract"))]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::{StoreError, Stores};
use db::Pg;

/// Where and how to reach the database (`[storage]` with `backend = "postgres"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// A libpq-style URL, `postgresql://user[:password]@host[:port]/database[?param=value]`.
    pub url: String,
    /// The schema holding Rookery's tables; created by the first start if it does not exist.
    /// A plain lowercase SQL identifier (see [`check_schema_name`]).
    pub schema: String,
    /// Most connections the pool opens at once (at least 1).
    pub pool_size: usize,
}

impl PgOptions {
    /// The default schema (`[storage] schema`).
    pub const DEFAULT_SCHEMA: &'static str = "public";
    /// The default pool size (`[storage] pool_size`).
    pub const DEFAULT_POOL_SIZE: usize = 16;

    /// Options with the default schema and pool size.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            pool_size: Self::DEFAULT_POOL_SIZE,
        }
    }

    /// The database named for logs and errors: host, port, database, user and schema, never
    /// the password.
    pub fn describe(&self) -> String {
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(cfg) => db::describe(&cfg, &self.schema),
            Err(_) => format!("postgresql (unparsable url), schema {}", self.schema),
        }
    }
}

/// The schema-name rule, shared with the configuration's check.
pub use rookery_config::check_schema_name;

/// Connects, creates the schema if needed, migrates it and wraps the pool in `Stores`.
pub(crate) async fn open(opts: &PgOptions) -> Result<Stores, StoreError> {
    let pg = Pg::open(opts).await?;
    tracing::debug!(
        database = %opts.describe(),
        schema_version = migrate::newest(),
        pool_size = opts.pool_size,
        "opened postgres store"
    );
    Ok(Stores {
        accounts: Arc::new(accounts::PgAccounts(Arc::clone(&pg))),
        roster: Arc::new(roster::PgRoster(Arc::clone(&pg))),
        offline: Arc::new(offline::PgOffline(Arc::clone(&pg))),
        kv: Arc::new(kv::PgKv(Arc::clone(&pg))),
        blocking: Arc::new(blocking::PgBlocking(Arc::clone(&pg))),
        sm: Arc::new(sm::PgSm(Arc::clone(&pg))),
        nodes: Arc::new(nodes::PgNodes(pg)),
    })
}

/// Attaches "what we were doing" to a driver error and turns it into `StoreError`.
/// Deliberately not a `From` impl: that would put tokio-postgres into the public API.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| db::store_error(what, &e))
    }
}

/// Converts a stored non-negative integer (versions, counts) back to its Rust type.
pub(crate) fn to_unsigned<U: TryFrom<i64>>(value: i64, what: &str) -> Result<U, StoreError> {
    U::try_from(value)
        .map_err(|_| StoreError::Backend(format!("postgres: stored {what} {value} out of range")))
}

/// A limit or count from the API as the `BIGINT` it is compared with (saturating: a limit
/// beyond `i64::MAX` is no limit either way).
pub(crate) fn to_bigint(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An unsigned counter (a sequence number, an epoch) as the `BIGINT` it is stored as; beyond
/// `i64::MAX` is refused.
pub(crate) fn checked_bigint(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Backend(format!("postgres: {what} {value} out of range")))
}
