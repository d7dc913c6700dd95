//! What a connection manager is told to do: its name, the server's link listener and shared
//! secret, how many links, the client listeners and the domains it holds certificates for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    pub direct_tls: bool,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub domain: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct CmOptions {
    /// The CM's name: its links are `name/Connection Worker - n`, its stream ids start with it.
    pub name: String,
    /// The server's `cm` listener.
    pub server: SocketAddr,
    /// The server's `[cm] secret`.
    pub secret: String,
    /// Links to keep open (default 5).
    pub links: usize,
    pub listen: Vec<Listen>,
    /// Domains clients connect to; each needs a certificate (generated self-signed into
    /// `data_dir/certs` when none is given).
    pub hosts: Vec<Host>,
    pub data_dir: PathBuf,
    /// Every link down for this long: clients are disconnected with `system-shutdown`.
    pub grace: Duration,
    /// Whitespace on a silent link this often.
    pub heartbeat: Duration,
    /// A link silent this long is dead.
    pub idle_timeout: Duration,
}

impl CmOptions {
    /// Defaults for everything but what must be given.
    pub fn new(name: &str, server: SocketAddr, secret: &str, data_dir: PathBuf) -> CmOptions {
        CmOptions {
            name: name.to_owned(),
            server,
            secret: secret.to_owned(),
            links: 5,
            listen: Vec::new(),
            hosts: Vec::new(),
            data_dir,
            grace: Duration::from_secs(30),
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '@', ' ']) {
            return Err(format!(
                "connection manager name {:?} must be non-empty without '/', '@' or spaces",
                self.name
            ));
        }
        if self.secret.is_empty() {
            return Err("the shared secret must not be empty".into());
        }
        if self.links == 0 {
            return Err("at least one link is needed".into());
        }
        if self.listen.is_empty() {
            return Err("no client listener: give at least one --listen".into());
        }
        if self.hosts.is_empty() {
            return Err("no domain: give at least one --domain".into());
        }
        Ok(())
    }
}
