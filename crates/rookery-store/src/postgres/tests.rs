//! rookery-store, PostgreSQL backend tests: runs the backend-neutral `contract` suite
//! against PostgreSQL, each case in a schema of its own (`testing.rs`), plus
//! PostgreSQL-only checks: migrations and their agreement with SQLite's, schema creation and
//! isolation, tombstone pruning, option checking, and connections that are never handed
//! back mid-transaction. Without a reachable database these tests skip with a notice
//! locally and fail in CI (see `testing.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use async_trait::async_trait;

use super::testing::PgTestSchema;
use super::{PgOptions, check_schema_name, migrate};
use crate::contract::{self, Opener, make_account};
use crate::{RosterItem, StoreError, Stores, open_postgres};

/// A test schema; `open` = another pool on it, as another process would have.
struct PgOpener(PgTestSchema);

#[async_trait]
impl Opener for PgOpener {
    async fn open(&self) -> Stores {
        open_postgres(&self.0.options())
            .await
            .expect("opening postgres store")
    }
}

/// A fresh schema for one test, or return from the test (skipped, see `testing.rs`).
macro_rules! schema_or_skip {
    () => {
        match PgTestSchema::create().await {
            Some(schema) => schema,
            None => return,
        }
    };
}

/// One `#[tokio::test]` per case, plus a test that the list matches `contract`'s.
macro_rules! cases {
    ($list:path, single: [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let opener = PgOpener(schema_or_skip!());
                let stores = opener.open().await;
                contract::$case(&stores).await;
            }
        )*
        #[test]
        fn runs_every_case() {
            assert_eq!(&[$(stringify!($case)),*], $list);
        }
    };
    ($list:path, multi: [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let opener = PgOpener(schema_or_skip!());
                contract::$case(&opener).await;
            }
        )*
        #[test]
        fn runs_every_case() {
            assert_eq!(&[$(stringify!($case)),*], $list);
        }
    };
}

