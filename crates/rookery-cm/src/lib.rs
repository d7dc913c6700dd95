//! rookery-cm: the connection manager (`rookery cm`), a front process for the server. It
//! accepts client connections (STARTTLS and Direct TLS), negotiates TLS and the stream itself,
//! and carries everything else — SASL, bind, stanzas — to the server over a pool of links to
//! the server's `cm` listener (the protocol is described in `rookery_transport::cm`). Each client
//! pinned to one link, so its stanzas keep their order; when a link drops, its clients move to
//! another link together with whatever the server had not acknowledged
//! (`rookery_transport::cm::link`), and stay connected.
//!
//! Flow: `client.rs` (one task per client socket) ⇄ `Hub` (client ⇄ pinned link) ⇄ `pool.rs`
//! (one task per link slot: connect, handshake, configuration, read loop, reconnect with
//! backoff; a watchdog that disconnects clients with `system-shutdown` when every link has been
//! down longer than the grace period).

mod client;
mod options;
mod pool;
mod sm_streams;
mod state;

pub use options::{CmOptions, Host, Listen};
pub use state::ServerSettings;

use rookery_transport::tls::TlsContext;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum CmError {
    #[error("loading certificates: {0}")]
    Tls(#[from] rookery_tls::TlsError),
    #[error("binding client listener on {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("{0}")]
    Options(String),
}

/// A running connection manager.
pub struct RunningCm {
    /// Bound client listeners: (address, direct TLS).
    pub listeners: Vec<(SocketAddr, bool)>,
    state: Arc<state::Cm>,
    tasks: TaskTracker,
}

impl RunningCm {
    /// Links currently up.
    pub fn live_links(&self) -> usize {
        self.state.hub.live_links().len()
    }
    /// Links opened since start, reconnects included.
    pub fn links_opened(&self) -> u64 {
        self.state
            .links_opened
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Clients currently connected.
    pub fn clients(&self) -> usize {
        self.state.hub.session_count()
    }
    /// Waits until `n` links are up (tests and start-up scripts).
    pub async fn wait_links(&self, n: usize) {
        loop {
            let changed = self.state.links_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.live_links() >= n {
                return;
            }
            changed.await;
        }
    }
    /// Stops: clients get `system-shutdown`, links close.
    pub async fn shutdown(&self) {
        self.state.shutdown.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.tasks.wait()).await;
    }
}

/// Binds the client listeners, starts the link pool and the accept loops.
pub async fn start(opts: CmOptions, shutdown: CancellationToken) -> Result<RunningCm, CmError> {
    opts.validate().map_err(CmError::Options)?;
    rookery_tls::install_crypto_provider();
    let hosts: Vec<rookery_tls::HostCert> = opts
        .hosts
        .iter()
        .map(|h| rookery_tls::HostCert {
            domain: h.domain.clone(),
            // The command line gives both or neither (`DOMAIN:CERT:KEY`).
            pairs: h
                .cert
                .clone()
                .zip(h.key.clone())
                .map(|(cert, key)| rookery_tls::CertKeyFiles { cert, key })
                .into_iter()
                .collect(),
        })
        .collect();
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
        CmError::Options(format!(
            "creating data directory {}: {e}",
            opts.data_dir.display()
        ))
    })?;
    let certs = Arc::new(rookery_tls::CertStore::load(&hosts, &opts.data_dir)?);
    let starttls = TlsContext::new(certs.clone(), &[]);
    let direct = TlsContext::new(certs, &[b"xmpp-client"]);
    let mut bound = Vec::new();
    for l in &opts.listen {
        let listener = TcpListener::bind(l.addr)
            .await
            .map_err(|err| CmError::Bind { addr: l.addr, err })?;
        let local = listener
            .local_addr()
            .map_err(|err| CmError::Bind { addr: l.addr, err })?;
        bound.push((listener, local, l.direct_tls));
    }
    let tasks = TaskTracker::new();
    let state = state::Cm::new(opts, shutdown, tasks.clone());
    pool::start(&state);
    let mut listeners = Vec::new();
    let limiter = rookery_transport::limits::UnauthLimiter::default();
    for (listener, local, direct_tls) in bound {
        tracing::info!(addr = %local, direct_tls, what = "listening", "connection manager listening");
        listeners.push((local, direct_tls));
        let tls = if direct_tls {
            direct.clone()
        } else {
            starttls.clone()
        };
        tasks.spawn(accept_loop(
            state.clone(),
            listener,
            tls,
            direct_tls,
            limiter.clone(),
        ));
    }
    Ok(RunningCm {
        listeners,
        state,
        tasks,
    })
}

async fn accept_loop(
    cm: Arc<state::Cm>,
    listener: TcpListener,
    tls: TlsContext,
    direct: bool,
    limiter: rookery_transport::limits::UnauthLimiter,
) {
    loop {
        let accepted = tokio::select! {
            _ = cm.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // The same per-IP protections as the server's own client listeners.
                let now = std::time::Instant::now();
                if !limiter.attempt(peer.ip(), cm.opts.connects_per_minute_per_ip, now) {
                    tracing::info!(%peer, what = "connect-rate", "too many connection attempts from this address");
                    continue;
                }
                let Some(guard) = limiter.try_acquire(peer.ip(), cm.opts.unauth_per_ip) else {
                    tracing::info!(%peer, what = "unauth-limit", "too many unauthenticated connections from this address");
                    continue;
                };
                cm.tasks.spawn(client::serve(
                    cm.clone(),
                    tls.clone(),
                    tcp,
                    peer,
                    direct,
                    guard,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, what = "accept", "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
