//! Real TLS handshakes (tokio-rustls over an in-memory pipe) with `s2s_client_config` and
//! `s2s_server_config`: which certificate each side presents and sees, that handshakes
//! complete without a client certificate and with untrusted certificates (dialback still
//! possible), ALPN for Direct TLS, TLS 1.2 peers, and the per-domain config cache.
#![allow(clippy::unwrap_used)]

mod common;
mod s2s_support;

use rookery_tls::{
    ALPN_XMPP_SERVER, CertError, S2sClientConfigs, client_config_insecure_for_tests,
    s2s_client_config, s2s_server_config,
};
use rustls::{ClientConfig, ServerConfig};
use s2s_support::*;
use std::sync::Arc;

#[tokio::test]
async fn outgoing_stream_presents_the_local_domain_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(tmp.path(), &ca);
    // Let's Encrypt style: serverAuth only, on both sides.
    let a = server_auth_leaf(&ca, &["a.test"]);
    let b = server_auth_leaf(&ca, &["b.test"]);
    // a.test is not the first host, so only a choice by local domain presents its cert.
    let ours = store(
        &data_dir(tmp.path(), "ours"),
        &[("first.test", None), ("a.test", Some(&a))],
    );
    let theirs = store(&data_dir(tmp.path(), "theirs"), &[("b.test", Some(&b))]);

    let client_config = s2s_client_config(&ours, "a.test", false).unwrap();
    let (s, c) = handshake(client_config, s2s_server_config(&theirs, &[]), "b.test").await;

    // The receiving server sees a.test's serverAuth-only certificate as the client cert…
    let client_chain = seen_by_server(&s);
    assert_eq!(client_chain.first(), Some(&a.der));
    assert_eq!(trust.verify_peer(&client_chain, "a.test", now()), Ok(()));
    assert!(matches!(
        trust.verify_peer(&client_chain, "b.test", now()),
        Err(CertError::NameMismatch { .. })
    ));
    // …and the initiating server sees b.test's, chosen by SNI.
    let server_chain = seen_by_client(&c);
    assert_eq!(server_chain.first(), Some(&b.der));
    assert_eq!(trust.verify_peer(&server_chain, "b.test", now()), Ok(()));
    assert_eq!(s.get_ref().1.server_name(), Some("b.test"));
}

#[tokio::test]
async fn incoming_stream_without_client_certificate_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(tmp.path(), &ca);
    let b = server_auth_leaf(&ca, &["b.test"]);
    let theirs = store(tmp.path(), &[("b.test", Some(&b))]);
    // A peer with no client certificate at all.
    let bare_client = Arc::new(client_config_insecure_for_tests());
    let (s, _c) = handshake(bare_client, s2s_server_config(&theirs, &[]), "b.test").await;
    let chain = seen_by_server(&s);
    assert!(chain.is_empty());
    assert_eq!(
        trust.verify_peer(&chain, "a.test", now()),
        Err(CertError::NoCertificate)
    );
}

#[tokio::test]
async fn untrusted_certificates_still_complete_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let trust = trust_in(tmp.path(), &ca("Rookery Test CA"));
    // Generated self-signed certificates on both sides: dialback territory.
    let ours = store(&data_dir(tmp.path(), "ours"), &[("a.test", None)]);
    let theirs = store(&data_dir(tmp.path(), "theirs"), &[("b.test", None)]);
    let (s, c) = handshake(
        s2s_client_config(&ours, "a.test", false).unwrap(),
        s2s_server_config(&theirs, &[]),
        "b.test",
    )
    .await;
    assert_eq!(
        trust.verify_peer(&seen_by_server(&s), "a.test", now()),
        Err(CertError::UnknownIssuer)
    );
    assert_eq!(
        trust.verify_peer(&seen_by_client(&c), "b.test", now()),
        Err(CertError::UnknownIssuer)
    );
}

#[tokio::test]
async fn direct_tls_negotiates_xmpp_server_alpn() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = store(&data_dir(tmp.path(), "ours"), &[("a.test", None)]);
    let theirs = store(&data_dir(tmp.path(), "theirs"), &[("b.test", None)]);
    let server_config = s2s_server_config(&theirs, &[ALPN_XMPP_SERVER]);

    let direct = s2s_client_config(&ours, "a.test", true).unwrap();
    let (s, c) = handshake(direct, server_config.clone(), "b.test").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(ALPN_XMPP_SERVER));
    assert_eq!(c.get_ref().1.alpn_protocol(), Some(ALPN_XMPP_SERVER));

    // STARTTLS offers no ALPN; the Direct TLS listener still accepts it.
    let starttls = s2s_client_config(&ours, "a.test", false).unwrap();
    let (s, _c) = handshake(starttls, server_config, "b.test").await;
    assert_eq!(s.get_ref().1.alpn_protocol(), None);
}

#[tokio::test]
async fn client_configs_are_cached_per_local_domain_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = store(tmp.path(), &[("a.test", None), ("c.test", None)]);
    let configs = S2sClientConfigs::new(ours.clone());
    let a = configs.get("a.test", false).unwrap();
    assert!(Arc::ptr_eq(&a, &configs.get("A.test.", false).unwrap()));
    assert!(!Arc::ptr_eq(&a, &configs.get("a.test", true).unwrap()));

    // The cached config for c.test presents c.test's certificate.
    let theirs = store(&data_dir(tmp.path(), "theirs"), &[("b.test", None)]);
    let (s, _c) = handshake(
        configs.get("c.test", false).unwrap(),
        s2s_server_config(&theirs, &[]),
        "b.test",
    )
    .await;
    assert_eq!(
        seen_by_server(&s).first(),
        ours.cert_der_for(Some("c.test")).as_ref()
    );
    assert_ne!(
        ours.cert_der_for(Some("c.test")),
        ours.cert_der_for(Some("a.test"))
    );
}

#[tokio::test]
async fn tls12_peers_work_in_both_directions() {
    use rookery_tls::InsecureServerCertVerifier;
    let tmp = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(tmp.path(), &ca);
    let ring = || Arc::new(rustls::crypto::ring::default_provider());
    let tls12 = &[&rustls::version::TLS12];

    // A TLS 1.2-only initiating peer with a client certificate, against our acceptor.
    let a = server_auth_leaf(&ca, &["a.test"]);
    let peer_client = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(tls12)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(InsecureServerCertVerifier::new()))
        .with_client_auth_cert(a.chain(), private_key(&a.key_pem))
        .unwrap();
    let ours = store(&data_dir(tmp.path(), "ours"), &[("b.test", None)]);
    let (s, _c) = handshake(
        Arc::new(peer_client),
        s2s_server_config(&ours, &[]),
        "b.test",
    )
    .await;
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        trust.verify_peer(&seen_by_server(&s), "a.test", now()),
        Ok(())
    );

    // Our connector against a TLS 1.2-only receiving peer.
    let b = server_auth_leaf(&ca, &["b.test"]);
    let peer_server = ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(tls12)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(b.chain(), private_key(&b.key_pem))
        .unwrap();
    let ours = store(&data_dir(tmp.path(), "ours2"), &[("a.test", None)]);
    let (_s, c) = handshake(
        s2s_client_config(&ours, "a.test", false).unwrap(),
        Arc::new(peer_server),
        "b.test",
    )
    .await;
    assert_eq!(
        trust.verify_peer(&seen_by_client(&c), "b.test", now()),
        Ok(())
    );
}
