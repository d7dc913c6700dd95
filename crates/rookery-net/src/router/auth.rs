//! Router link set-up, as jabberd2's router does it: the component's header (jabberd2 sends neither
//! `to` nor a default namespace), our header with a 128-bit random id, features (STARTTLS while
//! plaintext, SASL mechanisms until authenticated), SASL (`sasl.rs`) and the restart after
//! which the link is `OPEN` and `router/mod.rs` runs it.
//!
//! Anything but STARTTLS and SASL before authentication is dropped, as jabberd2's router does.

use super::sasl::{DIGEST_MD5, SCRAM, Sasl, authenticate};
use super::table::Acl;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::SaslFailure;
use rookery_transport::limits::UnauthGuard;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Failed authentications on one connection before it is closed.
const MAX_FAILURES: u32 = 3;

pub(crate) enum Outcome<IO> {
    /// The component asked for STARTTLS: wrap the transport and negotiate again.
    StartTls(XmppStream<IO>),
    /// Authenticated and restarted: the link is open.
    Open(XmppStream<IO>, Acl),
    Closed,
}

/// Runs set-up from the first header until the link is open, STARTTLS is asked for, or the
/// stream ends. `deadline` bounds the whole negotiation.
pub(crate) async fn negotiate<IO>(
    server: &Server,
    mut stream: XmppStream<IO>,
    secure: bool,
    peer: SocketAddr,
    deadline: Instant,
    unauth: &mut Option<UnauthGuard>,
) -> Outcome<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut failures = 0;
    // With `[router] require_tls`, SASL is neither offered nor accepted before STARTTLS.
    let sasl_allowed = secure || !server.config().router.require_tls;
    if open_stream(server, &mut stream, deadline).await.is_err() {
        return Outcome::Closed;
    }
    if stream
        .send(&features(secure, false, sasl_allowed))
        .await
        .is_err()
    {
        return Outcome::Closed;
    }
    let acl = loop {
        let Ok(el) = read_element(server, &mut stream, deadline).await else {
            return Outcome::Closed;
        };
        if el.is("starttls", ns::TLS) && !secure {
            if stream.framer().buffered_len() != 0 {
                // Bytes pipelined after <starttls/> would be read as if they came over TLS.
                stream
                    .fail(&StreamError::new(StreamCondition::PolicyViolation))
                    .await;
                return Outcome::Closed;
            }
            if stream
                .send(&Element::new("proceed", ns::TLS))
                .await
                .is_err()
            {
                return Outcome::Closed;
            }
            return Outcome::StartTls(stream);
        }
        if el.is("auth", ns::SASL) && !sasl_allowed {
            let f = Element::new("failure", ns::SASL).child(Element::new(
                SaslFailure::EncryptionRequired.condition(),
                ns::SASL,
            ));
            if stream.send(&f).await.is_err() {
                return Outcome::Closed;
            }
            continue;
        }
        if el.is("auth", ns::SASL) {
            match authenticate(server, &mut stream, el, peer, deadline).await {
                Sasl::Success(acl) => {
                    // Authenticated: no longer counted against the address's cap.
                    unauth.take();
                    break acl;
                }
                Sasl::Failed => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        stream
                            .fail(&StreamError::new(StreamCondition::PolicyViolation))
                            .await;
                        return Outcome::Closed;
                    }
                    continue;
                }
                Sasl::Closed => return Outcome::Closed,
            }
        }
        tracing::debug!(%peer, name = el.name(), what = "router-preauth", "dropping packet before authentication");
    };
    // SASL success: the component restarts the stream; the new one is the open link.
    stream.restart();
    if open_stream(server, &mut stream, deadline).await.is_err() {
        return Outcome::Closed;
    }
    if stream.send(&features(secure, true, false)).await.is_err() {
        return Outcome::Closed;
    }
    stream.set_limits(crate::limits::framer_limits_s2s(server));
    tracing::info!(%peer, user = %acl.user, tls = secure, what = "router-authenticated", "router component authenticated");
    Outcome::Open(stream, acl)
}

/// Before authentication: STARTTLS while plaintext, the mechanisms when SASL is allowed.
/// After it (`authenticated`): nothing.
fn features(secure: bool, authenticated: bool, offer_sasl: bool) -> Element {
    let mut f = Element::new("features", ns::STREAM);
    if authenticated {
        return f;
    }
    if !secure {
        f.append_child(Element::new("starttls", ns::TLS));
    }
    if offer_sasl {
        let mut m = Element::new("mechanisms", ns::SASL);
        for name in SCRAM.iter().map(|m| m.name()).chain([DIGEST_MD5]) {
            m.append_child(Element::new("mechanism", ns::SASL).with_text(name));
        }
        f.append_child(m);
    }
    f
}

/// Reads the component's header and answers with ours. A legacy XEP-0114 component
/// (`jabber:component:accept`) is told to use a component listener instead.
async fn open_stream<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    deadline: Instant,
) -> Result<(), ()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let header_deadline = deadline.min(Instant::now() + server.config().limits.header_timeout());
    let ev = tokio::select! {
        _ = server.shutdown_token().cancelled() => Err(StreamCondition::SystemShutdown),
        ev = tokio::time::timeout_at(header_deadline, stream.next_event()) => match ev {
            Err(_) => Err(StreamCondition::ConnectionTimeout),
            Ok(Ok(StreamEvent::Open(h))) => Ok(h),
            Ok(Err(ReadError::Closed)) => return Err(()),
            Ok(Err(ReadError::Xml(e))) => {
                send_header(stream).await;
                stream.fail(&framer_stream_error(&e)).await;
                return Err(());
            }
            Ok(Ok(_)) => Err(StreamCondition::NotWellFormed),
        },
    };
    let cond = match ev {
        Ok(h) if h.ns != ns::STREAM || h.name != "stream" => StreamCondition::InvalidNamespace,
        Ok(h) if h.default_ns.as_deref() == Some(ns::COMPONENT) => {
            send_header(stream).await;
            stream
                .fail(&StreamError::new(StreamCondition::InvalidNamespace).with_text(
                    "XEP-0114 components are not served on the router port; use a component listener",
                ))
                .await;
            return Err(());
        }
        Ok(_) => {
            send_header(stream).await;
            return Ok(());
        }
        Err(c) => c,
    };
    send_header(stream).await;
    stream.fail(&StreamError::new(cond)).await;
    Err(())
}

async fn send_header<IO>(stream: &mut XmppStream<IO>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = rookery_transport::stream::new_stream_id();
    let _ = stream
        .send_header(&[("id", id.as_str()), ("version", "1.0")])
        .await;
}

/// Reads one element before the link is open, within the negotiation deadline: the same read
/// as a negotiating client stream.
pub(super) async fn read_element<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    deadline: Instant,
) -> Result<Element, ()>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    crate::c2s::read_element_until(server, stream, deadline).await
}
