//! The XMPP identities a certificate asserts, read from the DER of its subjectAltName
//! extension, and the rules for matching them against a domain.
//!
//! Where this sits: `rookery-net`'s s2s actors finish the TLS handshake, then call
//! [`crate::S2sTrust::verify_peer`], which validates the chain and asks this module whether the
//! leaf names the peer's domain. If it does, the stream may authenticate with SASL EXTERNAL
//! (XEP-0178); if not, dialback (XEP-0220) if policy allows. `rookery check certs`-style
//! diagnostics can print [`cert_identities`] as they are.
//!
//! Identities are parsed from ASN.1, never from a rendered distinguished-name string: matching
//! `CN=` in a DN string let `OU="CN=admin,"` impersonate an account (CVE-2025-59154). The
//! subject CN is never an identity here (RFC 6125 §6.4.4 allows it only as a legacy fallback;
//! RFC 6120 §13.7.1.2 wants a SAN). Both DNS-IDs and id-on-xmppAddr (RFC 6120 §13.7.1.4) are
//! accepted, and both are tested: ejabberd 23.01, for one, crashes on the latter.

use std::fmt;
use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CertError;

/// id-on-xmppAddr (RFC 6120 §13.7.1.4): an otherName whose value is a UTF8String JID.
const OID_ON_XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// id-on-dnsSRV (RFC 4985 §2): an otherName whose value is an IA5String `_Service.Name`.
const OID_ON_DNS_SRV: &str = "1.3.6.1.5.5.7.8.7";
/// The SRV service label of XMPP server-to-server (RFC 6120 §3.2.1; RFC 6125 §6.5.1).
const SRV_XMPP_SERVER: &str = "_xmpp-server.";

/// One identity a certificate asserts for its subject, as written in the certificate (case
/// preserved). Matching is done by [`Identity::covers`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Identity {
    /// A subjectAltName dNSName (RFC 6125 DNS-ID), possibly a wildcard such as `*.a.test`.
    Dns(String),
    /// A subjectAltName otherName id-on-xmppAddr (RFC 6120 §13.7.1.4): a JID; for a server,
    /// a bare domain.
    XmppAddr(String),
    /// A subjectAltName otherName id-on-dnsSRV (RFC 6125 SRV-ID), e.g.
    /// `_xmpp-server.a.test`.
    SrvName(String),
}

impl Identity {
    /// Whether this identity names the XMPP domain `domain` (a trailing dot is ignored; case
    /// is not significant):
    ///
    /// - DNS-ID: exact match, or a wildcard that is exactly the left-most label and stands for
    ///   exactly one label (RFC 6125 §6.4.3): `*.a.test` covers `x.a.test` but neither `a.test`
    ///   nor `y.x.a.test`. Partial-label wildcards (`x*.a.test`) and wildcards over a single
    ///   label (`*.test`) cover nothing.
    /// - id-on-xmppAddr: exact match after lowercasing; only a bare-domain JID counts (no
    ///   `@`, no `/`), and wildcards are never interpreted (RFC 6120 §13.7.1.4).
    /// - SRV-ID: `_xmpp-server.` followed by exactly the domain (no wildcards).
    ///
    /// DNS-IDs hold A-labels (IA5String), so an internationalised domain must be passed in
    /// A-label form to match one; an id-on-xmppAddr is compared as Unicode.
    pub fn covers(&self, domain: &str) -> bool {
        let Some(reference) = reference_domain(domain) else {
            return false;
        };
        match self {
            Identity::Dns(presented) => dns_id_matches(presented, &reference),
            Identity::XmppAddr(jid) => {
                !jid.contains(['@', '/'])
                    && !jid.is_empty()
                    && jid.strip_suffix('.').unwrap_or(jid).to_lowercase() == reference
            }
            Identity::SrvName(srv) => {
                let srv = srv.to_ascii_lowercase();
                srv.strip_prefix(SRV_XMPP_SERVER)
                    .is_some_and(|name| valid_dns_name(name) && name == reference)
            }
        }
    }
}

/// As an operator reads it in a log line: DNS-IDs as they are, the other forms marked.
/// Control characters are escaped so a hostile certificate cannot forge log lines.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, suffix) = match self {
            Identity::Dns(name) => (name, ""),
            Identity::XmppAddr(name) => (name, " (xmppAddr)"),
            Identity::SrvName(name) => (name, " (SRV-ID)"),
        };
        for c in name.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str(suffix)
    }
}

