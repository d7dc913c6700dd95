//! TLS 1.3 application traffic secrets, kept by a compact connection (`tls::compact`) so that
//! it can follow KeyUpdates (RFC 8446 §4.6.3, §7.2) after rustls has handed the connection
//! over.
//!
//! rustls extracts a connection's current keys and sequence numbers, but not the traffic
//! secrets the next keys derive from. It does report them through its `KeyLog` hook (the one
//! behind SSLKEYLOGFILE), so each handshake gets a [`CaptureTraffic`] of its own that keeps
//! `CLIENT_TRAFFIC_SECRET_0` and `SERVER_TRAFFIC_SECRET_0` in memory (never on disk), and
//! the connection takes them from there. The derivations below are HKDF-Expand-Label with the
//! negotiated suite's HKDF; the keys they give are checked against rustls' own at hand-over.

use rustls::Tls13CipherSuite;
use rustls::crypto::cipher::{AeadKey, Iv, MessageDecrypter, MessageEncrypter};
use rustls::crypto::tls13::{HkdfExpander, OkmBlock};
use rustls::{ConnectionTrafficSecrets, KeyLog};
use std::sync::Mutex;

/// Key length the compact path handles: rustls' `AeadKey` can only be built from 32 bytes
/// outside rustls, which covers AES-256-GCM and ChaCha20-Poly1305 (not AES-128-GCM).
pub(crate) const KEY_LEN: usize = 32;
/// TLS 1.3 AEAD nonce length.
const IV_LEN: usize = 12;

/// One direction's application traffic secret and the suite it belongs to.
pub(crate) struct TrafficSecret {
    suite: &'static Tls13CipherSuite,
    secret: OkmBlock,
}

impl TrafficSecret {
    pub(crate) fn new(suite: &'static Tls13CipherSuite, secret: OkmBlock) -> Self {
        TrafficSecret { suite, secret }
    }

    fn expander(&self) -> Box<dyn HkdfExpander> {
        self.suite.hkdf_provider.expander_for_okm(&self.secret)
    }

    /// application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
    pub(crate) fn next(&self) -> TrafficSecret {
        let exp = self.expander();
        let info = HkdfLabel::new(exp.hash_len(), b"traffic upd");
        let next = exp.expand_block(&[info.bytes()]);
        TrafficSecret::new(self.suite, next)
    }

    /// The record key and IV (RFC 8446 §7.3).
    pub(crate) fn key_iv(&self) -> (AeadKey, Iv) {
        let exp = self.expander();
        let mut key = [0u8; KEY_LEN];
        let mut iv = [0u8; IV_LEN];
        // Both lengths are far below HKDF's 255 × HashLen bound: these cannot fail.
        let _ = exp.expand_slice(&[HkdfLabel::new(KEY_LEN, b"key").bytes()], &mut key);
        let _ = exp.expand_slice(&[HkdfLabel::new(IV_LEN, b"iv").bytes()], &mut iv);
        (AeadKey::from(key), Iv::from(iv))
    }

    pub(crate) fn encrypter(&self) -> Box<dyn MessageEncrypter> {
        let (key, iv) = self.key_iv();
        self.suite.aead_alg.encrypter(key, iv)
    }

    pub(crate) fn decrypter(&self) -> Box<dyn MessageDecrypter> {
        let (key, iv) = self.key_iv();
        self.suite.aead_alg.decrypter(key, iv)
    }

    /// The key and IV rustls extracted for this direction, if this secret yields the same.
    pub(crate) fn confirm(&self, extracted: ConnectionTrafficSecrets) -> Option<(AeadKey, Iv)> {
        let (key, iv) = self.key_iv();
        match extracted {
            ConnectionTrafficSecrets::Aes256Gcm { key: k, iv: i }
            | ConnectionTrafficSecrets::Chacha20Poly1305 { key: k, iv: i }
                if k.as_ref() == key.as_ref() && i.as_ref() == iv.as_ref() =>
            {
                Some((k, i))
            }
            _ => None,
        }
    }
}

/// The HkdfLabel structure (RFC 8446 §7.1) with an empty context: output length, the label
/// prefixed with "tls13 " (one length byte), context length 0. Labels here are at most 11 bytes.
struct HkdfLabel {
    buf: [u8; 2 + 1 + 6 + 16 + 1],
    len: usize,
}

impl HkdfLabel {
    fn new(out_len: usize, label: &[u8]) -> Self {
        const PREFIX: &[u8] = b"tls13 ";
        let mut buf = [0u8; 26];
        let label = &label[..label.len().min(16)];
        buf[..2].copy_from_slice(&(out_len as u16).to_be_bytes());
        buf[2] = (PREFIX.len() + label.len()) as u8;
        buf[3..9].copy_from_slice(PREFIX);
        buf[9..9 + label.len()].copy_from_slice(label);
        // The context length byte after the label stays 0.
        HkdfLabel {
            buf,
            len: 9 + label.len() + 1,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Collects one handshake's TLS 1.3 application traffic secrets (client, server) from rustls'
/// key log. One per handshake, dropped with the connection's configuration.
#[derive(Default)]
pub(crate) struct CaptureTraffic {
    secrets: Mutex<(Option<OkmBlock>, Option<OkmBlock>)>,
}

impl CaptureTraffic {
    /// The (client, server) secrets, once both were logged.
    pub(crate) fn take(&self) -> Option<(OkmBlock, OkmBlock)> {
        let mut s = self.secrets.lock().ok()?;
        match (s.0.take(), s.1.take()) {
            (Some(c), Some(s)) => Some((c, s)),
            _ => None,
        }
    }
}

impl std::fmt::Debug for CaptureTraffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.write_str("CaptureTraffic")
    }
}

impl KeyLog for CaptureTraffic {
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_TRAFFIC_SECRET_0" | "SERVER_TRAFFIC_SECRET_0")
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if secret.len() > OkmBlock::MAX_LEN {
            return;
        }
        let Ok(mut s) = self.secrets.lock() else {
            return;
        };
        match label {
            "CLIENT_TRAFFIC_SECRET_0" => s.0 = Some(OkmBlock::new(secret)),
            "SERVER_TRAFFIC_SECRET_0" => s.1 = Some(OkmBlock::new(secret)),
            _ => {}
        }
    }
}
