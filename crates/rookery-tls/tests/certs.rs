//! Loading certificates: self-signed generation and reuse, every accepted key format, and the
//! errors for broken inputs (each naming the file).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256};
use rookery_tls::{CertStore, HostCert, TlsError};
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, X509Certificate};

fn provided(domain: &str, cert: &Path, key: &Path) -> HostCert {
    HostCert::provided(domain, cert, key)
}

#[test]
fn self_signed_is_generated_then_reused() {
    let data = tempfile::tempdir().unwrap();
    let hosts = [HostCert::self_signed("Example.org")];
    let store = CertStore::load(&hosts, data.path()).unwrap();
    assert_eq!(store.domains(), vec!["example.org".to_owned()]);
    let crt = data.path().join("certs/example.org.crt");
    let key = data.path().join("certs/example.org.key");
    assert!(crt.is_file() && key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    let first = store.cert_der_for(None).unwrap().to_vec();
    let crt_bytes = std::fs::read(&crt).unwrap();
    let key_bytes = std::fs::read(&key).unwrap();

    let again = CertStore::load(&hosts, data.path()).unwrap();
    assert_eq!(again.cert_der_for(None).unwrap().to_vec(), first);
    assert_eq!(
        std::fs::read(&crt).unwrap(),
        crt_bytes,
        "certificate file rewritten"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_bytes,
        "key file rewritten"
    );
}

#[test]
fn self_signed_certificate_contents() {
    let data = tempfile::tempdir().unwrap();
    let store = CertStore::load(&[HostCert::self_signed("example.net")], data.path()).unwrap();
    let der = store.cert_der_for(Some("example.net")).unwrap();
    let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();

    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["DNSName(example.net)", "DNSName(*.example.net)"]);

    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    // ECDSA with SHA-256 on P-256.
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2"
    );
    let years = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
        as f64
        / (365.25 * 86400.0);
    assert!((9.9..=10.1).contains(&years), "validity {years} years");
}

#[test]
fn half_written_self_signed_is_regenerated() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("certs")).unwrap();
    // A key without a certificate: an earlier start died between the two writes.
    write(&data.path().join("certs"), "example.org.key", "stale");
    let store = CertStore::load(&[HostCert::self_signed("example.org")], data.path()).unwrap();
    assert!(store.cert_der_for(None).is_some());
    assert!(data.path().join("certs/example.org.crt").is_file());
}

#[test]
fn damaged_generated_certificate_is_reported_not_replaced() {
    let data = tempfile::tempdir().unwrap();
    let hosts = [HostCert::self_signed("example.org")];
    CertStore::load(&hosts, data.path()).unwrap();
    let crt = data.path().join("certs/example.org.crt");
    std::fs::write(&crt, "garbage\n").unwrap();
    let e = CertStore::load(&hosts, data.path()).unwrap_err();
    assert!(
        matches!(e, TlsError::NoCertificate { ref path } if *path == crt),
        "{e}"
    );
    assert!(e.to_string().contains("example.org.crt"), "{e}");
}

fn load_provided(
    cert_pem: &str,
    key_pem: &str,
) -> (tempfile::TempDir, Result<CertStore, TlsError>) {
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "host.pem", cert_pem);
    let key = write(dir.path(), "host.key", key_pem);
    let r = CertStore::load(&[provided("example.com", &cert, &key)], dir.path());
    (dir, r)
}

#[test]
fn pkcs8_ecdsa_key_loads() {
    let (cert, key, der) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_dir, store) = load_provided(&cert, &key);
    assert_eq!(store.unwrap().cert_der_for(None).unwrap().to_vec(), der);
}

#[test]
fn sec1_ecdsa_key_loads() {
    let (cert, key, der) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let sec1 = pem("EC PRIVATE KEY", &pkcs8_inner_key(&pem_body(&key)));
    let (_dir, store) = load_provided(&cert, &sec1);
    assert_eq!(store.unwrap().cert_der_for(None).unwrap().to_vec(), der);
}

