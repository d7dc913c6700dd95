//! One client connection at the connection manager: TLS (STARTTLS or Direct TLS), stream
//! headers and features are handled here, from the server's configuration IQ; everything the
//! client sends after that — SASL, bind, stanzas — is wrapped in `<route streamid>` and queued
//! on the client's link, and what the server routes back is written to the client. Until the
//! server confirmed the session `create`, the client's elements wait here, in order.

use crate::state::{CLIENT_INBOX, Cm, ServerSettings, ToClient};
use bytes::Bytes;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::normalize_domain;
use rookery_transport::cm::wire;
use rookery_transport::limits::UnauthGuard;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_transport::tls::TlsContext;
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the first link's settings when the CM has just started.
const SETTINGS_WAIT: Duration = Duration::from_secs(10);
/// Routed elements written to a client per flush at most.
const WRITE_BATCH: usize = 64;

/// The next message for the client actor: one held back from a batch first.
async fn next_msg(
    held: &mut Option<ToClient>,
    rx: &mut mpsc::Receiver<ToClient>,
) -> Option<ToClient> {
    if let Some(m) = held.take() {
        return Some(m);
    }
    rx.recv().await
}

struct Ctx {
    peer: SocketAddr,
    secure: bool,
    domain: Option<String>,
    stream_id: String,
    authenticated: bool,
    /// The session exists at the server (create answered).
    created: bool,
    /// `create` sent: the hub knows this client.
    registered: bool,
    pending: Vec<Element>,
    rx: mpsc::Receiver<ToClient>,
    tx: mpsc::Sender<ToClient>,
    deadline: Instant,
    /// Held until SASL succeeds (per-IP cap on unauthenticated connections).
    unauth: Option<UnauthGuard>,
    /// A message taken out of `rx` while batching that is not part of the batch.
    held: Option<ToClient>,
    /// The client closed its stream (`</stream:stream>`); otherwise its connection was lost.
    client_closed: bool,
}

enum Next {
    StartTls,
    Done,
}

pub async fn serve(
    cm: Arc<Cm>,
    tls: TlsContext,
    tcp: TcpStream,
    peer: SocketAddr,
    direct: bool,
    guard: UnauthGuard,
) {
    let _ = tcp.set_nodelay(true);
    let settings = cm.wait_settings(SETTINGS_WAIT).await;
    let limits = settings
        .as_ref()
        .map(|s| s.client_limits(false))
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel(CLIENT_INBOX);
    let auth_secs = settings.as_ref().map_or(30, |s| s.auth_secs);
    let ctx = Ctx {
        peer,
        secure: false,
        domain: None,
        stream_id: cm.new_stream_id(),
        authenticated: false,
        created: false,
        registered: false,
        pending: Vec::new(),
        rx,
        tx,
        deadline: Instant::now() + Duration::from_secs(auth_secs),
        unauth: Some(guard),
        held: None,
        client_closed: false,
    };
    if direct {
        if let Ok(Ok(s)) = tokio::time::timeout(HEADER_TIMEOUT, tls.accept(tcp)).await {
            let mut ctx = ctx;
            ctx.secure = true;
            let stream = XmppStream::new(s, limits, ns::CLIENT);
            Box::pin(run(&cm, stream, &mut ctx)).await;
            end(&cm, &ctx);
        }
        return;
    }
    let mut ctx = ctx;
    let stream = XmppStream::new(tcp, limits.clone(), ns::CLIENT);
    let (next, stream) = Box::pin(run(&cm, stream, &mut ctx)).await;
    if let (Next::StartTls, Some(stream)) = (next, stream) {
        let tcp = stream.into_inner();
        if let Ok(Ok(s)) = tokio::time::timeout(HEADER_TIMEOUT, tls.accept(tcp)).await {
            ctx.secure = true;
            let stream = XmppStream::new(s, limits, ns::CLIENT);
            Box::pin(run(&cm, stream, &mut ctx)).await;
        }
    }
    end(&cm, &ctx);
}

/// The client is gone: tell the server (unless it closed us) and forget it. A connection
/// lost without a stream close says so (`<lost/>`, Rookery's extension): a stream-managed
/// session then waits to be resumed instead of ending.
fn end(cm: &Cm, ctx: &Ctx) {
    if ctx.registered && cm.hub.session(&ctx.stream_id).is_some() {
        let mut close = Element::new("close", ns::CM);
        if !ctx.client_closed {
            close.append_child(Element::new("lost", ns::ROOKERY_CM));
        }
        let iq = wire::session_iq("set", &cm.next_id("close"), &ctx.stream_id, Some(close));
        cm.hub
            .send(&ctx.stream_id, Bytes::from(wire::to_link_bytes(&iq)));
        cm.hub.remove_session(&ctx.stream_id);
    }
    // After leaving the hub (`SmStreams::managed` relies on that order).
    cm.sm.client_gone(&ctx.stream_id);
}

