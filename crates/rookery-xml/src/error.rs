//! Errors of the XML layer.
//!
//! Flow: bytes from a socket → [`crate::Framer`] → [`crate::StreamEvent`] →
//! protocol machines in rookery-proto. Whenever the framer (or
//! [`crate::Element::parse`]) gives up on the input it returns a
//! [`FramerError`]; the protocol layer turns it into a stream error using
//! [`FramerError::condition`] and closes the stream, so every variant maps to
//! exactly one RFC 6120 §4.9.3 condition.

/// Why the input was rejected. The string is a human-readable detail for logs;
/// it must never be relied on by code (use the variant or `condition()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramerError {
    /// Malformed XML: bad syntax, invalid UTF-8, unbound prefix, duplicate
    /// attribute, mismatched tags, unknown entity, reserved prefix misuse.
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// Well-formed XML that RFC 6120 §11.1 forbids: DTDs, entity
    /// declarations, processing instructions, comments.
    #[error("restricted xml: {0}")]
    RestrictedXml(String),
    /// A configured size or count limit was exceeded.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// The stream root is not `{http://etherx.jabber.org/streams}stream`.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    /// The input declares or uses an encoding other than UTF-8.
    #[error("unsupported encoding: {0}")]
    UnsupportedEncoding(String),
    /// Well-formed XML that is not a valid XMPP stream at this point (for
    /// example character data between top-level elements).
    #[error("bad format: {0}")]
    BadFormat(String),
}

impl FramerError {
    /// The RFC 6120 §4.9.3 stream error condition (the local name of the
    /// element to put inside `<stream:error/>`).
    pub fn condition(&self) -> &'static str {
        match self {
            FramerError::NotWellFormed(_) => "not-well-formed",
            FramerError::RestrictedXml(_) => "restricted-xml",
            FramerError::PolicyViolation(_) => "policy-violation",
            FramerError::InvalidNamespace(_) => "invalid-namespace",
            FramerError::UnsupportedEncoding(_) => "unsupported-encoding",
            FramerError::BadFormat(_) => "bad-format",
        }
    }

    /// Classify an rxml error. `offending` is the last byte rxml consumed
    /// before failing, if known: rxml reports `<!DOCTYPE` as a generic syntax
    /// error, and the byte after `<!` is what tells a DTD apart from garbage.
    pub(crate) fn from_rxml(err: rxml::Error, offending: Option<u8>) -> Self {
        use rxml::Error as E;
        match err {
            // rxml only says "RestrictedXml" with a fixed message; the
            // messages are matched because they carry different RFC 6120
            // conditions. The unit tests pin each of them, so an rxml upgrade
            // that rewords them fails loudly instead of misclassifying.
            E::RestrictedXml("only utf-8 encoding is allowed") => {
                FramerError::UnsupportedEncoding("encoding other than UTF-8 declared".into())
            }
            E::RestrictedXml(msg @ ("long name or reference" | "event too long")) => {
                FramerError::PolicyViolation(format!("token too long ({msg})"))
            }
            E::RestrictedXml(msg) => FramerError::RestrictedXml(msg.into()),
            // `<!` followed by anything but `--` or `[CDATA[` is markup
            // declaration syntax (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`, ...),
            // i.e. a DTD: restricted, not merely malformed.
            E::InvalidSyntax("malformed cdata or comment section start")
                if offending.is_some_and(|b| b.is_ascii_uppercase()) =>
            {
                FramerError::RestrictedXml("DTDs and markup declarations are not allowed".into())
            }
            other => FramerError::NotWellFormed(other.to_string()),
        }
    }
}

/// Shorthand used by the parsing modules.
pub(crate) fn policy(what: &str, limit: usize) -> FramerError {
    FramerError::PolicyViolation(format!("{what} exceeds the limit of {limit}"))
}

pub(crate) fn not_wf(msg: impl Into<String>) -> FramerError {
    FramerError::NotWellFormed(msg.into())
}