mod contract_single {
    use super::*;
    cases!(contract::CASES, single: [
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

mod contract_multi {
    use super::*;
    cases!(contract::MULTI_HANDLE_CASES, multi: [
        pending_in_survives_reopen,
        data_survives_reopen,
        two_handles_see_each_others_writes,
        concurrent_writers,
        concurrent_writers_two_handles,
    ]);
}

#[test]
fn migrations_are_numbered_consecutively_and_match_sqlite() {
    for (i, m) in migrate::MIGRATIONS.iter().enumerate() {
        assert_eq!(
            m.version,
            i as i64 + 1,
            "migration {} out of sequence",
            m.name
        );
        assert!(!m.name.is_empty() && !m.sql.trim().is_empty());
    }
    // Version N means the same schema on both backends.
    let pg: Vec<_> = migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name))
        .collect();
    assert_eq!(pg, crate::sqlite::migration_names());
}

#[test]
fn schema_names() {
    for good in ["public", "rookery", "_x", "a1_b2", &"s".repeat(63)] {
        assert_eq!(check_schema_name(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "Rookery",
        "1abc",
        "a-b",
        "a b",
        "a;drop",
        "pg_catalog",
        "é",
        &"s".repeat(64),
    ] {
        assert!(check_schema_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn describe_never_shows_the_password() {
    let opts = PgOptions {
        url: "postgresql://rook:s3cret@db.example:6543/chat?sslmode=disable".into(),
        schema: "xmpp".into(),
        pool_size: 4,
    };
    let text = opts.describe();
    assert_eq!(text, "postgresql://rook@db.example:6543/chat, schema xmpp");
    assert!(!text.contains("s3cret"));
}

#[tokio::test]
async fn bad_options_are_refused_at_open() {
    let schema = schema_or_skip!();
    let mut opts = schema.options();
    opts.schema = "Not-Valid".into();
    assert!(
        matches!(open_postgres(&opts).await, Err(StoreError::Backend(m)) if m.contains("schema"))
    );
    let mut opts = schema.options();
    opts.pool_size = 0;
    assert!(
        matches!(open_postgres(&opts).await, Err(StoreError::Backend(m)) if m.contains("pool_size"))
    );
    let mut opts = schema.options();
    opts.url = "postgresql://postgres@127.0.0.1:1/test".into();
    match open_postgres(&opts).await {
        Err(StoreError::Backend(m)) => assert!(m.contains("connect"), "{m}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_the_schema_and_records_its_version_once() {
    // Make sure the database is there at all before testing against an unborn schema.
    drop(schema_or_skip!());
    let schema = PgTestSchema::unborn();
    let stores = open_postgres(&schema.options()).await.unwrap();
    make_account(&stores, "alice", "d").await;
    assert_eq!(
        schema
            .query_i64("SELECT MAX(version) FROM rookery_schema_migrations")
            .await,
        migrate::newest()
    );
    drop(stores);
    // Reopening applies nothing twice.
    let again = open_postgres(&schema.options()).await.unwrap();
    assert!(again.accounts.exists("alice", "d").await.unwrap());
    assert_eq!(
        schema
            .query_i64("SELECT COUNT(*) FROM rookery_schema_migrations")
            .await,
        migrate::newest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_are_isolated() {
    let a = schema_or_skip!();
    let b = schema_or_skip!();
    let sa = open_postgres(&a.options()).await.unwrap();
    let sb = open_postgres(&b.options()).await.unwrap();
    make_account(&sa, "alice", "d").await;
    assert!(!sb.accounts.exists("alice", "d").await.unwrap());
    make_account(&sb, "alice", "d").await; // no conflict: another schema
}

#[tokio::test]
async fn refuses_a_schema_from_a_newer_build() {
    let schema = schema_or_skip!();
    drop(open_postgres(&schema.options()).await.unwrap());
    schema
        .execute(&format!(
            "INSERT INTO rookery_schema_migrations (version, name, applied_unix_ms)
             VALUES ({}, 'from_the_future', 0)",
            migrate::newest() + 1
        ))
        .await
        .unwrap();
    match open_postgres(&schema.options()).await {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("newer"), "{msg}"),
        other => panic!("expected a schema version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_schema_all_succeed() {
    drop(schema_or_skip!());
    // Not even created yet: the openers race to create it as well as to migrate it.
    let schema = PgTestSchema::unborn();
    let opts = schema.options();
    let (a, b, c) = tokio::join!(
        open_postgres(&opts),
        open_postgres(&opts),
        open_postgres(&opts)
    );
    let (a, b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    make_account(&a, "alice", "d").await;
    assert!(b.accounts.exists("alice", "d").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_tombstones_make_old_versions_unanswerable() {
    let schema = schema_or_skip!();
    let s = open_postgres(&schema.options()).await.unwrap();
    make_account(&s, "alice", "d").await;
    let mut removals = Vec::new();
    for i in 0..5 {
        let jid = format!("c{i}@x");
        let item = RosterItem {
            jid: jid.clone(),
            ..Default::default()
        };
        s.roster.put("alice", "d", &item).await.unwrap();
        removals.push(s.roster.remove("alice", "d", &jid).await.unwrap().unwrap());
    }
    let pg = super::db::Pg::open(&schema.options()).await.unwrap();
    pg.run(|c| async move { super::roster::prune_tombstones(&c, "alice", "d", 2).await })
        .await
        .unwrap();

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
    assert_eq!(s.roster.get_all("alice", "d").await.unwrap().0, removals[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remove_keeps_at_most_max_tombstones() {
    let schema = schema_or_skip!();
    let s = open_postgres(&schema.options()).await.unwrap();
    make_account(&s, "alice", "d").await;
    let n = crate::roster::MAX_TOMBSTONES + 3;
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
    assert_eq!(
        schema
            .query_i64("SELECT COUNT(*) FROM roster_tombstones")
            .await,
        crate::roster::MAX_TOMBSTONES
    );
    assert_eq!(s.roster.changes_since("alice", "d", 0).await.unwrap(), None);
    // Removal k sits at version 2k (each is preceded by its put).
    let from = last - 2 * crate::roster::MAX_TOMBSTONES as u64;
    let (_, changes) = s
        .roster
        .changes_since("alice", "d", from)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.len() as i64, crate::roster::MAX_TOMBSTONES);
}

/// Calls abandoned by their callers at random points still run to the end, and the one
/// connection of the pool is never handed on in the middle of a transaction: every later
/// call works and the version counter matches the writes that happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_calls_leave_no_transaction_behind() {
    let schema = schema_or_skip!();
    let mut opts = schema.options();
    opts.pool_size = 1;
    let s = open_postgres(&opts).await.unwrap();
    make_account(&s, "alice", "d").await;
    for i in 0..40u64 {
        let item = RosterItem {
            jid: format!("c{i}@x"),
            ..Default::default()
        };
        let cut = Duration::from_micros(50 * (i % 8));
        let _ = tokio::time::timeout(cut, s.roster.put("alice", "d", &item)).await;
        let _ = tokio::time::timeout(cut, s.offline.push("alice", "d", "<m/>", 0, 1000)).await;
    }
    // Each abandoned call finishes in its own task, soon.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (version, items) = s.roster.get_all("alice", "d").await.unwrap();
        let offline = s.offline.count("alice", "d").await.unwrap();
        if (version, items.len(), offline) == (40, 40, 40) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "abandoned calls did not all finish: version {version}, {} items, {offline} messages",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // No session is left idle in a transaction.
    assert_eq!(
        schema
            .query_i64(&format!(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE state LIKE 'idle in transaction%' AND application_name = '{}'",
                schema.name()
            ))
            .await,
        0
    );
}

/// The planner merges a batch's appends and acks into one statement each when the sessions'
/// orders allow it, and keeps one session's append after its ack in a statement of its own,
/// and an append from a sender after that sender's pruning `Handled` or `End`.
#[test]
fn sm_batches_plan_into_few_statements() {
    use super::sm::{Step, plan};
    use crate::{OutboxRow, SmOp};

    let append = |session: &str, seq: u64| SmOp::Append {
        session: session.to_owned(),
        row: OutboxRow {
            seq,
            stanza_id: String::new(),
            xml: "<m/>".to_owned(),
            attempts: 1,
            origin: None,
        },
    };
    let ack = |session: &str, upto: u64| SmOp::Ack {
        session: session.to_owned(),
        upto,
    };
    let from = |session: &str, seq: u64, origin: &str| SmOp::Append {
        session: session.to_owned(),
        row: OutboxRow {
            seq,
            stanza_id: String::new(),
            xml: "<m/>".to_owned(),
            attempts: 1,
            origin: Some(origin.to_owned()),
        },
    };
    let kinds = |ops: &[SmOp]| -> Vec<&'static str> {
        plan(ops)
            .unwrap()
            .iter()
            .map(|step| match step {
                Step::Append { .. } => "append",
                Step::Ack { .. } => "ack",
                Step::Put { .. } => "put",
                _ => "other",
            })
            .collect()
    };
    // 64 sessions, each one's ack after its appends, the sessions interleaved: two
    // statements.
    let mut ops = Vec::new();
    for n in 0..64 {
        let session = format!("s{n}");
        ops.extend([append(&session, 1), append(&session, 2), ack(&session, 1)]);
    }
    assert_eq!(kinds(&ops), ["append", "ack"]);
    // Each session's append after its ack, the ack after the append before: three.
    assert_eq!(
        kinds(&[
            append("a", 1),
            ack("a", 1),
            append("a", 2),
            append("b", 1),
            ack("b", 1)
        ]),
        ["append", "ack", "append"]
    );
    // A record and what follows it keep their order.
    let put = SmOp::Put(crate::SmSession {
        id: "a".to_owned(),
        user: "u".to_owned(),
        domain: "d".to_owned(),
        resource: "r".to_owned(),
        node: "n".to_owned(),
        handled: 0,
        acked: 0,
        parked_until: None,
        presence: None,
        priority: 0,
        interested: false,
        directed: Vec::new(),
        seen: Vec::new(),
    });
    assert_eq!(
        kinds(&[append("b", 1), put, append("a", 1), append("b", 2)]),
        ["append", "put", "append"]
    );
    // 64 recipients getting stanzas from each other and acking in between, the senders'
    // Handled after it all: three statements for the appends and acks, as without origins.
    let mut ops = Vec::new();
    for n in 0..64 {
        let (session, sender) = (format!("s{n}"), format!("s{}", (n + 1) % 64));
        ops.extend([
            from(&session, 1, &format!("{sender}#1")),
            ack(&session, 1),
            from(&session, 2, &format!("{sender}#2")),
        ]);
    }
    ops.extend((0..64).map(|n| SmOp::Handled {
        session: format!("s{n}"),
        handled: 2,
    }));
    let planned = kinds(&ops);
    assert_eq!(planned[..3], ["append", "ack", "append"]);
    assert_eq!(planned.len(), 3 + 64);
    // An append from a sender after its Handled or End comes after that; one from another
    // sender (or with an origin that does not parse) joins the first statement.
    let handled = SmOp::Handled {
        session: "s".to_owned(),
        handled: 1,
    };
    let end = SmOp::End {
        session: "s".to_owned(),
    };
    // (An End is two statements: its record is locked in one before it.)
    for (pruning, expected) in [
        (handled, &["append", "other", "append"][..]),
        (end, &["append", "other", "other", "append"][..]),
    ] {
        assert_eq!(
            kinds(&[
                from("a", 1, "s#1"),
                pruning.clone(),
                from("b", 1, "t#1"),
                from("b", 2, "s#01"),
                from("c", 1, "s#1"),
            ]),
            expected
        );
    }
    // A seq beyond what PostgreSQL stores fails the plan, so nothing is sent.
    assert!(plan(&[append("a", u64::MAX)]).is_err());
}

/// Appends racing with another connection's `End`s of their sessions are skipped, never a
/// failed batch (the append locks the record it checks), and leave no row behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sm_appends_racing_ends_never_fail() {
    use crate::{OutboxRow, SmOp, SmSession};

    const SESSIONS: usize = 40;
    let schema = schema_or_skip!();
    let writer = open_postgres(&schema.options()).await.unwrap();
    let ender = open_postgres(&schema.options()).await.unwrap();
    let id = |n: usize| format!("s{n:02}");
    let puts: Vec<SmOp> = (0..SESSIONS)
        .map(|n| {
            SmOp::Put(SmSession {
                id: id(n),
                user: "u".to_owned(),
                domain: "d".to_owned(),
                resource: "r".to_owned(),
                node: "n".to_owned(),
                handled: 0,
                acked: 0,
                parked_until: None,
                presence: None,
                priority: 0,
                interested: false,
                directed: Vec::new(),
                seen: Vec::new(),
            })
        })
        .collect();
    writer.sm.apply(&puts).await.unwrap();
    let ends = tokio::spawn(async move {
        for n in (0..SESSIONS).rev() {
            ender
                .sm
                .apply(&[SmOp::End { session: id(n) }])
                .await
                .unwrap();
        }
    });
    // At least one batch, more while the ends go on.
    let mut seq = 0;
    while seq == 0 || !ends.is_finished() {
        seq += 1;
        let ops: Vec<SmOp> = (0..SESSIONS)
            .map(|n| SmOp::Append {
                session: id(n),
                row: OutboxRow {
                    seq,
                    stanza_id: String::new(),
                    xml: "<m/>".to_owned(),
                    attempts: 1,
                    origin: None,
                },
            })
            .collect();
        writer.sm.apply(&ops).await.unwrap();
    }
    ends.await.unwrap();
    assert!(writer.sm.load("n").await.unwrap().is_empty());
    assert_eq!(schema.query_i64("SELECT count(*) FROM sm_outbox").await, 0);
}
