//! rookery-store: the persistent storage layer of the single-node Rookery server.
//!
//! Everything that outlives a connection lives behind async traits, one per feature:
//! [`AccountStore`], [`RosterStore`] (with XEP-0237 versions and pending inbound
//! subscriptions), [`OfflineStore`], [`KvStore`] (small per-account documents),
//! [`BlockStore`] and [`SmStore`] (XEP-0198 sessions and their outboxes, kept across
//! restarts). Modules in rookery-mods and the admin CLI get a [`Stores`] bundle of
//! trait objects and never see SQL; the backend is chosen once, at startup, by calling an
//! `open_*` function.
//!
//! Layout: each feature has four files of the same name, its trait and data types in
//! `src/<feature>.rs`, its SQLite implementation in `src/sqlite/<feature>.rs`, its
//! PostgreSQL implementation in `src/postgres/<feature>.rs` and its backend-neutral test
//! cases in `src/contract/<feature>.rs`. A new feature (a message archive, chat rooms, ...)
//! adds those four files, a field in [`Stores`] filled in by `sqlite::open` and
//! `postgres::open`, its cases in `contract::CASES` and both backends' test runners
//! (`sqlite/tests.rs`, `postgres/tests.rs`), and a new numbered migration for its tables in
//! both `migrations/sqlite/` and `migrations/postgres/`, with the same number and name.
//!
//! Conventions shared by every trait:
//! - Accounts are keyed by `(user, domain)`: already-normalised strings (nodeprep'd
//!   localpart, lowercase domain). Contact JIDs are normalised bare-JID strings. The store
//!   compares them byte for byte and never normalises anything itself.
//! - Writes that name an account which does not exist fail with [`StoreError::NotFound`];
//!   reads for a missing account return the empty answer (`None`, `0`, empty list).
//! - A call whose future is dropped after it was submitted may still take effect: the
//!   backend finishes the statement it already started rather than leaving it half done.
//! - "Sorted" means byte order of the UTF-8 strings, i.e. Rust's `Ord` on `String`.
//!
//! Backends:
//! - SQLite ([`open_sqlite`], [`open_sqlite_memory`]); see `sqlite/mod.rs` for the
//!   threading scheme. Its numbered migrations are SQL files in this crate's
//!   `migrations/sqlite/NNNN_name.sql`, embedded into the binary with `include_str!`, so a
//!   server binary can never be paired with the wrong schema files.
//! - PostgreSQL ([`open_postgres`]); see `postgres/mod.rs` for the pool, pipelining and
//!   locking scheme. Its migrations are `migrations/postgres/NNNN_name.sql`, embedded the
//!   same way and numbered like the SQLite ones. Both backends pass the `contract` suite.

mod accounts;
mod blocking;
mod error;
mod kv;
mod nodes;
mod offline;
mod postgres;
mod roster;
mod sm;
mod sqlite;

#[cfg(any(test, feature = "contract"))]
pub mod contract;
#[cfg(test)]
mod throughput;

/// Test support for other crates: a throw-away PostgreSQL schema per test
/// ([`testing::PgTestSchema`]).
#[cfg(any(test, feature = "contract"))]
pub mod testing {
    pub use crate::postgres::testing::PgTestSchema;
}

use std::path::Path;
use std::sync::Arc;

pub use accounts::AccountStore;
pub use blocking::BlockStore;
pub use error::StoreError;
pub use kv::KvStore;
pub use nodes::{NodeRow, NodeStore};
pub use offline::OfflineStore;
pub use postgres::{PgOptions, check_schema_name};
/// The RFC 6121 roster `subscription` attribute: the subscription state machine's type,
/// re-exported because [`RosterItem::subscription`] carries it.
pub use rookery_proto::subscription::Subscription;
pub use roster::{RosterChange, RosterItem, RosterStore};
pub use sm::{DeadLetter, OutboxRow, SmOp, SmSession, SmStore};

/// One handle per feature store, all backed by the same database. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    pub accounts: Arc<dyn AccountStore>,
    pub roster: Arc<dyn RosterStore>,
    pub offline: Arc<dyn OfflineStore>,
    pub kv: Arc<dyn KvStore>,
    pub blocking: Arc<dyn BlockStore>,
    pub sm: Arc<dyn SmStore>,
    pub nodes: Arc<dyn NodeStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Opens (creating the file and its parent directories if needed) the SQLite database at
/// `path` and migrates it to the newest schema version. Several processes may have the same
/// file open at once (e.g. the server and `rookery user add`).
pub async fn open_sqlite(path: &Path) -> Result<Stores, StoreError> {
    sqlite::open(sqlite::Location::File(path.to_path_buf())).await
}

/// A fresh, private in-memory SQLite database (for tests); gone when the last handle drops.
pub async fn open_sqlite_memory() -> Result<Stores, StoreError> {
    sqlite::open(sqlite::Location::Memory).await
}

/// Connects to the PostgreSQL database `opts` names, creates its schema if needed and
/// migrates it to the newest version. Several processes may use the same schema at once
/// (e.g. the server and `rookery user add`).
pub async fn open_postgres(opts: &PgOptions) -> Result<Stores, StoreError> {
    postgres::open(opts).await
}
