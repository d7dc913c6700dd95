//! TLS for client-facing listeners (c2s, connection managers' clients, the router port): one
//! rustls configuration built from the `CertStore` (SNI picks the host, the client's signature
//! schemes pick among its certificates, ECDSA first), the channel-binding data SASL -PLUS
//! needs from a finished handshake, and the stream a finished handshake becomes.
//!
//! rustls does every handshake, full or resumed from a stateless TLS 1.3 session ticket
//! (decision 0012). A TLS 1.3 connection with a 32-byte-key suite then leaves rustls for
//! [`compact::CompactTls`], which keeps only its keys (decision 0007): that is most of the
//! memory of an idle client. Anything else (TLS 1.2, AES-128-GCM, a record split across the
//! hand-over) stays a rustls stream. s2s keeps tokio-rustls throughout.

mod aligned;
mod compact;
mod records;
mod traffic;

#[cfg(test)]
mod tests;

pub use aligned::Aligned;
pub use compact::CompactTls;

use rookery_proto::sasl::ChannelBindings;
use rookery_tls::CertStore;
use rustls::{ProtocolVersion, ServerConfig, SupportedCipherSuite};
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use traffic::{CaptureTraffic, KEY_LEN, TrafficSecret};

#[derive(Clone)]
pub struct TlsContext {
    certs: Arc<CertStore>,
    /// The shared configuration; each handshake runs on a copy carrying its own key log.
    config: Arc<ServerConfig>,
}

/// TLS 1.3 session tickets issued per handshake when they are on: a client holds one
/// connection at a time and each resumption brings a fresh ticket, so one is enough (rustls'
/// default of two costs a second encryption and record for nothing).
const TICKETS_PER_HANDSHAKE: usize = 1;

impl TlsContext {
    /// `alpn`: protocols offered on Direct TLS (XEP-0368 uses `xmpp-client`). Session tickets
    /// are on if some host signs with RSA ([`CertStore::some_host_signs_with_rsa`]), else off;
    /// [`Self::with_session_tickets`] overrides that.
    pub fn new(certs: Arc<CertStore>, alpn: &[&[u8]]) -> Self {
        let mut config = (*certs.server_config(alpn)).clone();
        // The hand-over to the compact record layer takes the traffic keys out of rustls.
        config.enable_secret_extraction = true;
        // Our suite order (AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305) over the client's: all
        // three are strong, and the first goes compact while AES-128 cannot (decision 0007), so
        // clients that prefer AES-128 (BoringSSL's, on Android) still get the small stream.
        config.ignore_client_order = true;
        // Stateless TLS 1.3 tickets (decision 0012): a reconnecting client resumes with a
        // PSK and a fresh key exchange instead of a certificate signature, and the server keeps
        // nothing per ticket. rustls resumes only with psk_dhe_ke, and 0-RTT stays off
        // (`max_early_data_size` 0). By default only where a full handshake costs an RSA
        // signature: with ECDSA, issuing a ticket (and writing it) costs about what a
        // resumption saves.
        config.ticketer = certs.ticketer();
        config.send_tls13_tickets = if certs.some_host_signs_with_rsa() {
            TICKETS_PER_HANDSHAKE
        } else {
            0
        };
        TlsContext {
            certs,
            config: Arc::new(config),
        }
    }

    /// Whether handshakes issue TLS 1.3 session tickets (`[c2s] tls_session_tickets`).
    /// Without them every connection is a full handshake, as before decision 0012.
    pub fn with_session_tickets(mut self, on: bool) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.send_tls13_tickets = if on { TICKETS_PER_HANDSHAKE } else { 0 };
        self
    }

    /// Whether handshakes issue session tickets.
    pub fn session_tickets(&self) -> bool {
        self.config.send_tls13_tickets > 0
    }

    /// The TLS handshake on `tcp`, and the stream it becomes.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<ServerTls<TcpStream>> {
        Ok(self.accept_with_bindings(tcp).await?.0)
    }

    /// [`Self::accept`], with the connection's channel bindings for SASL -PLUS.
    pub async fn accept_with_bindings<IO>(
        &self,
        io: IO,
    ) -> io::Result<(ServerTls<IO>, ChannelBindings)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let capture = Arc::new(CaptureTraffic::default());
        let served = self.certs.served_cert();
        let mut config = (*self.config).clone();
        config.key_log = capture.clone();
        config.cert_resolver = served.clone();
        let tls = TlsAcceptor::from(Arc::new(config))
            .accept(Aligned::new(io))
            .await?;
        let bindings = ChannelBindings {
            exporter: rookery_tls::tls_exporter(tls.get_ref().1),
            server_end_point: served.end_point(),
        };
        Ok((ServerTls::establish(tls, &capture)?, bindings))
    }

    pub fn certs(&self) -> &CertStore {
        &self.certs
    }
}

