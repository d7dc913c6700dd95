//! Client-to-server connections (RFC 6120): one task per connection. `serve_connection` takes an
//! accepted socket through stream negotiation — header checks, STARTTLS (or Direct TLS), SASL,
//! resource binding — and then hands the bound session to `session::run`, the actor that ties the
//! socket to the core `Server`. Negotiation is generic over the transport so the same code runs
//! on TCP and on TLS.

mod auth;
mod bind;
mod features;
mod header;
pub(crate) mod io;
mod session;

use crate::limits::UnauthGuard;
use crate::stream::{ReadError, XmppStream, framer_stream_error};
use crate::tls::TlsContext;
use io::ClientIo;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::ChannelBindings;
use rookery_proto::stanza::BareJid;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;

/// What negotiation knows about the connection so far.
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub secure: bool,
    pub domain: Option<String>,
    pub stream_id: String,
    pub authenticated: Option<BareJid>,
    pub bindings: ChannelBindings,
    pub connected: Instant,
    /// Released once the client authenticated (per-IP unauthenticated connection cap).
    pub unauth_guard: Option<UnauthGuard>,
}

impl Conn {
    /// Deadline for authentication (SECURITY.md §3.4: authenticate within N s of connect).
    fn auth_deadline(&self, server: &Server) -> Instant {
        self.connected + server.config().limits.auth_timeout()
    }
}

/// Entry point for an accepted TCP connection.
pub async fn serve_connection(
    server: Server,
    tls: TlsContext,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    guard: UnauthGuard,
) {
    let _ = tcp.set_nodelay(true);
    let conn = Conn {
        peer,
        secure: false,
        domain: None,
        stream_id: String::new(),
        authenticated: None,
        bindings: ChannelBindings::default(),
        connected: Instant::now(),
        unauth_guard: Some(guard),
    };
    let limits = crate::limits::framer_limits(&server, false);
    if direct_tls {
        let deadline = server.config().limits.header_timeout();
        match tokio::time::timeout(deadline, tls.accept(tcp)).await {
            Ok(Ok(tls_stream)) => {
                let mut conn = conn;
                conn.secure = true;
                conn.bindings = crate::tls::bindings(&tls, &tls_stream);
                let stream = XmppStream::new(tls_stream, limits, ns::CLIENT);
                // Boxed: the connection task then holds only the phase it is in, not the
                // largest state of every nested future (memory per idle connection).
                let _ = Box::pin(negotiate(&server, stream, conn)).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, what = "tls-accept", "failed"),
            Err(_) => tracing::debug!(%peer, what = "tls-accept", "timed out"),
        }
        return;
    }
    let stream = XmppStream::new(tcp, limits, ns::CLIENT);
    if let Some((stream, mut conn)) = Box::pin(negotiate(&server, stream, conn)).await {
        // STARTTLS: the plaintext stream asked to upgrade. The framer was checked empty, so no
        // plaintext bytes can leak into the encrypted stream (STARTTLS injection).
        let tcp = stream.into_inner();
        match tokio::time::timeout(server.config().limits.header_timeout(), tls.accept(tcp)).await {
            Ok(Ok(tls_stream)) => {
                conn.secure = true;
                conn.bindings = crate::tls::bindings(&tls, &tls_stream);
                let stream = XmppStream::new(
                    tls_stream,
                    crate::limits::framer_limits(&server, false),
                    ns::CLIENT,
                );
                // Boxed: the connection task then holds only the phase it is in, not the
                // largest state of every nested future (memory per idle connection).
                let _ = Box::pin(negotiate(&server, stream, conn)).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, what = "starttls", "handshake failed"),
            Err(_) => tracing::debug!(%peer, what = "starttls", "handshake timed out"),
        }
    }
}

/// Entry point for a client behind a connection manager (its `create` arrived on a link): the
/// same negotiation and session as a direct client, over the routed stream. The CM enforces
/// the TLS policy of the configuration IQ before it routes anything, so the stream counts as
/// encrypted; there is no channel binding (the TLS session is the CM's).
pub async fn serve_routed(
    server: Server,
    stream: crate::cm::stream::CmStream,
    peer: SocketAddr,
    stream_id: String,
) {
    let conn = Conn {
        peer,
        secure: true,
        domain: None,
        stream_id,
        authenticated: None,
        bindings: ChannelBindings::default(),
        connected: Instant::now(),
        unauth_guard: None,
    };
    // STARTTLS never comes back from a routed stream: `<starttls/>` on a secure stream fails.
    let _ = Box::pin(negotiate(&server, stream, conn)).await;
}

