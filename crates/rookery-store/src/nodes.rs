//! rookery-store, cluster nodes: the [`NodeStore`] trait, one row per node of a cluster with
//! its epoch and heartbeat (decision 0018).
//!
//! A node claims a new epoch each time it starts (`claim`), then records a heartbeat about
//! every second with that epoch (`heartbeat`). A heartbeat that finds a newer epoch means
//! another process started under the same node name: the caller is stale and must stop
//! acting as that node (it fences itself). The other nodes read the rows (`nodes`) to tell
//! live nodes from dead ones by the heartbeat's age. Implemented by `sqlite/nodes.rs` and
//! `postgres/nodes.rs` (a cluster runs on PostgreSQL; SQLite has the table so that schema
//! versions mean the same on both), checked by `contract/nodes.rs`.

use async_trait::async_trait;

use crate::StoreError;

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    /// Raised by one at every start; the first start is 1.
    pub epoch: u64,
    /// Unix milliseconds of the start that took `epoch`.
    pub started_ms: i64,
    /// Unix milliseconds of the latest heartbeat (the start counts as one).
    pub heartbeat_ms: i64,
}

/// The nodes of a cluster and their heartbeats.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// A start of `node` at `now_ms`: creates its row with epoch 1, or raises the epoch by
    /// one; both times are set to `now_ms`. Returns the new epoch.
    async fn claim(&self, node: &str, now_ms: i64) -> Result<u64, StoreError>;

    /// Records a heartbeat of `node` at `now_ms` if `epoch` is still its epoch. `false`: a
    /// newer start took the node (or its row is gone), and nothing was written. A heartbeat
    /// never moves the time backwards.
    async fn heartbeat(&self, node: &str, epoch: u64, now_ms: i64) -> Result<bool, StoreError>;

    /// Every node, sorted by name.
    async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError>;
}