/// A server-side TLS stream after the handshake.
// The common variant is inline on purpose: the stream is boxed whole inside `XmppStream`'s
// box, so one allocation holds it; only the rare rustls variant pays a second one.
#[allow(clippy::large_enum_variant)]
pub enum ServerTls<IO> {
    Compact(CompactTls<IO>),
    Rustls(Box<TlsStream<Aligned<IO>>>),
}

impl<IO: AsyncRead + AsyncWrite + Unpin> ServerTls<IO> {
    /// Hands a finished handshake to the compact record layer when it can, else keeps rustls.
    fn establish(mut tls: TlsStream<Aligned<IO>>, capture: &CaptureTraffic) -> io::Result<Self> {
        let (aligned, conn) = tls.get_ref();
        let suite = match conn.negotiated_cipher_suite() {
            Some(SupportedCipherSuite::Tls13(s)) if s.aead_alg.key_len() == KEY_LEN => Some(s),
            _ => None,
        };
        let secrets = capture.take();
        let (Some(suite), Some((client, server)), true, Some(ProtocolVersion::TLSv1_3)) = (
            suite,
            secrets,
            aligned.at_boundary(),
            conn.protocol_version(),
        ) else {
            tls.get_mut().0.pass_through();
            return Ok(ServerTls::Rustls(Box::new(tls)));
        };
        let (aligned, mut conn) = tls.into_inner();
        // What rustls opened but nobody read yet (the client's first bytes may travel with
        // its Finished), and anything it still has to send (the session ticket: flushed by the
        // acceptor, so normally nothing; if not, it goes out first, under rustls' sequence
        // numbers, which the extracted secrets continue from).
        let mut plain = Vec::new();
        match conn.reader().read_to_end(&mut plain) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut pending_tls = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut pending_tls)?;
        }
        let extracted = conn
            .dangerous_extract_secrets()
            .map_err(|e| io::Error::other(format!("tls hand-over: {e}")))?;
        let rx = TrafficSecret::new(suite, client);
        let tx = TrafficSecret::new(suite, server);
        let (Some((rx_key, rx_iv)), Some((tx_key, tx_iv))) =
            (rx.confirm(extracted.rx.1), tx.confirm(extracted.tx.1))
        else {
            // The key log and rustls disagree: never guess with keys.
            return Err(io::Error::other(
                "tls hand-over: traffic secrets do not match",
            ));
        };
        let records = records::RecordLayer::new(
            records::Direction {
                cipher: suite.aead_alg.encrypter(tx_key, tx_iv),
                seq: extracted.tx.0,
                secret: tx,
            },
            records::Direction {
                cipher: suite.aead_alg.decrypter(rx_key, rx_iv),
                seq: extracted.rx.0,
                secret: rx,
            },
            suite.common.confidentiality_limit,
        );
        let (io, unread) = aligned.into_parts();
        let mut compact = CompactTls::new(io, records, unread, plain);
        compact.queue_raw(pending_tls);
        Ok(ServerTls::Compact(compact))
    }

    /// Whether the connection left rustls for the compact record layer.
    pub fn is_compact(&self) -> bool {
        matches!(self, ServerTls::Compact(_))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ServerTls<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerTls::Compact(c) => Pin::new(c).poll_read(cx, buf),
            ServerTls::Rustls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ServerTls<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerTls::Compact(c) => Pin::new(c).poll_write(cx, buf),
            ServerTls::Rustls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerTls::Compact(c) => Pin::new(c).poll_flush(cx),
            ServerTls::Rustls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerTls::Compact(c) => Pin::new(c).poll_shutdown(cx),
            ServerTls::Rustls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }
}
