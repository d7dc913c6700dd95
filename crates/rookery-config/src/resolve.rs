//! From TOML text to a validated `Config`: the raw serde shapes of the sections that need
//! resolution, then semantic validation (domains, JIDs, addresses, limits, file existence) and
//! path resolution. Every error is located by key path in the parsed document so the user sees
//! file, line, column and key, whether serde or a semantic check found the problem.

use crate::enums::{ListenerKind, LogLevel};
use crate::error::{ConfigError, reword};
use crate::locate::{KeyPath, line_col, path_at, span_of};
use crate::sections::{
    C2sConfig, CertKeyPaths, HostConfig, Limits, ListenerConfig, RegistrationConfig, ServerConfig,
};
use crate::{Config, DEFAULT_DATA_DIR};
use jid::{BareJid, Jid};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, Deserializer};

mod cluster;
mod component;
mod router;
mod s2s;
pub(crate) mod storage;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    storage: storage::RawStorage,
    c2s: C2sConfig,
    registration: RegistrationConfig,
    limits: Limits,
    host: Option<Vec<RawHost>>,
    listen: Option<Vec<RawListen>>,
    s2s: s2s::RawS2s,
    cm: crate::cm::CmConfig,
    cluster: Option<cluster::RawCluster>,
    component: Vec<component::RawComponent>,
    router: router::RawRouter,
    /// `[modules.<name>]`: read by each module when it starts (`modules.rs`); here only
    /// checked to be tables.
    modules: HashMap<String, toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    data_dir: Option<String>,
    log_level: LogLevel,
    admins: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    domain: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    certs: Option<Vec<RawCertKey>>,
    #[serde(default)]
    registration: Option<bool>,
    #[serde(default)]
    modules_disabled: Vec<String>,
}

/// One entry of `[[host]] certs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertKey {
    cert: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: String,
    port: u16,
    kind: ListenerKind,
}

/// Parses and validates `text`; `file` is used in messages, `base` (absolute) is the directory
/// relative paths resolve against.
pub(crate) fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => return Err(syntax_error(text, file, &e)),
    };
    let cx = Cx {
        text,
        file,
        doc: &doc,
    };
    let raw =
        RawConfig::deserialize(Deserializer::from(doc.clone())).map_err(|e| cx.toml_error(&e))?;
    cx.resolve(raw, base)
}

