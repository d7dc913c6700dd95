//! Test-only TLS client configuration (feature `test-util`): Rookery's integration tests
//! connect to servers with generated self-signed certificates that no trust store contains.
//! The certificate chain and name are not checked, but handshake signatures still are, so
//! the key exchange is real and channel bindings behave as in production.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};
use std::sync::Arc;

/// A server certificate verifier that trusts every certificate. **Test use only.**
#[derive(Debug)]
pub struct InsecureServerCertVerifier {
    provider: Arc<CryptoProvider>,
}

impl InsecureServerCertVerifier {
    /// A verifier checking handshake signatures with ring.
    pub fn new() -> InsecureServerCertVerifier {
        InsecureServerCertVerifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl Default for InsecureServerCertVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for InsecureServerCertVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
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

    fn verify_tls13_signature(
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

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
