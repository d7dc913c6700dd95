//! TLS 1.3 record protection for an established connection (RFC 8446 §5), after rustls has
//! finished the handshake and handed over the traffic keys (`tls::compact`).
//!
//! Why this exists: rustls' buffered connection keeps about 8 KiB per connection for life (a
//! 4 KiB receive buffer it never shrinks, its connection state, the handshake's leftovers).
//! Most XMPP connections sit idle, so that is most of what an idle client costs. Here a
//! connection keeps only its two AEAD keys and sequence numbers; the sealing and opening
//! themselves are rustls' own cipher-suite code (`MessageEncrypter`/`MessageDecrypter` of the
//! negotiated suite). What this file adds is the framing around them: record headers and their
//! length limit, sequence numbers and the suite's usage limit, the content types a peer may send
//! after the handshake, alerts, and KeyUpdate (decision 0007).

use super::traffic::TrafficSecret;
use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{ContentType, ProtocolVersion};
use std::io;

/// Record header: type, legacy version, length.
pub(crate) const HEADER_LEN: usize = 5;
/// RFC 8446 §5.1: at most 2^14 bytes of plaintext per record.
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// RFC 8446 §5.2: TLSCiphertext.length MUST NOT exceed 2^14 + 256.
pub(crate) const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

/// What one opened record held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened<'a> {
    /// Application data, possibly empty.
    Data(&'a [u8]),
    /// The peer's close_notify: no more data will come.
    CloseNotify,
    /// Nothing for the reader (a KeyUpdate, handled here; a user_canceled warning).
    Nothing,
}

/// The protection state of one established TLS 1.3 connection.
pub(crate) struct RecordLayer {
    tx: Direction<dyn MessageEncrypter>,
    rx: Direction<dyn MessageDecrypter>,
    /// Records sealed under one key before it must be replaced (the suite's confidentiality
    /// limit: 2^24.5 for AES-GCM).
    limit: u64,
    /// A KeyUpdate of ours waiting to be written (answering the peer's request, or at the limit).
    update_pending: bool,
    /// Consecutive empty application-data records: capped, as rustls does, so a peer cannot
    /// keep us busy with records that carry nothing.
    empty_run: u8,
}

/// One direction's protection: the cipher for the current key, the next sequence number, and
/// the traffic secret the next key derives from.
pub(crate) struct Direction<C: ?Sized> {
    pub(crate) cipher: Box<C>,
    pub(crate) seq: u64,
    pub(crate) secret: TrafficSecret,
}

/// Consecutive empty records accepted before the peer is considered abusive.
const MAX_EMPTY_RUN: u8 = 32;

/// Alert descriptions we send (RFC 8446 §6.2).
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;

/// Why the connection failed, and the alert to send the peer before closing (none when the
/// peer's own alert ended it).
#[derive(Debug)]
pub(crate) struct Fatal {
    alert: Option<u8>,
    why: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls: {}", self.why)
    }
}

impl std::error::Error for Fatal {}

fn fatal(alert: u8, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Fatal {
            alert: Some(alert),
            why: why.to_owned(),
        },
    )
}

fn peer_alerted(desc: u8) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Fatal {
            alert: None,
            why: format!("peer sent alert {desc}"),
        },
    )
}

/// The alert to send for a failure of `open` or `record_len`, if any.
pub(crate) fn alert_for(e: &io::Error) -> Option<u8> {
    e.get_ref()?.downcast_ref::<Fatal>()?.alert
}

/// rustls' verdict on a record, as the alert RFC 8446 asks for.
fn decrypt_failure(e: &rustls::Error) -> io::Error {
    let alert = match e {
        rustls::Error::DecryptError => BAD_RECORD_MAC,
        rustls::Error::PeerSentOversizedRecord => RECORD_OVERFLOW,
        rustls::Error::PeerMisbehaved(_) => UNEXPECTED_MESSAGE,
        _ => DECODE_ERROR,
    };
    fatal(alert, &e.to_string())
}

impl RecordLayer {
    /// `tx`/`rx`: each direction's cipher, next sequence number and traffic secret.
    pub(crate) fn new(
        tx: Direction<dyn MessageEncrypter>,
        rx: Direction<dyn MessageDecrypter>,
        limit: u64,
    ) -> Self {
        RecordLayer {
            tx,
            rx,
            limit,
            update_pending: false,
            empty_run: 0,
        }
    }

