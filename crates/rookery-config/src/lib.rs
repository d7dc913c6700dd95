//! rookery-config: the server's TOML configuration — parse, validate, resolve.
//!
//! The `rookery` binary calls [`Config::load`] for `rookery serve --config F` and
//! `rookery check-config --config F`, and [`Config::zero_config`] for a bare `rookery serve`.
//! Either a complete, validated [`Config`] comes back (all paths absolute, domains normalized,
//! admins parsed as JIDs) or a [`ConfigError`] naming file, line, column and key; nothing
//! should bind a socket or open the database before that. `rookery-core` keeps the `Config`
//! in its shared server state; `rookery-net` builds listeners from [`Config::listeners`] and
//! TLS acceptors (via `rookery-tls`) from [`Config::hosts`].
//!
//! The reference for every key is the doc comment on the matching field in [`sections`]
//! (also `CONFIG.md`), and `rookery.example.toml` is a complete commented example.

pub mod cluster;
pub mod cm;
pub mod component;
mod enums;
mod error;
mod locate;
mod modules;
mod resolve;
pub mod router;
pub mod s2s;
pub mod sections;

pub use cluster::ClusterConfig;
pub use cm::CmConfig;
pub use component::ComponentConfig;
pub use enums::{ListenerKind, LogLevel, ResourceConflict, StorageBackend};
pub use error::ConfigError;
pub use modules::ModulesConfig;
pub use resolve::storage::check_schema_name;
pub use router::{RouterConfig, RouterUser};
pub use s2s::{S2sConfig, S2sDomain, S2sPolicy, StaticRoute};
pub use sections::{
    C2sConfig, CertKeyPaths, HostConfig, Limits, ListenerConfig, PeerKind, PostgresConfig,
    RegistrationConfig, ServerConfig, Shaping, StorageConfig,
};

use jid::BareJid;
use std::path::{Path, PathBuf};

/// `[server].data_dir` when not configured: relative to the config file's directory, or to
/// the current directory in zero-config mode.
pub const DEFAULT_DATA_DIR: &str = "rookery-data";

/// `[storage].path` when not configured, relative to the data directory.
pub const DEFAULT_SQLITE_FILE: &str = "rookery.sqlite";

/// The domain served when there is no configuration file.
pub const ZERO_CONFIG_DOMAIN: &str = "localhost";

/// The whole, validated server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[c2s]`.
    pub c2s: C2sConfig,
    /// `[registration]`.
    pub registration: RegistrationConfig,
    /// `[limits]`.
    pub limits: Limits,
    /// The `[[host]]` entries in file order; never empty. The first one is the default host
    /// (its certificate is served when a client sends no or an unknown SNI name).
    pub hosts: Vec<HostConfig>,
    /// The `[[listen]]` entries in file order, or [`ListenerConfig::defaults`] when the file
    /// has none; never empty.
    pub listeners: Vec<ListenerConfig>,
    /// `[s2s]`.
    pub s2s: S2sConfig,
    /// `[cm]`.
    pub cm: CmConfig,
    /// `[cluster]`: `None` runs one node on its own.
    pub cluster: Option<ClusterConfig>,
    /// The `[[component]]` entries in file order (XEP-0114 external components); may be empty.
    pub components: Vec<ComponentConfig>,
    /// `[router]`.
    pub router: RouterConfig,
    /// `[modules.<name>]`: each module's own table, read when it starts.
    pub modules: ModulesConfig,
    /// The configuration file this was loaded from (absolute), `None` for zero-config.
    pub source: Option<PathBuf>,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::whole_file(path.to_path_buf(), format!("cannot read: {e}"))
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
                let (line, column) = locate::line_col(&prefix, prefix.len());
                return Err(ConfigError {
                    file: path.to_path_buf(),
                    line: Some(line),
                    column: Some(column),
                    key: None,
                    message: "the file is not valid UTF-8".to_owned(),
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates configuration `text`. `path` is the file it came from: it is used
    /// in error messages, relative paths resolve against its directory, and cert/key files
    /// named in the text must exist.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // `absolute` only consults the current directory, not the file system, so a path that
        // names a file that does not exist (tests, `check-config` on a draft) still works.
        let absolute = std::path::absolute(path).map_err(|e| {
            ConfigError::whole_file(
                path.to_path_buf(),
                format!("cannot determine the configuration file's directory: {e}"),
            )
        })?;
        let base = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut config = resolve::parse(text, path, &base)?;
        config.source = Some(absolute);
        Ok(config)
    }

    /// The configuration used without a file: one host `localhost` with a self-signed
    /// certificate, listeners on 127.0.0.1:5222 (c2s) and 127.0.0.1:5223 (c2s-tls), data in
    /// `cwd/rookery-data`, every other setting at its default.
    pub fn zero_config(cwd: &Path) -> Config {
        let cwd = std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let data_dir = cwd.join(DEFAULT_DATA_DIR);
        let registration = RegistrationConfig::default();
        Config {
            storage: StorageConfig {
                backend: StorageBackend::Sqlite,
                path: data_dir.join(DEFAULT_SQLITE_FILE),
                postgres: None,
            },
            server: ServerConfig {
                data_dir,
                log_level: LogLevel::default(),
                admins: Vec::new(),
            },
            c2s: C2sConfig::default(),
            hosts: vec![HostConfig {
                domain: ZERO_CONFIG_DOMAIN.to_owned(),
                certs: Vec::new(),
                registration: registration.allow,
                modules_disabled: Vec::new(),
            }],
            registration,
            limits: Limits::default(),
            listeners: ListenerConfig::defaults(),
            s2s: S2sConfig::default(),
            cm: CmConfig::default(),
            cluster: None,
            components: Vec::new(),
            router: RouterConfig::default(),
            modules: ModulesConfig::default(),
            source: None,
        }
    }

    /// The host serving `domain` (compared case-insensitively, as domains are).
    pub fn host(&self, domain: &str) -> Option<&HostConfig> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.hosts
            .iter()
            .find(|h| h.domain.eq_ignore_ascii_case(domain))
    }

    /// The `[[component]]` serving exactly `domain` (already normalised, lowercase).
    pub fn component(&self, domain: &str) -> Option<&ComponentConfig> {
        self.components.iter().find(|c| c.domain == domain)
    }

    /// Whether `jid` is listed in `[server].admins`.
    pub fn is_admin(&self, jid: &BareJid) -> bool {
        self.server.admins.iter().any(|a| a == jid)
    }
}
