//! `S2sTrust::verify_peer` against certificates from a test CA made with rcgen: each kind of
//! certificate accepted or refused with the right `CertError` (EKU in both directions,
//! validity dates, unknown issuers, DNS-ID / id-on-xmppAddr / SRV-ID, wildcards, CN never
//! used, name-constrained CAs, pinned self-signed peers).
#![allow(clippy::unwrap_used)]

mod common;
mod s2s_support;

use common::write;
use rcgen::{DnType, ExtendedKeyUsagePurpose as Eku, GeneralSubtree, NameConstraints};
use rookery_tls::{CertError, CertStore, HostCert, Identity, S2sTrust, TlsError, cert_identities};
use rustls::pki_types::{CertificateDer, UnixTime};
use s2s_support::*;
use std::time::Duration;
use time::OffsetDateTime;

#[test]
fn server_auth_only_leaf_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let leaf = server_auth_leaf(&ca, &["a.test"]);
    assert_eq!(trust.verify_peer(&leaf.chain(), "a.test", now()), Ok(()));
    assert_eq!(trust.verify_peer(&leaf.chain(), "A.Test.", now()), Ok(()));
}

#[test]
fn client_auth_only_and_eku_less_leaves_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let client_only = leaf(&ca, |p| {
        dns(p, &["a.test"]);
        p.extended_key_usages = vec![Eku::ClientAuth];
    });
    assert_eq!(
        trust.verify_peer(&client_only.chain(), "a.test", now()),
        Ok(())
    );
    let no_eku = leaf(&ca, |p| dns(p, &["a.test"]));
    assert_eq!(trust.verify_peer(&no_eku.chain(), "a.test", now()), Ok(()));
}

#[test]
fn other_eku_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let code_signing = leaf(&ca, |p| {
        dns(p, &["a.test"]);
        p.extended_key_usages = vec![Eku::CodeSigning, Eku::EmailProtection];
    });
    assert_eq!(
        trust.verify_peer(&code_signing.chain(), "a.test", now()),
        Err(CertError::BadEku)
    );
}

#[test]
fn validity_dates_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let today = OffsetDateTime::now_utc();
    let expired = leaf(&ca, |p| {
        dns(p, &["a.test"]);
        p.not_before = today - time::Duration::days(30);
        p.not_after = today - time::Duration::days(1);
    });
    assert_eq!(
        trust.verify_peer(&expired.chain(), "a.test", now()),
        Err(CertError::Expired)
    );
    let future = leaf(&ca, |p| {
        dns(p, &["a.test"]);
        p.not_before = today + time::Duration::days(1);
        p.not_after = today + time::Duration::days(30);
    });
    assert_eq!(
        trust.verify_peer(&future.chain(), "a.test", now()),
        Err(CertError::NotYetValid)
    );
    // `now` is the caller's: the same certificate judged at another time.
    let later = UnixTime::since_unix_epoch(Duration::from_secs(
        (today + time::Duration::days(2)).unix_timestamp() as u64,
    ));
    assert_eq!(trust.verify_peer(&future.chain(), "a.test", later), Ok(()));
}

#[test]
fn unknown_issuers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &trusted);
    let stranger = server_auth_leaf(&ca("Somebody Else's CA"), &["a.test"]);
    assert_eq!(
        trust.verify_peer(&stranger.chain(), "a.test", now()),
        Err(CertError::UnknownIssuer)
    );
    // Trust is judged before the name.
    assert_eq!(
        trust.verify_peer(&stranger.chain(), "b.test", now()),
        Err(CertError::UnknownIssuer)
    );
    // Mozilla's roots do not include the test CA either.
    let mozilla = S2sTrust::new(true, &[]).unwrap();
    let ours = server_auth_leaf(&trusted, &["a.test"]);
    assert_eq!(
        mozilla.verify_peer(&ours.chain(), "a.test", now()),
        Err(CertError::UnknownIssuer)
    );
}

#[test]
fn intermediates_sent_by_the_peer_complete_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("Rookery Test Root");
    let trust = trust_in(dir.path(), &root);
    let (inter, inter_der) = intermediate(&root);
    let leaf = server_auth_leaf(&inter, &["a.test"]);
    let chain = vec![leaf.der.clone(), inter_der];
    assert_eq!(trust.verify_peer(&chain, "a.test", now()), Ok(()));
    assert_eq!(
        trust.verify_peer(&leaf.chain(), "a.test", now()),
        Err(CertError::UnknownIssuer)
    );
}

#[test]
fn xmpp_addr_only_leaf_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let leaf = leaf(&ca, |p| {
        xmpp_addr(p, "xmpp.test");
        p.extended_key_usages = vec![Eku::ServerAuth];
    });
    assert_eq!(
        cert_identities(&leaf.der).unwrap(),
        vec![Identity::XmppAddr("xmpp.test".into())]
    );
    assert_eq!(trust.verify_peer(&leaf.chain(), "xmpp.test", now()), Ok(()));
    assert_eq!(trust.verify_peer(&leaf.chain(), "XMPP.test", now()), Ok(()));
    assert_eq!(
        trust.verify_peer(&leaf.chain(), "other.test", now()),
        mismatch("other.test", &["xmpp.test (xmppAddr)"])
    );
}

#[test]
fn dns_id_and_xmpp_addr_both_count() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let leaf = leaf(&ca, |p| {
        dns(p, &["dns.test"]);
        xmpp_addr(p, "addr.test");
        xmpp_addr(p, "user@jid.test");
    });
    assert_eq!(
        cert_identities(&leaf.der).unwrap(),
        vec![
            Identity::Dns("dns.test".into()),
            Identity::XmppAddr("addr.test".into()),
            Identity::XmppAddr("user@jid.test".into()),
        ]
    );
    assert_eq!(trust.verify_peer(&leaf.chain(), "dns.test", now()), Ok(()));
    assert_eq!(trust.verify_peer(&leaf.chain(), "addr.test", now()), Ok(()));
    // A user JID does not authenticate its domain.
    assert!(matches!(
        trust.verify_peer(&leaf.chain(), "jid.test", now()),
        Err(CertError::NameMismatch { .. })
    ));
}