fn syntax_error(text: &str, file: &Path, e: &toml::de::Error) -> ConfigError {
    let mut message = e.message().to_owned();
    let (mut line, mut column, mut key) = (None, None, None);
    if let Some(span) = e.span() {
        let (l, c) = line_col(text, span.start);
        (line, column) = (Some(l), Some(c));
        if message == "duplicate key"
            && let Some(name) = text.get(span.clone())
        {
            message = if name.starts_with(['"', '\'']) {
                format!("duplicate key {name}")
            } else {
                format!("duplicate key \"{name}\"")
            };
        }
        // Best effort: name the key when the broken part sits inside a recognisable value.
        let (partial, _) = DeTable::parse_recoverable(text);
        key = path_at(&partial, span.start).map(|p| p.to_string());
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

struct Cx<'a> {
    text: &'a str,
    file: &'a Path,
    doc: &'a Spanned<DeTable<'a>>,
}

impl Cx<'_> {
    /// An error at `path`, located at its value (or nearest existing ancestor).
    fn at(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        let pos = span_of(self.doc, path).map(|s| line_col(self.text, s.start));
        ConfigError {
            file: self.file.to_path_buf(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            key: (!path.is_root()).then(|| path.to_string()),
            message: message.into(),
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let r = reword(e.message());
        let located = e.span().map(|span| {
            let path = path_at(self.doc, span.start).unwrap_or_default();
            (line_col(self.text, span.start), path)
        });
        let (pos, mut path) = match located {
            Some((pos, path)) => (Some(pos), path),
            None => (None, KeyPath::root()),
        };
        if let Some(missing) = &r.missing_key {
            path = path.key(missing);
        }
        ConfigError {
            file: self.file.to_path_buf(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            key: (!path.is_root()).then(|| path.to_string()),
            message: r.message,
        }
    }

    fn path(&self, base: &Path, raw: &str, key: &KeyPath) -> Result<PathBuf, ConfigError> {
        if raw.is_empty() {
            return Err(self.at(key, "must not be empty"));
        }
        Ok(base.join(raw))
    }

    fn resolve(&self, raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let root = KeyPath::root();

        let server_k = root.key("server");
        let data_dir = self.path(
            base,
            raw.server.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR),
            &server_k.key("data_dir"),
        )?;

        let storage = self.storage(&raw.storage, &data_dir)?;

        self.check_c2s(&raw.c2s)?;
        if raw.registration.min_password_len == 0 {
            return Err(self.at(
                &root.key("registration").key("min_password_len"),
                "must be at least 1",
            ));
        }
        self.check_limits(&raw.limits)?;

        let hosts = self.hosts(raw.host.as_deref(), base, &raw.registration)?;
        let admins = self.admins(&raw.server.admins, &hosts, &server_k.key("admins"))?;
        let listeners = self.listeners(raw.listen.as_deref())?;
        let s2s = self.s2s(raw.s2s, base)?;
        self.check_cm(&raw.cm, raw.listen.as_deref().unwrap_or_default())?;
        let cluster = self.cluster(raw.cluster, storage.backend)?;
        let components = self.components(&raw.component, &hosts)?;
        let router = self.router(raw.router)?;
        if router.users.is_empty()
            && let Some(i) = listeners
                .iter()
                .position(|l| l.kind == ListenerKind::Router)
        {
            return Err(self.at(
                &root.key("listen").index(i).key("kind"),
                "a router listener needs at least one [[router.user]] (name and secret) to authenticate components",
            ));
        }

        Ok(Config {
            server: ServerConfig {
                data_dir,
                log_level: raw.server.log_level,
                admins,
            },
            storage,
            c2s: raw.c2s,
            registration: raw.registration,
            limits: raw.limits,
            hosts,
            listeners,
            s2s,
            cm: raw.cm,
            cluster,
            components,
            router,
            modules: crate::modules::ModulesConfig::new(
                self.file.to_path_buf(),
                self.text,
                self.module_names(),
            ),
            source: None,
        })
    }

    /// The names under `[modules]` in file order (the serde map has none).
    fn module_names(&self) -> Vec<String> {
        match self.doc.get_ref().get("modules").map(Spanned::get_ref) {
            Some(toml::de::DeValue::Table(t)) => {
                let mut names: Vec<(usize, String)> = t
                    .iter()
                    .map(|(k, _)| (k.span().start, k.get_ref().to_string()))
                    .collect();
                names.sort();
                names.into_iter().map(|(_, n)| n).collect()
            }
            _ => Vec::new(),
        }
    }

    fn check_cm(&self, cm: &crate::cm::CmConfig, listen: &[RawListen]) -> Result<(), ConfigError> {
        let k = KeyPath::root().key("cm");
        for (name, value) in [
            ("heartbeat_secs", cm.heartbeat_secs),
            ("idle_timeout_secs", cm.idle_timeout_secs),
            ("resume_grace_secs", cm.resume_grace_secs),
        ] {
            if value == 0 {
                return Err(self.at(&k.key(name), "must be at least 1"));
            }
        }
        if cm.secret.as_deref() == Some("") {
            return Err(self.at(&k.key("secret"), "must not be empty"));
        }
        if cm.secret.is_none()
            && let Some(i) = listen.iter().position(|l| l.kind == ListenerKind::Cm)
        {
            return Err(self.at(
                &KeyPath::root().key("listen").index(i).key("kind"),
                "a \"cm\" listener needs [cm] secret = \"...\" (the connection managers' shared secret)",
            ));
        }
        Ok(())
    }

    fn check_c2s(&self, c2s: &C2sConfig) -> Result<(), ConfigError> {
        let k = KeyPath::root().key("c2s");
        if c2s.max_resources == 0 {
            return Err(self.at(&k.key("max_resources"), "must be at least 1"));
        }
        for (name, value) in [
            ("sm_request_after", u64::from(c2s.sm_request_after)),
            ("sm_request_after_secs", c2s.sm_request_after_secs),
            ("sm_ack_timeout_secs", c2s.sm_ack_timeout_secs),
            ("sm_max_unacked", c2s.sm_max_unacked as u64),
            ("sm_max_attempts", u64::from(c2s.sm_max_attempts)),
        ] {
            if value == 0 {
                return Err(self.at(&k.key(name), "must be at least 1"));
            }
        }
        if c2s.ping_interval_secs > 0 && c2s.ping_timeout_secs == 0 {
            return Err(self.at(
                &k.key("ping_timeout_secs"),
                "must be at least 1 while pings are on (set ping_interval_secs = 0 to turn them off)",
            ));
        }
        Ok(())
    }

    fn check_limits(&self, l: &Limits) -> Result<(), ConfigError> {
        let k = KeyPath::root().key("limits");
        // `offline_max = 0` is meaningful (store nothing), and a rate of 0 means unlimited; every
        // other limit at zero would refuse all traffic or disable a protection, which is never
        // what was meant.
        let must_be_positive: [(&str, u64); 24] = [
            ("stanza_bytes", l.stanza_bytes as u64),
            ("preauth_stanza_bytes", l.preauth_stanza_bytes as u64),
            ("s2s_stanza_bytes", l.s2s_stanza_bytes as u64),
            ("max_depth", l.max_depth as u64),
            ("max_elements", l.max_elements as u64),
            ("max_attrs", l.max_attrs as u64),
            ("max_ns_decls", l.max_ns_decls as u64),
            ("header_timeout_secs", l.header_timeout_secs),
            ("auth_timeout_secs", l.auth_timeout_secs),
            ("stanza_idle_timeout_secs", l.stanza_idle_timeout_secs),
            ("session_mailbox", l.session_mailbox as u64),
            ("write_timeout_secs", l.write_timeout_secs),
            ("delivery_wait_secs", l.delivery_wait_secs),
            // A burst of zero would make every byte wait; the rates have `0` = unlimited.
            ("c2s_burst_bytes", u64::from(l.c2s_burst_bytes)),
            ("c2s_burst_stanzas", u64::from(l.c2s_burst_stanzas)),
            ("s2s_burst_bytes", u64::from(l.s2s_burst_bytes)),
            ("s2s_burst_stanzas", u64::from(l.s2s_burst_stanzas)),
            ("component_burst_bytes", u64::from(l.component_burst_bytes)),
            (
                "component_burst_stanzas",
                u64::from(l.component_burst_stanzas),
            ),
            ("unauth_per_ip", u64::from(l.unauth_per_ip)),
            (
                "connects_per_minute_per_ip",
                u64::from(l.connects_per_minute_per_ip),
            ),
            ("auth_failures_per_ip", u64::from(l.auth_failures_per_ip)),
            ("auth_ban_threshold", u64::from(l.auth_ban_threshold)),
            ("auth_ban_secs", l.auth_ban_secs),
        ];
        for (name, value) in must_be_positive {
            if value == 0 {
                return Err(self.at(&k.key(name), "must be at least 1"));
            }
        }
        if l.preauth_stanza_bytes > l.stanza_bytes {
            return Err(self.at(
                &k.key("preauth_stanza_bytes"),
                format!(
                    "must not exceed stanza_bytes ({}): unauthenticated peers get the smaller limit",
                    l.stanza_bytes
                ),
            ));
        }
        if l.s2s_stanza_bytes < l.preauth_stanza_bytes {
            return Err(self.at(
                &k.key("s2s_stanza_bytes"),
                format!(
                    "must be at least preauth_stanza_bytes ({})",
                    l.preauth_stanza_bytes
                ),
            ));
        }
        if l.auth_ban_threshold < l.auth_failures_per_ip {
            return Err(self.at(
                &k.key("auth_ban_threshold"),
                format!(
                    "must be at least auth_failures_per_ip ({})",
                    l.auth_failures_per_ip
                ),
            ));
        }
        Ok(())
    }

    fn hosts(
        &self,
        raw: Option<&[RawHost]>,
        base: &Path,
        registration: &RegistrationConfig,
    ) -> Result<Vec<HostConfig>, ConfigError> {
        let k = KeyPath::root().key("host");
        let raw = match raw {
            Some(hosts) if !hosts.is_empty() => hosts,
            _ => {
                let mut e = self.at(
                    &k,
                    "at least one [[host]] is required, e.g.\n[[host]]\ndomain = \"example.com\"",
                );
                e.key = Some("host".to_owned());
                return Err(e);
            }
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut hosts = Vec::with_capacity(raw.len());
        for (i, h) in raw.iter().enumerate() {
            let hk = k.index(i);
            let domain = normalize_domain(&h.domain).map_err(|m| self.at(&hk.key("domain"), m))?;
            if let Some(first) = seen.insert(domain.clone(), i) {
                return Err(self.at(
                    &hk.key("domain"),
                    format!("duplicate host \"{domain}\" (already defined by host[{first}])"),
                ));
            }
            let certs = match (&h.cert, &h.key) {
                _ if h.certs.is_some() && (h.cert.is_some() || h.key.is_some()) => {
                    return Err(self.at(
                        &hk.key("certs"),
                        "give either \"cert\" and \"key\" (one certificate) or \"certs\" (several), not both",
                    ));
                }
                (Some(c), Some(kf)) => vec![CertKeyPaths {
                    cert: self.existing_file(base, c, &hk.key("cert"))?,
                    key: self.existing_file(base, kf, &hk.key("key"))?,
                }],
                (Some(_), None) => {
                    return Err(self.at(
                        &hk.key("cert"),
                        "\"cert\" is set but \"key\" is missing; give both, or neither for a self-signed certificate",
                    ));
                }
                (None, Some(_)) => {
                    return Err(self.at(
                        &hk.key("key"),
                        "\"key\" is set but \"cert\" is missing; give both, or neither for a self-signed certificate",
                    ));
                }
                (None, None) => self.cert_list(base, h.certs.as_deref(), &hk.key("certs"))?,
            };
            hosts.push(HostConfig {
                domain,
                certs,
                registration: h.registration.unwrap_or(registration.allow),
                modules_disabled: h.modules_disabled.clone(),
            });
        }
        Ok(hosts)
    }

    /// `[[host]] certs`: each entry's files must exist; an empty list is a mistake (leaving the
    /// key out is how to ask for a self-signed certificate). Whether two entries hold keys of
    /// one type is checked when the keys are loaded (`rookery_tls::CertStore::load`).
    fn cert_list(
        &self,
        base: &Path,
        raw: Option<&[RawCertKey]>,
        k: &KeyPath,
    ) -> Result<Vec<CertKeyPaths>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        if raw.is_empty() {
            return Err(self.at(
                k,
                "lists no certificate; give { cert = ..., key = ... } entries, or leave \"certs\" out for a self-signed certificate",
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(j, pair)| {
                let pk = k.index(j);
                Ok(CertKeyPaths {
                    cert: self.existing_file(base, &pair.cert, &pk.key("cert"))?,
                    key: self.existing_file(base, &pair.key, &pk.key("key"))?,
                })
            })
            .collect()
    }

    fn existing_file(&self, base: &Path, raw: &str, k: &KeyPath) -> Result<PathBuf, ConfigError> {
        let path = self.path(base, raw, k)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(self.at(k, format!("\"{}\" is not a regular file", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(self.at(k, format!("file \"{}\" does not exist", path.display())))
            }
            Err(e) => Err(self.at(k, format!("cannot access \"{}\": {e}", path.display()))),
        }
    }

    fn admins(
        &self,
        raw: &[String],
        hosts: &[HostConfig],
        k: &KeyPath,
    ) -> Result<Vec<BareJid>, ConfigError> {
        let mut admins = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let ak = k.index(i);
            let jid =
                BareJid::new(s).map_err(|e| self.at(&ak, format!("invalid JID \"{s}\": {e}")))?;
            if jid.node().is_none() {
                return Err(self.at(
                    &ak,
                    format!(
                        "\"{s}\" is not an account: an admin must be a bare JID like \"admin@{}\"",
                        jid.domain()
                    ),
                ));
            }
            let domain = jid.domain().as_str();
            if !hosts.iter().any(|h| h.domain == domain) {
                return Err(self.at(
                    &ak,
                    format!(
                        "\"{s}\" is not on a configured host (domain \"{domain}\" has no [[host]])"
                    ),
                ));
            }
            admins.push(jid);
        }
        Ok(admins)
    }

    fn listeners(&self, raw: Option<&[RawListen]>) -> Result<Vec<ListenerConfig>, ConfigError> {
        let k = KeyPath::root().key("listen");
        let Some(raw) = raw else {
            return Ok(ListenerConfig::defaults());
        };
        if raw.is_empty() {
            return Err(self.at(
                &k,
                "no listeners: remove \"listen = []\" to get the defaults, or add a [[listen]]",
            ));
        }
        let mut listeners: Vec<ListenerConfig> = Vec::with_capacity(raw.len());
        for (i, l) in raw.iter().enumerate() {
            let lk = k.index(i);
            let address: IpAddr = l.address.parse().map_err(|_| {
                self.at(
                    &lk.key("address"),
                    format!(
                        "invalid IP address \"{}\", expected an IPv4 or IPv6 address such as \"127.0.0.1\", \"0.0.0.0\" or \"::\"",
                        l.address.escape_debug()
                    ),
                )
            })?;
            let this = ListenerConfig {
                address,
                port: l.port,
                kind: l.kind,
            };
            // Port 0 asks the OS for a fresh port each time, so it never clashes.
            if l.port != 0
                && let Some(j) = listeners
                    .iter()
                    .position(|o| o.socket_addr() == this.socket_addr())
            {
                return Err(self.at(
                    &lk.key("port"),
                    format!("{} is already used by listen[{j}]", this.socket_addr()),
                ));
            }
            listeners.push(this);
        }
        Ok(listeners)
    }
}

/// Validates a host domain the way a JID domainpart is validated (IDNA, nameprep) and returns
/// it normalized (lowercase, no trailing dot). IP literals are refused: a virtual host needs a
/// DNS name for certificates, SRV records and the `*.domain` subdomains of components.
pub(crate) fn normalize_domain(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let quoted = raw.escape_debug();
    let unbracketed = raw.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "invalid domain \"{quoted}\": a host must be a DNS domain name, not an IP address"
        ));
    }
    let jid = Jid::new(raw).map_err(|e| format!("invalid domain \"{quoted}\": {e}"))?;
    if jid.node().is_some() || jid.resource().is_some() {
        return Err(format!(
            "invalid domain \"{quoted}\": expected a domain name without '@' or '/'"
        ));
    }
    let domain = jid.domain().as_str();
    if !domain.is_ascii() {
        return Err(format!(
            "invalid domain \"{quoted}\": internationalized domains are not supported yet; use the ASCII (\"xn--\") form"
        ));
    }
    Ok(domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::normalize_domain;

    #[test]
    fn domains() {
        assert_eq!(
            normalize_domain("Example.COM."),
            Ok("example.com".to_owned())
        );
        assert_eq!(normalize_domain("localhost"), Ok("localhost".to_owned()));
        for bad in [
            "",
            "a@b",
            "b/c",
            "127.0.0.1",
            "[::1]",
            "exa mple.com",
            "-x.com",
            "a..b",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
    }
}
