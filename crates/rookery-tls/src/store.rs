//! `CertStore`: the certified keys of each virtual host (one per key type, e.g. ECDSA and RSA
//! side by side), and the rustls `ServerConfig` that picks among them by SNI and by the
//! signature schemes the client offers. `rookery-net`'s listeners build their acceptors from
//! [`CertStore::server_config`] (Direct TLS at accept time, STARTTLS after `<proceed/>`); the
//! c2s negotiation handshakes with a [`ServedCert`] as resolver, which remembers the
//! certificate served, for the `tls-server-end-point` channel binding.

use crate::pem::load_pair;
use crate::{TlsError, selfsigned, tls_server_end_point};
use rustls::client::verify_server_name;
use rustls::server::{ClientHello, ParsedCertificate, ProducesTickets, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// One host's certificate source, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCert {
    /// The host's domain (an XMPP domain; ASCII, case-insensitive).
    pub domain: String,
    /// The host's certificate chains and keys, at most one per key type (ECDSA, RSA, Ed25519);
    /// empty for a self-signed certificate generated under `data_dir/certs`.
    pub pairs: Vec<CertKeyFiles>,
}

/// A PEM certificate chain (leaf first) and the PEM private key of its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl HostCert {
    /// A host that uses a generated self-signed certificate.
    pub fn self_signed(domain: impl Into<String>) -> HostCert {
        HostCert {
            domain: domain.into(),
            pairs: Vec::new(),
        }
    }

    /// A host with one provided certificate chain and key.
    pub fn provided(
        domain: impl Into<String>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> HostCert {
        HostCert {
            domain: domain.into(),
            pairs: vec![CertKeyFiles {
                cert: cert.into(),
                key: key.into(),
            }],
        }
    }
}

