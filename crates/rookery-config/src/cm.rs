//! `[cm]`: the connection-manager listener (Openfire's `jabber:connectionmanager` protocol).
//! Connection managers are front processes (`rookery cm`) that hold client sockets and carry
//! their traffic to the server over a few authenticated links; this section is what the server
//! needs to accept those links.

use serde::Deserialize;
use std::time::Duration;

/// `[cm]`: connection-manager links.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmConfig {
    /// `secret` (string, required when a `kind = "cm"` listener exists): the shared secret a
    /// connection manager proves with its `<handshake/>` (hex SHA-1 of stream id + secret, as
    /// XEP-0114; Openfire's `xmpp.multiplex.defaultSecret`). Give every CM the same value.
    pub secret: Option<String>,
    /// `heartbeat_secs` (integer ≥ 1, default `30`): a whitespace is written on an otherwise
    /// silent link this often, so both ends notice a dead peer.
    pub heartbeat_secs: u64,
    /// `idle_timeout_secs` (integer ≥ 1, default `300`): a link silent for this long is closed.
    pub idle_timeout_secs: u64,
    /// `resume_grace_secs` (integer ≥ 1, default `60`): after a link drops, how long its client
    /// sessions wait for the CM to move them to another link (with nothing lost) before they
    /// are closed; messages they still held go to offline storage.
    pub resume_grace_secs: u64,
}

impl Default for CmConfig {
    fn default() -> Self {
        CmConfig {
            secret: None,
            heartbeat_secs: 30,
            idle_timeout_secs: 300,
            resume_grace_secs: 60,
        }
    }
}

impl CmConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn resume_grace(&self) -> Duration {
        Duration::from_secs(self.resume_grace_secs)
    }
}
