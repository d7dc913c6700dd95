//! The XEP-0114 (Jabber Component Protocol) handshake value, sans-IO. rookery-net's component
//! listener sends a fresh stream id, the component answers with `<handshake>` holding
//! hex(SHA-1(stream id ‖ shared secret)), and `verify_handshake` checks it.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// XEP-0114 §3: lowercase hex SHA-1 of the stream id followed by the secret (plain
/// concatenation, no separator).
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Checks a received handshake in constant time. Hex is accepted in either case (some
/// component libraries send it uppercase) and surrounding whitespace is ignored.
pub fn verify_handshake(stream_id: &str, secret: &str, candidate: &str) -> bool {
    let expected = handshake_digest(stream_id, secret);
    let candidate = candidate.trim().to_ascii_lowercase();
    expected.len() == candidate.len() && bool::from(expected.as_bytes().ct_eq(candidate.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0114_example() {
        // XEP-0114 §3, Example 3: stream id 3BF96D32, secret "secret".
        assert_eq!(
            handshake_digest("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }

    #[test]
    fn verification_is_case_insensitive_and_binds_id_and_secret() {
        let ok = "B09EA9B3B7F586BE8A08D0A3DD7466F110AEB136";
        assert!(verify_handshake("3BF96D32", "secret", ok));
        assert!(verify_handshake("3BF96D32", "secret", &format!(" {ok}\n")));
        assert!(
            !verify_handshake("3BF96D33", "secret", ok),
            "another stream"
        );
        assert!(
            !verify_handshake("3BF96D32", "secreT", ok),
            "another secret"
        );
        assert!(!verify_handshake("3BF96D32", "secret", &ok[..39]));
        assert!(!verify_handshake("3BF96D32", "secret", ""));
    }
}
