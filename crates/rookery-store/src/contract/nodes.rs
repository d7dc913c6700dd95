//! Contract cases for `NodeStore` (src/nodes.rs): epochs rise with every start, a stale
//! epoch's heartbeat is refused and writes nothing, heartbeats never go backwards.

use crate::{NodeRow, Stores};

pub async fn nodes_claim_heartbeat_and_fence(s: &Stores) {
    assert!(s.nodes.nodes().await.unwrap().is_empty());
    assert_eq!(s.nodes.claim("n2", 1_000).await.unwrap(), 1);
    assert_eq!(s.nodes.claim("n1", 1_500).await.unwrap(), 1);
    assert!(s.nodes.heartbeat("n2", 1, 2_000).await.unwrap());
    // A heartbeat never moves the time back (clocks of one host can step).
    assert!(s.nodes.heartbeat("n2", 1, 1_800).await.unwrap());
    assert_eq!(
        s.nodes.nodes().await.unwrap(),
        [
            NodeRow {
                node: "n1".into(),
                epoch: 1,
                started_ms: 1_500,
                heartbeat_ms: 1_500,
            },
            NodeRow {
                node: "n2".into(),
                epoch: 1,
                started_ms: 1_000,
                heartbeat_ms: 2_000,
            },
        ]
    );
    // n2 starts again (another process, or a restart): the old epoch is fenced off.
    assert_eq!(s.nodes.claim("n2", 3_000).await.unwrap(), 2);
    assert!(!s.nodes.heartbeat("n2", 1, 4_000).await.unwrap());
    assert!(s.nodes.heartbeat("n2", 2, 3_500).await.unwrap());
    let n2 = s.nodes.nodes().await.unwrap().remove(1);
    assert_eq!(
        (n2.epoch, n2.started_ms, n2.heartbeat_ms),
        (2, 3_000, 3_500)
    );
    // A node without a row has no epoch to beat with.
    assert!(!s.nodes.heartbeat("n3", 1, 4_000).await.unwrap());
    assert_eq!(s.nodes.nodes().await.unwrap().len(), 2);
}
