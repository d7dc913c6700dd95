//! `CertStore`: one certified key per virtual host, and the rustls `ServerConfig` that picks
//! among them by SNI. `rookery-net`'s listeners build their acceptors from
//! [`CertStore::server_config`] (Direct TLS at accept time, STARTTLS after `<proceed/>`), and
//! the c2s negotiation asks [`CertStore::cert_der_for`] which certificate was served, for the
//! `tls-server-end-point` channel binding.

use crate::pem::load_pair;
use crate::{TlsError, selfsigned};
use rustls::ServerConfig;
use rustls::client::verify_server_name;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, ServerName};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One host's certificate source, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCert {
    /// The host's domain (an XMPP domain; ASCII, case-insensitive).
    pub domain: String,
    /// PEM certificate chain, leaf first; `None` (together with `key`) for a self-signed
    /// certificate generated under `data_dir/certs`.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
}

impl HostCert {
    /// A host that uses a generated self-signed certificate.
    pub fn self_signed(domain: impl Into<String>) -> HostCert {
        HostCert {
            domain: domain.into(),
            cert: None,
            key: None,
        }
    }
}

/// The certified keys of all hosts and the TLS server configuration built from them.
#[derive(Debug, Clone)]
pub struct CertStore {
    resolver: Arc<SniResolver>,
    /// Built once; `server_config` clones it to set ALPN per listener.
    base: Arc<ServerConfig>,
}

impl CertStore {
    /// Loads every host's certificate and key; hosts without them get a self-signed
    /// certificate in `data_dir/certs/<domain>.crt` and `.key`, generated on first use and
    /// reused afterwards. The first host is the default for clients without (matching) SNI.
    pub fn load(hosts: &[HostCert], data_dir: &Path) -> Result<CertStore, TlsError> {
        if hosts.is_empty() {
            return Err(TlsError::NoHosts);
        }
        // Explicitly ring, independent of any process default, so the server never depends
        // on which provider some other crate installed first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs_dir = data_dir.join("certs");
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(hosts.len());
        for host in hosts {
            let domain = checked_domain(&host.domain)?;
            if !seen.insert(domain.clone()) {
                return Err(invalid(&host.domain, "listed more than once"));
            }
            let certified = match (&host.cert, &host.key) {
                (Some(cert), Some(key)) => {
                    let certified = load_pair(cert, key, &provider)?;
                    warn_if_not_covering(&certified, &domain, cert);
                    certified
                }
                (None, None) => selfsigned::load_or_generate(&domain, &certs_dir, &provider)?,
                (Some(_), None) => return Err(invalid(&host.domain, "cert given without key")),
                (None, Some(_)) => return Err(invalid(&host.domain, "key given without cert")),
            };
            entries.push(Entry {
                domain,
                key: Arc::new(certified),
            });
        }
        let resolver = Arc::new(SniResolver { entries });
        let base = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(CertStore {
            resolver,
            base: Arc::new(base),
        })
    }

    /// A server configuration (TLS 1.2 and 1.3, no client certificates) whose certificate is
    /// chosen by SNI, advertising `alpn` (e.g. `b"xmpp-client"` for XEP-0368 Direct TLS;
    /// empty for STARTTLS).
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut config = (*self.base).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// The leaf certificate the server presents for `sni` (the same choice the TLS handshake
    /// makes), for the `tls-server-end-point` channel binding.
    pub fn cert_der_for(&self, sni: Option<&str>) -> Option<CertificateDer<'static>> {
        self.resolver
            .choose(sni)
            .and_then(|e| e.key.cert.first().cloned())
    }

    /// The certified key (chain and private key) the server presents for `sni`, the same
    /// choice the TLS handshake makes. Outgoing s2s streams present it as their client
    /// certificate (`s2s::s2s_client_config`).
    pub(crate) fn certified_key_for(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.resolver.choose(sni).map(|e| e.key.clone())
    }

    /// The served domains, in configuration order.
    pub fn domains(&self) -> Vec<String> {
        self.resolver
            .entries
            .iter()
            .map(|e| e.domain.clone())
            .collect()
    }
}

fn invalid(domain: &str, reason: &str) -> TlsError {
    TlsError::InvalidHost {
        domain: domain.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Lowercases `domain` and checks it is a plausible DNS name. The domain becomes a file name
/// for generated certificates, so anything that could escape `data_dir/certs` is refused.
fn checked_domain(domain: &str) -> Result<String, TlsError> {
    let d = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let ok = !d.is_empty()
        && !d.starts_with('.')
        && !d.contains("..")
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    if ok {
        Ok(d)
    } else {
        Err(invalid(
            domain,
            "not a DNS domain name (ASCII letters, digits, '-', '_' and '.' only)",
        ))
    }
}

/// Whether the certificate's subject alternative names cover `name` (wildcards included,
/// with the same rules a TLS client applies).
fn covers(certified: &CertifiedKey, name: &str) -> bool {
    let Some(leaf) = certified.cert.first() else {
        return false;
    };
    let (Ok(parsed), Ok(server_name)) = (
        ParsedCertificate::try_from(leaf),
        ServerName::try_from(name),
    ) else {
        return false;
    };
    verify_server_name(&parsed, &server_name).is_ok()
}

/// A provided certificate that does not name its host is almost certainly a mistake, but
/// refusing to start could turn a renewal slip into an outage, so it is only logged.
fn warn_if_not_covering(certified: &CertifiedKey, domain: &str, cert: &Path) {
    if !covers(certified, domain) {
        tracing::warn!(
            cert = %cert.display(),
            "certificate does not cover host {domain}; clients will reject it"
        );
    }
}

#[derive(Debug)]
struct Entry {
    domain: String,
    key: Arc<CertifiedKey>,
}

/// Picks a host's certificate from the SNI name of the ClientHello.
#[derive(Debug)]
struct SniResolver {
    /// In configuration order; never empty (`CertStore::load` refuses no hosts).
    entries: Vec<Entry>,
}

impl SniResolver {
    /// Exact host first; then a host the name is a subdomain of (closest first), if its
    /// certificate covers the name (`conference.example.com` → `example.com`'s `*.` cert);
    /// then any host whose certificate covers the name; else the first host. Falling back
    /// rather than aborting lets clients that send no or an odd SNI (IP literal, old
    /// clients) still connect and decide themselves whether to trust the certificate.
    fn choose(&self, sni: Option<&str>) -> Option<&Entry> {
        let first = self.entries.first()?;
        let Some(sni) = sni else {
            return Some(first);
        };
        let name = sni.strip_suffix('.').unwrap_or(sni).to_ascii_lowercase();
        if let Some(exact) = self.entries.iter().find(|e| e.domain == name) {
            return Some(exact);
        }
        let mut parents: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| {
                name.strip_suffix(e.domain.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
            })
            .collect();
        parents.sort_by_key(|e| std::cmp::Reverse(e.domain.len()));
        parents
            .into_iter()
            .find(|e| covers(&e.key, &name))
            .or_else(|| self.entries.iter().find(|e| covers(&e.key, &name)))
            .or(Some(first))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
            .map(|e| e.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::checked_domain;

    #[test]
    fn domains_safe_as_file_names() {
        assert_eq!(
            checked_domain("Example.COM.").ok().as_deref(),
            Some("example.com")
        );
        for bad in ["", "../etc", "a/b", ".hidden", "a..b", "é.example", "a b"] {
            assert!(checked_domain(bad).is_err(), "{bad:?} accepted");
        }
    }
}
