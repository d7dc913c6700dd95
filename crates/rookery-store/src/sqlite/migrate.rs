//! rookery-store, SQLite backend: numbered schema migrations.
//!
//! The writer thread (sqlite/db.rs) runs [`run`] once when a database is opened. Migrations
//! are the files `crates/rookery-store/migrations/sqlite/NNNN_name.sql`, embedded with
//! `include_str!` so the binary always carries exactly the schema it was written against.
//! Applied versions are recorded in the `rookery_schema_migrations` table. To change the
//! schema, add the next numbered file and append it to [`MIGRATIONS`]; never edit a file
//! that has shipped.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{Ctx, now_unix_ms};
use crate::StoreError;

/// One schema step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, in order; versions start at 1 and are consecutive (a test checks).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "stream_management",
        sql: include_str!("../../migrations/sqlite/0002_stream_management.sql"),
    },
    Migration {
        version: 3,
        name: "sm_fewer_writes",
        sql: include_str!("../../migrations/sqlite/0003_sm_fewer_writes.sql"),
    },
    Migration {
        version: 4,
        name: "cluster_nodes",
        sql: include_str!("../../migrations/sqlite/0004_cluster_nodes.sql"),
    },
];

/// The schema version this build expects.
pub(crate) fn newest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database up to [`newest`]. Runs in one IMMEDIATE transaction so that two
/// processes opening a fresh file at the same moment serialise: the second one waits for
/// the write lock and then finds nothing left to do. Refuses a database whose schema is
/// newer than this build, since an old binary could misread or corrupt it.
pub(crate) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("beginning migration transaction")?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS rookery_schema_migrations (
            version         INTEGER PRIMARY KEY,
            name            TEXT NOT NULL,
            applied_unix_ms INTEGER NOT NULL
        );",
    )
    .ctx("creating migrations table")?;
    let current = current_version(&tx)?;
    let newest = newest();
    if current > newest {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build supports ({newest})"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sql)
            .ctx(&format!("applying migration {:04}_{}", m.version, m.name))?;
        tx.execute(
            "INSERT INTO rookery_schema_migrations (version, name, applied_unix_ms)
             VALUES (?1, ?2, ?3)",
            (m.version, m.name, now_unix_ms()),
        )
        .ctx("recording migration")?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied sqlite migration"
        );
    }
    tx.commit().ctx("committing migrations")
}

/// The highest applied migration, 0 for a fresh database.
pub(crate) fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT MAX(version) FROM rookery_schema_migrations",
            [],
            |row| row.get(0),
        )
        .optional()
        .ctx("reading schema version")?
        .flatten();
    Ok(v.unwrap_or(0))
}
