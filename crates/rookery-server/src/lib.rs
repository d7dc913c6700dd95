//! Assembly: from a validated `Config` to a running server — storage opened, certificates
//! loaded, modules loaded, federation installed, component domains reserved, every listener
//! bound (binding everything before serving anything, so a port in use fails the start), accept
//! loops spawned. The `rookery` binary and the in-process integration tests both start servers
//! through `start`.

use rookery_config::{Config, ListenerKind, StorageBackend};
use rookery_core::{Module, Server};
use rookery_net::s2s::S2s;
use rookery_transport::limits::UnauthLimiter;
use rookery_transport::tls::TlsContext;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("creating data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("opening database {0}: {1}")]
    Store(String, rookery_store::StoreError),
    #[error("loading certificates: {0}")]
    Tls(#[from] rookery_tls::TlsError),
    #[error("{0}")]
    Modules(#[from] rookery_core::ModuleError),
    #[error("setting up federation: {0}")]
    S2s(#[from] rookery_net::s2s::S2sSetupError),
    /// `[cluster]` is read and checked (rookery-config), but this build has no cluster node
    /// to run: starting as a lone node instead would look like a cluster and not be one.
    #[error(
        "[cluster] (node \"{0}\"): this build cannot run as a cluster node yet; remove [cluster] to run a single node"
    )]
    ClusterNotBuilt(String),
    #[error("binding {kind} listener on {addr}: {err}")]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        err: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    pub server: Server,
    pub s2s: Option<S2s>,
    /// Connected connection managers.
    pub cms: rookery_net::cm::CmRegistry,
    /// Bound listener addresses (port 0 resolved), in config order.
    pub listeners: Vec<(ListenerKind, SocketAddr)>,
}

impl Running {
    /// The first bound address of a listener kind.
    pub fn addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
    }

    /// Stops accepting, sends `system-shutdown` to every stream and waits (bounded) for them.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.server.shutdown_token().cancel();
        self.server.tasks().close();
        tokio::time::timeout(grace, async {
            self.server.tasks().wait().await;
            // What the sessions left (their records parked, their last rows) is committed
            // before the process goes.
            self.server.outbox().flush().await;
        })
        .await
        .is_ok()
    }
}

/// Opens the configured storage (the server and the admin CLI share it): the SQLite file, or
/// the PostgreSQL schema (created and migrated if needed). The error names the database
/// (for PostgreSQL: host, database and schema, never the password).
pub async fn open_stores(cfg: &Config) -> Result<rookery_store::Stores, StartError> {
    match (cfg.storage.backend, &cfg.storage.postgres) {
        (StorageBackend::Postgres, Some(pg)) => {
            let opts = rookery_store::PgOptions {
                url: pg.url.clone(),
                schema: pg.schema.clone(),
                pool_size: pg.pool_size,
            };
            rookery_store::open_postgres(&opts)
                .await
                .map_err(|e| StartError::Store(opts.describe(), e))
        }
        (StorageBackend::Sqlite, _) => rookery_store::open_sqlite(&cfg.storage.path)
            .await
            .map_err(|e| StartError::Store(cfg.storage.path.display().to_string(), e)),
        // rookery-config only builds a PostgreSQL backend with its settings; a backend this
        // build does not know cannot come out of it either.
        (other, _) => Err(StartError::Store(
            format!("[storage] backend = \"{other}\""),
            rookery_store::StoreError::Backend(
                "storage backend not supported by this build".into(),
            ),
        )),
    }
}

/// Starts a server with the default modules.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    start_with(cfg, rookery_mods::default_modules()).await
}

/// Starts a server with the given modules.
pub async fn start_with(cfg: Config, modules: Vec<Arc<dyn Module>>) -> Result<Running, StartError> {
    if let Some(c) = &cfg.cluster {
        return Err(StartError::ClusterNotBuilt(c.node.clone()));
    }
    rookery_tls::install_crypto_provider();
    std::fs::create_dir_all(&cfg.server.data_dir)
        .map_err(|e| StartError::DataDir(cfg.server.data_dir.display().to_string(), e))?;
    let stores = open_stores(&cfg).await?;
    let hosts: Vec<rookery_tls::HostCert> = cfg
        .hosts
        .iter()
        .map(|h| rookery_tls::HostCert {
            domain: h.domain.clone(),
            pairs: h
                .certs
                .iter()
                .map(|p| rookery_tls::CertKeyFiles {
                    cert: p.cert.clone(),
                    key: p.key.clone(),
                })
                .collect(),
        })
        .collect();
    let certs = Arc::new(rookery_tls::CertStore::load(&hosts, &cfg.server.data_dir)?);
    let cfg = Arc::new(cfg);
    let server = Server::new(cfg.clone(), stores);
    server.start_modules(modules)?;
    // Reserved before any listener runs: a configured component's domain answers
    // `service-unavailable` until the component connects, and never leaks to federation.
    for c in &cfg.components {
        server.components().reserve(&c.domain);
    }
    let s2s = if cfg.s2s.enabled {
        let s2s = S2s::new(&server, certs.clone())?;
        s2s.install(&server);
        Some(s2s)
    } else {
        None
    };

    // Sessions a restart interrupted wait to be resumed (XEP-0198) before any client can
    // come back for them.
    server
        .restore_sessions()
        .await
        .map_err(|e| StartError::Store("stream-management sessions".into(), e))?;

    // One bind table for every router listener (they are one router with several doors).
    let router = cfg
        .listeners
        .iter()
        .any(|l| l.kind == ListenerKind::Router)
        .then(|| rookery_net::router::RouterHub::new(&server));

    let mut bound = Vec::new();
    for l in &cfg.listeners {
        let addr = l.socket_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|err| StartError::Bind {
                kind: l.kind.as_str(),
                addr,
                err,
            })?;
        bound.push((l.kind, listener));
    }
    let limiter = UnauthLimiter::default();
    let cms = rookery_net::cm::CmRegistry::new();
    let mut starttls = TlsContext::new(certs.clone(), &[]);
    let mut direct = TlsContext::new(certs.clone(), &[b"xmpp-client"]);
    if let Some(on) = cfg.c2s.tls_session_tickets {
        starttls = starttls.with_session_tickets(on);
        direct = direct.with_session_tickets(on);
    }
    tracing::debug!(
        on = starttls.session_tickets(),
        configured = ?cfg.c2s.tls_session_tickets,
        "client-facing TLS session tickets"
    );
    let mut listeners = Vec::new();
    for (kind, listener) in bound {
        let local = listener.local_addr().map_err(|err| StartError::Bind {
            kind: kind.as_str(),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            err,
        })?;
        tracing::info!(kind = kind.as_str(), addr = %local, what = "listening", "listening");
        listeners.push((kind, local));
        let tls = if kind == ListenerKind::C2sTls {
            direct.clone()
        } else {
            starttls.clone()
        };
        tokio::spawn(rookery_net::listener::serve(
            server.clone(),
            listener,
            kind,
            tls,
            limiter.clone(),
            rookery_net::listener::Shared {
                s2s: s2s.clone(),
                cms: cms.clone(),
                router: router.clone(),
            },
        ));
    }
    Ok(Running {
        server,
        s2s,
        cms,
        listeners,
    })
}
