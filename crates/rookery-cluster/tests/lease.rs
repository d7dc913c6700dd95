//! The node lease on a real store (SQLite file; the contract suite holds PostgreSQL to the
//! same `NodeStore` behaviour): epochs per start, heartbeats recorded, and fencing when a
//! newer start takes the name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_cluster::Lease;
use rookery_config::ClusterConfig;
use std::time::Duration;

fn cfg(node: &str) -> ClusterConfig {
    ClusterConfig {
        node: node.to_owned(),
        nats: vec!["nats://127.0.0.1:4222".to_owned()],
        subject_prefix: "test".to_owned(),
        heartbeat_ms: 100,
        dead_after_ms: 300,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_start_fences_the_old_lease() {
    let dir = tempfile::tempdir().unwrap();
    let stores = rookery_store::open_sqlite(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let first = Lease::acquire(stores.nodes.clone(), &cfg("n1"))
        .await
        .unwrap();
    let other = Lease::acquire(stores.nodes.clone(), &cfg("n2"))
        .await
        .unwrap();
    assert_eq!((first.epoch(), other.epoch()), (1, 1));
    let before = stores.nodes.nodes().await.unwrap()[0].heartbeat_ms;

    // The same name started again: the first lease's next heartbeat is refused.
    let second = Lease::acquire(stores.nodes.clone(), &cfg("n1"))
        .await
        .unwrap();
    assert_eq!(second.epoch(), 2);
    tokio::time::timeout(Duration::from_secs(5), first.fenced().cancelled())
        .await
        .expect("the old lease is fenced");

    // The others keep beating: n2's heartbeat moves on, and neither is fenced.
    let n2 = || async { stores.nodes.nodes().await.unwrap()[1].heartbeat_ms };
    let start = n2().await;
    tokio::time::timeout(Duration::from_secs(5), async {
        // No event announces a heartbeat row: polled.
        while n2().await == start {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("n2's heartbeat is recorded again");
    assert!(!other.fenced().is_cancelled() && !second.fenced().is_cancelled());
    assert!(stores.nodes.nodes().await.unwrap()[0].heartbeat_ms >= before);
}
