//! Test-only TLS client configuration (feature `test-util`): Rookery's integration tests
//! connect to servers with generated self-signed certificates that no trust store contains.
//! The certificate chain and name are not checked, but handshake signatures still are, so
//! the key exchange is real and channel bindings behave as in production.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, SignatureScheme,
    SupportedProtocolVersion,
};
use std::sync::Arc;

/// A server certificate verifier that trusts every certificate but still checks handshake
/// signatures: the s2s verifier that defers judgement to `S2sTrust`. **Test use only.**
pub use crate::s2s::config::AnyChain as InsecureServerCertVerifier;

/// A TLS client configuration (ring; TLS 1.2 and 1.3) that accepts any server certificate.
/// **Test use only**: it offers no protection against a man-in-the-middle.
pub fn client_config_insecure_for_tests() -> ClientConfig {
    client_config_insecure_for_tests_with_versions(&[])
}

/// [`client_config_insecure_for_tests`] restricted to `versions` (all when empty), e.g.
/// `&[&rustls::version::TLS12]` to test TLS 1.2 behaviour. **Test use only.**
pub fn client_config_insecure_for_tests_with_versions(
    versions: &[&'static SupportedProtocolVersion],
) -> ClientConfig {
    let versions: &[&'static SupportedProtocolVersion] = if versions.is_empty() {
        rustls::ALL_VERSIONS
    } else {
        versions
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    #[allow(clippy::expect_used)]
    // Invariant: ring's default provider supports both TLS 1.2 and TLS 1.3, so no version
    // list drawn from rustls's own constants can leave it without cipher suites.
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("ring supports every rustls protocol version");
    builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(InsecureServerCertVerifier::new()))
        .with_no_client_auth()
}

/// [`InsecureServerCertVerifier`] that tells the peer it accepts only `schemes`: a client
/// without ECDSA, or a server asking for an RSA client certificate (it is a client-certificate
/// verifier too, accepting any chain). Handshake signatures are still checked. **Test use only.**
#[derive(Debug)]
pub struct OnlySchemes {
    schemes: &'static [SignatureScheme],
    inner: InsecureServerCertVerifier,
}

impl OnlySchemes {
    pub fn new(schemes: &'static [SignatureScheme]) -> Self {
        OnlySchemes {
            schemes,
            inner: InsecureServerCertVerifier::new(),
        }
    }
}

impl ServerCertVerifier for OnlySchemes {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(&self.inner, m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(&self.inner, m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.to_vec()
    }
}

impl ClientCertVerifier for OnlySchemes {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(&self.inner, m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(&self.inner, m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.to_vec()
    }
}