/// Runs streams on one transport until the client leaves or asks for STARTTLS (then the
/// stream comes back for wrapping).
async fn run<IO>(
    cm: &Arc<Cm>,
    mut stream: XmppStream<IO>,
    ctx: &mut Ctx,
) -> (Next, Option<XmppStream<IO>>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    loop {
        if !open(cm, &mut stream, ctx).await {
            return (Next::Done, None);
        }
        let Some(settings) = cm.settings() else {
            stream
                .fail(
                    &StreamError::new(StreamCondition::RemoteConnectionFailed)
                        .with_text("no link to the server"),
                )
                .await;
            return (Next::Done, None);
        };
        if stream.send(&features(&settings, ctx)).await.is_err() {
            return (Next::Done, None);
        }
        match step(cm, &mut stream, ctx, &settings).await {
            Step::Restart => {
                stream.restart();
                stream.set_limits(settings.client_limits(true));
            }
            Step::StartTls => return (Next::StartTls, Some(stream)),
            Step::Done => return (Next::Done, None),
        }
    }
}

/// Reads the client's stream header and answers with ours. False: the stream was closed.
async fn open<IO>(cm: &Cm, stream: &mut XmppStream<IO>, ctx: &mut Ctx) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ev = match tokio::time::timeout(HEADER_TIMEOUT, stream.next_event()).await {
        Ok(Ok(ev)) => ev,
        Ok(Err(ReadError::Closed)) => return false,
        Ok(Err(ReadError::Xml(e))) => {
            header(cm, stream, ctx, None).await;
            stream.fail(&framer_stream_error(&e)).await;
            return false;
        }
        Err(_) => {
            header(cm, stream, ctx, None).await;
            stream
                .fail(&StreamError::new(StreamCondition::ConnectionTimeout))
                .await;
            return false;
        }
    };
    let StreamEvent::Open(h) = ev else {
        header(cm, stream, ctx, None).await;
        stream
            .fail(&StreamError::new(StreamCondition::NotWellFormed))
            .await;
        return false;
    };
    let to = h.attr("to").and_then(normalize_domain);
    let served = to.as_ref().filter(|d| {
        cm.opts
            .hosts
            .iter()
            .any(|x| x.domain.eq_ignore_ascii_case(d))
    });
    let cond = if h.ns != ns::STREAM || h.default_ns.as_deref() != Some(ns::CLIENT) {
        Some(StreamCondition::InvalidNamespace)
    } else if h.attr("version").is_none_or(|v| !v.starts_with("1.")) {
        Some(StreamCondition::UnsupportedVersion)
    } else if served.is_none() || ctx.domain.as_ref().is_some_and(|d| Some(d) != served) {
        Some(StreamCondition::HostUnknown)
    } else {
        None
    };
    let served = served.cloned();
    header(cm, stream, ctx, served.as_deref()).await;
    if let Some(c) = cond {
        stream.fail(&StreamError::new(c)).await;
        return false;
    }
    ctx.domain = served;
    true
}

async fn header<IO>(cm: &Cm, stream: &mut XmppStream<IO>, ctx: &Ctx, domain: Option<&str>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let from = domain
        .map(str::to_owned)
        .or_else(|| cm.opts.hosts.first().map(|h| h.domain.clone()))
        .unwrap_or_default();
    let _ = stream
        .send_header(&[
            ("from", from.as_str()),
            ("id", ctx.stream_id.as_str()),
            ("version", "1.0"),
            ("xml:lang", "en"),
        ])
        .await;
}

fn features(s: &ServerSettings, ctx: &Ctx) -> Element {
    let mut f = Element::new("features", ns::STREAM);
    if ctx.authenticated {
        for b in &s.bound {
            f.append_child(b.clone());
        }
        return f;
    }
    if !ctx.secure && s.tls_offered {
        let mut tls = Element::new("starttls", ns::TLS);
        if s.tls_required {
            tls.append_child(Element::new("required", ns::TLS));
        }
        f.append_child(tls);
    }
    if ctx.secure || !s.tls_required {
        let mut mechs = Element::new("mechanisms", ns::SASL);
        for m in &s.mechanisms {
            if !ctx.secure && m == "PLAIN" {
                continue;
            }
            mechs.append_child(Element::new("mechanism", ns::SASL).with_text(m.as_str()));
        }
        f.append_child(mechs);
        if s.register {
            f.append_child(Element::new("register", ns::REGISTER_FEATURE));
        }
    }
    f
}

enum Step {
    Restart,
    StartTls,
    Done,
}

