//! Raw `[s2s]` as written in the file, and its validation into `S2sConfig`: domains are
//! normalised like `[[host]]` domains, addresses parsed, CA files must exist, and a domain can't
//! be both allowed and denied.

use super::Cx;
use crate::locate::KeyPath;
use crate::s2s::{S2sConfig, S2sDomain, StaticRoute};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawS2s {
    enabled: bool,
    require_tls: bool,
    require_valid_certs: bool,
    allow_dialback: bool,
    use_webpki_roots: bool,
    ca_files: Vec<String>,
    connect_timeout_secs: u64,
    idle_timeout_secs: u64,
    queue_max: usize,
    dialback_secret: Option<String>,
    nameserver: Option<String>,
    allow: Vec<String>,
    deny: Vec<String>,
    domain: Vec<RawDomain>,
    route: Vec<RawRoute>,
}

impl Default for RawS2s {
    fn default() -> Self {
        let d = S2sConfig::default();
        RawS2s {
            enabled: d.enabled,
            require_tls: d.require_tls,
            require_valid_certs: d.require_valid_certs,
            allow_dialback: d.allow_dialback,
            use_webpki_roots: d.use_webpki_roots,
            ca_files: Vec::new(),
            connect_timeout_secs: d.connect_timeout_secs,
            idle_timeout_secs: d.idle_timeout_secs,
            queue_max: d.queue_max,
            dialback_secret: None,
            nameserver: None,
            allow: Vec::new(),
            deny: Vec::new(),
            domain: Vec::new(),
            route: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDomain {
    domain: String,
    #[serde(default)]
    require_valid_certs: Option<bool>,
    #[serde(default)]
    allow_dialback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    domain: String,
    address: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    direct_tls: bool,
}

fn default_port() -> u16 {
    5269
}

impl Cx<'_> {
    pub(super) fn s2s(&self, raw: RawS2s, base: &Path) -> Result<S2sConfig, crate::ConfigError> {
        let k = KeyPath::root().key("s2s");
        for (name, v) in [
            ("connect_timeout_secs", raw.connect_timeout_secs),
            ("idle_timeout_secs", raw.idle_timeout_secs),
            ("queue_max", raw.queue_max as u64),
        ] {
            if v == 0 {
                return Err(self.at(&k.key(name), "must be at least 1"));
            }
        }
        if raw.require_valid_certs && !raw.use_webpki_roots && raw.ca_files.is_empty() {
            return Err(self.at(
                &k.key("require_valid_certs"),
                "no trust anchors: set use_webpki_roots = true or give ca_files",
            ));
        }
        let mut ca_files = Vec::new();
        for (i, f) in raw.ca_files.iter().enumerate() {
            ca_files.push(self.existing_file(base, f, &k.key("ca_files").index(i))?);
        }
        if raw.dialback_secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(self.at(
                &k.key("dialback_secret"),
                "must be at least 16 characters (it authenticates our domains to peers)",
            ));
        }
        let nameserver = match &raw.nameserver {
            None => None,
            Some(s) => Some(parse_nameserver(s).ok_or_else(|| {
                self.at(
                    &k.key("nameserver"),
                    format!("\"{s}\" is not an address like \"127.0.0.1:53\" or \"127.0.0.1\""),
                )
            })?),
        };
        let allow = self.domains(&raw.allow, &k.key("allow"))?;
        let deny = self.domains(&raw.deny, &k.key("deny"))?;
        if let Some((i, d)) = allow.iter().enumerate().find(|(_, d)| deny.contains(d)) {
            return Err(self.at(
                &k.key("allow").index(i),
                format!("\"{d}\" is both allowed and denied"),
            ));
        }
        let mut domains = Vec::new();
        for (i, d) in raw.domain.iter().enumerate() {
            let dk = k.key("domain").index(i).key("domain");
            domains.push(S2sDomain {
                domain: self.remote_domain(&d.domain, &dk)?,
                require_valid_certs: d.require_valid_certs,
                allow_dialback: d.allow_dialback,
            });
        }
        let mut routes = Vec::new();
        for (i, r) in raw.route.iter().enumerate() {
            let rk = k.key("route").index(i);
            let address: IpAddr = r.address.parse().map_err(|_| {
                self.at(
                    &rk.key("address"),
                    format!("\"{}\" is not an IP address", r.address),
                )
            })?;
            if r.port == 0 {
                return Err(self.at(&rk.key("port"), "must not be 0"));
            }
            routes.push(StaticRoute {
                domain: self.remote_domain(&r.domain, &rk.key("domain"))?,
                address,
                port: r.port,
                direct_tls: r.direct_tls,
            });
        }
        Ok(S2sConfig {
            enabled: raw.enabled,
            require_tls: raw.require_tls,
            require_valid_certs: raw.require_valid_certs,
            allow_dialback: raw.allow_dialback,
            use_webpki_roots: raw.use_webpki_roots,
            ca_files,
            connect_timeout_secs: raw.connect_timeout_secs,
            idle_timeout_secs: raw.idle_timeout_secs,
            queue_max: raw.queue_max,
            dialback_secret: raw.dialback_secret,
            nameserver,
            allow,
            deny,
            domains,
            routes,
        })
    }

    fn domains(&self, raw: &[String], k: &KeyPath) -> Result<Vec<String>, crate::ConfigError> {
        raw.iter()
            .enumerate()
            .map(|(i, d)| self.remote_domain(d, &k.index(i)))
            .collect()
    }

    fn remote_domain(&self, raw: &str, k: &KeyPath) -> Result<String, crate::ConfigError> {
        crate::resolve::normalize_domain(raw)
            .map_err(|why| self.at(k, format!("invalid domain \"{raw}\": {why}")))
    }
}

fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}