/// The certified keys of all hosts and the TLS server configuration built from them.
#[derive(Debug, Clone)]
pub struct CertStore {
    resolver: Arc<SniResolver>,
    /// Built once; `server_config` clones it to set ALPN per listener.
    base: Arc<ServerConfig>,
    /// Encrypts stateless TLS 1.3 session tickets for the client listeners that issue them
    /// (decision 0012): one for all of them, so a ticket from one port resumes on another.
    ticketer: Arc<dyn ProducesTickets>,
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
            let mut keys = Vec::with_capacity(host.pairs.len().max(1));
            for pair in &host.pairs {
                let certified = load_pair(&pair.cert, &pair.key, &provider)?;
                warn_if_not_covering(&certified, &domain, &pair.cert);
                let key = HostKey::new(certified);
                if let Some(same) = keys
                    .iter()
                    .find(|k: &&HostKey| k.algorithm == key.algorithm)
                {
                    return Err(invalid(
                        &host.domain,
                        &format!(
                            "two certificates with {:?} keys ({} and {}); give at most one per \
                             key type (e.g. one ECDSA and one RSA)",
                            key.algorithm,
                            same.source.display(),
                            pair.cert.display()
                        ),
                    ));
                }
                keys.push(key.with_source(&pair.cert));
            }
            if keys.is_empty() {
                let certified = selfsigned::load_or_generate(&domain, &certs_dir, &provider)?;
                keys.push(HostKey::new(certified));
            }
            // Cheapest signature first (decision 0012): an ECDSA P-256 signature costs the
            // server a few percent of an RSA-2048 one, and every current client accepts it.
            keys.sort_by_key(|k| preference(k.algorithm));
            entries.push(Entry { domain, keys });
        }
        let resolver = Arc::new(SniResolver { entries });
        let base = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        Ok(CertStore {
            resolver,
            base: Arc::new(base),
            ticketer: rustls::crypto::ring::Ticketer::new()?,
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

    /// Whether some host's full handshake costs an RSA signature: it has no certificate with a
    /// cheaper key (ECDSA, Ed25519). Session tickets pay for themselves there, since a resumed
    /// handshake skips the signature (decision 0012), and are left off by default elsewhere.
    pub fn some_host_signs_with_rsa(&self) -> bool {
        self.resolver
            .entries
            .iter()
            .any(|e| e.preferred().algorithm == SignatureAlgorithm::RSA)
    }

    /// The ticket encrypter shared by the listeners that issue TLS 1.3 session tickets: ring's
    /// ChaCha20-Poly1305 under a random key that never leaves memory, replaced every 6 hours
    /// (the previous key still decrypts for 6 more), so a ticket resumes for 6–12 hours and
    /// none survive a restart.
    pub fn ticketer(&self) -> Arc<dyn ProducesTickets> {
        self.ticketer.clone()
    }

    /// The leaf certificate the server presents for `sni` to a client that accepts every
    /// signature scheme (the preferred one of the host's certificates, ECDSA when it has one).
    /// A handshake's own choice is [`ServedCert::end_point`]'s.
    pub fn cert_der_for(&self, sni: Option<&str>) -> Option<CertificateDer<'static>> {
        self.resolver
            .choose(sni)
            .and_then(|e| e.preferred().key.cert.first().cloned())
    }

    /// The certified keys (chain and private key) the server has for `sni`, preferred first.
    /// Outgoing s2s streams present one of them as their client certificate
    /// (`s2s::s2s_client_config`), chosen by the schemes the peer asks for.
    pub(crate) fn certified_keys_for(&self, sni: Option<&str>) -> Vec<Arc<CertifiedKey>> {
        self.resolver
            .choose(sni)
            .map(|e| e.keys.iter().map(|k| k.key.clone()).collect())
            .unwrap_or_default()
    }

    /// A resolver for one handshake: it chooses as the configuration's own resolver does and
    /// remembers the choice. Set it as the handshake's `cert_resolver`.
    pub fn served_cert(&self) -> Arc<ServedCert> {
        Arc::new(ServedCert {
            resolver: self.resolver.clone(),
            chosen: Mutex::new(None),
        })
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

/// The order in which a host's keys are preferred: ECDSA, then Ed25519 (cheap too, but few
/// clients offer it), then RSA, then anything else.
fn preference(alg: SignatureAlgorithm) -> u8 {
    match alg {
        SignatureAlgorithm::ECDSA => 0,
        SignatureAlgorithm::ED25519 => 1,
        SignatureAlgorithm::RSA => 2,
        _ => 3,
    }
}

/// Every scheme rustls can sign TLS handshakes with; a key's own list is probed from it once.
const ALL_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// One certified key of a host, with what handshakes need to know about it without work.
#[derive(Debug)]
struct HostKey {
    key: Arc<CertifiedKey>,
    algorithm: SignatureAlgorithm,
    /// The schemes this key can sign with (a P-256 key: only ECDSA_NISTP256_SHA256).
    schemes: Vec<SignatureScheme>,
    /// `tls-server-end-point` data of the leaf (RFC 5929 §4.1), computed once here rather
    /// than per connection.
    end_point: Option<Arc<[u8]>>,
    /// The certificate file, for messages (empty for a generated certificate).
    source: PathBuf,
}

impl HostKey {
    fn new(certified: CertifiedKey) -> HostKey {
        let schemes = ALL_SCHEMES
            .iter()
            .copied()
            .filter(|s| certified.key.choose_scheme(&[*s]).is_some())
            .collect();
        let end_point = certified
            .cert
            .first()
            .and_then(|leaf| tls_server_end_point(leaf.as_ref()))
            .map(Arc::from);
        HostKey {
            algorithm: certified.key.algorithm(),
            key: Arc::new(certified),
            schemes,
            end_point,
            source: PathBuf::new(),
        }
    }

    fn with_source(mut self, path: &Path) -> HostKey {
        self.source = path.to_path_buf();
        self
    }

    fn signs_any(&self, offered: &[SignatureScheme]) -> bool {
        offered.iter().any(|s| self.schemes.contains(s))
    }
}

#[derive(Debug)]
struct Entry {
    domain: String,
    /// Never empty; preferred first.
    keys: Vec<HostKey>,
}

impl Entry {
    #[allow(clippy::indexing_slicing)]
    fn preferred(&self) -> &HostKey {
        // Invariant: `CertStore::load` gives every entry at least one key.
        &self.keys[0]
    }

    /// The first key (in order of preference) that can sign with a scheme the client offers;
    /// the preferred one if none can, and rustls then refuses the handshake as it would with a
    /// single certificate.
    fn for_schemes(&self, offered: &[SignatureScheme]) -> &HostKey {
        self.keys
            .iter()
            .find(|k| k.signs_any(offered))
            .unwrap_or_else(|| self.preferred())
    }
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
            .find(|e| covers(&e.preferred().key, &name))
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|e| covers(&e.preferred().key, &name))
            })
            .or(Some(first))
    }

    /// The host by SNI, then its key by the client's signature schemes.
    fn pick(&self, client_hello: &ClientHello<'_>) -> Option<&HostKey> {
        self.choose(client_hello.server_name())
            .map(|e| e.for_schemes(client_hello.signature_schemes()))
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(&client_hello).map(|k| k.key.clone())
    }
}

/// The certificate resolver of one handshake: it chooses as [`CertStore::server_config`]'s
/// resolver does and remembers what it chose, so that the channel binding hashes the
/// certificate this client was actually shown. A resumed TLS 1.3 handshake consults it too
/// (rustls resolves before it looks at the ticket), with the same SNI and schemes and so the
/// same choice as the handshake that issued the ticket.
#[derive(Debug)]
pub struct ServedCert {
    resolver: Arc<SniResolver>,
    /// The last choice: a HelloRetryRequest makes the client send a second ClientHello.
    chosen: Mutex<Option<Arc<[u8]>>>,
}

impl ServedCert {
    /// `tls-server-end-point` data (RFC 5929 §4.1) of the certificate served; `None` before
    /// the handshake chose one, or when the certificate's signature algorithm has none.
    pub fn end_point(&self) -> Option<Vec<u8>> {
        self.chosen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .map(<[u8]>::to_vec)
    }
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.resolver.pick(&client_hello)?;
        // One lock per handshake, never contended: the value is this connection's own.
        *self.chosen.lock().unwrap_or_else(PoisonError::into_inner) = key.end_point.clone();
        Some(key.key.clone())
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
