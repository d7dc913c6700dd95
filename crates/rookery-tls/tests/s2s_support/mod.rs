//! Helpers for the s2s integration tests (`s2s_verify.rs`, `s2s_handshake.rs`): a test CA
//! and leaves made with rcgen (EKU, validity, xmppAddr and hand-encoded otherName variants),
//! trust stores loaded from PEM files, and real TLS handshakes over an in-memory pipe.
#![allow(clippy::unwrap_used, dead_code)]

use crate::common::write;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose as Eku,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rookery_tls::{CertError, CertStore, HostCert, S2sTrust};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// id-on-xmppAddr, RFC 6120 §13.7.1.4.
pub const XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub fn ca(cn: &str) -> Ca {
    ca_constrained(cn, None)
}

pub fn ca_constrained(cn: &str, name_constraints: Option<NameConstraints>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = name_constraints;
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// An intermediate CA signed by `root`: (issuer, its DER).
pub fn intermediate(root: &Ca) -> (Ca, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "Rookery Test Intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.signed_by(&key, &root.issuer).unwrap();
    let der = cert.der().clone();
    let ca = Ca {
        issuer: Issuer::new(params, key),
        pem: cert.pem(),
    };
    (ca, der)
}

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }
}

/// A leaf signed by `ca`: CN "leaf", no SAN, no EKU, valid for decades, unless `configure`
/// says otherwise.
pub fn leaf(ca: &Ca, configure: impl FnOnce(&mut CertificateParams)) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "leaf");
    configure(&mut params);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

pub fn dns(params: &mut CertificateParams, names: &[&str]) {
    for name in names {
        params
            .subject_alt_names
            .push(SanType::DnsName((*name).try_into().unwrap()));
    }
}

pub fn xmpp_addr(params: &mut CertificateParams, jid: &str) {
    params
        .subject_alt_names
        .push(SanType::OtherName((XMPP_ADDR.to_vec(), jid.into())));
}

pub fn server_auth_leaf(ca: &Ca, names: &[&str]) -> Leaf {
    leaf(ca, |p| {
        dns(p, names);
        p.extended_key_usages = vec![Eku::ServerAuth];
    })
}

/// One DER TLV with a definite length in short or long form (X.690 §8.1.3).
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A subjectAltName extension (RFC 5280 §4.2.1.6; OID 2.5.29.17) holding one otherName,
/// built by hand because rcgen writes otherName values as UTF8String only:
///
/// ```text
/// GeneralNames ::= SEQUENCE {                          30 len
///   otherName [0] IMPLICIT SEQUENCE {                  A0 len
///     type-id  OBJECT IDENTIFIER,                      06 08 2B 06 01 05 05 07 08 xx
///     value    [0] EXPLICIT <string type> }}           A0 len <tag> len bytes
/// ```
///
/// `oid_last` is the last arc of 1.3.6.1.5.5.7.8.x (5 = id-on-xmppAddr, 7 = id-on-dnsSRV);
/// `string_tag` is 0x0C UTF8String or 0x16 IA5String.
pub fn san_other_name(oid_last: u8, string_tag: u8, value: &str) -> CustomExtension {
    let oid = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, oid_last]);
    let explicit = tlv(0xa0, &tlv(string_tag, value.as_bytes()));
    let other_name = tlv(0xa0, &[oid, explicit].concat());
    CustomExtension::from_oid_content(&[2, 5, 29, 17], tlv(0x30, &other_name))
}

/// A trust store holding only `ca`, loaded from a PEM file as an operator would configure it.
pub fn trust_in(dir: &Path, ca: &Ca) -> S2sTrust {
    let path = write(dir, "ca.pem", &ca.pem);
    S2sTrust::new(false, &[path]).unwrap()
}

pub fn now() -> UnixTime {
    UnixTime::now()
}

pub fn mismatch(domain: &str, names: &[&str]) -> Result<(), CertError> {
    Err(CertError::NameMismatch {
        domain: domain.to_owned(),
        names: names.iter().map(|s| s.to_string()).collect(),
    })
}

// ---- handshake helpers ----

/// A CertStore serving `hosts`, each (domain, leaf) written to files under `dir`, or a
/// generated self-signed certificate where the leaf is `None`.
pub fn store(dir: &Path, hosts: &[(&str, Option<&Leaf>)]) -> CertStore {
    let hosts: Vec<HostCert> = hosts
        .iter()
        .map(|(domain, leaf)| match leaf {
            Some(leaf) => HostCert::provided(
                *domain,
                write(dir, &format!("{domain}.pem"), &leaf.cert_pem),
                write(dir, &format!("{domain}.key"), &leaf.key_pem),
            ),
            None => HostCert::self_signed(*domain),
        })
        .collect();
    CertStore::load(&hosts, dir).unwrap()
}

pub async fn handshake(
    client_config: Arc<ClientConfig>,
    server_config: Arc<ServerConfig>,
    sni: &str,
) -> (
    server::TlsStream<tokio::io::DuplexStream>,
    client::TlsStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let (s, c) = tokio::join!(
        TlsAcceptor::from(server_config).accept(a),
        TlsConnector::from(client_config).connect(name, b)
    );
    (s.unwrap(), c.unwrap())
}

pub fn seen_by_server(
    s: &server::TlsStream<tokio::io::DuplexStream>,
) -> Vec<CertificateDer<'static>> {
    s.get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .to_vec()
}

pub fn seen_by_client(
    c: &client::TlsStream<tokio::io::DuplexStream>,
) -> Vec<CertificateDer<'static>> {
    c.get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .to_vec()
}

pub fn data_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A rustls key from a PEM string.
pub fn private_key(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}
