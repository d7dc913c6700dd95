//! SASL failure conditions (RFC 6120 §6.5) and the base64 framing of SASL payloads (§6.4.2).
//!
//! The c2s negotiation code turns a [`SaslFailure`] into `<failure xmlns='urn:ietf:params:xml:
//! ns:xmpp-sasl'><condition/></failure>` and uses the payload helpers for the text content of
//! `<auth/>`, `<response/>`, `<challenge/>` and `<success/>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Largest decoded SASL message accepted, in bytes. Real SCRAM/PLAIN messages are a few hundred
/// bytes; the bound keeps a hostile client from making the server parse and hash megabytes.
pub const MAX_MESSAGE_LEN: usize = 10_000;

/// Why authentication failed: one RFC 6120 §6.5 condition each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SaslFailure {
    #[error("aborted")]
    Aborted,
    #[error("account-disabled")]
    AccountDisabled,
    #[error("credentials-expired")]
    CredentialsExpired,
    #[error("encryption-required")]
    EncryptionRequired,
    #[error("incorrect-encoding")]
    IncorrectEncoding,
    #[error("invalid-authzid")]
    InvalidAuthzid,
    #[error("invalid-mechanism")]
    InvalidMechanism,
    #[error("malformed-request")]
    MalformedRequest,
    #[error("mechanism-too-weak")]
    MechanismTooWeak,
    #[error("not-authorized")]
    NotAuthorized,
    #[error("temporary-auth-failure")]
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The RFC 6120 §6.5 child element name of `<failure/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// A negotiation refusal: the condition, and a reason for `<text/>` (RFC 6120 §6.4.5) when one
/// helps the client move on (e.g. which channel-binding types this connection offers). Never
/// used for a credential mismatch, which must look like every other wrong password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) condition: SaslFailure,
    pub(crate) text: Option<String>,
}

impl Refusal {
    pub(crate) fn with_text(condition: SaslFailure, text: impl Into<String>) -> Self {
        Refusal {
            condition,
            text: Some(text.into()),
        }
    }
}

impl From<SaslFailure> for Refusal {
    fn from(condition: SaslFailure) -> Self {
        Refusal {
            condition,
            text: None,
        }
    }
}

/// How a step that compares credentials failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckFailure {
    /// The password, or the SCRAM proof together with its nonce and channel-binding data, was
    /// compared with the account's credential (or an unknown account's fake one) and did not
    /// match: the outcome a brute-force throttle counts.
    Mismatch,
    /// Nothing was compared: the message was unusable, or the stored credential is broken.
    Other(SaslFailure),
}

impl From<SaslFailure> for CheckFailure {
    fn from(f: SaslFailure) -> Self {
        CheckFailure::Other(f)
    }
}

/// Decodes the character data of `<auth/>` or `<response/>` (RFC 6120 §6.4.2): no text means
/// no data (`Ok(None)`, e.g. `<auth/>` without an initial response), a single `=` means an
/// empty response (`Ok(Some(vec![]))`), anything else must be canonical padded base64.
///
/// Leading and trailing XML whitespace is tolerated because pretty-printing clients and
/// examples wrap the text in newlines; whitespace inside the data is not, since RFC 6120 forbids
/// line-wrapped base64. Oversize input is rejected before decoding.
pub fn decode_b64_payload(text: &str) -> Result<Option<Vec<u8>>, SaslFailure> {
    let text = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if text.is_empty() {
        return Ok(None);
    }
    if text == "=" {
        return Ok(Some(Vec::new()));
    }
    // Every 3 decoded bytes take 4 characters; anything longer cannot decode within the bound.
    if text.len() > MAX_MESSAGE_LEN.div_ceil(3) * 4 {
        return Err(SaslFailure::MalformedRequest);
    }
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| SaslFailure::IncorrectEncoding)?;
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok(Some(bytes))
}

/// Encodes a payload for `<challenge/>` or `<success/>`: `=` for an empty payload, as RFC 6120
/// §6.4.2 requires (empty element content would mean "no data").
pub fn encode_b64_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        STANDARD.encode(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_match_display() {
        for f in [
            SaslFailure::Aborted,
            SaslFailure::AccountDisabled,
            SaslFailure::CredentialsExpired,
            SaslFailure::EncryptionRequired,
            SaslFailure::IncorrectEncoding,
            SaslFailure::InvalidAuthzid,
            SaslFailure::InvalidMechanism,
            SaslFailure::MalformedRequest,
            SaslFailure::MechanismTooWeak,
            SaslFailure::NotAuthorized,
            SaslFailure::TemporaryAuthFailure,
        ] {
            assert_eq!(f.to_string(), f.condition());
        }
    }

    #[test]
    fn payload_framing() {
        assert_eq!(decode_b64_payload(""), Ok(None));
        assert_eq!(decode_b64_payload("\n  "), Ok(None));
        assert_eq!(decode_b64_payload("="), Ok(Some(vec![])));
        assert_eq!(decode_b64_payload("biws"), Ok(Some(b"n,,".to_vec())));
        assert_eq!(decode_b64_payload("\n biws\n"), Ok(Some(b"n,,".to_vec())));
        assert_eq!(encode_b64_payload(b""), "=");
        assert_eq!(encode_b64_payload(b"n,,"), "biws");
    }

    #[test]
    fn invalid_base64_is_incorrect_encoding() {
        for bad in ["biw", "bi ws", "b!ws", "biws=", "YQ", "YR==", "===="] {
            assert_eq!(
                decode_b64_payload(bad),
                Err(SaslFailure::IncorrectEncoding),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn oversize_payload_is_malformed() {
        let ok = STANDARD.encode(vec![b'a'; MAX_MESSAGE_LEN]);
        assert_eq!(
            decode_b64_payload(&ok).map(|d| d.map(|d| d.len())),
            Ok(Some(MAX_MESSAGE_LEN))
        );
        let big = STANDARD.encode(vec![b'a'; MAX_MESSAGE_LEN + 1]);
        assert_eq!(decode_b64_payload(&big), Err(SaslFailure::MalformedRequest));
        let huge = "A".repeat(1 << 20);
        assert_eq!(
            decode_b64_payload(&huge),
            Err(SaslFailure::MalformedRequest)
        );
    }
}
