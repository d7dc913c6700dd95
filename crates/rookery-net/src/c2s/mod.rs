//! Client-to-server connections (RFC 6120): one task per connection. `serve_connection` takes an
//! accepted socket through stream negotiation — header checks, STARTTLS (or Direct TLS), SASL,
//! resource binding — and then hands the bound session to `session::run`, the actor that ties the
//! socket to the core `Server`. Negotiation is generic over the transport (`io::ClientIo`) so
//! the same code runs on TCP, on TLS and on a client routed by a connection manager
//! (`serve_routed`).

mod auth;
mod bind;
mod confirm;
mod element;
mod features;
mod header;
pub(crate) mod io;
mod session;
mod session_end;
mod sm;
mod sm_wire;

use io::ClientIo;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::ChannelBindings;
use rookery_proto::stanza::BareJid;
use rookery_transport::limits::UnauthGuard;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_transport::tls::TlsContext;
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
    /// Deadline for authentication (`auth_timeout_secs` from connect), so nobody can hold
    /// unauthenticated connections open.
    fn auth_deadline(&self, server: &Server) -> Instant {
        self.connected + server.config().limits.auth_timeout()
    }
}

/// Entry point for an accepted TCP connection.
///
/// Memory per idle connection is what limits how many one server holds, and a future stores
/// everything any of its states holds across an `.await` inline. So this task's own future is
/// kept small: the stream lives in a `Box` from the start, and each phase (TLS handshake,
/// negotiation, the session) is a boxed future that is freed when the phase ends. An idle
/// session then holds only its own state, not the largest state of every earlier phase.
pub async fn serve_connection(
    server: Server,
    tls: TlsContext,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
    guard: UnauthGuard,
) {
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn {
        peer,
        secure: false,
        domain: None,
        stream_id: String::new(),
        authenticated: None,
        bindings: ChannelBindings::default(),
        connected: Instant::now(),
        unauth_guard: Some(guard),
    };
    let tcp = if direct_tls {
        tcp
    } else {
        let stream = Box::new(XmppStream::new(
            tcp,
            crate::limits::framer_limits(&server, false),
            ns::CLIENT,
        ));
        match Box::pin(negotiate_and_run(&server, stream, conn)).await {
            // STARTTLS: the plaintext stream asked to upgrade. The framer was checked empty, so
            // no plaintext bytes can leak into the encrypted stream (STARTTLS injection).
            Some((stream, c)) => {
                conn = c;
                stream.into_inner()
            }
            None => return,
        }
    };
    let what = if direct_tls { "tls-accept" } else { "starttls" };
    let Some((stream, bindings)) = Box::pin(accept_tls(&server, &tls, tcp, peer, what)).await
    else {
        return;
    };
    conn.secure = true;
    conn.bindings = bindings;
    // STARTTLS never comes back from a secure stream: `<starttls/>` on it fails.
    let _ = Box::pin(negotiate_and_run(&server, stream, conn)).await;
}

/// The TLS handshake (bounded by the header timeout), as its own future so that its state
/// (rustls' handshake, the transport) is freed once it ends. The stream comes back boxed.
async fn accept_tls(
    server: &Server,
    tls: &TlsContext,
    tcp: TcpStream,
    peer: SocketAddr,
    what: &'static str,
) -> Option<(
    Box<XmppStream<rookery_transport::tls::ServerTls<TcpStream>>>,
    ChannelBindings,
)> {
    let handshake = tls.accept_with_bindings(tcp);
    match tokio::time::timeout(server.config().limits.header_timeout(), handshake).await {
        Ok(Ok((tls_stream, bindings))) => {
            let limits = crate::limits::framer_limits(server, false);
            Some((
                Box::new(XmppStream::new(tls_stream, limits, ns::CLIENT)),
                bindings,
            ))
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, what, "handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, what, "handshake timed out");
            None
        }
    }
}

/// Entry point for a client whose stream a front process routes to us over its own transport
/// (a connection manager's link: `cm/dispatch.rs` calls this with its `ClientIo` when a
/// `create` arrives): the same negotiation and session as a direct client. The front process
/// terminates the client's TLS and enforces the TLS policy before it routes anything, so the
/// stream counts as encrypted; there is no channel binding (the TLS session is not ours), and
/// the front process counts unauthenticated connections itself.
pub(crate) async fn serve_routed<S: ClientIo>(
    server: Server,
    stream: S,
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
    let _ = negotiate_and_run(&server, Box::new(stream), conn).await;
}

