//! The cluster's NATS connection (decision 0018: NATS carries what moves between nodes —
//! stanzas, session announcements, control requests; PostgreSQL keeps what lasts).
//!
//! Subjects all start with `[cluster] subject_prefix`, so several clusters or test runs share
//! one NATS: `<prefix>.node.<node>.<what>` for what is addressed to one node (its own
//! subscriptions), `<prefix>.all.<what>` for what every node hears. Node names and the prefix
//! are single subject tokens by construction (rookery-config checks their characters).
//!
//! Core NATS is at-most-once (a message to a disconnected or slow subscriber is dropped), so
//! every use must tolerate loss: a sender keeps what it sent until the receiver answers.
//! Failure detection is the lease's heartbeat in the store (`lease.rs`), not NATS pings.

use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use rookery_config::ClusterConfig;

/// How long the first connection may take before `connect` gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the bus could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connecting to NATS at {servers}: {error}")]
    Connect { servers: String, error: String },
}

/// A node's connection to the other nodes.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    prefix: String,
    node: String,
}

impl Bus {
    /// Connects to the configured NATS servers (tried in turn, reconnecting after a loss).
    pub async fn connect(cfg: &ClusterConfig) -> Result<Bus, BusError> {
        let client = ConnectOptions::new()
            .name(format!("rookery {}", cfg.node))
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(cfg.nats.as_slice())
            .await
            .map_err(|e| BusError::Connect {
                servers: cfg.nats.join(", "),
                error: e.to_string(),
            })?;
        Ok(Bus {
            client,
            prefix: cfg.subject_prefix.clone(),
            node: cfg.node.clone(),
        })
    }

    /// What is addressed to `node` about `what`.
    pub fn node_subject(&self, node: &str, what: &str) -> String {
        format!("{}.node.{node}.{what}", self.prefix)
    }

    /// What is addressed to this node about `what` (what it subscribes to).
    pub fn own_subject(&self, what: &str) -> String {
        self.node_subject(&self.node, what)
    }

    /// What every node hears about `what`.
    pub fn all_subject(&self, what: &str) -> String {
        format!("{}.all.{what}", self.prefix)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}