    /// The length of the record at the start of `buf` (header included) once its header is
    /// there. Checks what can be checked before the record is complete: after the handshake a
    /// TLS 1.3 peer only sends protected records, whose outer type is application_data.
    pub(crate) fn record_len(buf: &[u8]) -> io::Result<Option<usize>> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        if buf[0] != u8::from(ContentType::ApplicationData) {
            return Err(fatal(
                UNEXPECTED_MESSAGE,
                "unprotected record after the handshake",
            ));
        }
        let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
        if len > MAX_CIPHERTEXT {
            return Err(fatal(RECORD_OVERFLOW, "record overflow"));
        }
        Ok(Some(HEADER_LEN + len))
    }

    /// Opens one complete record (header included) in place.
    pub(crate) fn open<'a>(&mut self, record: &'a mut [u8]) -> io::Result<Opened<'a>> {
        if self.rx.seq == u64::MAX {
            return Err(fatal(INTERNAL_ERROR, "receive sequence exhausted"));
        }
        let body = &mut record[HEADER_LEN..];
        let msg =
            InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, body);
        let plain = self
            .rx
            .cipher
            .decrypt(msg, self.rx.seq)
            .map_err(|e| decrypt_failure(&e))?;
        self.rx.seq += 1;
        match plain.typ {
            ContentType::ApplicationData => {
                if plain.payload.is_empty() {
                    self.empty_run += 1;
                    if self.empty_run > MAX_EMPTY_RUN {
                        return Err(fatal(UNEXPECTED_MESSAGE, "too many empty records"));
                    }
                } else {
                    self.empty_run = 0;
                }
                Ok(Opened::Data(plain.payload))
            }
            ContentType::Alert => match plain.payload {
                // warning(1) or fatal(2), description close_notify(0)
                [_, 0] => Ok(Opened::CloseNotify),
                // user_canceled(90): a close_notify follows (RFC 8446 §6.1).
                [_, 90] => Ok(Opened::Nothing),
                [_, d] => Err(peer_alerted(*d)),
                _ => Err(fatal(DECODE_ERROR, "malformed alert")),
            },
            ContentType::Handshake => self.post_handshake(plain.payload),
            _ => Err(fatal(
                UNEXPECTED_MESSAGE,
                "unexpected content type after the handshake",
            )),
        }
    }

    /// A handshake message after the handshake. From a client, only KeyUpdate is possible (no
    /// post-handshake authentication is requested; NewSessionTicket is server-to-client).
    fn post_handshake(&mut self, msg: &[u8]) -> io::Result<Opened<'static>> {
        // KeyUpdate: type 24, length 1, request_update 0 or 1 (RFC 8446 §4.6.3). One message
        // per record: a peer coalescing handshake messages here is refused.
        match msg {
            [24, 0, 0, 1, request @ (0 | 1)] => {
                let next = self.rx.secret.next();
                self.rx.cipher = next.decrypter();
                self.rx.secret = next;
                self.rx.seq = 0;
                if *request == 1 {
                    self.update_pending = true;
                }
                Ok(Opened::Nothing)
            }
            _ => Err(fatal(
                UNEXPECTED_MESSAGE,
                "unexpected handshake message after the handshake",
            )),
        }
    }

    /// Seals `data` as application data into `out`, in records of at most 2^14 bytes, sending
    /// a KeyUpdate first when one is due.
    pub(crate) fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            if self.update_pending || self.tx.seq >= self.limit {
                self.send_key_update(out)?;
            }
            self.seal_one(ContentType::ApplicationData, chunk, out)?;
        }
        Ok(())
    }

    /// Whether a KeyUpdate waits to be written even though no data does.
    pub(crate) fn wants_write(&self) -> bool {
        self.update_pending
    }

    /// Writes a pending KeyUpdate (if any) into `out`.
    pub(crate) fn seal_pending(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.update_pending {
            self.send_key_update(out)?;
        }
        Ok(())
    }

    /// Seals a fatal alert into `out`.
    pub(crate) fn seal_fatal_alert(&mut self, desc: u8, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_one(ContentType::Alert, &[2, desc], out)
    }

    /// Seals a close_notify alert into `out`.
    pub(crate) fn seal_close_notify(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_one(ContentType::Alert, &[1, 0], out)
    }

    /// Our KeyUpdate (not requesting one back), sealed under the old key; then the new key.
    fn send_key_update(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_one(ContentType::Handshake, &[24, 0, 0, 1, 0], out)?;
        let next = self.tx.secret.next();
        self.tx.cipher = next.encrypter();
        self.tx.secret = next;
        self.tx.seq = 0;
        self.update_pending = false;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn set_limit_for_tests(&mut self, limit: u64) {
        self.limit = limit;
    }

    #[cfg(test)]
    pub(crate) fn tx_seq_for_tests(&self) -> u64 {
        self.tx.seq
    }

    fn seal_one(&mut self, typ: ContentType, payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.tx.seq == u64::MAX {
            return Err(fatal(INTERNAL_ERROR, "send sequence exhausted"));
        }
        let msg = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let sealed = self
            .tx
            .cipher
            .encrypt(msg, self.tx.seq)
            .map_err(|e| fatal(INTERNAL_ERROR, &e.to_string()))?;
        self.tx.seq += 1;
        let bytes = sealed.encode();
        if out.is_empty() {
            // The common case (one record per flush): take the sealed buffer as is.
            *out = bytes;
        } else {
            out.extend_from_slice(&bytes);
        }
        Ok(())
    }
}
