//! rookery-store, PostgreSQL backend: test support. Each test that runs on PostgreSQL gets a
//! schema of its own with a unique name, dropped (with everything in it) when the
//! [`PgTestSchema`] is, even if the test panicked, so tests run side by side on one database
//! and leave nothing behind. Used by `postgres/tests.rs` and, through the `contract`
//! feature (`rookery_store::testing`), by other crates' tests that start a server on
//! PostgreSQL.
//!
//! The database is `$ROOKERY_TEST_PG_URL`, by default the one every development and CI
//! machine of this project has (`postgresql://postgres@127.0.0.1:5432/test`, trust auth).
//! When it cannot be reached, a test fails if `CI` is set (CI must test PostgreSQL), and
//! otherwise prints a notice and skips.
#![allow(clippy::expect_used, clippy::panic)] // test support: a panic fails the test

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

use super::PgOptions;

/// The environment variable naming the test database.
pub const URL_VAR: &str = "ROOKERY_TEST_PG_URL";
/// The test database when `ROOKERY_TEST_PG_URL` is not set.
pub const DEFAULT_URL: &str = "postgresql://postgres@127.0.0.1:5432/test";

/// A uniquely named schema in the test database, dropped on drop.
#[derive(Debug)]
pub struct PgTestSchema {
    url: String,
    schema: String,
}

impl PgTestSchema {
    /// Creates a fresh, empty schema. `None` (after a notice on stderr) when PostgreSQL is
    /// not reachable outside CI; panics when it is not reachable in CI.
    pub async fn create() -> Option<Self> {
        let this = Self::unborn();
        match this
            .execute(&format!("CREATE SCHEMA {}", this.schema))
            .await
        {
            Ok(()) => Some(this),
            Err(e) => {
                let mut this = this;
                // Nothing was created: an empty url tells `drop` there is nothing to drop.
                let url = std::mem::take(&mut this.url);
                unreachable_database(&url, &e);
                None
            }
        }
    }

    /// A unique schema name that does not exist yet (for tests of the store creating its
    /// schema itself); dropped on drop like a created one.
    pub fn unborn() -> Self {
        PgTestSchema {
            url: std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned()),
            schema: unique_name(),
        }
    }

    /// Store options for this schema (pool size 8: tests open several pools at once). The
    /// connections are named after the schema (`application_name`), so dropping the schema
    /// can end those still open.
    pub fn options(&self) -> PgOptions {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        PgOptions {
            url: format!("{}{sep}application_name={}", self.url, self.schema),
            schema: self.schema.clone(),
            pool_size: 8,
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.schema
    }

    /// The test database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` (statements without parameters) on a connection of its own whose
    /// search_path is this schema, for tests that look behind the store's back.
    pub async fn execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        let client = connect(&self.url, Some(&self.schema)).await?;
        client.batch_execute(sql).await
    }

    /// The first column of the first row of `sql` as an `i64` (counts, versions).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let client = connect(&self.url, Some(&self.schema))
            .await
            .expect("connecting to the test database");
        client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }
}

impl Drop for PgTestSchema {
    fn drop(&mut self) {
        if self.url.is_empty() {
            return;
        }
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs outside any async context we could borrow (maybe while a panic unwinds
        // a test's runtime), so the cleanup gets a thread and a small runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                let client = connect(&url, None).await?;
                // Connections of the test's pools may still be open: the test's runtime,
                // blocked in this very drop, cannot close them, and one left inside a
                // transaction would hold locks that DROP SCHEMA waits for forever.
                client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1::text AND pid <> pg_backend_pid()",
                        &[&schema],
                    )
                    .await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("note: could not drop test schema {}: {e:?}", self.schema),
            Err(_) => eprintln!("note: dropping test schema {} panicked", self.schema),
        }
    }
}

/// Connects one plain client (no pool), optionally with `search_path` set to `schema`.
async fn connect(
    url: &str,
    schema: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg: tokio_postgres::Config = url.parse()?;
    cfg.connect_timeout(Duration::from_secs(5));
    if let Some(schema) = schema {
        cfg.options(format!("-c search_path={schema}"));
    }
    let (client, connection) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `rookery_t_<pid>_<time>_<n>`: unique across the tests of one process (the counter) and
/// across processes and runs (pid and time); a valid schema name (`check_schema_name`).
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!(
        "rookery_t_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn unreachable_database(url: &str, e: &tokio_postgres::Error) {
    let why = match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    if in_ci() {
        panic!(
            "PostgreSQL test database {url} is not usable ({why}), and CI is set: the \
             PostgreSQL store must be tested in CI (set {URL_VAR} to another database, or \
             start PostgreSQL)"
        );
    }
    static NOTICED: AtomicBool = AtomicBool::new(false);
    if !NOTICED.swap(true, Ordering::Relaxed) {
        // Straight to the process's stderr: the test harness captures `eprintln!` of
        // passing tests, and a skip must not go unnoticed.
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: PostgreSQL test database {url} is not usable ({why}); PostgreSQL \
             store tests are SKIPPED (set {URL_VAR}, or start PostgreSQL; in CI they fail)"
        );
    }
    eprintln!("skipped: needs PostgreSQL");
}
