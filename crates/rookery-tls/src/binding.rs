//! TLS channel bindings for SCRAM-*-PLUS (RFC 5802 §6). The c2s negotiation in `rookery-net`
//! calls these once the TLS handshake is done and hands the bytes to SASL, which compares them
//! with what the client puts in its GS2 header; a mismatch reveals a TLS man-in-the-middle.
//!
//! - `tls-exporter` (RFC 9266) is the binding for TLS 1.3. It is only offered on TLS 1.3: on
//!   TLS 1.2 the exporter is not guaranteed unique without the extended master secret.
//! - `tls-server-end-point` (RFC 5929 §4) hashes the server's certificate and works on any TLS
//!   version; [`crate::ServedCert`] computes it for the certificate a handshake served.

use rustls::ProtocolVersion;
use rustls::server::ServerConnection;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::signature_algorithm::RsaSsaPssParams;

/// The RFC 9266 exporter label.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// RFC 9266: the binding is 32 bytes.
const EXPORTER_LEN: usize = 32;

/// `tls-exporter` channel binding data (RFC 9266): 32 bytes of keying material exported with
/// label `EXPORTER-Channel-Binding` and no context. `None` unless the connection completed a
/// TLS 1.3 handshake.
pub fn tls_exporter(conn: &ServerConnection) -> Option<Vec<u8>> {
    if conn.is_handshaking() || conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
        return None;
    }
    conn.export_keying_material(vec![0u8; EXPORTER_LEN], EXPORTER_LABEL, None)
        .ok()
}

/// The hash functions tls-server-end-point can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// `tls-server-end-point` channel binding data (RFC 5929 §4.1): the hash of the DER leaf
/// certificate, using the hash function of the certificate's signature algorithm, except that
/// MD5 and SHA-1 are replaced by SHA-256.
///
/// `None` when the certificate cannot be parsed or its signature algorithm has no single hash
/// function (Ed25519, Ed448) or is unknown: RFC 5929 leaves the binding undefined there, and
/// the SASL layer must then not offer this binding type.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let alg = &cert.signature_algorithm;
    let oid = alg.algorithm.to_id_string();
    let hash = if oid == OID_RSASSA_PSS {
        // RSASSA-PSS names its hash in the parameters (RFC 4055), SHA-1 when absent.
        let params = RsaSsaPssParams::try_from(alg.parameters.as_ref()?).ok()?;
        hash_by_digest_oid(&params.hash_algorithm_oid().to_id_string())?
    } else {
        hash_by_signature_oid(&oid)?
    };
    Some(match hash {
        Hash::Sha224 => Sha224::digest(cert_der).to_vec(),
        Hash::Sha256 => Sha256::digest(cert_der).to_vec(),
        Hash::Sha384 => Sha384::digest(cert_der).to_vec(),
        Hash::Sha512 => Sha512::digest(cert_der).to_vec(),
    })
}

const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// The hash for a signature algorithm OID, with MD5/SHA-1 upgraded to SHA-256.
fn hash_by_signature_oid(oid: &str) -> Option<Hash> {
    Some(match oid {
        // md5WithRSAEncryption, sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.10045.4.1"
        | "1.2.840.10040.4.3" => Hash::Sha256,
        // sha224WithRSAEncryption, ecdsa-with-SHA224, dsa-with-sha224
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" | "2.16.840.1.101.3.4.3.1" => Hash::Sha224,
        // sha256WithRSAEncryption, ecdsa-with-SHA256, dsa-with-sha256
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" | "2.16.840.1.101.3.4.3.2" => Hash::Sha256,
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Hash::Sha384,
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Hash::Sha512,
        // Ed25519 (1.3.101.112), Ed448 (1.3.101.113) and anything unknown: undefined.
        _ => return None,
    })
}

/// The hash for a digest algorithm OID (RSASSA-PSS parameters), MD5/SHA-1 upgraded.
fn hash_by_digest_oid(oid: &str) -> Option<Hash> {
    Some(match oid {
        // md5, sha1
        "1.2.840.113549.2.5" | "1.3.14.3.2.26" => Hash::Sha256,
        "2.16.840.1.101.3.4.2.4" => Hash::Sha224,
        "2.16.840.1.101.3.4.2.1" => Hash::Sha256,
        "2.16.840.1.101.3.4.2.2" => Hash::Sha384,
        "2.16.840.1.101.3.4.2.3" => Hash::Sha512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_hashes_are_upgraded() {
        assert_eq!(
            hash_by_signature_oid("1.2.840.113549.1.1.4"),
            Some(Hash::Sha256)
        );
        assert_eq!(
            hash_by_signature_oid("1.2.840.113549.1.1.5"),
            Some(Hash::Sha256)
        );
        assert_eq!(
            hash_by_signature_oid("1.2.840.10045.4.1"),
            Some(Hash::Sha256)
        );
        assert_eq!(hash_by_digest_oid("1.3.14.3.2.26"), Some(Hash::Sha256));
    }

    #[test]
    fn strong_hashes_are_kept() {
        assert_eq!(
            hash_by_signature_oid("1.2.840.10045.4.3.3"),
            Some(Hash::Sha384)
        );
        assert_eq!(
            hash_by_signature_oid("1.2.840.113549.1.1.13"),
            Some(Hash::Sha512)
        );
        assert_eq!(
            hash_by_digest_oid("2.16.840.1.101.3.4.2.2"),
            Some(Hash::Sha384)
        );
    }

    #[test]
    fn eddsa_and_garbage_have_no_binding() {
        assert_eq!(hash_by_signature_oid("1.3.101.112"), None);
        assert_eq!(hash_by_signature_oid("1.3.101.113"), None);
        assert_eq!(tls_server_end_point(b"not a certificate"), None);
    }
}
