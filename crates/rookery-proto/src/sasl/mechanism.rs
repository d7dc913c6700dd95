//! What the server offers: the mechanism list for `<mechanisms/>`, the channel-binding types for
//! XEP-0440's `<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'/>`, and the XEP-0474 hash that
//! lets a SCRAM client check both lists reached it untampered.
//!
//! The I/O layer (rookery-net, with rookery-tls) knows whether TLS is up and extracts the binding
//! data; everything here is a pure function of that.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::creds::HashAlg;
use super::crypto;

/// A SASL mechanism this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
    Plain,
}

impl Mechanism {
    /// Every mechanism, strongest first: channel binding beats no channel binding (it defeats a
    /// MITM holding a valid certificate), then SHA-256 beats SHA-1, and PLAIN comes last
    /// because it hands the password to the server.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA-registered name, as sent in `<mechanism/>` and the `mechanism` attribute.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// Parses a mechanism name. SASL names are case-sensitive upper case (RFC 4422 §3.1), so
    /// `scram-sha-1` is not a name we implement.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM hash, or `None` for PLAIN.
    pub fn scram_hash(self) -> Option<HashAlg> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(HashAlg::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(HashAlg::Sha256),
            Mechanism::Plain => None,
        }
    }

    /// Whether this is a channel-binding (`-PLUS`) variant.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }
}

/// A channel-binding type (RFC 5056 registry) this server can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CbType {
    /// RFC 9266: TLS exporter with label "EXPORTER-Channel-Binding", 32 bytes, TLS 1.3 only.
    TlsExporter,
    /// RFC 5929 §4: hash of the server's end-entity certificate.
    TlsServerEndPoint,
}

impl CbType {
    /// The registered name, as used in the gs2 header (`p=<name>`) and in XEP-0440.
    pub fn name(self) -> &'static str {
        match self {
            CbType::TlsExporter => "tls-exporter",
            CbType::TlsServerEndPoint => "tls-server-end-point",
        }
    }

    /// Parses a registered name (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [CbType::TlsExporter, CbType::TlsServerEndPoint]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// The channel-binding data this TLS connection can offer, computed by the I/O layer after the
/// handshake. Both `None` on plaintext; `exporter` is `None` below TLS 1.3, where RFC 9266 does
/// not define it (without the extended master secret it would not be unique to the channel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    pub exporter: Option<Vec<u8>>,
    pub server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The data for one type, if this connection has it.
    pub fn data(&self, cb: CbType) -> Option<&[u8]> {
        match cb {
            CbType::TlsExporter => self.exporter.as_deref(),
            CbType::TlsServerEndPoint => self.server_end_point.as_deref(),
        }
    }
}

/// The mechanisms to advertise, strongest first. `-PLUS` variants only when the connection has
/// some channel binding to offer (advertising them otherwise would make a binding-capable
/// client fail); PLAIN only over TLS unless the operator explicitly allowed otherwise.
pub fn advertised_mechanisms(
    secure: bool,
    allow_plain_unencrypted: bool,
    bindings: &ChannelBindings,
) -> Vec<Mechanism> {
    let has_binding = !channel_binding_types(bindings).is_empty();
    Mechanism::ALL
        .into_iter()
        .filter(|m| match m {
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus => has_binding,
            Mechanism::ScramSha1 | Mechanism::ScramSha256 => true,
            Mechanism::Plain => secure || allow_plain_unencrypted,
        })
        .collect()
}

/// The channel-binding types this connection can provide, for XEP-0440's feature element,
/// strongest first (tls-exporter binds to the connection, tls-server-end-point only to the
/// certificate). Empty on plaintext; the caller then omits the feature.
pub fn channel_binding_types(bindings: &ChannelBindings) -> Vec<CbType> {
    [CbType::TlsExporter, CbType::TlsServerEndPoint]
        .into_iter()
        .filter(|t| bindings.data(*t).is_some())
        .collect()
}

/// The XEP-0474 (v0.5.0 §4.1, "SSDP") downgrade-protection value, base64 of
/// H(mechanisms ‖ [0x1F ‖ cb-types]) where each list is sorted by octet value and joined with
/// 0x1E, the channel-binding part is present only when XEP-0440 types were advertised (the
/// caller advertises exactly [`channel_binding_types`]), and H is the SCRAM mechanism's hash.
/// The mechanism list is the one the server actually advertised on this stream, PLAIN
/// included.
pub fn downgrade_protection_hash(
    alg: HashAlg,
    advertised: &[Mechanism],
    cb_types: &[CbType],
) -> String {
    let mut mechs: Vec<&str> = advertised.iter().map(|m| m.name()).collect();
    mechs.sort_unstable();
    let mut input = mechs.join("\u{1e}");
    if !cb_types.is_empty() {
        let mut types: Vec<&str> = cb_types.iter().map(|t| t.name()).collect();
        types.sort_unstable();
        input.push('\u{1f}');
        input.push_str(&types.join("\u{1e}"));
    }
    STANDARD.encode(crypto::hash(alg, input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> ChannelBindings {
        ChannelBindings {
            exporter: Some(vec![1; 32]),
            server_end_point: Some(vec![2; 32]),
        }
    }

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("SCRAM-SHA-512"), None);
        for t in [CbType::TlsExporter, CbType::TlsServerEndPoint] {
            assert_eq!(CbType::from_name(t.name()), Some(t));
        }
        assert_eq!(CbType::from_name("tls-unique"), None);
    }

    #[test]
    fn plaintext_offers_scram_only() {
        let none = ChannelBindings::default();
        assert_eq!(
            advertised_mechanisms(false, false, &none),
            vec![Mechanism::ScramSha256, Mechanism::ScramSha1]
        );
        assert_eq!(
            advertised_mechanisms(false, true, &none),
            vec![
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain
            ]
        );
        assert!(channel_binding_types(&none).is_empty());
    }

    #[test]
    fn tls_offers_plus_only_with_a_binding() {
        let none = ChannelBindings::default();
        assert_eq!(
            advertised_mechanisms(true, false, &none),
            vec![
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain
            ]
        );
        assert_eq!(
            advertised_mechanisms(true, false, &both()).to_vec(),
            Mechanism::ALL
        );
        let tls12 = ChannelBindings {
            exporter: None,
            server_end_point: Some(vec![2; 32]),
        };
        assert_eq!(
            channel_binding_types(&tls12),
            vec![CbType::TlsServerEndPoint]
        );
        assert_eq!(
            channel_binding_types(&both()),
            vec![CbType::TlsExporter, CbType::TlsServerEndPoint]
        );
    }

    /// The value from XEP-0474 v0.5.0's full example: SHA-1 over
    /// "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point".
    #[test]
    fn xep0474_example_hash() {
        let h = downgrade_protection_hash(
            HashAlg::Sha1,
            &[Mechanism::ScramSha1Plus, Mechanism::ScramSha1],
            &[CbType::TlsServerEndPoint, CbType::TlsExporter],
        );
        assert_eq!(h, "G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    }

    #[test]
    fn xep0474_hash_omits_cb_part_without_xep0440() {
        let with_sep = downgrade_protection_hash(HashAlg::Sha256, &[Mechanism::ScramSha256], &[]);
        let expected = STANDARD.encode(crypto::hash(HashAlg::Sha256, b"SCRAM-SHA-256"));
        assert_eq!(with_sep, expected);
    }
}
