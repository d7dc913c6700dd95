//! rustls configurations for s2s streams, in both directions.
//!
//! Where this sits: `rookery-net`'s outgoing s2s actor connects with a config from
//! [`S2sClientConfigs::get`] (SNI = the remote domain, RFC 7590 §3.5 / RFC 6120 §13.7.2.1),
//! the s2s listener accepts with [`s2s_server_config`]; after either handshake the actor calls
//! [`crate::S2sTrust::verify_peer`] on `peer_certificates()`.
//!
//! Both verifiers here accept any certificate chain but still check the handshake signature,
//! so the peer has proven it holds the key of the certificate it showed, and `verify_peer`
//! can judge the chain afterwards. Refusing at the TLS layer would rule out dialback over
//! unauthenticated TLS (RFC 7590 §3.4), which is still how much of the network federates.

use crate::{CertStore, TlsError};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The ALPN protocol name of XMPP server-to-server streams over Direct TLS (XEP-0368 §3).
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// TLS 1.3 and 1.2, as for c2s (RFC 7590 §3.1 requires 1.2 support; 1.3 preferred).
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client configuration for an outgoing s2s stream from `local_domain`: it presents a
/// certificate `certs` serves for `local_domain` (the host chosen as SNI would choose it; of
/// its certificates, the preferred one the peer accepts) as the TLS client certificate, so the peer can offer SASL EXTERNAL; offers ALPN `xmpp-server` when
/// `direct_tls` (XEP-0368), none for STARTTLS. The caller sets SNI to the remote domain when
/// it connects. The server's chain is not judged here: call `verify_peer` after the handshake.
///
/// One configuration per local domain: its TLS session cache would otherwise resume a session
/// made under another domain's client certificate.
pub fn s2s_client_config(
    certs: &CertStore,
    local_domain: &str,
    direct_tls: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let local = local_domain
        .strip_suffix('.')
        .unwrap_or(local_domain)
        .to_ascii_lowercase();
    let keys = certs.certified_keys_for(Some(&local));
    if keys.is_empty() {
        return Err(TlsError::InvalidHost {
            domain: local_domain.to_owned(),
            reason: "no certificate to present on outgoing s2s streams".to_owned(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyChain { provider }))
        .with_client_cert_resolver(Arc::new(LocalCert(keys)));
    if direct_tls {
        config.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
    }
    Ok(Arc::new(config))
}

/// A server configuration for incoming s2s streams: the certificate is chosen by SNI exactly
/// as [`CertStore::server_config`] chooses it; a client certificate is requested but not
/// required, and any chain is accepted (signature checked) so the caller can judge it with
/// `verify_peer` for SASL EXTERNAL. `alpn` is what Direct TLS listeners accept
/// (`&[ALPN_XMPP_SERVER]`); empty for STARTTLS.
pub fn s2s_server_config(certs: &CertStore, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The resolver is the CertStore's own, so SNI picks the same certificate as for c2s.
    let resolver = certs.server_config(&[]).cert_resolver.clone();
    #[allow(clippy::expect_used)]
    // Invariant: ring supports TLS 1.2 and 1.3 (CertStore::load built a config with the same
    // provider and versions before any CertStore exists).
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .expect("ring supports TLS 1.2 and 1.3");
    let mut config = builder
        .with_client_cert_verifier(Arc::new(AnyChain { provider }))
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Cached [`s2s_client_config`]s keyed by (local domain, Direct TLS): building one is not
/// free, and reusing it lets TLS sessions to the same peer resume.
#[derive(Debug)]
pub struct S2sClientConfigs {
    certs: CertStore,
    cache: Mutex<HashMap<(String, bool), Arc<ClientConfig>>>,
}

/// Entries are our own domains × 2, so this is never reached in practice; it only bounds the
/// map should a caller pass arbitrary names.
const MAX_CACHED: usize = 1024;

impl S2sClientConfigs {
    /// An empty cache over `certs`.
    pub fn new(certs: CertStore) -> S2sClientConfigs {
        S2sClientConfigs {
            certs,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client configuration for streams from `local_domain`, built on first use.
    pub fn get(&self, local_domain: &str, direct_tls: bool) -> Result<Arc<ClientConfig>, TlsError> {
        let key = (
            local_domain
                .strip_suffix('.')
                .unwrap_or(local_domain)
                .to_ascii_lowercase(),
            direct_tls,
        );
        // A panic elsewhere while holding the lock cannot leave the map inconsistent (each
        // operation is a single insert or lookup), so a poisoned lock is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = cache.get(&key) {
            return Ok(config.clone());
        }
        let config = s2s_client_config(&self.certs, &key.0, direct_tls)?;
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, config.clone());
        Ok(config)
    }
}

/// Presents the local domain's certificate whenever the server asks for a client certificate:
/// of the domain's certificates (preferred first, never empty), the first whose key can sign
/// with a scheme the server accepts, else the preferred one. The server's CA hints are
/// ignored: a peer may well accept a CA it did not list.
#[derive(Debug)]
struct LocalCert(Vec<Arc<CertifiedKey>>);

impl ResolvesClientCert for LocalCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .iter()
            .find(|k| k.key.choose_scheme(sigschemes).is_some())
            .or_else(|| self.0.first())
            .cloned()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any certificate chain from the peer, in either role, while verifying the
/// handshake signatures with ring. Judgement is deferred to `S2sTrust::verify_peer`.
///
/// Tests use it as their TLS client verifier too (`InsecureServerCertVerifier`, feature
/// `test-util`): chain and name unchecked, handshake signatures still verified.
#[derive(Debug)]
pub struct AnyChain {
    provider: Arc<CryptoProvider>,
}

impl Default for AnyChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AnyChain {
    /// A verifier checking handshake signatures with ring.
    pub fn new() -> AnyChain {
        AnyChain {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Deliberately not judged here: see the module docs (dialback over unauthenticated
        // TLS); the caller runs verify_peer before trusting the peer's identity.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for AnyChain {
    /// Request a certificate, so peers that have one send it (SASL EXTERNAL needs it)…
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// …but do not require one: most servers connect without, and dialback still works.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No CA hints: an empty list asks the client for whatever certificate it has
    /// (RFC 8446 §4.2.4 / RFC 5246 §7.4.4), which is the one for its domain.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately not judged here, as for the server direction above.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