/// Negotiation, then the bound session, each a boxed future: the negotiation state (SASL,
/// bind, `Conn` with its channel bindings) is freed before the session starts. Returns the
/// stream when the client asked for STARTTLS, so the caller can wrap the transport.
async fn negotiate_and_run<S: ClientIo>(
    server: &Server,
    stream: Box<S>,
    conn: Conn,
) -> Option<(Box<S>, Conn)> {
    match Box::pin(negotiate(server, stream, conn)).await {
        Negotiated::StartTls(stream, conn) => Some((stream, conn)),
        Negotiated::Bound(stream, handle, rx, sm) => {
            Box::pin(session::run(
                server.clone(),
                stream,
                handle,
                rx,
                sm.map(|b| *b),
            ))
            .await;
            None
        }
        Negotiated::Closed => None,
    }
}

/// How negotiation ended.
enum Negotiated<S> {
    /// The client asked for STARTTLS (the caller wraps the transport and starts over).
    StartTls(Box<S>, Conn),
    /// A resource is bound (or a stream-managed session resumed): the session takes over.
    Bound(
        Box<S>,
        rookery_core::Session,
        rookery_core::session::SessionReceiver,
        Option<Box<sm::Sm>>,
    ),
    Closed,
}

/// Runs negotiation until the session is bound, the client asks for STARTTLS, or it fails.
async fn negotiate<S: ClientIo>(
    server: &Server,
    mut stream: Box<S>,
    mut conn: Conn,
) -> Negotiated<S> {
    loop {
        // (Re)start: read the client's header, answer with ours and the features.
        if header::open(server, &mut *stream, &mut conn).await.is_err() {
            return Negotiated::Closed;
        }
        if features::send(server, &mut *stream, &conn).await.is_err() {
            return Negotiated::Closed;
        }
        // Read negotiation elements until something restarts the stream.
        match step_until_restart(server, &mut *stream, &mut conn).await {
            Restart::StartTls => return Negotiated::StartTls(stream, conn),
            Restart::Sasl => {
                stream.restart();
                continue;
            }
            Restart::Bound(handle, rx, sm) => return Negotiated::Bound(stream, handle, rx, sm),
            Restart::Closed => return Negotiated::Closed,
        }
    }
}

enum Restart {
    StartTls,
    Sasl,
    Bound(
        rookery_core::Session,
        rookery_core::session::SessionReceiver,
        Option<Box<sm::Sm>>,
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
    read_element_until(server, stream, deadline.into()).await
}

/// Reads one element of a stream that is still negotiating, by `deadline`. Shutdown, the
/// deadline, bad XML, a close and a second header each end the stream with the matching stream
/// error. Also the jabberd2 router listener's negotiation read (`router/auth.rs`).
pub(crate) async fn read_element_until<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    deadline: tokio::time::Instant,
) -> Result<Element, ()> {
    let ev = tokio::select! {
        // A shutdown reaches connections still negotiating too (clients get system-shutdown).
        _ = server.shutdown_token().cancelled() => {
            stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
            return Err(());
        }
        ev = tokio::time::timeout_at(deadline, stream.next_event()) => ev,
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
                    bind::Outcome::Bound(h, rx) => return Restart::Bound(h, rx, None),
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
        // XEP-0198 §5: a stream-managed session resumed instead of a resource bound.
        if el.ns() == ns::SM
            && let Some(account) = conn.authenticated.clone()
        {
            if el.name() == "resume" {
                match sm_wire::resume(server, stream, &account, &el).await {
                    sm_wire::Resumed::Session(h, rx, sm) => return Restart::Bound(h, rx, Some(sm)),
                    sm_wire::Resumed::Failed => continue,
                    sm_wire::Resumed::Closed => return Restart::Closed,
                }
            }
            // <enable/> (or <r/>, <a/>) before a resource is bound.
            if stream
                .send(&sm::failed("unexpected-request", None))
                .await
                .is_err()
            {
                return Restart::Closed;
            }
            continue;
        }
        // RFC 6120 §6.4 / §4.9.3.12: nothing but negotiation before the session is bound.
        stream
            .fail(&StreamError::new(StreamCondition::NotAuthorized))
            .await;
        return Restart::Closed;
    }
}
