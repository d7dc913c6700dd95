//! `rookery serve` and `rookery check-config`: load and validate the config (nothing binds before
//! it is valid), open storage, load certificates, build the server with its modules, bind every
//! listener, then run until SIGTERM/SIGINT and shut down cleanly (clients get `system-shutdown`).

use crate::cli::{ConfigArg, ServeArgs};
use anyhow::Context;
use rookery_config::Config;
use std::time::Duration;

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
        "configuration OK: {} host(s), {} listener(s), {} component(s)",
        cfg.hosts.len(),
        cfg.listeners.len(),
        cfg.components.len()
    );
    Ok(())
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config)?;
    crate::logging::init(cfg.server.log_level.as_str(), args.log_format);
    let hosts = cfg.hosts.len();
    let running = rookery_server::start(cfg).await?;
    if let Some(path) = &args.ready_file {
        let ready: String = running
            .listeners
            .iter()
            .map(|(kind, addr)| format!("{} {addr}\n", kind.as_str()))
            .collect();
        // Write then rename, so a reader never sees a partial file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &ready)?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::info!(
        hosts,
        what = "ready",
        "Rookery {} ready",
        env!("CARGO_PKG_VERSION")
    );

    wait_for_signal().await;
    tracing::info!(what = "shutdown", "shutting down");
    if !running.shutdown(Duration::from_secs(10)).await {
        tracing::warn!(what = "shutdown", "sessions did not end within 10 s");
    }
    Ok(())
}

pub async fn wait_for_signal() {
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