/// The identities in the subjectAltName of the DER certificate `cert_der`, in certificate
/// order. A certificate without subjectAltName has none (its CN is deliberately ignored).
/// Other name forms (IP addresses, URIs, e-mail, other otherNames) are skipped.
///
/// Errors with [`CertError::BadEncoding`] when the certificate, its subjectAltName, or the
/// value of an id-on-xmppAddr / id-on-dnsSRV entry is malformed: a certificate whose
/// identities cannot be read unambiguously must not authenticate anyone.
pub fn cert_identities(cert_der: &[u8]) -> Result<Vec<Identity>, CertError> {
    let (rest, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| CertError::BadEncoding(format!("cannot parse the certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the certificate"));
    }
    // Errors on a malformed or duplicated extension (RFC 5280 §4.2: at most one instance).
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::BadEncoding(format!("subjectAltName: {e}")))?;
    let Some(san) = san else {
        return Ok(Vec::new());
    };
    let mut identities = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => identities.push(Identity::Dns((*dns).to_owned())),
            GeneralName::OtherName(oid, value) => {
                let oid = oid.to_id_string();
                if oid == OID_ON_XMPP_ADDR {
                    let jid = other_name_string(value, Tag::Utf8String)
                        .ok_or_else(|| bad("id-on-xmppAddr is not a [0] EXPLICIT UTF8String"))?;
                    identities.push(Identity::XmppAddr(jid));
                } else if oid == OID_ON_DNS_SRV {
                    let srv = other_name_string(value, Tag::Ia5String)
                        .filter(|s| s.is_ascii())
                        .ok_or_else(|| bad("id-on-dnsSRV is not a [0] EXPLICIT IA5String"))?;
                    identities.push(Identity::SrvName(srv));
                }
            }
            GeneralName::Invalid(tag, _) => {
                return Err(CertError::BadEncoding(format!(
                    "subjectAltName entry with tag {tag} cannot be decoded"
                )));
            }
            _ => {}
        }
    }
    Ok(identities)
}

fn bad(what: &str) -> CertError {
    CertError::BadEncoding(what.to_owned())
}

/// The string inside an otherName value. x509-parser hands over the bytes after the type-id
/// OID, which RFC 5280 §4.2.1.6 defines as `[0] EXPLICIT ANY DEFINED BY type-id`; for the two
/// forms read here that ANY is one string of type `want`, and nothing may follow either.
fn other_name_string(value: &[u8], want: Tag) -> Option<String> {
    let (rest, explicit) = Any::from_der(value).ok()?;
    if !rest.is_empty()
        || explicit.class() != Class::ContextSpecific
        || explicit.tag() != Tag(0)
        || !explicit.header.is_constructed()
    {
        return None;
    }
    let (rest, inner) = Any::from_der(explicit.data).ok()?;
    if !rest.is_empty() || inner.class() != Class::Universal || inner.tag() != want {
        return None;
    }
    std::str::from_utf8(inner.data).ok().map(str::to_owned)
}

/// The reference identifier (RFC 6125 §6.2) for `domain`: one trailing dot removed,
/// lowercased. `None` for an empty domain.
fn reference_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    (!domain.is_empty()).then(|| domain.to_lowercase())
}

/// DNS-ID matching (RFC 6125 §6.4.1 exact, §6.4.3 wildcard), ASCII case-insensitive.
/// `reference` is already lowercased.
fn dns_id_matches(presented: &str, reference: &str) -> bool {
    if !valid_dns_name(reference) {
        return false;
    }
    let presented = presented.to_ascii_lowercase();
    let presented = presented.strip_suffix('.').unwrap_or(&presented);
    match presented.strip_prefix("*.") {
        // The wildcard must be the whole left-most label and stand for exactly one label of
        // the reference; what follows must be at least two labels, so `*.test` covers nothing.
        Some(base) => {
            valid_dns_name(base)
                && base.contains('.')
                && reference
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == base)
        }
        None => valid_dns_name(presented) && presented == reference,
    }
}

