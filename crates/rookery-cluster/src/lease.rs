//! A node's lease on its name: the first thing a cluster node does at start, and what every
//! write it makes as a session's home is guarded by (decision 0018, "Nodes and fencing").
//!
//! `Lease::acquire` takes the node's next epoch in the store (`NodeStore::claim`). A task
//! then records a heartbeat every `heartbeat_ms`. The lease is lost, and `fenced()` fires,
//! when a heartbeat finds that a newer start took the node (another process with the same
//! `node`, or this one restarted while the old one was paused), or when no heartbeat could
//! be recorded for `dead_after_ms`: by then the other nodes count this one as dead and may
//! take its sessions over, so it must stop acting as their home. Losing the lease is final;
//! the node has to start again (with a new epoch) to serve.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rookery_config::ClusterConfig;
use rookery_store::{NodeStore, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("claiming the node's epoch: {0}")]
    Store(StoreError),
}

/// A held lease; dropping it stops the heartbeats (the row stays, and ages into "dead").
pub struct Lease {
    node: String,
    epoch: u64,
    fenced: CancellationToken,
    stop: CancellationToken,
}

impl Lease {
    /// Takes the node's next epoch and starts the heartbeats.
    pub async fn acquire(
        nodes: Arc<dyn NodeStore>,
        cfg: &ClusterConfig,
    ) -> Result<Lease, LeaseError> {
        let epoch = nodes
            .claim(&cfg.node, now_ms())
            .await
            .map_err(LeaseError::Store)?;
        tracing::info!(node = %cfg.node, epoch, what = "cluster-lease", "node epoch claimed");
        let fenced = CancellationToken::new();
        let stop = CancellationToken::new();
        tokio::spawn(beat(
            nodes,
            cfg.node.clone(),
            epoch,
            cfg.heartbeat(),
            cfg.dead_after(),
            fenced.clone(),
            stop.clone(),
        ));
        Ok(Lease {
            node: cfg.node.clone(),
            epoch,
            fenced,
            stop,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// This start's epoch: what the node's home writes are guarded by.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Fires once the lease is lost (see the file header).
    pub fn fenced(&self) -> CancellationToken {
        self.fenced.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The heartbeat task: one heartbeat per `every` (missed ticks are not made up), until
/// stopped or fenced.
async fn beat(
    nodes: Arc<dyn NodeStore>,
    node: String,
    epoch: u64,
    every: Duration,
    dead_after: Duration,
    fenced: CancellationToken,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The claim was the first heartbeat.
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A heartbeat that hangs past the deadline counts as failed too.
        let left = dead_after.saturating_sub(last_ok.elapsed());
        match tokio::time::timeout(left, nodes.heartbeat(&node, epoch, now_ms())).await {
            Ok(Ok(true)) => last_ok = Instant::now(),
            Ok(Ok(false)) => {
                tracing::error!(node = %node, epoch, what = "cluster-fenced", "a newer start took this node's name; stopping");
                fenced.cancel();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %node, epoch, error = %e, what = "cluster-heartbeat", "heartbeat not recorded");
            }
            Err(_) => {}
        }
        if last_ok.elapsed() >= dead_after {
            tracing::error!(node = %node, epoch, what = "cluster-fenced", "no heartbeat recorded for the dead interval; stopping");
            fenced.cancel();
            return;
        }
    }
}

/// Unix milliseconds now; a clock before 1970 reads as 0.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
