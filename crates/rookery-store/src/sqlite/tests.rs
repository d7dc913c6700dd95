//! rookery-store, SQLite backend tests: runs the backend-neutral `contract` suite against
//! SQLite files in temp dirs (and in memory), plus SQLite-only checks: migrations, WAL,
//! tombstone pruning, batching with savepoints, writer robustness.
#![allow(clippy::unwrap_used)] // test code: a panic is how a failed expectation is reported

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::Connection;
use tempfile::TempDir;

use super::db::Db;
use super::{Location, migrate, roster};
use crate::contract::{self, Opener, creds, make_account};
use crate::{RosterItem, StoreError, Stores, open_sqlite, open_sqlite_memory};

/// A temp dir with one database file in it; `open` = another handle on that file.
struct FileOpener {
    _dir: TempDir,
    path: PathBuf,
}

impl FileOpener {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rookery.db");
        FileOpener { _dir: dir, path }
    }
}

#[async_trait]
impl Opener for FileOpener {
    async fn open(&self) -> Stores {
        open_sqlite(&self.path).await.expect("opening sqlite store")
    }
}

/// In-memory databases cannot be reopened, so "another handle" is a clone of the first.
struct MemoryOpener(Stores);

#[async_trait]
impl Opener for MemoryOpener {
    async fn open(&self) -> Stores {
        self.0.clone()
    }
}

/// One `#[tokio::test]` per case, plus a test that the list matches `contract`'s.
macro_rules! cases {
    ($list:path, $opener:expr, single: [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let opener = $opener;
                let stores = opener.open().await;
                contract::$case(&stores).await;
            }
        )*
        #[test]
        fn runs_every_case() {
            assert_eq!(&[$(stringify!($case)),*], $list);
        }
    };
    ($list:path, $opener:expr, multi: [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let opener = $opener;
                contract::$case(&opener).await;
            }
        )*
        #[test]
        fn runs_every_case() {
            assert_eq!(&[$(stringify!($case)),*], $list);
        }
    };
}

mod file {
    use super::*;
    cases!(contract::CASES, FileOpener::new(), single: [
        account_create_conflict_exists,
        account_credentials_round_trip,
        account_set_credentials,
        account_list_sorted_and_filtered,
        account_delete_cascades,
        account_missing_reads_empty_writes_not_found,
        roster_item_round_trip,
        roster_versioning,
        roster_versions_are_per_account,
        roster_pending_in,
        offline_order_limit_take_all,
        kv_round_trip,
        blocklist,
        sorting_is_byte_order,
        sm_session_round_trip,
        sm_ops_apply_in_order,
        sm_ack_deletes_and_never_lowers_acked,
        sm_duplicate_appends_are_ignored,
        sm_ops_on_a_missing_session_do_nothing,
        sm_attempts_make_dead_letters,
        sm_end_deletes_record_and_rows,
        sm_load_filters_by_node,
        sm_apply_is_atomic,
        sm_remove_account,
        sm_batches_match_one_by_one,
        sm_seen_outlives_acks,
        sm_seen_pruning_survives_the_wrap,
        nodes_claim_heartbeat_and_fence,
    ]);
}

mod file_multi {
    use super::*;
    cases!(contract::MULTI_HANDLE_CASES, FileOpener::new(), multi: [
        pending_in_survives_reopen,
        data_survives_reopen,
        two_handles_see_each_others_writes,
        concurrent_writers,
        concurrent_writers_two_handles,
    ]);
}

mod memory {
    use super::*;
    cases!(
        contract::CASES,
        MemoryOpener(open_sqlite_memory().await.expect("memory store")),
        single: [
            account_create_conflict_exists,
            account_credentials_round_trip,
            account_set_credentials,
            account_list_sorted_and_filtered,
            account_delete_cascades,
            account_missing_reads_empty_writes_not_found,
            roster_item_round_trip,
            roster_versioning,
            roster_versions_are_per_account,
            roster_pending_in,
            offline_order_limit_take_all,
            kv_round_trip,
            blocklist,
            sorting_is_byte_order,
            sm_session_round_trip,
            sm_ops_apply_in_order,
            sm_ack_deletes_and_never_lowers_acked,
            sm_duplicate_appends_are_ignored,
            sm_ops_on_a_missing_session_do_nothing,
            sm_attempts_make_dead_letters,
            sm_end_deletes_record_and_rows,
            sm_load_filters_by_node,
            sm_apply_is_atomic,
            sm_remove_account,
            sm_batches_match_one_by_one,
            sm_seen_outlives_acks,
            sm_seen_pruning_survives_the_wrap,
            nodes_claim_heartbeat_and_fence,
        ]
    );

