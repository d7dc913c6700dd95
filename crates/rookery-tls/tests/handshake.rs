//! Real TLS handshakes (tokio-rustls over an in-memory pipe) against `CertStore`'s server
//! configuration: SNI selection, ALPN, and the channel bindings SASL uses.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
use rookery_tls::{CertStore, HostCert, tls_exporter, tls_server_end_point};
use rustls::pki_types::ServerName;
use rustls::version::{TLS12, TLS13};
use sha2::{Digest, Sha256, Sha384};
use std::net::{IpAddr, Ipv4Addr};

const LABEL: &[u8] = b"EXPORTER-Channel-Binding";

fn two_hosts(dir: &std::path::Path) -> CertStore {
    let hosts = [
        HostCert::self_signed("a.example"),
        HostCert::self_signed("b.example"),
    ];
    CertStore::load(&hosts, dir).unwrap()
}

#[tokio::test]
async fn sni_picks_the_right_host() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_hosts(dir.path());
    let a = store.cert_der_for(Some("a.example")).unwrap().to_vec();
    let b = store.cert_der_for(Some("b.example")).unwrap().to_vec();
    assert_ne!(a, b);

    for (sni, want) in [
        ("a.example", &a),
        ("b.example", &b),
        ("B.Example", &b),
        // A subdomain (component) gets its parent's wildcard certificate.
        ("conference.b.example", &b),
        // Unknown names fall back to the first host.
        ("other.test", &a),
        ("x.y.b.example", &a),
    ] {
        let (_s, c) = handshake(store.server_config(&[]), &[], dns(sni), &[]).await;
        assert_eq!(&served_leaf(&c), want, "SNI {sni}");
        assert_eq!(
            store.cert_der_for(Some(sni)).unwrap().to_vec(),
            *want,
            "cert_der_for({sni}) disagrees with the handshake"
        );
    }

    // Connecting to an IP address sends no SNI: the first host.
    let ip = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let (_s, c) = handshake(store.server_config(&[]), &[], ip, &[]).await;
    assert_eq!(served_leaf(&c), a);
    assert_eq!(store.cert_der_for(None).unwrap().to_vec(), a);
}

#[tokio::test]
async fn subdomain_without_covering_cert_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    // b.example's certificate only names b.example itself, not *.b.example.
    let (cert, key, b_der) = cert_with(&PKCS_ECDSA_P256_SHA256, &["b.example"]);
    let hosts = [
        HostCert::self_signed("a.example"),
        HostCert::provided(
            "b.example",
            write(dir.path(), "b.pem", &cert),
            write(dir.path(), "b.key", &key),
        ),
    ];
    let store = CertStore::load(&hosts, dir.path()).unwrap();
    let chosen = store.cert_der_for(Some("chat.b.example")).unwrap().to_vec();
    assert_ne!(chosen, b_der);
    assert_eq!(
        chosen,
        store.cert_der_for(Some("a.example")).unwrap().to_vec()
    );
}

#[tokio::test]
async fn alpn_is_advertised() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_hosts(dir.path());
    let config = store.server_config(&[b"xmpp-client"]);
    let (s, c) = handshake(config, &[], dns("a.example"), &[b"xmpp-client"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));
    // A configuration without ALPN leaves it unnegotiated.
    let (s, _c) = handshake(
        store.server_config(&[]),
        &[],
        dns("a.example"),
        &[b"xmpp-client"],
    )
    .await;
    assert_eq!(s.get_ref().1.alpn_protocol(), None);
}

#[tokio::test]
async fn tls_exporter_matches_on_tls13() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_hosts(dir.path());
    let (s, c) = handshake(store.server_config(&[]), &[&TLS13], dns("a.example"), &[]).await;
    let server_side = tls_exporter(s.get_ref().1).unwrap();
    assert_eq!(server_side.len(), 32);
    let client_side = c
        .get_ref()
        .1
        .export_keying_material(vec![0u8; 32], LABEL, None)
        .unwrap();
    assert_eq!(server_side, client_side);

    // Another connection gets a different binding.
    let (s2, _c2) = handshake(store.server_config(&[]), &[&TLS13], dns("a.example"), &[]).await;
    assert_ne!(tls_exporter(s2.get_ref().1).unwrap(), server_side);
}

#[tokio::test]
async fn tls_exporter_is_none_on_tls12() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_hosts(dir.path());
    let (s, _c) = handshake(store.server_config(&[]), &[&TLS12], dns("a.example"), &[]).await;
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls_exporter(s.get_ref().1), None);
}

#[tokio::test]
async fn server_end_point_of_the_served_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let store = two_hosts(dir.path());
    let (_s, c) = handshake(store.server_config(&[]), &[&TLS12], dns("b.example"), &[]).await;
    let served = served_leaf(&c);
    let expected = Sha256::digest(&served).to_vec();
    let der = store.cert_der_for(Some("b.example")).unwrap();
    assert_eq!(tls_server_end_point(der.as_ref()), Some(expected));
}

#[test]
fn server_end_point_hash_follows_signature_algorithm() {
    let (_, _, p256) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    assert_eq!(
        tls_server_end_point(&p256),
        Some(Sha256::digest(&p256).to_vec())
    );

    let (_, _, p384) = cert_with(&PKCS_ECDSA_P384_SHA384, &["example.com"]);
    assert_eq!(
        tls_server_end_point(&p384),
        Some(Sha384::digest(&p384).to_vec())
    );

    let rsa = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256)
        .unwrap();
    let (_, _, rsa_der) = sign(rsa, &["example.com"]);
    assert_eq!(
        tls_server_end_point(&rsa_der),
        Some(Sha256::digest(&rsa_der).to_vec())
    );

    let (_, _, ed) = cert_with(&PKCS_ED25519, &["example.com"]);
    assert_eq!(tls_server_end_point(&ed), None);
}

#[tokio::test]
async fn rsa_pkcs1_host_completes_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem(), &rcgen::PKCS_RSA_SHA256)
        .unwrap();
    let (cert, key, der) = sign(rsa, &["rsa.example"]);
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs8_inner_key(&pem_body(&key)));
    let hosts = [HostCert::provided(
        "rsa.example",
        write(dir.path(), "rsa.pem", &cert),
        write(dir.path(), "rsa.key", &pkcs1),
    )];
    let store = CertStore::load(&hosts, dir.path()).unwrap();
    for versions in [&[&TLS12][..], &[&TLS13][..]] {
        let (_s, c) = handshake(store.server_config(&[]), versions, dns("rsa.example"), &[]).await;
        assert_eq!(served_leaf(&c), der);
    }
}