#[test]
fn pkcs1_rsa_key_loads() {
    let rsa = KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem(), &PKCS_RSA_SHA256).unwrap();
    let (cert, key, der) = sign(rsa, &["example.com"]);
    let pkcs1 = pem("RSA PRIVATE KEY", &pkcs8_inner_key(&pem_body(&key)));
    let (_dir, store) = load_provided(&cert, &pkcs1);
    assert_eq!(store.unwrap().cert_der_for(None).unwrap().to_vec(), der);
    // And the same key as PKCS#8.
    let (_dir, store) = load_provided(&cert, &rsa_key_pem());
    assert!(store.is_ok());
}

#[test]
fn chain_keeps_leaf_first() {
    let (leaf, key, leaf_der) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (other, _, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["ca.example"]);
    let (_dir, store) = load_provided(&format!("{leaf}{other}"), &key);
    assert_eq!(
        store.unwrap().cert_der_for(None).unwrap().to_vec(),
        leaf_der
    );
}

#[test]
fn mismatched_key_names_the_file() {
    let (cert, _, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (_, other_key, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (dir, r) = load_provided(&cert, &other_key);
    let e = r.unwrap_err();
    let key_path = dir.path().join("host.key");
    assert!(
        matches!(e, TlsError::KeyMismatch { ref key, .. } if *key == key_path),
        "{e:?}"
    );
    let shown = e.to_string();
    assert!(shown.contains(&key_path.display().to_string()), "{shown}");
    assert!(shown.contains("does not match"), "{shown}");
}

#[test]
fn file_without_certificate() {
    let (_, key, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (dir, r) = load_provided(&key, &key);
    let e = r.unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&dir.path().join("host.pem").display().to_string())
    );
    assert!(e.to_string().contains("no certificate in file"), "{e}");
}

#[test]
fn file_without_key() {
    let (cert, _, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (dir, r) = load_provided(&cert, &cert);
    let e = r.unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&dir.path().join("host.key").display().to_string())
    );

    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let (_dir, r) = load_provided(&cert, encrypted);
    assert!(r.unwrap_err().to_string().contains("encrypted"));
}

#[test]
fn garbage_key_is_unusable() {
    let (cert, _, _) = cert_with(&PKCS_ECDSA_P256_SHA256, &["example.com"]);
    let (dir, r) = load_provided(&cert, &pem("PRIVATE KEY", b"not a key"));
    let e = r.unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&dir.path().join("host.key").display().to_string())
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing: PathBuf = dir.path().join("nope.pem");
    let e =
        CertStore::load(&[provided("example.com", &missing, &missing)], dir.path()).unwrap_err();
    assert!(
        matches!(e, TlsError::Read { ref path, .. } if *path == missing),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.pem: cannot read"), "{e}");
}

#[test]
fn host_list_problems() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        CertStore::load(&[], dir.path()),
        Err(TlsError::NoHosts)
    ));
    let dup = [
        HostCert::self_signed("a.example"),
        HostCert::self_signed("A.example"),
    ];
    assert!(matches!(
        CertStore::load(&dup, dir.path()),
        Err(TlsError::InvalidHost { .. })
    ));
    let bad = [HostCert::self_signed("../escape")];
    assert!(matches!(
        CertStore::load(&bad, dir.path()),
        Err(TlsError::InvalidHost { .. })
    ));
}

#[test]
fn expiring_self_signed_is_renewed() {
    let data = tempfile::tempdir().unwrap();
    let certs = data.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["example.org".to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now + time::Duration::days(2);
    let old = params.self_signed(&key).unwrap();
    write(&certs, "example.org.crt", &old.pem());
    write(&certs, "example.org.key", &key.serialize_pem());

    let store = CertStore::load(&[HostCert::self_signed("example.org")], data.path()).unwrap();
    let new = store.cert_der_for(None).unwrap();
    assert_ne!(new.as_ref(), old.der().as_ref());
    let (_, cert) = X509Certificate::from_der(new.as_ref()).unwrap();
    assert!(
        cert.validity().not_after.timestamp() > (now + time::Duration::days(3000)).unix_timestamp()
    );
}
