//! Resource limits for parsing untrusted XML.
//!
//! Flow: bytes from a socket → [`crate::Framer`] (enforces these limits while
//! parsing, before any tree exists) → [`crate::StreamEvent`] → protocol
//! machines in rookery-proto. The net layer picks the limits (tight before
//! authentication, looser after) and can change them with
//! [`crate::Framer::set_limits`].

/// Caps applied to every top-level element ("stanza") and to the stream
/// header. Exceeding any of them is a `policy-violation` stream error,
/// reported as soon as the offending byte or event is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of raw input bytes in one top-level element, from its
    /// `<` to the `>` that closes it. Whitespace between top-level elements
    /// is not counted.
    pub max_stanza_bytes: usize,
    /// Maximum element nesting inside a stanza; the top-level element itself
    /// is depth 1.
    pub max_depth: usize,
    /// Maximum number of elements (the top-level one included) in a stanza.
    pub max_elements: usize,
    /// Maximum number of attributes on one element, namespace declarations
    /// not included.
    pub max_attrs: usize,
    /// Maximum number of namespace declarations (`xmlns`, `xmlns:p`) on one
    /// element.
    pub max_ns_decls: usize,
    /// Maximum number of bytes of the stream header, XML declaration
    /// included.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 64,
            max_elements: 5000,
            max_attrs: 100,
            max_ns_decls: 100,
            max_header_bytes: 8192,
        }
    }
}