async fn step<IO>(
    cm: &Arc<Cm>,
    stream: &mut XmppStream<IO>,
    ctx: &mut Ctx,
    settings: &ServerSettings,
) -> Step
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    loop {
        let deadline = if ctx.authenticated {
            Instant::now() + Duration::from_secs(365 * 24 * 3600)
        } else {
            ctx.deadline
        };
        tokio::select! {
            biased;
            _ = cm.shutdown.cancelled() => {
                stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
                return Step::Done;
            }
            msg = next_msg(&mut ctx.held, &mut ctx.rx) => {
                let Some(msg) = msg else { return Step::Done };
                match msg {
                    ToClient::Element(el) => {
                        let success = el.is("success", ns::SASL);
                        stream.queue(&el);
                        // Whatever else is already waiting goes out in the same write (never
                        // past a SASL success: the stream restarts there).
                        let mut more = 0;
                        while !success && more < WRITE_BATCH {
                            match ctx.rx.try_recv() {
                                Ok(ToClient::Element(next)) if !next.is("success", ns::SASL) => {
                                    stream.queue(&next);
                                    more += 1;
                                }
                                Ok(other) => {
                                    ctx.held = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if stream.flush().await.is_err() {
                            return Step::Done;
                        }
                        if success {
                            ctx.authenticated = true;
                            ctx.unauth = None;
                            return Step::Restart;
                        }
                    }
                    ToClient::Created(true) => {
                        ctx.created = true;
                        for el in std::mem::take(&mut ctx.pending) {
                            route(cm, ctx, &el).await;
                        }
                    }
                    ToClient::Created(false) => {
                        cm.hub.remove_session(&ctx.stream_id);
                        ctx.registered = false;
                        stream.fail(&StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("the server refused this connection")).await;
                        return Step::Done;
                    }
                    ToClient::Close => {
                        // The server ended the session (its stream error came routed before).
                        cm.hub.remove_session(&ctx.stream_id);
                        ctx.registered = false;
                        stream.close().await;
                        return Step::Done;
                    }
                    ToClient::Fail(err) => {
                        stream.fail(&err).await;
                        return Step::Done;
                    }
                }
            }
            ev = tokio::time::timeout_at(deadline, stream.next_event()) => {
                let ev = match ev {
                    Err(_) => {
                        stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout)).await;
                        return Step::Done;
                    }
                    Ok(Err(ReadError::Closed)) => return Step::Done,
                    Ok(Err(ReadError::Xml(e))) => {
                        stream.fail(&framer_stream_error(&e)).await;
                        return Step::Done;
                    }
                    Ok(Ok(ev)) => ev,
                };
                let el = match ev {
                    StreamEvent::Stanza(el) => el,
                    StreamEvent::Close => {
                        ctx.client_closed = true;
                        stream.close().await;
                        return Step::Done;
                    }
                    StreamEvent::Open(_) => {
                        stream.fail(&StreamError::new(StreamCondition::NotWellFormed)
                            .with_text("unexpected stream header")).await;
                        return Step::Done;
                    }
                };
                if el.is("starttls", ns::TLS) {
                    if ctx.secure || !settings.tls_offered {
                        stream.fail(&StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("TLS is not available here")).await;
                        return Step::Done;
                    }
                    if stream.framer().buffered_len() != 0 {
                        stream.fail(&StreamError::new(StreamCondition::PolicyViolation)
                            .with_text("data after starttls")).await;
                        return Step::Done;
                    }
                    if stream.send(&Element::new("proceed", ns::TLS)).await.is_err() {
                        return Step::Done;
                    }
                    return Step::StartTls;
                }
                if !ctx.secure && settings.tls_required {
                    // Nothing but STARTTLS before encryption (RFC 6120 §5.3.1).
                    stream.fail(&StreamError::new(StreamCondition::NotAuthorized)
                        .with_text("STARTTLS is required")).await;
                    return Step::Done;
                }
                if !ctx.registered && !register(cm, ctx) {
                    stream.fail(&StreamError::new(StreamCondition::RemoteConnectionFailed)
                        .with_text("no link to the server")).await;
                    return Step::Done;
                }
                if ctx.created {
                    route(cm, ctx, &el).await;
                } else {
                    ctx.pending.push(el);
                }
            }
        }
    }
}

/// Pins the client to a link and asks the server to create its session.
fn register(cm: &Cm, ctx: &mut Ctx) -> bool {
    let Some(link) = cm.hub.pick_link() else {
        return false;
    };
    if !cm.hub.insert_session(&ctx.stream_id, ctx.tx.clone(), link) {
        return false;
    }
    ctx.registered = true;
    let domain = ctx.domain.clone().unwrap_or_default();
    let ip = ctx.peer.ip().to_string();
    let create = Element::new("create", ns::CM).child(
        Element::new("host", ns::CM)
            .with_attr("name", domain.as_str())
            .with_attr("address", ip.as_str()),
    );
    let iq = wire::session_iq(
        "set",
        &format!("create-{}", cm.next_id("c")),
        &ctx.stream_id,
        Some(create),
    );
    cm.hub
        .send(&ctx.stream_id, Bytes::from(wire::to_link_bytes(&iq)))
}

/// Routes one client element to the server on the client's link.
async fn route(cm: &Cm, ctx: &Ctx, el: &Element) {
    let domain = ctx.domain.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(256);
    wire::write_route(&mut out, &cm.opts.name, domain, &ctx.stream_id, el);
    // Backpressure: a link the server doesn't drain slows its clients down.
    cm.hub
        .wait_room(&ctx.stream_id, rookery_transport::stream::WRITE_TIMEOUT)
        .await;
    if !cm.hub.send(&ctx.stream_id, Bytes::from(out)) {
        tracing::warn!(stream = %ctx.stream_id, what = "cm-route-lost", "client not in hub; element dropped");
    }
}
