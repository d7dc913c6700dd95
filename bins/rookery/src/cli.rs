//! Command-line interface definition (clap derive).

use crate::logging::LogFormat;
use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "rookery", version, about = "Rookery XMPP server")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (zero-config: domain localhost on 127.0.0.1:5222/5223, data in ./rookery-data).
    Serve(ServeArgs),
    /// Validate the configuration and exit.
    CheckConfig(ConfigArg),
    /// Manage accounts (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Run a connection manager: hold client connections and carry them to a server's `cm`
    /// listener over a few links.
    Cm(CmArgs),
}

#[derive(ClapArgs, Debug)]
pub struct CmArgs {
    /// The server's connection-manager listener (its `kind = "cm"` [[listen]]).
    #[arg(long, default_value = "127.0.0.1:5262")]
    pub server: std::net::SocketAddr,
    /// The server's `[cm] secret`. Prefer --secret-file or ROOKERY_CM_SECRET: a command line is
    /// visible to other users of the machine.
    #[arg(long, env = "ROOKERY_CM_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file whose first line is the secret.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// This connection manager's name (unique per server); random when not given.
    #[arg(long)]
    pub name: Option<String>,
    /// Links to the server.
    #[arg(long, default_value_t = 5)]
    pub links: usize,
    /// Client listener with STARTTLS (repeatable).
    #[arg(long = "listen", default_value = "127.0.0.1:5222")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Client listener with Direct TLS (XEP-0368; repeatable).
    #[arg(long = "listen-tls")]
    pub listen_tls: Vec<std::net::SocketAddr>,
    /// A domain clients connect to (repeatable); `DOMAIN` or `DOMAIN:CERT.pem:KEY.pem`.
    /// Without a certificate one is generated, self-signed, into the data directory.
    #[arg(long = "domain", default_value = "localhost")]
    pub domains: Vec<String>,
    /// Where generated certificates are kept.
    #[arg(long, default_value = "rookery-cm-data")]
    pub data_dir: PathBuf,
    /// Seconds with every link down before clients are disconnected with system-shutdown.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,
    /// Concurrent unauthenticated client connections per IP address.
    #[arg(long, default_value_t = 16)]
    pub unauth_per_ip: usize,
    /// Client connection attempts per IP address per minute (XEP-0205).
    #[arg(long, default_value_t = 120)]
    pub connects_per_minute_per_ip: u32,
    /// Once listening, write `c2s ADDRESS` / `c2s-tls ADDRESS` lines here (scripts, tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format on stderr: `text` (coloured only on a terminal, never with NO_COLOR set) or
    /// `json` (one object per line, for log collectors).
    #[arg(long, value_enum, env = "ROOKERY_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ClapArgs, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file (TOML). Without it, the zero-config defaults apply.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(ClapArgs, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Once every listener is bound, write their addresses here as `kind address` lines
    /// (for scripts and tests that bind port 0).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log format on stderr: `text` (coloured only on a terminal, never with NO_COLOR set) or
    /// `json` (one object per line, for log collectors).
    #[arg(long, value_enum, env = "ROOKERY_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password comes from --password, a prompt, or stdin.
    Add {
        jid: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Delete an account and all its data.
    Del {
        jid: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set a new password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List accounts, optionally of one domain.
    List {
        domain: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}