#[test]
fn srv_id_leaf_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let srv = leaf(&ca, |p| {
        p.custom_extensions = vec![san_other_name(7, 0x16, "_xmpp-server.srv.test")];
    });
    assert_eq!(
        cert_identities(&srv.der).unwrap(),
        vec![Identity::SrvName("_xmpp-server.srv.test".into())]
    );
    assert_eq!(trust.verify_peer(&srv.chain(), "srv.test", now()), Ok(()));
    let client_srv = leaf(&ca, |p| {
        p.custom_extensions = vec![san_other_name(7, 0x16, "_xmpp-client.srv.test")];
    });
    assert!(matches!(
        trust.verify_peer(&client_srv.chain(), "srv.test", now()),
        Err(CertError::NameMismatch { .. })
    ));
}

#[test]
fn malformed_xmpp_addr_is_bad_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    // id-on-xmppAddr must be a UTF8String; this one is an IA5String.
    let bad = leaf(&ca, |p| {
        p.custom_extensions = vec![san_other_name(5, 0x16, "a.test")];
    });
    assert!(matches!(
        trust.verify_peer(&bad.chain(), "a.test", now()),
        Err(CertError::BadEncoding(_))
    ));
    // The hand-built encoding itself is right: as a UTF8String it is accepted.
    let good = leaf(&ca, |p| {
        p.custom_extensions = vec![san_other_name(5, 0x0c, "a.test")];
    });
    assert_eq!(trust.verify_peer(&good.chain(), "a.test", now()), Ok(()));
}

#[test]
fn wildcard_covers_exactly_one_label() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let wild = server_auth_leaf(&ca, &["*.a.test"]);
    assert_eq!(trust.verify_peer(&wild.chain(), "x.a.test", now()), Ok(()));
    assert_eq!(
        trust.verify_peer(&wild.chain(), "a.test", now()),
        mismatch("a.test", &["*.a.test"])
    );
    assert_eq!(
        trust.verify_peer(&wild.chain(), "y.x.a.test", now()),
        mismatch("y.x.a.test", &["*.a.test"])
    );
}

#[test]
fn common_name_is_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let cn_only = leaf(&ca, |p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "a.test");
    });
    assert_eq!(cert_identities(&cn_only.der).unwrap(), vec![]);
    assert_eq!(
        trust.verify_peer(&cn_only.chain(), "a.test", now()),
        mismatch("a.test", &[])
    );
}

#[test]
fn mismatch_message_names_what_the_certificate_covers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Rookery Test CA");
    let trust = trust_in(dir.path(), &ca);
    let leaf = server_auth_leaf(&ca, &["x.test", "*.x.test"]);
    let err = trust
        .verify_peer(&leaf.chain(), "y.test", now())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate for x.test does not cover y.test (names: x.test, *.x.test)"
    );
}

#[test]
fn under_name_constraints_only_dns_ids_count() {
    let dir = tempfile::tempdir().unwrap();
    let constrained = ca_constrained(
        "Constrained CA",
        Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("allowed.test".into())],
            excluded_subtrees: vec![],
        }),
    );
    let trust = trust_in(dir.path(), &constrained);
    let leaf = leaf(&constrained, |p| {
        dns(p, &["x.allowed.test"]);
        xmpp_addr(p, "victim.test");
    });
    assert_eq!(
        trust.verify_peer(&leaf.chain(), "x.allowed.test", now()),
        Ok(())
    );
    assert!(matches!(
        trust.verify_peer(&leaf.chain(), "victim.test", now()),
        Err(CertError::NameMismatch { .. })
    ));
}

#[test]
fn empty_and_garbage_chains() {
    let dir = tempfile::tempdir().unwrap();
    let trust = trust_in(dir.path(), &ca("Rookery Test CA"));
    assert_eq!(
        trust.verify_peer(&[], "a.test", now()),
        Err(CertError::NoCertificate)
    );
    let garbage = CertificateDer::from(b"not a certificate".to_vec());
    assert!(matches!(
        trust.verify_peer(&[garbage], "a.test", now()),
        Err(CertError::BadEncoding(_))
    ));
}

#[test]
fn a_peer_self_signed_certificate_can_be_pinned() {
    let dir = tempfile::tempdir().unwrap();
    // Rookery's own generated self-signed certificate, as a peer running it would present.
    let store = CertStore::load(&[HostCert::self_signed("pin.test")], dir.path()).unwrap();
    let pinned = dir.path().join("certs/pin.test.crt");
    let trust = S2sTrust::new(false, &[pinned]).unwrap();
    let chain = vec![store.cert_der_for(Some("pin.test")).unwrap()];
    assert_eq!(trust.verify_peer(&chain, "pin.test", now()), Ok(()));
    assert_eq!(trust.verify_peer(&chain, "conf.pin.test", now()), Ok(()));
    assert!(matches!(
        trust.verify_peer(&chain, "other.test", now()),
        Err(CertError::NameMismatch { .. })
    ));
}

#[test]
fn ca_files_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.pem", "no PEM here\n");
    assert!(matches!(
        S2sTrust::new(false, &[empty]),
        Err(TlsError::NoCertificate { .. })
    ));
    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        S2sTrust::new(true, &[missing]),
        Err(TlsError::Read { .. })
    ));
}
