//! `rookery serve` and `rookery check-config`: load and validate the config (nothing binds before
//! it is valid), open storage, load certificates, build the server with its modules, bind every
//! listener, then run until SIGTERM/SIGINT and shut down cleanly (clients get `system-shutdown`).

use crate::cli::{ConfigArg, ServeArgs};
use anyhow::Context;
use rookery_config::{Config, ListenerKind};
use rookery_core::Server;
use rookery_net::limits::UnauthLimiter;
use rookery_net::tls::TlsContext;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    match &arg.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{e}")),
        None => {
            let cwd = std::env::current_dir().context("current directory")?;
            Ok(Config::zero_config(&cwd))
        }
    }
}

pub fn check_config(arg: ConfigArg) -> anyhow::Result<()> {
    let cfg = load_config(&arg)?;
    println!(
        "configuration OK: {} host(s), {} listener(s)",
        cfg.hosts.len(),
        cfg.listeners.len()
    );
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOKERY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("rookery={level},rookery_core={level},rookery_net={level},rookery_mods={level},rookery_store={level},warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn open_stores(cfg: &Config) -> anyhow::Result<rookery_store::Stores> {
    rookery_store::open_sqlite(&cfg.storage.path)
        .await
        .with_context(|| format!("opening database {}", cfg.storage.path.display()))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config)?;
    init_logging(cfg.server.log_level.as_str());
    rookery_tls::install_crypto_provider();
    std::fs::create_dir_all(&cfg.server.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.server.data_dir.display()))?;
    let stores = open_stores(&cfg).await?;
    let hosts: Vec<rookery_tls::HostCert> = cfg
        .hosts
        .iter()
        .map(|h| rookery_tls::HostCert {
            domain: h.domain.clone(),
            cert: h.cert.clone(),
            key: h.key.clone(),
        })
        .collect();
    let certs = Arc::new(
        rookery_tls::CertStore::load(&hosts, &cfg.server.data_dir)
            .context("loading certificates")?,
    );
    let cfg = Arc::new(cfg);
    let server = Server::new(cfg.clone(), stores, rookery_mods::default_modules())?;

    // Bind everything first: a port in use fails the start before any client is served.
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        let addr = std::net::SocketAddr::new(l.address, l.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {} listener on {addr}", l.kind.as_str()))?;
        bound.push((l.kind, listener));
    }
    let mut ready = String::new();
    let limiter = UnauthLimiter::default();
    let plain_tls = TlsContext::new(certs.clone(), &[]);
    let direct_tls = TlsContext::new(certs.clone(), &[b"xmpp-client"]);
    for (kind, listener) in bound {
        let local = listener.local_addr()?;
        tracing::info!(kind = kind.as_str(), addr = %local, what = "listening", "listening");
        ready.push_str(&format!("{} {local}\n", kind.as_str()));
        let tls = if kind == ListenerKind::C2sTls {
            direct_tls.clone()
        } else {
            plain_tls.clone()
        };
        tokio::spawn(rookery_net::listener::serve(
            server.clone(),
            listener,
            kind,
            tls,
            limiter.clone(),
        ));
    }
    if let Some(path) = &args.ready_file {
        // Write then rename, so a reader never sees a partial file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &ready)?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::info!(
        hosts = cfg.hosts.len(),
        what = "ready",
        "Rookery {} ready",
        env!("CARGO_PKG_VERSION")
    );

    wait_for_signal().await;
    tracing::info!(what = "shutdown", "shutting down");
    server.shutdown_token().cancel();
    server.tasks().close();
    if tokio::time::timeout(Duration::from_secs(10), server.tasks().wait())
        .await
        .is_err()
    {
        tracing::warn!(what = "shutdown", "sessions did not end within 10 s");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
