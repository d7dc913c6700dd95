//! Server-to-server federation (RFC 6120, XEP-0220, XEP-0178, XEP-0368). `S2s` is the shared
//! context: DNS resolver, certificate trust, TLS configs, the dialback secret and the pool of
//! outgoing streams. It plugs into the core router as its `RemoteRouter`; incoming streams are
//! served by `inbound::serve` from the s2s listeners.
//!
//! Outgoing: `pool::route_remote` → per-pair queue → `outbound::authenticate` (reuse a dialback
//! stream, or resolve + connect + TLS + SASL EXTERNAL / dialback) → the stream actor writes.
//! Incoming: `inbound::serve` → header, STARTTLS, EXTERNAL or dialback (asking the
//! authoritative server through `verify`) → stanzas checked against the authenticated pairs →
//! `Server::route`.

mod connect;
pub mod inbound;
pub mod outbound;
pub mod pool;
mod tls_policy;
mod verify;

use rookery_core::Server;
use rookery_core::server::RemoteRouter;
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::Stanza;
use rookery_tls::{CertStore, S2sTrust};
use std::sync::Arc;
pub(crate) use tls_policy::TlsPolicy;
use tokio_rustls::TlsAcceptor;

/// Why an outgoing stream could not be set up; decides the bounce condition. The strings carry
/// details (addresses, OS errors, the peer's words) for the server's log only: what the sender
/// of a bounced stanza sees is [`Failure::stanza_error`], which names nothing but the domain.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// DNS says the domain has no XMPP server (RFC 6120 §10.4.3: remote-server-not-found).
    #[error("no XMPP server found for the domain: {0}")]
    NotFound(String),
    /// No server of the domain accepted a TCP connection (refused, host or network
    /// unreachable): as good as no server at all (remote-server-not-found, as Prosody says when
    /// the peer never opened a stream).
    #[error("no connection: {0}")]
    Refused(String),
    /// Connected, but the stream could not be set up (remote-server-timeout).
    #[error("could not set up a stream: {0}")]
    Unreachable(String),
    /// Connecting or setting up took too long (remote-server-timeout).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The peer said our dialback key is invalid (XEP-0220: internal-server-error).
    #[error("dialback refused by the peer")]
    DialbackInvalid,
    /// Dialback ended with an error verdict (XEP-0220: remote-server-timeout).
    #[error("dialback error: {0}")]
    DialbackError(String),
    /// Our own policy forbids the only ways the peer offers.
    #[error("policy: {0}")]
    Policy(String),
}

impl Failure {
    /// The stanza error condition for this failure (RFC 6120 §8.3.3.16–17).
    pub fn condition(&self) -> Condition {
        match self {
            Failure::NotFound(_) | Failure::Refused(_) => Condition::RemoteServerNotFound,
            Failure::DialbackInvalid => Condition::InternalServerError,
            Failure::Unreachable(_)
            | Failure::Timeout(_)
            | Failure::DialbackError(_)
            | Failure::Policy(_) => Condition::RemoteServerTimeout,
        }
    }

    /// The error for stanzas bounced to local senders: the condition and a text that names
    /// only `remote`, the domain they addressed. Log the failure itself (its `Display`) for
    /// the details.
    pub fn stanza_error(&self, remote: &str) -> StanzaError {
        let text = match self {
            Failure::NotFound(_) => format!("no XMPP server found for {remote}"),
            Failure::Refused(_) => format!("could not connect to {remote}"),
            Failure::Timeout(_) => format!("timed out connecting to {remote}"),
            Failure::Unreachable(_) => format!("could not set up a stream to {remote}"),
            Failure::DialbackInvalid => format!("{remote} did not accept this server's identity"),
            Failure::DialbackError(_) => {
                format!("{remote} could not verify this server's identity")
            }
            Failure::Policy(_) => {
                format!("the connection to {remote} does not meet this server's security policy")
            }
        };
        StanzaError::new(self.condition()).with_text(text)
    }
}

/// Shared federation state (cheap clone).
#[derive(Clone)]
pub struct S2s {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: rookery_dns::Resolver,
    trust: S2sTrust,
    certs: Arc<CertStore>,
    secret: Vec<u8>,
    starttls: TlsAcceptor,
    direct_tls: TlsAcceptor,
    pool: pool::Pool,
}

#[derive(Debug, thiserror::Error)]
pub enum S2sSetupError {
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("s2s trust anchors: {0}")]
    Trust(String),
}

impl S2s {
    pub fn new(server: &Server, certs: Arc<CertStore>) -> Result<S2s, S2sSetupError> {
        let cfg = &server.config().s2s;
        let resolver = rookery_dns::Resolver::new(&rookery_dns::ResolverConfig {
            nameserver: cfg.nameserver,
            ..rookery_dns::ResolverConfig::default()
        })
        .map_err(|e| S2sSetupError::Dns(e.to_string()))?;
        let trust = S2sTrust::new(cfg.use_webpki_roots, &cfg.ca_files)
            .map_err(|e| S2sSetupError::Trust(e.to_string()))?;
        let secret = match &cfg.dialback_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => server.secret().to_vec(),
        };
        let starttls = TlsAcceptor::from(rookery_tls::s2s_server_config(&certs, &[]));
        let direct_tls =
            TlsAcceptor::from(rookery_tls::s2s_server_config(&certs, &[b"xmpp-server"]));
        Ok(S2s {
            inner: Arc::new(Inner {
                resolver,
                trust,
                certs,
                secret,
                starttls,
                direct_tls,
                pool: pool::Pool::default(),
            }),
        })
    }

    /// Makes this the server's route for remote domains.
    pub fn install(&self, server: &Server) {
        server.set_remote_router(Arc::new(self.clone()));
    }

    pub fn pool(&self) -> &pool::Pool {
        &self.inner.pool
    }
    pub(crate) fn resolver(&self) -> &rookery_dns::Resolver {
        &self.inner.resolver
    }
    pub(crate) fn trust(&self) -> &S2sTrust {
        &self.inner.trust
    }
    pub(crate) fn certs(&self) -> &CertStore {
        &self.inner.certs
    }
    pub(crate) fn secret(&self) -> &[u8] {
        &self.inner.secret
    }
    pub(crate) fn acceptor(&self, direct_tls: bool) -> &TlsAcceptor {
        if direct_tls {
            &self.inner.direct_tls
        } else {
            &self.inner.starttls
        }
    }
}

#[async_trait::async_trait]
impl RemoteRouter for S2s {
    async fn route_remote(&self, server: &Server, st: Stanza) {
        pool::route_remote(self, server, st).await;
    }
}
