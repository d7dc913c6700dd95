//! The TLS trust layer for server-to-server federation.
//!
//! Where this sits: `rookery-net`'s s2s actors build their TLS connectors and acceptors from
//! [`s2s_client_config`] / [`S2sClientConfigs`] (outgoing) and [`s2s_server_config`]
//! (incoming). Those handshakes succeed whatever certificate the peer shows, because
//! unauthenticated TLS still protects dialback (RFC 7590 §3.4; XEP-0220 §2.4); nothing is
//! refused at the TLS layer. After the handshake the actor passes the peer's chain
//! (`peer_certificates()`) and the domain it claims to [`S2sTrust::verify_peer`]:
//! `Ok` → SASL EXTERNAL (RFC 6120 §6.4, XEP-0178 §2); `Err` → log the [`CertError`] and fall
//! back to dialback if the domain's policy allows, else close the stream.
//!
//! Validation follows RFC 6120 §13.7.2 with the RFC 6125 name rules in [`crate::Identity`].
//! The certificate's extended key usage may be serverAuth *or* clientAuth in either direction:
//! Let's Encrypt issues serverAuth-only certificates now, and a peer presents the same
//! certificate as a TLS client on the streams it initiates (rustls's `WebPkiClientVerifier`
//! would demand clientAuth and refuse them).

pub(crate) mod config;

pub use config::{ALPN_XMPP_SERVER, S2sClientConfigs, s2s_client_config, s2s_server_config};

use crate::identity::{Identity, cert_identities};
use crate::{TlsError, pem};
use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};
use x509_parser::prelude::{FromDer, X509Certificate};

/// nameConstraints (RFC 5280 §4.2.1.10).
const OID_NAME_CONSTRAINTS: &str = "2.5.29.30";

/// Why a peer's certificate does not authenticate the domain it claims. The `Display` text is
/// written for an operator's log line; the caller adds which peer and stream it was.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum CertError {
    /// The peer sent no certificate (normal for an incoming stream whose peer has none).
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The chain leads to no trusted CA (self-signed, a private CA not configured in
    /// `ca_files`, or a missing intermediate).
    #[error(
        "certificate is not issued by a trusted CA (self-signed, unknown CA, or the peer did \
         not send its intermediate certificates)"
    )]
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    #[error("certificate has expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid yet; often a clock problem.
    #[error("certificate is not valid yet (check the system clocks)")]
    NotYetValid,
    /// The extended key usage allows neither serverAuth nor clientAuth.
    #[error("certificate's extended key usage allows neither serverAuth nor clientAuth")]
    BadEku,
    /// The certificate is valid but does not name the domain.
    #[error("{}", name_mismatch(.domain, .names))]
    NameMismatch {
        /// The domain the peer claims (or we dialled).
        domain: String,
        /// The identities the certificate does assert, as displayed by [`Identity`].
        names: Vec<String>,
    },
    /// The certificate or one of its identity fields is malformed.
    #[error("malformed certificate: {0}")]
    BadEncoding(String),
    /// Anything else the path validation refused (bad signature, CA used as a leaf, name
    /// constraints, …).
    #[error("certificate rejected: {0}")]
    Other(String),
}

fn name_mismatch(domain: &str, names: &[String]) -> String {
    match names.first() {
        Some(first) => format!(
            "certificate for {first} does not cover {domain} (names: {})",
            names.join(", ")
        ),
        None => format!(
            "certificate does not cover {domain}: it has no DNS, xmppAddr or SRV name in \
             subjectAltName (the subject CN is never used)"
        ),
    }
}

/// The trust anchors for s2s: Mozilla's roots (webpki-roots) and/or the operator's own CA
/// files. Cheap to clone.
#[derive(Clone)]
pub struct S2sTrust {
    anchors: Arc<[TrustAnchor<'static>]>,
    /// ring's algorithms as rustls uses them, so chains verify the same as handshakes do.
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
}

impl fmt::Debug for S2sTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S2sTrust")
            .field("anchors", &self.anchors.len())
            .finish_non_exhaustive()
    }
}

