//! Where sessions homed on other nodes are reached. Core asks the `Cluster` for an account's
//! remote resources (from its node-local directory cache; never a network round trip on the
//! delivery path) and hands it stanzas for them (queued, never waited on). A single node
//! plugs in `SingleNode`: no remote sessions, nothing to send to. The cluster installs its own
//! implementation the way federation installs its `RemoteRouter`.

use crate::session_id::{NodeName, SessionId};
use rookery_proto::stanza::{BareJid, FullJid, Stanza};
use std::sync::Arc;

/// A session homed on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSession {
    pub node: NodeName,
    pub jid: FullJid,
    pub id: SessionId,
}

/// What the directory knows of a remote session (the same fields as a local `Resource`).
#[derive(Debug, Clone)]
pub struct RemoteResource {
    pub session: RemoteSession,
    pub available: bool,
    pub priority: i8,
    pub interested: bool,
    pub presence: Option<Arc<Stanza>>,
}

pub trait Cluster: Send + Sync + 'static {
    /// This node's name (every session id made here carries it).
    fn node(&self) -> &NodeName;
    /// The account's sessions on other nodes.
    fn remote_resources(&self, bare: &BareJid) -> Vec<RemoteResource>;
    /// Queues `st` for a session on another node; a refused stanza comes back.
    #[allow(clippy::result_large_err)] // the stanza itself is handed back, not an error value
    fn send(&self, to: &RemoteSession, st: Stanza) -> Result<(), Stanza>;
}

/// The one-node deployment: every session is local.
#[derive(Debug)]
pub struct SingleNode {
    node: NodeName,
}

impl SingleNode {
    pub fn new() -> SingleNode {
        SingleNode {
            node: NodeName::new(NodeName::LOCAL),
        }
    }
}

impl Default for SingleNode {
    fn default() -> Self {
        SingleNode::new()
    }
}

impl Cluster for SingleNode {
    fn node(&self) -> &NodeName {
        &self.node
    }
    fn remote_resources(&self, _bare: &BareJid) -> Vec<RemoteResource> {
        Vec::new()
    }
    fn send(&self, _to: &RemoteSession, st: Stanza) -> Result<(), Stanza> {
        // No other node exists: the session the caller named is gone.
        Err(st)
    }
}