    // The reopen cases are meaningless in memory; the sharing and concurrency ones
    // exercise the writer-only path that in-memory databases use for reads too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers() {
        let opener = MemoryOpener(open_sqlite_memory().await.expect("memory store"));
        contract::concurrent_writers(&opener).await;
        contract::concurrent_writers_two_handles(&MemoryOpener(
            open_sqlite_memory().await.expect("memory store"),
        ))
        .await;
    }

    #[tokio::test]
    async fn memory_stores_are_private() {
        let a = open_sqlite_memory().await.unwrap();
        let b = open_sqlite_memory().await.unwrap();
        make_account(&a, "alice", "d").await;
        assert!(!b.accounts.exists("alice", "d").await.unwrap());
    }
}

/// A plain connection for poking at the file behind the store's back.
fn raw(path: &Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

#[test]
fn migrations_are_numbered_consecutively_from_one() {
    for (i, m) in migrate::MIGRATIONS.iter().enumerate() {
        assert_eq!(
            m.version,
            i as i64 + 1,
            "migration {} out of sequence",
            m.name
        );
        assert!(!m.name.is_empty() && !m.sql.trim().is_empty());
    }
    assert_eq!(migrate::newest(), migrate::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn open_creates_dirs_enables_wal_and_records_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/rookery.db");
    let stores = open_sqlite(&path).await.unwrap();
    make_account(&stores, "alice", "d").await;
    let conn = raw(&path);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(migrate::current_version(&conn).unwrap(), migrate::newest());
    drop(stores);

    // Reopening applies nothing twice.
    let _again = open_sqlite(&path).await.unwrap();
    let rows: i64 = raw(&path)
        .query_row("SELECT COUNT(*) FROM rookery_schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, migrate::newest());
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_build() {
    let opener = FileOpener::new();
    drop(opener.open().await);
    raw(&opener.path)
        .execute(
            "INSERT INTO rookery_schema_migrations (version, name, applied_unix_ms)
             VALUES (?1, 'from_the_future', 0)",
            [migrate::newest() + 1],
        )
        .unwrap();
    match open_sqlite(&opener.path).await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a schema version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_file_both_succeed() {
    let opener = FileOpener::new();
    let (a, b) = tokio::join!(open_sqlite(&opener.path), open_sqlite(&opener.path));
    let (a, b) = (a.unwrap(), b.unwrap());
    make_account(&a, "alice", "d").await;
    assert!(b.accounts.exists("alice", "d").await.unwrap());
}

#[tokio::test]
async fn pruned_tombstones_make_old_versions_unanswerable() {
    let opener = FileOpener::new();
    let s = opener.open().await;
    make_account(&s, "alice", "d").await;
    let mut removals = Vec::new();
    for i in 0..5 {
        let jid = format!("c{i}@x");
        s.roster
            .put(
                "alice",
                "d",
                &RosterItem {
                    jid: jid.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        removals.push(s.roster.remove("alice", "d", &jid).await.unwrap().unwrap());
    }
    let account: i64 = raw(&opener.path)
        .query_row(
            "SELECT id FROM accounts WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    roster::prune_tombstones(&raw(&opener.path), account, 2).unwrap();

    // Removals 0..3 are forgotten; a delta from before the third removal cannot be given.
    let floor = removals[2];
    assert_eq!(s.roster.changes_since("alice", "d", 0).await.unwrap(), None);
    assert_eq!(
        s.roster
            .changes_since("alice", "d", floor - 1)
            .await
            .unwrap(),
        None
    );
    let (_, changes) = s
        .roster
        .changes_since("alice", "d", floor)
        .await
        .unwrap()
        .unwrap();
    let versions: Vec<u64> = changes.iter().map(|c| c.version()).collect();
    assert_eq!(versions, removals[3..]);
    // The full roster is still available, and the version counter is unaffected.
    assert_eq!(s.roster.get_all("alice", "d").await.unwrap().0, removals[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_keeps_at_most_max_tombstones() {
    let opener = FileOpener::new();
    let s = opener.open().await;
    make_account(&s, "alice", "d").await;
    let n = roster::MAX_TOMBSTONES + 3;
    let mut last = 0;
    for i in 0..n {
        let jid = format!("c{i}@x");
        let item = RosterItem {
            jid: jid.clone(),
            ..Default::default()
        };
        s.roster.put("alice", "d", &item).await.unwrap();
        last = s.roster.remove("alice", "d", &jid).await.unwrap().unwrap();
    }
    let kept: i64 = raw(&opener.path)
        .query_row("SELECT COUNT(*) FROM roster_tombstones", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, roster::MAX_TOMBSTONES);
    assert_eq!(s.roster.changes_since("alice", "d", 0).await.unwrap(), None);
    // The newest MAX_TOMBSTONES removals are still answerable (every removal is preceded
    // by its put, so removal k sits at version 2k).
    let from = last - 2 * roster::MAX_TOMBSTONES as u64;
    let (_, changes) = s
        .roster
        .changes_since("alice", "d", from)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.len() as i64, roster::MAX_TOMBSTONES);
}

/// The `subscription` column holds the RFC 6121 attribute values, whichever type the code
/// uses for them: rows written by earlier builds read back, and new rows use the same text.
#[tokio::test]
async fn roster_subscriptions_are_stored_as_attribute_values() {
    let opener = FileOpener::new();
    let s = opener.open().await;
    make_account(&s, "alice", "d").await;
    let conn = raw(&opener.path);
    let account: i64 = conn
        .query_row(
            "SELECT id FROM accounts WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for (n, value) in ["none", "to", "from", "both"].into_iter().enumerate() {
        let jid = format!("old{n}@x");
        conn.execute(
            "INSERT INTO roster_items (account_id, jid, name, subscription, ask_out, approved,
                                       version)
             VALUES (?1, ?2, NULL, ?3, 0, 0, 0)",
            (account, &jid, value),
        )
        .unwrap();
        let item = s.roster.get("alice", "d", &jid).await.unwrap().unwrap();
        assert_eq!(item.subscription.as_str(), value);

        let jid = format!("new{n}@x");
        let written = RosterItem {
            jid: jid.clone(),
            subscription: value.parse().unwrap(),
            ..Default::default()
        };
        s.roster.put("alice", "d", &written).await.unwrap();
        let stored: String = conn
            .query_row(
                "SELECT subscription FROM roster_items WHERE jid = ?1",
                [&jid],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, value);
    }
}

/// Concurrent creates land in shared batches; the losing (Conflict) ones must roll back
/// only their own savepoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_jobs_in_one_batch_do_not_undo_their_neighbours() {
    let opener = FileOpener::new();
    let s = opener.open().await;
    let tasks: Vec<_> = (0..60u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.accounts
                    .create(&format!("u{}", i % 10), "d", &creds(i))
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(created, 10);
    let accounts = s.accounts.list(None).await.unwrap();
    assert_eq!(accounts.len(), 10);
    for (user, domain) in accounts {
        assert!(
            s.accounts
                .credentials(&user, &domain)
                .await
                .unwrap()
                .is_some()
        );
    }
    let orphans: i64 = raw(&opener.path)
        .query_row(
            "SELECT COUNT(*) FROM scram_credentials
             WHERE account_id NOT IN (SELECT id FROM accounts)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn writer_survives_a_panicking_job_and_rolls_it_back() {
    let db = Db::open(Location::Memory).await.unwrap();
    db.write(|c| {
        c.execute("CREATE TABLE t (x INTEGER)", []).unwrap();
        Ok(())
    })
    .await
    .unwrap();
    let panicked = db
        .write(|c| -> Result<(), StoreError> {
            c.execute("INSERT INTO t VALUES (1)", []).unwrap();
            panic!("deliberate test panic");
        })
        .await;
    assert!(
        matches!(panicked, Err(StoreError::Backend(_))),
        "{panicked:?}"
    );
    let rows: i64 = db
        .read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap())
        })
        .await
        .unwrap();
    assert_eq!(rows, 0, "the panicking job's insert was rolled back");
}

#[tokio::test]
async fn reader_connections_refuse_writes() {
    let opener = FileOpener::new();
    let db = Db::open(Location::File(opener.path.clone())).await.unwrap();
    let result = db
        .read(|c| {
            c.execute("DELETE FROM accounts", [])
                .map_err(|e| StoreError::Backend(e.to_string()))
        })
        .await;
    assert!(
        result.is_err(),
        "a write slipped through a reader connection"
    );
}

/// Regression: reads ran through `spawn_blocking`, and a burst of them (logins under load)
/// left dozens of idle blocking threads, each with its own malloc arena. Reads now run on the
/// four named reader threads whatever the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_on_the_fixed_reader_threads() {
    let opener = FileOpener::new();
    let db = std::sync::Arc::new(Db::open(Location::File(opener.path.clone())).await.unwrap());
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.read(|c| {
                c.query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok(std::thread::current().name().unwrap_or("").to_string())
            })
            .await
            .unwrap()
        }));
    }
    let mut names = std::collections::BTreeSet::new();
    for t in tasks {
        names.insert(t.await.unwrap());
    }
    assert!(!names.is_empty() && names.len() <= 4, "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("rookery-sqlite-r")),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_panicking_read_fails_alone_and_reads_go_on() {
    let opener = FileOpener::new();
    let db = Db::open(Location::File(opener.path.clone())).await.unwrap();
    // More panics than threads: each thread must survive its own.
    for _ in 0..6 {
        let r: Result<(), StoreError> = db.read(|_| panic!("a bug in a read")).await;
        assert!(r.is_err());
    }
    let n = db
        .read(|c| {
            c.query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))
                .map_err(|e| StoreError::Backend(e.to_string()))
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// Set (to a database path) when this test binary is re-run as the second process of
/// `two_processes_share_one_file`.
const CHILD_DB_ENV: &str = "ROOKERY_STORE_TEST_CHILD_DB";
const PROCESS_WRITES: usize = 100;

/// The child half of `two_processes_share_one_file`; does nothing when run normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run only as a child process by two_processes_share_one_file"]
async fn child_process_writer() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let s = open_sqlite(Path::new(&path)).await.unwrap();
    s.accounts.create("child", "d", &creds(2)).await.unwrap();
    for i in 0..PROCESS_WRITES {
        s.offline
            .push("shared", "d", &format!("<child i='{i}'/>"), 0, usize::MAX)
            .await
            .unwrap();
    }
}

/// The server and `rookery user add` are separate processes: real OS file locks, not just
/// two connections in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_file() {
    let opener = FileOpener::new();
    let s = opener.open().await;
    make_account(&s, "shared", "d").await;
    let exe = std::env::current_exe().unwrap();
    let path = opener.path.clone();
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "--exact",
                "sqlite::tests::child_process_writer",
                "--ignored",
            ])
            .args(["--test-threads", "1"])
            .env(CHILD_DB_ENV, path)
            .output()
            .unwrap()
    });
    for i in 0..PROCESS_WRITES {
        s.offline
            .push("shared", "d", &format!("<parent i='{i}'/>"), 0, usize::MAX)
            .await
            .unwrap();
    }
    let out = child.await.unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child process failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.accounts.exists("child", "d").await.unwrap());
    assert_eq!(
        s.offline.count("shared", "d").await.unwrap(),
        2 * PROCESS_WRITES
    );
}

