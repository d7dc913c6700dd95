//! First-byte checks at construct boundaries, before any input reaches rxml.
//!
//! Flow: bytes from a socket → [`crate::Framer::feed`] → (here, whenever the
//! framer stands between constructs) → rxml → tree → `StreamEvent`s.
//!
//! An XMPP stream is an XML document whose prolog may hold only whitespace
//! and an XML declaration (XML 1.0 §2.8, RFC 6120 §11), and whose root holds
//! only elements and whitespace at the top level (RFC 6120 §4.1). So between
//! constructs the next non-whitespace byte must be `<`. rxml would reach the
//! same verdict only once a `<` or its token cap arrived: an HTTP request, a
//! stray line of text or a probe that sends a few bytes and waits would hold
//! the connection until the header timeout. Deciding on the first byte closes
//! such streams at once, as Prosody and ejabberd do (their expat-based
//! parsers fail on the first byte too).

use crate::FramerError;

/// Whether a stream (new, or restarted) may start with `rest`, the buffered
/// bytes after leading whitespace. `Ok(false)`: too few bytes to tell.
pub(crate) fn stream_start(rest: &[u8]) -> Result<bool, FramerError> {
    match rest {
        [] => Ok(false),
        // UTF-16/32 (byte-order marks, or `<` with a NUL next to it) gets
        // `unsupported-encoding` rather than a syntax error; the second byte
        // decides, so these wait for it (the verdict must not depend on how
        // the input is chunked).
        [b'<' | 0x00 | 0xfe | 0xff] => Ok(false),
        [0xfe, 0xff, ..] | [0xff, 0xfe, ..] | [0x00, _, ..] | [b'<', 0x00, ..] => Err(
            FramerError::UnsupportedEncoding("stream is not UTF-8 encoded".into()),
        ),
        [b'<', ..] => Ok(true),
        // Anything else (including U+FEFF, which RFC 6120 §11.6 says is a
        // character, not a byte-order mark) is text before the root element.
        _ => Err(FramerError::NotWellFormed(not_a_stream_header(rest).into())),
    }
}

/// Checks the next byte between top-level elements (after the header).
pub(crate) fn between_elements(rest: &[u8]) -> Result<(), FramerError> {
    match rest.first() {
        None | Some(b'<') => Ok(()),
        Some(_) => Err(FramerError::BadFormat(
            "character data between top-level elements".into(),
        )),
    }
}

/// Request methods of HTTP/1.x (RFC 9110 §9.3, RFC 5789) and the HTTP/2
/// connection preface (RFC 9113 §3.4), each with the space that follows.
const HTTP_STARTS: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PRI ",
];

/// The error text for bytes that cannot start a stream: a hint for the two
/// usual mistakes (a browser or HTTP client pointed at an XMPP port, TLS
/// sent to a port that starts in plain text), else the generic complaint.
/// Uses only what is buffered, so the condition never waits for more input.
fn not_a_stream_header(rest: &[u8]) -> &'static str {
    if HTTP_STARTS.iter().any(|m| rest.starts_with(m)) {
        "expected an XML stream header, got an HTTP request: this port speaks XMPP (RFC 6120), not HTTP"
    } else if rest.starts_with(&[0x16, 0x03]) {
        // A TLS handshake record (RFC 8446 §5.1: content type 22, legacy
        // version 3.x).
        "expected an XML stream header, got a TLS handshake: this port starts in plain text (TLS, where offered, follows STARTTLS, RFC 6120 §5)"
    } else {
        "expected an XML stream header: the first non-whitespace byte must be '<'"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_usual_mistakes() {
        assert!(not_a_stream_header(b"GET / HTTP/1.1\r\n").contains("HTTP request"));
        assert!(not_a_stream_header(b"PRI * HTTP/2.0\r\n").contains("HTTP request"));
        assert!(not_a_stream_header(b"\x16\x03\x01\x02\x00").contains("TLS handshake"));
        // "GETX" is no method; a lone 0x16 is not enough to call it TLS.
        assert!(not_a_stream_header(b"GETX").contains("must be '<'"));
        assert!(not_a_stream_header(b"\x16").contains("must be '<'"));
    }

    #[test]
    fn stream_start_waits_only_where_the_second_byte_matters() {
        assert_eq!(stream_start(b""), Ok(false));
        assert_eq!(stream_start(b"<"), Ok(false));
        assert_eq!(stream_start(b"\xfe"), Ok(false));
        assert_eq!(stream_start(b"<s"), Ok(true));
        assert_eq!(stream_start(b"<?"), Ok(true));
        assert!(matches!(
            stream_start(b"G"),
            Err(FramerError::NotWellFormed(_))
        ));
        assert!(matches!(
            stream_start(b"\xef\xbb\xbf<"),
            Err(FramerError::NotWellFormed(_))
        ));
        assert!(matches!(
            stream_start(b"\xff\xfe"),
            Err(FramerError::UnsupportedEncoding(_))
        ));
    }
}