impl S2sTrust {
    /// Trusts Mozilla's roots when `use_webpki_roots` (compiled in, so validation does not
    /// depend on the host's CA bundle), plus every certificate in the PEM files `ca_files`.
    /// A file may hold a private CA or a peer's self-signed leaf (pinning that peer).
    /// With neither, nothing is trusted and every peer falls back to dialback.
    pub fn new(use_webpki_roots: bool, ca_files: &[PathBuf]) -> Result<S2sTrust, TlsError> {
        let mut anchors: Vec<TrustAnchor<'static>> = Vec::new();
        if use_webpki_roots {
            anchors.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for path in ca_files {
            for der in pem::certificates(path)? {
                let anchor = webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                    TlsError::BadCertificate {
                        path: path.clone(),
                        detail: format!("not usable as a trust anchor: {e}"),
                    }
                })?;
                anchors.push(anchor.to_owned());
            }
        }
        Ok(S2sTrust {
            anchors: anchors.into(),
            algorithms: rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .all,
        })
    }

    /// How many trust anchors are loaded (for the start-up log).
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// Whether `chain` (leaf first, as `peer_certificates()` returns it) authenticates
    /// `domain` at `now` (RFC 6120 §13.7.2): a path to a trust anchor, every certificate
    /// within its validity dates, extended key usage serverAuth or clientAuth (or none), and
    /// a leaf that names `domain` by DNS-ID, id-on-xmppAddr or SRV-ID `_xmpp-server.`
    /// (see [`Identity::covers`]). The subject CN is never consulted.
    ///
    /// Trust is checked before the name, so an untrusted certificate reports why it is
    /// untrusted even if it names the wrong domain too.
    pub fn verify_peer(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &str,
        now: UnixTime,
    ) -> Result<(), CertError> {
        let (leaf_der, intermediates) = chain.split_first().ok_or(CertError::NoCertificate)?;
        let leaf = EndEntityCert::try_from(leaf_der).map_err(from_webpki)?;
        let name_constrained = self.verify_path(&leaf, intermediates, now)?;
        let identities = cert_identities(leaf_der)?;
        let covered = identities.iter().any(|id| match id {
            // webpki enforced the path's name constraints on dNSNames only. It lets
            // otherNames through unless a constraint names that form, so under a constrained
            // CA an xmppAddr or SRV-ID could claim any domain: only DNS-IDs count there.
            Identity::Dns(_) => id.covers(domain),
            _ => !name_constrained && id.covers(domain),
        });
        if covered {
            Ok(())
        } else {
            Err(CertError::NameMismatch {
                domain: domain.to_owned(),
                names: identities.iter().map(Identity::to_string).collect(),
            })
        }
    }

    /// Validates the path with serverAuth, then with clientAuth if only the EKU was wrong.
    /// Two whole passes rather than one validator accepting either, so every certificate on
    /// the path agrees on one purpose (webpki checks EKU on intermediates too). Returns
    /// whether any issuer on the verified path carries name constraints.
    fn verify_path(
        &self,
        leaf: &EndEntityCert<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<bool, CertError> {
        let attempt = |usage: KeyUsage| {
            leaf.verify_for_usage(
                self.algorithms,
                &self.anchors,
                intermediates,
                now,
                usage,
                None,
                None,
            )
            .map(|path| path_is_name_constrained(&path))
        };
        match attempt(KeyUsage::server_auth()) {
            Ok(constrained) => Ok(constrained),
            Err(e) if is_eku_error(&e) => attempt(KeyUsage::client_auth()).map_err(from_webpki),
            Err(e) => Err(from_webpki(e)),
        }
    }
}

fn path_is_name_constrained(path: &VerifiedPath<'_>) -> bool {
    path.anchor().name_constraints.is_some()
        || path
            .intermediate_certificates()
            .any(|cert| has_name_constraints(cert.der().as_ref()))
}

/// Whether a certificate carries nameConstraints; an unparseable one (webpki accepted it, so
/// this should not happen) is assumed to, which only makes matching stricter.
fn has_name_constraints(der: &[u8]) -> bool {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert
            .extensions()
            .iter()
            .any(|ext| ext.oid.to_id_string() == OID_NAME_CONSTRAINTS),
        Err(_) => true,
    }
}

fn is_eku_error(e: &webpki::Error) -> bool {
    matches!(
        e,
        webpki::Error::RequiredEkuNotFoundContext(_) | webpki::Error::EmptyEkuExtension
    )
}

fn from_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => CertError::UnknownIssuer,
        E::CertExpired { .. } => CertError::Expired,
        E::CertNotValidYet { .. } => CertError::NotYetValid,
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => CertError::BadEku,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity
        | E::InvalidSerialNumber
        | E::UnsupportedCertVersion => CertError::BadEncoding(e.to_string()),
        other => CertError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_mismatch_message_lists_names() {
        let e = CertError::NameMismatch {
            domain: "y.test".into(),
            names: vec!["x.test".into(), "*.x.test".into()],
        };
        assert_eq!(
            e.to_string(),
            "certificate for x.test does not cover y.test (names: x.test, *.x.test)"
        );
        let e = CertError::NameMismatch {
            domain: "y.test".into(),
            names: vec![],
        };
        assert!(e.to_string().contains("CN is never used"), "{e}");
    }

    #[test]
    fn no_roots_no_files_trusts_nothing() {
        let trust = S2sTrust::new(false, &[]).unwrap();
        assert_eq!(trust.anchor_count(), 0);
        assert_eq!(
            trust.verify_peer(&[], "a.test", UnixTime::now()),
            Err(CertError::NoCertificate)
        );
    }

    #[test]
    fn webpki_roots_are_loaded() {
        assert!(S2sTrust::new(true, &[]).unwrap().anchor_count() > 100);
    }

    #[test]
    fn webpki_errors_map_to_operator_categories() {
        assert_eq!(
            from_webpki(webpki::Error::UnknownIssuer),
            CertError::UnknownIssuer
        );
        assert_eq!(
            from_webpki(webpki::Error::EmptyEkuExtension),
            CertError::BadEku
        );
        assert!(matches!(
            from_webpki(webpki::Error::BadDer),
            CertError::BadEncoding(_)
        ));
        assert!(matches!(
            from_webpki(webpki::Error::CaUsedAsEndEntity),
            CertError::Other(_)
        ));
    }
}
