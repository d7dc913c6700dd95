//! A host with an ECDSA and an RSA certificate side by side: real handshakes (tokio-rustls over
//! an in-memory pipe) show that the certificate follows the signature schemes the client
//! offers (ECDSA preferred), that `ServedCert` hashes the certificate actually served for
//! tls-server-end-point, that outgoing s2s presents the one the peer accepts, that two keys
//! of one type are refused, and when session tickets are on by default.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rcgen::PKCS_ECDSA_P256_SHA256;
use rookery_tls::{CertKeyFiles, CertStore, HostCert, OnlySchemes, TlsError, s2s_client_config};
use rustls::server::danger::ClientCertVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const RSA_ONLY: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA256,
];

/// (the store, the ECDSA leaf DER, the RSA leaf DER) for `dual.example`, RSA listed first so
/// that the preference for ECDSA is not just configuration order.
fn dual(dir: &Path) -> (CertStore, Vec<u8>, Vec<u8>) {
    let rsa = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256)
        .unwrap();
    let (rsa_cert, rsa_key, rsa_der) = sign(rsa, &["dual.example"]);
    let (ec_cert, ec_key, ec_der) = cert_with(&PKCS_ECDSA_P256_SHA256, &["dual.example"]);
    let host = HostCert {
        domain: "dual.example".into(),
        pairs: vec![
            CertKeyFiles {
                cert: write(dir, "rsa.pem", &rsa_cert),
                key: write(dir, "rsa.key", &rsa_key),
            },
            CertKeyFiles {
                cert: write(dir, "ec.pem", &ec_cert),
                key: write(dir, "ec.key", &ec_key),
            },
        ],
    };
    (CertStore::load(&[host], dir).unwrap(), ec_der, rsa_der)
}

fn client(
    versions: &[&'static SupportedProtocolVersion],
    schemes: Option<&'static [SignatureScheme]>,
) -> ClientConfig {
    let mut config = rookery_tls::client_config_insecure_for_tests_with_versions(versions);
    if let Some(schemes) = schemes {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(OnlySchemes::new(schemes)));
    }
    config
}

/// A handshake with `server` as configured by the store plus `resolver`, as the c2s listener
/// does it: the leaf the client saw, and the end-point binding the resolver recorded.
async fn served(store: &CertStore, client_config: ClientConfig) -> (Vec<u8>, Option<Vec<u8>>) {
    let served_cert = store.served_cert();
    let mut config = (*store.server_config(&[])).clone();
    config.cert_resolver = served_cert.clone();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (s, c) = tokio::join!(
        TlsAcceptor::from(Arc::new(config)).accept(a),
        TlsConnector::from(Arc::new(client_config)).connect(dns("dual.example"), b)
    );
    let (_s, c) = (s.unwrap(), c.unwrap());
    (served_leaf(&c), served_cert.end_point())
}

#[tokio::test]
async fn certificate_follows_the_client_signature_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ec_der, rsa_der) = dual(dir.path());
    for versions in [&[&TLS13][..], &[&TLS12][..]] {
        let (leaf, end_point) = served(&store, client(versions, None)).await;
        assert_eq!(leaf, ec_der, "a client accepting ECDSA gets ECDSA");
        assert_eq!(end_point, Some(Sha256::digest(&ec_der).to_vec()));

        let (leaf, end_point) = served(&store, client(versions, Some(RSA_ONLY))).await;
        assert_eq!(leaf, rsa_der, "a client without ECDSA gets RSA");
        assert_eq!(end_point, Some(Sha256::digest(&rsa_der).to_vec()));
    }
    // The store's own configuration (s2s listeners) chooses the same way.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (_s, c) = tokio::join!(
        TlsAcceptor::from(store.server_config(&[])).accept(a),
        TlsConnector::from(Arc::new(client(&[], Some(RSA_ONLY)))).connect(dns("dual.example"), b)
    );
    assert_eq!(served_leaf(&c.unwrap()), rsa_der);
    assert_eq!(
        store.cert_der_for(Some("dual.example")).unwrap().to_vec(),
        ec_der
    );
}

#[tokio::test]
async fn outgoing_s2s_presents_the_certificate_the_peer_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ec_der, rsa_der) = dual(dir.path());
    for (schemes, want) in [(None, &ec_der), (Some(RSA_ONLY), &rsa_der)] {
        let verifier: Arc<dyn ClientCertVerifier> = match schemes {
            Some(s) => Arc::new(OnlySchemes::new(s)),
            None => Arc::new(OnlySchemes::new(&[
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::RSA_PSS_SHA256,
            ])),
        };
        // The peer's server: any certificate of its own; it asks for ours.
        let peer_dir = tempfile::tempdir().unwrap();
        let peer =
            CertStore::load(&[HostCert::self_signed("peer.example")], peer_dir.path()).unwrap();
        let mut peer_config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(peer.server_config(&[]).cert_resolver.clone());
        peer_config.alpn_protocols.clear();
        let ours = s2s_client_config(&store, "dual.example", false).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (s, c) = tokio::join!(
            TlsAcceptor::from(Arc::new(peer_config)).accept(a),
            TlsConnector::from(ours).connect(dns("peer.example"), b)
        );
        c.unwrap();
        let s = s.unwrap();
        let presented = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert_eq!(&presented, want, "peer accepting {schemes:?}");
    }
}

#[test]
fn two_keys_of_one_type_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["two.example"]);
    let (c2, k2, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["two.example"]);
    let host = HostCert {
        domain: "two.example".into(),
        pairs: vec![
            CertKeyFiles {
                cert: write(dir.path(), "one.pem", &c1),
                key: write(dir.path(), "one.key", &k1),
            },
            CertKeyFiles {
                cert: write(dir.path(), "two.pem", &c2),
                key: write(dir.path(), "two.key", &k2),
            },
        ],
    };
    let err = CertStore::load(&[host], dir.path()).unwrap_err();
    assert!(matches!(err, TlsError::InvalidHost { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("one.pem") && msg.contains("two.pem") && msg.contains("one per key type"),
        "{msg}"
    );
}

#[test]
fn tickets_pay_only_where_a_host_signs_with_rsa() {
    let dir = tempfile::tempdir().unwrap();
    let (dual_store, _, _) = dual(dir.path());
    assert!(!dual_store.some_host_signs_with_rsa());
    let self_signed = CertStore::load(&[HostCert::self_signed("a.example")], dir.path()).unwrap();
    assert!(!self_signed.some_host_signs_with_rsa());
    let rsa = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256)
        .unwrap();
    let (cert, key, _) = sign(rsa, &["rsa.example"]);
    let hosts = [
        HostCert::self_signed("a.example"),
        HostCert::provided(
            "rsa.example",
            write(dir.path(), "only-rsa.pem", &cert),
            write(dir.path(), "only-rsa.key", &key),
        ),
    ];
    assert!(
        CertStore::load(&hosts, dir.path())
            .unwrap()
            .some_host_signs_with_rsa()
    );
}
