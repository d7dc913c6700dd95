//! rookery-store: write throughput of the offline store on each backend, measured by hand
//! (ignored by default; release build for meaningful numbers):
//!
//! ```sh
//! cargo test --release -p rookery-store throughput -- --ignored --nocapture
//! ```
//!
//! Three loops of `OfflineStore::push` with the default per-account limit (`[limits]
//! offline_max = 1000`), each row one committed transaction: one caller waiting for each
//! push, 64 callers to 64 accounts (what group commit is for), and 64 callers to one
//! account (pushes to one account take turns on its row). Prints rows/s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use crate::contract::make_account;
use crate::postgres::testing::PgTestSchema;
use crate::{Stores, open_postgres, open_sqlite};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run by hand (see the file header)"]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_sqlite(&dir.path().join("bench.sqlite")).await.unwrap();
    measure("sqlite", &sqlite).await;
    drop(sqlite);
    for pool_size in [16, 64] {
        let Some(schema) = PgTestSchema::create().await else {
            return;
        };
        let mut opts = schema.options();
        opts.pool_size = pool_size;
        let pg = open_postgres(&opts).await.unwrap();
        measure(&format!("pg pool {pool_size}"), &pg).await;
    }
}
