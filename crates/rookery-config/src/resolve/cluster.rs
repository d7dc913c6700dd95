//! Raw `[cluster]` as written in the file, and its validation into `ClusterConfig`: a node
//! name that fits in session ids and NATS subjects, NATS URLs, timings that leave a node
//! several heartbeats before it counts as dead, and the shared store a cluster needs.

use super::Cx;
use crate::ConfigError;
use crate::cluster::ClusterConfig;
use crate::enums::StorageBackend;
use crate::locate::KeyPath;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node: Option<String>,
    nats: Option<OneOrMany>,
    #[serde(default = "default_prefix")]
    subject_prefix: String,
    #[serde(default = "default_heartbeat")]
    heartbeat_ms: u64,
    #[serde(default = "default_dead_after")]
    dead_after_ms: u64,
}

fn default_prefix() -> String {
    "rookery".to_owned()
}
fn default_heartbeat() -> u64 {
    1000
}
fn default_dead_after() -> u64 {
    5000
}

/// Heartbeats a node may miss before it is dead.
const MIN_BEATS: u64 = 3;

impl Cx<'_> {
    pub(super) fn cluster(
        &self,
        raw: Option<RawCluster>,
        backend: StorageBackend,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let k = KeyPath::root().key("cluster");
        let node = raw
            .node
            .ok_or_else(|| self.at(&k, "a cluster needs node = \"...\" (this node's name)"))?;
        if !name_ok(&node, 32, false) {
            return Err(self.at(
                &k.key("node"),
                "1-32 characters from a-z, 0-9, '-' and '_' (it goes into session ids and NATS subjects)",
            ));
        }
        let nats = match raw.nats {
            None => return Err(self.at(&k, "a cluster needs nats = \"nats://host:port\"")),
            Some(OneOrMany::One(u)) => vec![u],
            Some(OneOrMany::Many(us)) => us,
        };
        if nats.is_empty() {
            return Err(self.at(&k.key("nats"), "needs at least one nats://host:port"));
        }
        for (i, url) in nats.iter().enumerate() {
            let rest = url.strip_prefix("nats://").unwrap_or_default();
            if rest.is_empty() || rest.contains(['/', '?', ' ']) {
                return Err(self.at(
                    &k.key("nats").index(i),
                    format!("{url:?} is not nats://host:port"),
                ));
            }
        }
        if !name_ok(&raw.subject_prefix, 64, true) {
            return Err(self.at(
                &k.key("subject_prefix"),
                "1-64 characters from letters, digits, '-' and '_' (one NATS subject token)",
            ));
        }
        if raw.heartbeat_ms < 100 {
            return Err(self.at(&k.key("heartbeat_ms"), "must be at least 100"));
        }
        if raw.dead_after_ms < MIN_BEATS * raw.heartbeat_ms {
            return Err(self.at(
                &k.key("dead_after_ms"),
                format!(
                    "must be at least {MIN_BEATS} heartbeats ({} ms with heartbeat_ms = {})",
                    MIN_BEATS * raw.heartbeat_ms,
                    raw.heartbeat_ms
                ),
            ));
        }
        // Every node's durable state is in the one database they share.
        if backend != StorageBackend::Postgres {
            return Err(self.at(
                &k.key("node"),
                format!(
                    "a cluster needs [storage] backend = \"postgres\", shared by every node (backend is \"{backend}\")"
                ),
            ));
        }
        Ok(Some(ClusterConfig {
            node,
            nats,
            subject_prefix: raw.subject_prefix,
            heartbeat_ms: raw.heartbeat_ms,
            dead_after_ms: raw.dead_after_ms,
        }))
    }
}

fn name_ok(s: &str, max: usize, upper: bool) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'_'
                || (upper && b.is_ascii_uppercase())
        })
}
