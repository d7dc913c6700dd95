//! rookery-tls: certificates and the rustls server configuration.
//!
//! The `rookery` binary turns the configured `[[host]]`s into [`HostCert`]s and calls
//! [`CertStore::load`] at start-up, before anything binds; hosts without a certificate get a
//! generated self-signed one. `rookery-net`'s listeners build their TLS acceptors from
//! [`CertStore::server_config`] (the certificate is chosen per connection by SNI and, when a
//! host has several, by the client's signature schemes), and the c2s negotiation passes
//! channel bindings — [`tls_exporter`] and the [`ServedCert`]'s `tls-server-end-point` — to
//! SASL for SCRAM-*-PLUS.
//!
//! For federation, the s2s actors connect with [`S2sClientConfigs`] and accept with
//! [`s2s_server_config`]; those handshakes accept any peer certificate, and the actor then
//! asks [`S2sTrust::verify_peer`] whether the peer's chain authenticates its domain (SASL
//! EXTERNAL) or whether to fall back to dialback.
//!
//! Only the ring crypto provider is used (never aws-lc-rs).

mod binding;
mod error;
mod identity;
mod pem;
mod s2s;
mod selfsigned;
mod store;
#[cfg(any(test, feature = "test-util"))]
mod testutil;

pub use binding::{tls_exporter, tls_server_end_point};
pub use error::TlsError;
pub use identity::{Identity, cert_identities};
pub use s2s::{
    ALPN_XMPP_SERVER, CertError, S2sClientConfigs, S2sTrust, s2s_client_config, s2s_server_config,
};
pub use store::{CertKeyFiles, CertStore, HostCert, ServedCert};
#[cfg(any(test, feature = "test-util"))]
pub use testutil::{
    InsecureServerCertVerifier, OnlySchemes, client_config_insecure_for_tests,
    client_config_insecure_for_tests_with_versions,
};

/// Installs ring as the process-wide default rustls crypto provider, for code that builds
/// rustls configurations without naming a provider (e.g. outgoing s2s connections). Safe to
/// call any number of times, from any thread.
pub fn install_crypto_provider() {
    // `Err` means a default is already installed — by an earlier call or by another crate.
    // Either way a process default now exists, which is all callers rely on.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn install_is_idempotent() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
