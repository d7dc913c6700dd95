//! rookery-store, PostgreSQL backend: numbered schema migrations.
//!
//! `Pg::open` (postgres/db.rs) runs [`run`] on its first connection. Migrations are the
//! files `crates/rookery-store/migrations/postgres/NNNN_name.sql`, embedded with
//! `include_str!`, numbered and named like the SQLite ones (`sqlite/migrate.rs`): version N
//! means the same tables and columns on both backends, so a schema change adds the next
//! number to both lists (a test checks they agree). Applied versions are recorded in the
//! `rookery_schema_migrations` table of the configured schema. Never edit a file that has
//! shipped.

use super::Ctx;
use super::db::Conn;
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
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "stream_management",
        sql: include_str!("../../migrations/postgres/0002_stream_management.sql"),
    },
    Migration {
        version: 3,
        name: "sm_fewer_writes",
        sql: include_str!("../../migrations/postgres/0003_sm_fewer_writes.sql"),
    },
    Migration {
        version: 4,
        name: "cluster_nodes",
        sql: include_str!("../../migrations/postgres/0004_cluster_nodes.sql"),
    },
];

/// The schema version this build expects.
pub(crate) fn newest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates `schema` if it does not exist and brings it up to [`newest`], in one
/// transaction. An advisory lock keyed on the schema name makes processes that open the
/// same fresh schema at the same moment take turns: the second finds nothing left to do.
/// Refuses a schema whose version is newer than this build, since an old binary could
/// misread or corrupt it.
pub(crate) async fn run(conn: &mut Conn, schema: &str) -> Result<(), StoreError> {
    conn.begin().await?;
    let lock = conn
        .prepare("SELECT pg_advisory_xact_lock($1::bigint)")
        .await?;
    conn.query("taking the migration lock", &lock, &[&lock_key(schema)])
        .await?;

    // CREATE SCHEMA IF NOT EXISTS would still need the CREATE privilege on the database, so
    // look first: a schema made by an administrator needs no such right.
    let exists = conn
        .prepare("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text)")
        .await?;
    let exists: bool = conn
        .query_one("looking for the schema", &exists, &[&schema])
        .await?
        .try_get(0)
        .ctx("looking for the schema")?;
    if !exists {
        // `schema` is a checked plain identifier (`check_schema_name`).
        conn.batch("creating the schema", &format!("CREATE SCHEMA {schema}"))
            .await?;
        tracing::info!(schema, "created postgres schema");
    }
    // The connection's search_path names the schema; make sure it really is where tables go
    // (a URL could override the option).
    let current = conn.prepare("SELECT current_schema()::text").await?;
    let current: Option<String> = conn
        .query_one("reading the current schema", &current, &[])
        .await?
        .try_get(0)
        .ctx("reading the current schema")?;
    if current.as_deref() != Some(schema) {
        return Err(StoreError::Backend(format!(
            "postgres: the connection's current schema is {current:?}, not \"{schema}\"; is search_path overridden in the url?"
        )));
    }

    conn.batch(
        "creating the migrations table",
        "CREATE TABLE IF NOT EXISTS rookery_schema_migrations (
            version         BIGINT PRIMARY KEY,
            name            TEXT NOT NULL,
            applied_unix_ms BIGINT NOT NULL
        )",
    )
    .await?;
    let current = current_version(conn).await?;
    let newest = newest();
    if current > newest {
        return Err(StoreError::Backend(format!(
            "database schema version {current} is newer than this build supports ({newest})"
        )));
    }
    let record = conn
        .prepare(
            "INSERT INTO rookery_schema_migrations (version, name, applied_unix_ms)
             VALUES ($1::bigint, $2::text,
                     (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
        )
        .await?;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let what = format!("applying migration {:04}_{}", m.version, m.name);
        conn.batch(&what, m.sql).await?;
        conn.execute("recording migration", &record, &[&m.version, &m.name])
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            schema,
            "applied postgres migration"
        );
    }
    conn.commit().await
}

/// The highest applied migration, 0 for a fresh schema.
pub(crate) async fn current_version(conn: &Conn) -> Result<i64, StoreError> {
    let stmt = conn
        .prepare("SELECT MAX(version) FROM rookery_schema_migrations")
        .await?;
    let v: Option<i64> = conn
        .query_one("reading schema version", &stmt, &[])
        .await?
        .try_get(0)
        .ctx("reading schema version")?;
    Ok(v.unwrap_or(0))
}

/// The advisory lock taken while migrating `schema`: a 64-bit FNV-1a hash of a name that
/// says what it is for, so it does not collide with locks other applications take.
fn lock_key(schema: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "rookery-store migrations ".bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
