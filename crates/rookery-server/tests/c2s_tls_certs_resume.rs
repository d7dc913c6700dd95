//! TLS on a real c2s listener, with rustls' client over STARTTLS (decision 0012):
//! - with an RSA certificate (tickets on by default), a client that comes back with the
//!   session ticket of its first connection resumes (no certificate, no signature), then logs
//!   in with SCRAM-SHA-1-PLUS (`tls-exporter`), binds and makes a round trip — the resumed
//!   connection works as a full one; with ECDSA only, or `[c2s] tls_session_tickets = false`,
//!   it gets no ticket and a full handshake, and `true` turns them on for ECDSA;
//! - a host with an RSA and an ECDSA certificate serves ECDSA to a client that accepts it and
//!   RSA to one that does not, and SCRAM-SHA-1-PLUS with `tls-server-end-point` succeeds with
//!   either: the binding hashes the certificate that client was shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_config::ListenerKind;
use rookery_testkit::net::c2s::{self, Tls, bind_and_ping, conn, exporter, scram_plus};
use rookery_testkit::net::{LocalOpts, TestServer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_rustls::rustls::{self, ClientConfig, HandshakeKind, SignatureScheme};

/// A server for `localhost` with `host` in its `[[host]]` (certificates), `extra` more config,
/// a c2s listener and the account juliet.
async fn start(host: &str, extra: &str) -> (TestServer, SocketAddr) {
    let s = TestServer::local_with(LocalOpts {
        c2s: String::new(),
        host: host.to_owned(),
        listeners: vec!["c2s"],
        extra: extra.to_owned(),
    })
    .await;
    s.account("juliet").await;
    let addr = s.addr(ListenerKind::C2s);
    (s, addr)
}

/// Connects and STARTTLS with `config` (the features are not needed here).
async fn tls_stream(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    c2s::tls_stream(addr, config).await.0
}

fn resuming_client() -> Arc<ClientConfig> {
    let mut config = rookery_tls::client_config_insecure_for_tests();
    config.resumption = rustls::client::Resumption::in_memory_sessions(8);
    Arc::new(config)
}

/// A first login with a full handshake; the session ticket arrives with the server's first
/// bytes after it (read during the login).
async fn first_login(addr: SocketAddr, config: &Arc<ClientConfig>) {
    let mut s = tls_stream(addr, config.clone()).await;
    assert_eq!(conn(&s).handshake_kind(), Some(HandshakeKind::Full));
    let cb = exporter(&s);
    assert!(scram_plus(&mut s, "tls-exporter", &cb).await);
    bind_and_ping(&mut s, "first").await;
}

/// An RSA-2048 certificate for localhost (the checked-in test key; ring cannot generate RSA
/// keys), written under `dir`: (`cert = ...` and `key = ...` lines, the certificate's DER).
fn rsa_host(dir: &std::path::Path) -> (String, Vec<u8>) {
    let key_pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rookery-tls/tests/data/test-rsa2048.pkcs8.pem"
    ))
    .unwrap();
    let key =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join("rsa.pem"), dir.join("rsa.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, &key_pem).unwrap();
    (
        format!("cert = \"{}\"\nkey = \"{}\"", c.display(), k.display()),
        cert.der().to_vec(),
    )
}

#[tokio::test]
async fn a_reconnecting_client_resumes_and_logs_in() {
    let certs = tempfile::tempdir().unwrap();
    let (host, _) = rsa_host(certs.path());
    let (_s, addr) = start(&host, "").await;
    let config = resuming_client();
    first_login(addr, &config).await;

    let mut s = tls_stream(addr, config.clone()).await;
    assert_eq!(conn(&s).handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(
        conn(&s).protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // The binding of the resumed connection is its own (a fresh key exchange): a wrong one
    // would fail here.
    let cb = exporter(&s);
    assert!(scram_plus(&mut s, "tls-exporter", &cb).await);
    bind_and_ping(&mut s, "second").await;

    // And once more: the resumed connection brought a ticket of its own.
    let s = tls_stream(addr, config).await;
    assert_eq!(conn(&s).handshake_kind(), Some(HandshakeKind::Resumed));
}

/// The second connection's handshake on a server with `host` in its `[[host]]` and `extra`.
async fn second_handshake(host: &str, extra: &str) -> HandshakeKind {
    let (_s, addr) = start(host, extra).await;
    let config = resuming_client();
    first_login(addr, &config).await;
    let s = tls_stream(addr, config).await;
    conn(&s).handshake_kind().unwrap()
}

#[tokio::test]
async fn tickets_default_to_off_with_ecdsa_and_follow_the_setting() {
    // Zero-config: a generated ECDSA certificate.
    assert_eq!(second_handshake("", "").await, HandshakeKind::Full);
    let on = "[c2s]\ntls_session_tickets = true\n";
    assert_eq!(second_handshake("", on).await, HandshakeKind::Resumed);
    let certs = tempfile::tempdir().unwrap();
    let (rsa, _) = rsa_host(certs.path());
    let off = "[c2s]\ntls_session_tickets = false\n";
    assert_eq!(second_handshake(&rsa, off).await, HandshakeKind::Full);
}

#[tokio::test]
async fn ecdsa_and_rsa_side_by_side_with_end_point_binding() {
    let certs = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = certs.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (_, rsa_der) = rsa_host(certs.path());
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&ec)
        .unwrap();
    let host = format!(
        "certs = [\n  {{ cert = \"{}\", key = \"{}\" }},\n  {{ cert = \"{}\", key = \"{}\" }},\n]",
        certs.path().join("rsa.pem").display(),
        certs.path().join("rsa.key").display(),
        write("ec.pem", &ec_cert.pem()),
        write("ec.key", &ec.serialize_pem()),
    );
    let (_s, addr) = start(&host, "").await;

    let default = Arc::new(rookery_tls::client_config_insecure_for_tests());
    let mut rsa_only = rookery_tls::client_config_insecure_for_tests();
    rsa_only
        .dangerous()
        .set_certificate_verifier(Arc::new(rookery_tls::OnlySchemes::new(&[
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ])));
    for (config, want) in [
        (default, ec_cert.der().to_vec()),
        (Arc::new(rsa_only), rsa_der),
    ] {
        let mut s = tls_stream(addr, config).await;
        let leaf = conn(&s).peer_certificates().unwrap()[0].to_vec();
        assert_eq!(leaf, want);
        // RFC 5929 §4.1: SHA-256 for both (ecdsa-with-SHA256, sha256WithRSAEncryption).
        let end_point = rookery_tls::tls_server_end_point(&leaf).unwrap();
        assert!(scram_plus(&mut s, "tls-server-end-point", &end_point).await);
        bind_and_ping(&mut s, "r").await;
    }
}
