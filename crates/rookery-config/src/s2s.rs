//! `[s2s]`: federation settings (the resolved, public side). Policy is per remote domain:
//! allow/deny lists, whether a valid certificate is required, whether dialback is allowed;
//! static routes bypass DNS for private networks. Raw parsing and validation live in
//! `resolve/s2s.rs`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// `[s2s]`: server-to-server federation.
#[derive(Debug, Clone, PartialEq)]
pub struct S2sConfig {
    /// `enabled` (bool, default `true`): federate at all. Off: remote stanzas bounce with
    /// `remote-server-not-found` and s2s listeners refuse streams.
    pub enabled: bool,
    /// `require_tls` (bool, default `true`): streams in both directions must be TLS-protected
    /// (STARTTLS or Direct TLS) before authentication.
    pub require_tls: bool,
    /// `require_valid_certs` (bool, default `false`): peers must present a certificate valid for
    /// their domain (then SASL EXTERNAL is used); with `false`, peers with self-signed or
    /// mismatching certificates may still authenticate with dialback (RFC 7590 §3.4).
    pub require_valid_certs: bool,
    /// `allow_dialback` (bool, default `true`): Server Dialback (XEP-0220) as authentication
    /// when a certificate can't prove the peer's identity.
    pub allow_dialback: bool,
    /// `use_webpki_roots` (bool, default `true`): trust the Mozilla root store for peer
    /// certificates.
    pub use_webpki_roots: bool,
    /// `ca_files` (array of paths, default `[]`): extra PEM trust anchors (private CAs).
    pub ca_files: Vec<PathBuf>,
    /// `connect_timeout_secs` (integer ≥ 1, default `10`): an outgoing stream must be
    /// authenticated within this time, or queued stanzas bounce.
    pub connect_timeout_secs: u64,
    /// `idle_timeout_secs` (integer ≥ 1, default `1800`): s2s streams idle this long are closed.
    pub idle_timeout_secs: u64,
    /// `queue_max` (integer ≥ 1, default `2000`): stanzas waiting per (local, remote) pair while
    /// the stream is set up; more bounce with `resource-constraint`.
    pub queue_max: usize,
    /// `dialback_secret` (string, optional): the XEP-0185 dialback secret. Default: random per
    /// process (all nodes of a cluster must share one).
    pub dialback_secret: Option<String>,
    /// `nameserver` (`"ip:port"`, optional): DNS server for SRV/A lookups instead of the
    /// system's resolv.conf.
    pub nameserver: Option<SocketAddr>,
    /// `allow` (array of domains, default `[]`): if not empty, federate only with these.
    pub allow: Vec<String>,
    /// `deny` (array of domains, default `[]`): never federate with these.
    pub deny: Vec<String>,
    /// `[[s2s.domain]]`: per-domain overrides of `require_valid_certs` / `allow_dialback`.
    pub domains: Vec<S2sDomain>,
    /// `[[s2s.route]]`: static routes, `domain` → `address:port` without DNS.
    pub routes: Vec<StaticRoute>,
}

/// `[[s2s.domain]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sDomain {
    /// `domain` (string): the remote domain this applies to.
    pub domain: String,
    /// `require_valid_certs` (bool, optional): overrides `[s2s].require_valid_certs`.
    pub require_valid_certs: Option<bool>,
    /// `allow_dialback` (bool, optional): overrides `[s2s].allow_dialback`.
    pub allow_dialback: Option<bool>,
}

/// `[[s2s.route]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    /// `domain` (string): remote domain.
    pub domain: String,
    /// `address` (IP address): where its server listens.
    pub address: IpAddr,
    /// `port` (integer, default `5269`).
    pub port: u16,
    /// `direct_tls` (bool, default `false`): connect with TLS from the first byte (XEP-0368).
    pub direct_tls: bool,
}

/// The effective policy for one remote domain. `require_tls` is not here: it applies to every
/// domain, and rookery-net reads it in one place (s2s `TlsPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S2sPolicy {
    pub allowed: bool,
    pub require_valid_certs: bool,
    pub allow_dialback: bool,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            enabled: true,
            require_tls: true,
            require_valid_certs: false,
            allow_dialback: true,
            use_webpki_roots: true,
            ca_files: Vec::new(),
            connect_timeout_secs: 10,
            idle_timeout_secs: 1800,
            queue_max: 2000,
            dialback_secret: None,
            nameserver: None,
            allow: Vec::new(),
            deny: Vec::new(),
            domains: Vec::new(),
            routes: Vec::new(),
        }
    }
}

impl S2sConfig {
    /// The policy for `remote` (a normalised domain).
    pub fn policy(&self, remote: &str) -> S2sPolicy {
        let listed = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(remote));
        let allowed =
            self.enabled && !listed(&self.deny) && (self.allow.is_empty() || listed(&self.allow));
        let over = self
            .domains
            .iter()
            .find(|d| d.domain.eq_ignore_ascii_case(remote));
        S2sPolicy {
            allowed,
            require_valid_certs: over
                .and_then(|d| d.require_valid_certs)
                .unwrap_or(self.require_valid_certs),
            allow_dialback: over
                .and_then(|d| d.allow_dialback)
                .unwrap_or(self.allow_dialback),
        }
    }

    /// The static route for `remote`, if configured.
    pub fn route(&self, remote: &str) -> Option<&StaticRoute> {
        self.routes
            .iter()
            .find(|r| r.domain.eq_ignore_ascii_case(remote))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}