/// Migration 3 rebuilds sm_outbox: a database with live rows at version 2 keeps them, and
/// loses only the index (a second row with a live row's origin is now refused through
/// sm_seen, the row itself is kept).
#[tokio::test]
async fn migration_3_keeps_the_outbox_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let conn = raw(&path);
        conn.execute_batch(
            "CREATE TABLE rookery_schema_migrations (version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL, applied_unix_ms INTEGER NOT NULL);",
        )
        .unwrap();
        for m in &migrate::MIGRATIONS[..2] {
            conn.execute_batch(m.sql).unwrap();
            conn.execute(
                "INSERT INTO rookery_schema_migrations VALUES (?1, ?2, 0)",
                (m.version, m.name),
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO sm_sessions (id, username, domain, resource, node, handled, acked,
                 priority, interested, directed, created_ms, updated_ms)
             VALUES ('s1', 'u', 'd', 'r', 'n1', 0, 0, 0, 0, '', 0, 0);
             INSERT INTO sm_outbox VALUES ('s1', 1, 'i1', '<message/>', 1, 'x#1');
             INSERT INTO sm_seen VALUES ('s1', 'x', 1);",
        )
        .unwrap();
    }
    let stores = open_sqlite(&path).await.unwrap();
    let mut loaded = stores.sm.load("n1").await.unwrap();
    assert_eq!(loaded.len(), 1);
    let (session, rows) = loaded.remove(0);
    assert_eq!(session.id, "s1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].origin.as_deref(), Some("x#1"));
    stores
        .sm
        .apply(&[crate::SmOp::Append {
            session: "s1".into(),
            row: crate::OutboxRow {
                seq: 2,
                stanza_id: "i2".into(),
                xml: "<message/>".into(),
                attempts: 1,
                origin: Some("x#1".into()),
            },
        }])
        .await
        .unwrap();
    assert_eq!(stores.sm.load("n1").await.unwrap()[0].1.len(), 1);
    let indexes: i64 = raw(&path)
        .query_row(
            "SELECT COUNT(*) FROM pragma_index_list('sm_outbox') WHERE origin = 'u'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 0, "the UNIQUE (session, origin) index is gone");
}
