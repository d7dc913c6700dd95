//! `[cluster]`: several Rookery nodes serving one set of domains. Each node runs the same
//! `[[host]]`s with its own listeners, shares the PostgreSQL store of `[storage]` (every
//! durable record: accounts, session directory, outboxes, node heartbeats) and talks to the
//! others over NATS (stanza routing, wake-ups, control requests). Without this section
//! nothing of it exists: one node, any store, no NATS.

use std::time::Duration;

/// `[cluster]`, validated (`resolve/cluster.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `node` (string, required): this node's name, unique in the cluster; 1–32 characters
    /// from `a-z`, `0-9`, `-` and `_`. Every session id made on the node carries it, and it
    /// names the node in NATS subjects and in the store.
    pub node: String,
    /// `nats` (string or list of strings, required): the NATS servers, `nats://host:port`;
    /// several are tried in turn.
    pub nats: Vec<String>,
    /// `subject_prefix` (string, default `"rookery"`): the first token of every NATS subject
    /// the cluster uses, so that several clusters (or test runs) can share one NATS. Letters,
    /// digits, `-` and `_`.
    pub subject_prefix: String,
    /// `heartbeat_ms` (integer ≥ 100, default `1000`): how often the node records that it is
    /// alive.
    pub heartbeat_ms: u64,
    /// `dead_after_ms` (integer, default `5000`, at least three heartbeats): a node whose last
    /// heartbeat is older than this is dead to the others, and a node that could not record
    /// one for this long stops serving (it fences itself).
    pub dead_after_ms: u64,
}

impl ClusterConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }
}
