//! rookery-store: write throughput of the offline and stream-management stores on each
//! backend, measured by hand (ignored by default; release build for meaningful numbers):
//!
//! ```sh
//! cargo test --release -p rookery-store throughput -- --ignored --nocapture
//! ```
//!
//! Three loops of `OfflineStore::push` with the default per-account limit (`[limits]
//! offline_max = 1000`), each row one committed transaction: one caller waiting for each
//! push, 64 callers to 64 accounts (what group commit is for), and 64 callers to one
//! account (pushes to one account take turns on its row). Prints rows/s.
//!
//! Then `SmStore::apply` as core's group-commit writer calls it, one batch at a time: 256
//! `Append`s and an `Ack` of the rows the batch before appended (a client acknowledges what
//! it got a moment ago), first all to one session, then spread over 64 sessions with each
//! session's ack among its appends (what the PostgreSQL planner in `postgres/sm.rs` has to
//! merge). Prints appended rows/s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use crate::contract::make_account;
use crate::postgres::testing::PgTestSchema;
use crate::{OutboxRow, SmOp, SmSession, Stores, open_postgres, open_sqlite};

const D: &str = "example.org";
/// `[limits] offline_max`'s default: the limit every push is checked against.
const LIMIT: usize = 1_000;
const SEQUENTIAL: usize = 1_000;
const TASKS: usize = 64;
/// Per caller, to its own account (64 × 200 rows).
const PER_TASK: usize = 200;
/// Per caller, to the one shared account (64 × 15 = 960 rows, under the limit).
const PER_TASK_SHARED: usize = 15;

async fn measure(name: &str, s: &Stores) {
    let stanza = "<message from='romeo@example.net/orchard' to='juliet@example.org' \
                  type='chat' id='a1b2c3'><body>Wherefore art thou?</body></message>";
    make_account(s, "seq", D).await;
    make_account(s, "one", D).await;
    let start = Instant::now();
    for _ in 0..SEQUENTIAL {
        s.offline.push("seq", D, stanza, 1, LIMIT).await.unwrap();
    }
    let seq = SEQUENTIAL as f64 / start.elapsed().as_secs_f64();
    for t in 0..TASKS {
        make_account(s, &format!("u{t}"), D).await;
    }
    let many = |shared: bool| {
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let s = s.clone();
            let (user, n) = if shared {
                ("one".to_owned(), PER_TASK_SHARED)
            } else {
                (format!("u{t}"), PER_TASK)
            };
            tasks.push(tokio::spawn(async move {
                for _ in 0..n {
                    s.offline.push(&user, D, stanza, 1, LIMIT).await.unwrap();
                }
                n
            }));
        }
        async move {
            let start = Instant::now();
            let mut rows = 0;
            for task in tasks {
                rows += task.await.unwrap();
            }
            rows as f64 / start.elapsed().as_secs_f64()
        }
    };
    let spread = many(false).await;
    let one = many(true).await;
    println!(
        "{name:>11}: sequential {seq:>8.0} rows/s | {TASKS} callers, {TASKS} accounts {spread:>8.0} rows/s | {TASKS} callers, one account {one:>8.0} rows/s"
    );
}

/// Appends per `SmStore::apply` batch (each batch also holds the acks).
const SM_BATCH: usize = 256;
/// Batches per figure.
const SM_BATCHES: usize = 200;

/// `SM_BATCHES` batches of `SM_BATCH` appends spread over `sessions` sessions, each session's
/// ack of its rows from the batch before placed right after its first append.
fn sm_batches(sessions: usize) -> (Vec<SmOp>, Vec<Vec<SmOp>>) {
    let stanza = "<message from='romeo@example.net/orchard' to='juliet@example.org/balcony' \
                  type='chat' id='a1b2c3'><body>Wherefore art thou?</body></message>";
    let id = |n: usize| format!("sm-bench-{n}");
    let puts = (0..sessions)
        .map(|n| {
            SmOp::Put(SmSession {
                id: id(n),
                user: "juliet".to_owned(),
                domain: D.to_owned(),
                resource: "balcony".to_owned(),
                node: "bench".to_owned(),
                handled: 0,
                acked: 0,
                parked_until: None,
                presence: None,
                priority: 0,
                interested: true,
                directed: Vec::new(),
                seen: Vec::new(),
            })
        })
        .collect();
    let mut last_seq = vec![0u64; sessions];
    let batches = (0..SM_BATCHES)
        .map(|_| {
            let before = last_seq.clone();
            let mut ops = Vec::with_capacity(SM_BATCH + sessions);
            for i in 0..SM_BATCH {
                let n = i % sessions;
                last_seq[n] += 1;
                let seq = last_seq[n];
                ops.push(SmOp::Append {
                    session: id(n),
                    row: OutboxRow {
                        seq,
                        stanza_id: format!("id{seq}"),
                        xml: stanza.to_owned(),
                        attempts: 1,
                        origin: Some(format!("romeo-session#{seq}")),
                    },
                });
                if i < sessions && before[n] > 0 {
                    ops.push(SmOp::Ack {
                        session: id(n),
                        upto: before[n],
                    });
                }
            }
            ops
        })
        .collect();
    (puts, batches)
}

async fn measure_sm(name: &str, s: &Stores) {
    let mut figures = Vec::new();
    for sessions in [1, 64] {
        let (puts, batches) = sm_batches(sessions);
        s.sm.apply(&puts).await.unwrap();
        let start = Instant::now();
        for batch in &batches {
            s.sm.apply(batch).await.unwrap();
        }
        figures.push((SM_BATCH * SM_BATCHES) as f64 / start.elapsed().as_secs_f64());
        let live: usize =
            s.sm.load("bench")
                .await
                .unwrap()
                .iter()
                .map(|(_, rows)| rows.len())
                .sum();
        assert_eq!(
            live, SM_BATCH,
            "only the last batch's rows are unacknowledged"
        );
        let ends: Vec<SmOp> = (0..sessions)
            .map(|n| SmOp::End {
                session: format!("sm-bench-{n}"),
            })
            .collect();
        s.sm.apply(&ends).await.unwrap();
    }
    println!(
        "{name:>11}: sm batches of {SM_BATCH} appends + ack: one session {:>8.0} rows/s | 64 sessions {:>8.0} rows/s",
        figures[0], figures[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run by hand (see the file header)"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_sqlite(&dir.path().join("bench.sqlite")).await.unwrap();
    measure("sqlite", &sqlite).await;
    measure_sm("sqlite", &sqlite).await;
    drop(sqlite);
    for pool_size in [16, 64] {
        let Some(schema) = PgTestSchema::create().await else {
            return;
        };
        let mut opts = schema.options();
        opts.pool_size = pool_size;
        let pg = open_postgres(&opts).await.unwrap();
        measure(&format!("pg pool {pool_size}"), &pg).await;
        measure_sm(&format!("pg pool {pool_size}"), &pg).await;
    }
}