/// Letters, digits, `-` and `_` in non-empty labels of at most 63 octets, at most 253 octets
/// in all. No `*`: a wildcard is only ever recognised as the exact prefix `*.`.
fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(s: &str) -> Identity {
        Identity::Dns(s.to_owned())
    }

    #[test]
    fn exact_dns_id_ignores_case_and_trailing_dot() {
        assert!(dns("a.test").covers("a.test"));
        assert!(dns("A.Test").covers("a.TEST."));
        assert!(dns("a.test.").covers("a.test"));
        assert!(!dns("a.test").covers("b.test"));
        assert!(!dns("a.test").covers("x.a.test"));
        assert!(!dns("a.test").covers(""));
    }

    #[test]
    fn wildcard_stands_for_exactly_one_left_most_label() {
        let w = dns("*.a.test");
        assert!(w.covers("x.a.test"));
        assert!(w.covers("X.A.test."));
        assert!(!w.covers("a.test"));
        assert!(!w.covers("y.x.a.test"));
        assert!(!w.covers(".a.test"));
        assert!(!w.covers("*.a.test"));
        // Partial-label and non-left-most wildcards are not wildcards at all.
        assert!(!dns("x*.a.test").covers("xy.a.test"));
        assert!(!dns("*x.a.test").covers("yx.a.test"));
        assert!(!dns("a.*.test").covers("a.b.test"));
        assert!(!dns("*").covers("test"));
        // A wildcard over a single label would cover a whole TLD.
        assert!(!dns("*.test").covers("a.test"));
    }

    #[test]
    fn malformed_dns_ids_match_nothing() {
        assert!(!dns("a..test").covers("a..test"));
        assert!(!dns("a test").covers("a test"));
        assert!(!dns("").covers(""));
        assert!(!dns("ä.test").covers("ä.test"));
    }

    #[test]
    fn xmpp_addr_is_a_bare_domain_compared_exactly() {
        let x = Identity::XmppAddr("Chat.Example".to_owned());
        assert!(x.covers("chat.example"));
        assert!(x.covers("CHAT.example."));
        assert!(!x.covers("x.chat.example"));
        assert!(!Identity::XmppAddr("*.a.test".to_owned()).covers("x.a.test"));
        assert!(!Identity::XmppAddr("user@a.test".to_owned()).covers("a.test"));
        assert!(!Identity::XmppAddr("a.test/res".to_owned()).covers("a.test"));
        assert!(Identity::XmppAddr("Bücher.test".to_owned()).covers("bücher.test"));
    }

    #[test]
    fn srv_id_needs_the_xmpp_server_service() {
        let s = Identity::SrvName("_XMPP-Server.a.test".to_owned());
        assert!(s.covers("a.test"));
        assert!(!s.covers("x.a.test"));
        assert!(!Identity::SrvName("_xmpp-client.a.test".to_owned()).covers("a.test"));
        assert!(!Identity::SrvName("_xmpp-server.*.a.test".to_owned()).covers("x.a.test"));
    }

    #[test]
    fn display_marks_forms_and_escapes_controls() {
        assert_eq!(dns("*.a.test").to_string(), "*.a.test");
        assert_eq!(
            Identity::XmppAddr("a.test".into()).to_string(),
            "a.test (xmppAddr)"
        );
        assert_eq!(
            Identity::SrvName("_xmpp-server.a.test".into()).to_string(),
            "_xmpp-server.a.test (SRV-ID)"
        );
        assert_eq!(dns("a\ntest").to_string(), "a\\u{a}test");
    }

    #[test]
    fn other_name_value_must_be_explicit_string_of_the_right_type() {
        // [0] EXPLICIT UTF8String "a.t"
        assert_eq!(
            other_name_string(&[0xa0, 5, 0x0c, 3, b'a', b'.', b't'], Tag::Utf8String).as_deref(),
            Some("a.t")
        );
        // Wrong inner type (IA5String where UTF8String is required).
        assert_eq!(
            other_name_string(&[0xa0, 5, 0x16, 3, b'a', b'.', b't'], Tag::Utf8String),
            None
        );
        // Not wrapped in [0] EXPLICIT.
        assert_eq!(
            other_name_string(&[0x0c, 3, b'a', b'.', b't'], Tag::Utf8String),
            None
        );
        // Trailing bytes after the value.
        assert_eq!(
            other_name_string(&[0xa0, 5, 0x0c, 3, b'a', b'.', b't', 0], Tag::Utf8String),
            None
        );
        assert_eq!(other_name_string(&[], Tag::Utf8String), None);
    }

    #[test]
    fn garbage_is_bad_encoding() {
        assert!(matches!(
            cert_identities(b"not a certificate"),
            Err(CertError::BadEncoding(_))
        ));
    }
}