/// Runs negotiation until the session is bound (then runs the session) or fails. Returns the
/// stream when the client asked for STARTTLS, so the caller can wrap the transport.
async fn negotiate<S: ClientIo>(
    server: &Server,
    mut stream: S,
    mut conn: Conn,
) -> Option<(S, Conn)> {
    loop {
        // (Re)start: read the client's header, answer with ours and the features.
        if header::open(server, &mut stream, &mut conn).await.is_err() {
            return None;
        }
        features::send(server, &mut stream, &conn).await.ok()?;
        // Read negotiation elements until something restarts the stream.
        match step_until_restart(server, &mut stream, &mut conn).await {
            Restart::StartTls => return Some((stream, conn)),
            Restart::Sasl => {
                stream.restart();
                continue;
            }
            Restart::Bound(handle, rx) => {
                // Boxed: once bound, the negotiation state is gone and only the session's
                // own state stays allocated.
                Box::pin(session::run(server.clone(), stream, handle, rx)).await;
                return None;
            }
            Restart::Closed => return None,
        }
    }
}

enum Restart {
    StartTls,
    Sasl,
    Bound(
        rookery_core::SessionHandle,
        rookery_core::session::SessionReceiver,
    ),
    Closed,
}

/// Reads one negotiation element with the auth deadline applied.
pub(crate) async fn read_element<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &Conn,
) -> Result<Element, ()> {
    let deadline = if conn.authenticated.is_none() {
        conn.auth_deadline(server)
    } else {
        // Bind must follow soon after auth too.
        Instant::now() + server.config().limits.auth_timeout()
    };
    let ev = tokio::select! {
        // A shutdown reaches connections still negotiating too (clients get system-shutdown).
        _ = server.shutdown_token().cancelled() => {
            stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
            return Err(());
        }
        ev = tokio::time::timeout_at(deadline.into(), stream.next_event()) => ev,
    };
    match ev {
        Err(_) => {
            stream
                .fail(&StreamError::new(StreamCondition::ConnectionTimeout))
                .await;
            Err(())
        }
        Ok(Err(ReadError::Closed)) => Err(()),
        Ok(Err(ReadError::Xml(e))) => {
            stream.fail(&framer_stream_error(&e)).await;
            Err(())
        }
        Ok(Ok(StreamEvent::Close)) => {
            stream.close().await;
            Err(())
        }
        Ok(Ok(StreamEvent::Open(_))) => {
            stream
                .fail(
                    &StreamError::new(StreamCondition::NotWellFormed)
                        .with_text("unexpected stream header"),
                )
                .await;
            Err(())
        }
        Ok(Ok(StreamEvent::Stanza(el))) => Ok(el),
    }
}

async fn step_until_restart<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
) -> Restart {
    loop {
        let Ok(el) = read_element(server, stream, conn).await else {
            return Restart::Closed;
        };
        if el.is("starttls", ns::TLS) {
            if conn.secure {
                stream
                    .fail(
                        &StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("TLS is already active"),
                    )
                    .await;
                return Restart::Closed;
            }
            if stream.buffered_len() != 0 {
                // Bytes pipelined after <starttls/> would be read as if they came over TLS.
                stream
                    .fail(
                        &StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("data after starttls"),
                    )
                    .await;
                return Restart::Closed;
            }
            if stream
                .send(&Element::new("proceed", ns::TLS))
                .await
                .is_err()
            {
                return Restart::Closed;
            }
            return Restart::StartTls;
        }
        if el.ns() == ns::SASL && conn.authenticated.is_none() {
            match auth::exchange(server, stream, conn, el).await {
                auth::Outcome::Success => return Restart::Sasl,
                auth::Outcome::Failed => continue,
                auth::Outcome::Closed => return Restart::Closed,
            }
        }
        if el.ns() == ns::CLIENT && el.name() == "iq" {
            if conn.authenticated.is_some() {
                match bind::handle(server, stream, conn, &el).await {
                    bind::Outcome::Bound(h, rx) => return Restart::Bound(h, rx),
                    bind::Outcome::Continue => continue,
                    bind::Outcome::Closed => return Restart::Closed,
                }
            }
            if el.get_child("query", ns::REGISTER).is_some() {
                match auth::preauth_register(server, stream, conn, &el).await {
                    Ok(()) => continue,
                    Err(()) => return Restart::Closed,
                }
            }
        }
        // RFC 6120 §6.4 / SECURITY.md §3.6: nothing but negotiation before the session is bound.
        stream
            .fail(&StreamError::new(StreamCondition::NotAuthorized))
            .await;
        return Restart::Closed;
    }
}

/// A fresh stream id: 128 bits from the OS RNG (RFC 6120 §4.7.3 wants it unpredictable).
pub fn new_stream_id() -> String {
    let mut b = [0u8; 16];
    // No RNG means no safe ids: abort the connection task rather than use a guessable one.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut b).expect("OS random number generator unavailable");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
