//! TLS for listeners: one rustls acceptor built from the `CertStore` (SNI picks the host's
//! certificate), and the channel-binding data SASL -PLUS needs from a finished handshake.

use rookery_proto::sasl::ChannelBindings;
use rookery_tls::CertStore;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

#[derive(Clone)]
pub struct TlsContext {
    certs: Arc<CertStore>,
    acceptor: TlsAcceptor,
}

impl TlsContext {
    /// `alpn`: protocols offered on Direct TLS (XEP-0368 uses `xmpp-client`).
    pub fn new(certs: Arc<CertStore>, alpn: &[&[u8]]) -> Self {
        let acceptor = TlsAcceptor::from(certs.server_config(alpn));
        TlsContext { certs, acceptor }
    }

    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }

    pub fn certs(&self) -> &CertStore {
        &self.certs
    }
}

/// Channel bindings of an established server-side TLS stream (RFC 9266, RFC 5929).
pub fn bindings(ctx: &TlsContext, stream: &TlsStream<TcpStream>) -> ChannelBindings {
    let (_, conn) = stream.get_ref();
    let leaf = ctx.certs.cert_der_for(conn.server_name());
    ChannelBindings {
        exporter: rookery_tls::tls_exporter(conn),
        server_end_point: leaf.and_then(|c| rookery_tls::tls_server_end_point(c.as_ref())),
    }
}
