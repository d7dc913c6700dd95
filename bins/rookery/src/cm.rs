//! `rookery cm`: runs a connection manager (crate rookery-cm) from command-line options until
//! SIGTERM/SIGINT; its clients then get `system-shutdown`.

use crate::cli::CmArgs;
use anyhow::Context;
use rookery_cm::CmOptions;
use std::path::PathBuf;

pub async fn run(args: CmArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log_level, args.log_format);
    let secret = match (&args.secret, &args.secret_file) {
        (_, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("reading --secret-file {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (Some(s), None) => s.clone(),
        (None, None) => anyhow::bail!(
            "the server's [cm] secret is needed: --secret-file FILE, ROOKERY_CM_SECRET or --secret"
        ),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("cm-{}", &rookery_transport::stream::new_stream_id()[..8]));
    let mut opts = CmOptions::new(&name, args.server, &secret, args.data_dir.clone());
    opts.links = args.links;
    opts.grace = std::time::Duration::from_secs(args.grace_secs);
    opts.unauth_per_ip = args.unauth_per_ip;
    opts.connects_per_minute_per_ip = args.connects_per_minute_per_ip;
    opts.listen = args
        .listen
        .iter()
        .map(|a| rookery_cm::Listen {
            addr: *a,
            direct_tls: false,
        })
        .chain(args.listen_tls.iter().map(|a| rookery_cm::Listen {
            addr: *a,
            direct_tls: true,
        }))
        .collect();
    for d in &args.domains {
        let mut parts = d.split(':');
        let domain = parts.next().unwrap_or_default().to_owned();
        let (cert, key) = match (parts.next(), parts.next()) {
            (Some(c), Some(k)) => (Some(PathBuf::from(c)), Some(PathBuf::from(k))),
            (None, None) => (None, None),
            _ => anyhow::bail!("--domain {d}: expected DOMAIN or DOMAIN:CERT.pem:KEY.pem"),
        };
        opts.hosts.push(rookery_cm::Host { domain, cert, key });
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = rookery_cm::start(opts, shutdown.clone()).await?;
    if let Some(path) = &args.ready_file {
        let ready: String = running
            .listeners
            .iter()
            .map(|(addr, tls)| format!("{} {addr}\n", if *tls { "c2s-tls" } else { "c2s" }))
            .collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &ready)?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::info!(name = %name, server = %args.server, what = "ready", "connection manager ready");
    crate::serve::wait_for_signal().await;
    tracing::info!(what = "shutdown", "shutting down");
    running.shutdown().await;
    Ok(())
}
