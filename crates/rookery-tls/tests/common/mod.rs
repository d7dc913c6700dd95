//! Shared helpers for rookery-tls's integration tests: certificates made with rcgen, PEM
//! encoding, key-format conversion, and a real TLS handshake over an in-memory pipe.
#![allow(clippy::unwrap_used, dead_code)]

use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use rookery_tls::client_config_insecure_for_tests_with_versions;
use rustls::pki_types::ServerName;
use rustls::{ServerConfig, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// A certificate for `sans` signed by a fresh key of algorithm `alg`: (cert PEM, PKCS#8 key
/// PEM, cert DER).
pub fn cert_with(alg: &'static SignatureAlgorithm, sans: &[&str]) -> (String, String, Vec<u8>) {
    let key = KeyPair::generate_for(alg).unwrap();
    sign(key, sans)
}

/// A certificate for `sans` signed by `key`.
pub fn sign(key: KeyPair, sans: &[&str]) -> (String, String, Vec<u8>) {
    let params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// The checked-in 2048-bit RSA test key (PKCS#8 PEM; ring cannot generate RSA keys).
pub fn rsa_key_pem() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-rsa2048.pkcs8.pem"),
    )
    .unwrap()
}

/// Standard base64 with padding (a few lines here rather than a dependency for tests only).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside a PKCS#8 `PRIVATE KEY` PEM block.
pub fn pem_body(pem_text: &str) -> Vec<u8> {
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject;
    PrivatePkcs8KeyDer::from_pem_slice(pem_text.as_bytes())
        .unwrap()
        .secret_pkcs8_der()
        .to_vec()
}

/// One DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1] as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | *b as usize);
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The algorithm-specific key inside a PKCS#8 PrivateKeyInfo (RFC 5208): for RSA that is
/// the PKCS#1 RSAPrivateKey, for EC the SEC1 ECPrivateKey.
pub fn pkcs8_inner_key(pkcs8_der: &[u8]) -> Vec<u8> {
    let (_, info, _) = tlv(pkcs8_der);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// Runs a real TLS handshake over an in-memory pipe and returns both ends.
pub async fn handshake(
    server_config: Arc<ServerConfig>,
    versions: &[&'static SupportedProtocolVersion],
    server_name: ServerName<'static>,
    alpn: &[&[u8]],
) -> (
    server::TlsStream<tokio::io::DuplexStream>,
    client::TlsStream<tokio::io::DuplexStream>,
) {
    let mut client_config = client_config_insecure_for_tests_with_versions(versions);
    client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server_config);
    let connector = TlsConnector::from(Arc::new(client_config));
    let (s, c) = tokio::join!(acceptor.accept(a), connector.connect(server_name, b));
    (s.unwrap(), c.unwrap())
}

pub fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).unwrap()
}

/// The leaf certificate the client received.
pub fn served_leaf(c: &client::TlsStream<tokio::io::DuplexStream>) -> Vec<u8> {
    c.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}
