//! The jabberd2 router listener: Rookery acts as jabberd2's router, so jabberd2's own `sm`,
//! `c2s` and other components attach to it, serve their domains, and exchange stanzas with
//! Rookery's users. The protocol is jabberd2's own (no XEP defines it), so jabberd2's router
//! is the reference. One task per connection:
//! `auth.rs` takes it from the first header to an authenticated, restarted (`OPEN`) stream;
//! [`run`] is then the link actor, selecting over socket reads, its mailbox (routes from other
//! connections and from the core), shutdown and the keepalive timer; `table.rs` is the shared
//! bind table and `route.rs` decides where each `<route/>` goes.
//!
//! Only this actor writes its socket. Other connections and the core reach it through its
//! bounded mailbox, never waiting: a full mailbox bounces the route to its sender.

mod auth;
mod link;
mod route;
mod sasl;
mod table;
mod wire;

pub use link::multi_index;
pub use table::{Acl, BindRequest, Refusal, RouterHub, parse_name};

use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_transport::limits::UnauthGuard;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_transport::tls::TlsContext;
use rookery_xml::{Element, StreamEvent};
use std::collections::VecDeque;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The component protocol namespace (`bind`, `unbind`, `route`, `throttle`, `presence`).
pub const NS_COMPONENT: &str = "http://jabberd.jabberstudio.org/ns/component/1.0";

/// Routes waiting to be written to one connection (and, while it is throttled, held for it).
/// A router link carries whole domains' traffic, so this is larger than a client session's
/// mailbox.
pub const MAILBOX: usize = 8192;

/// Routes written per mailbox wake-up before the socket is flushed.
const BATCH: usize = 64;

/// Entry point for an accepted router connection.
pub async fn serve_connection(
    server: Server,
    hub: RouterHub,
    tls: TlsContext,
    tcp: TcpStream,
    peer: SocketAddr,
    unauth: UnauthGuard,
) {
    let mut unauth = Some(unauth);
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + server.config().limits.auth_timeout();
    let limits = crate::limits::framer_limits(&server, false);
    let stream = XmppStream::new(tcp, limits.clone(), NS_COMPONENT);
    match Box::pin(auth::negotiate(
        &server,
        stream,
        false,
        peer,
        deadline,
        &mut unauth,
    ))
    .await
    {
        auth::Outcome::Open(stream, acl) => run(server, hub, stream, acl, peer).await,
        auth::Outcome::StartTls(stream) => {
            // The framer was checked empty before <proceed/>: no plaintext leaks into TLS.
            let tcp = stream.into_inner();
            let tls_stream = match tokio::time::timeout_at(deadline, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, what = "router-starttls", "handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let stream = XmppStream::new(tls_stream, limits, NS_COMPONENT);
            if let auth::Outcome::Open(stream, acl) = Box::pin(auth::negotiate(
                &server,
                stream,
                true,
                peer,
                deadline,
                &mut unauth,
            ))
            .await
            {
                run(server, hub, stream, acl, peer).await;
            }
        }
        auth::Outcome::Closed => {}
    }
}

/// The open link: bind/unbind/route/throttle from the component, routes and announcements to
/// it. On the way out every name is released and whatever was still queued is bounced.
async fn run<IO>(
    server: Server,
    hub: RouterHub,
    mut stream: XmppStream<IO>,
    acl: Acl,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (tx, mut rx) = mpsc::channel::<Element>(MAILBOX);
    let id = hub.register(tx);
    let mut throttled: Option<VecDeque<Element>> = None;
    // A single space goes out after this long without a write (`[router] keepalive_secs`), so
    // a dead link (and its names) is noticed by TCP instead of lingering until the
    // component's restart runs into `409` (the name still looks held).
    let keepalive = server.config().router.keepalive();
    let mut last_write = Instant::now();
    loop {
        tokio::select! {
            // Biased: shutdown, then the mailbox, then the socket. Whatever was queued for the
            // component before it sent something is written before the reply to that
            // something (tests use an unbind as a barrier), and a full mailbox is drained
            // before more work is read in.
            biased;
            _ = server.shutdown_token().cancelled() => {
                stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
                break;
            }
            got = rx.recv() => {
                // The table holds a sender for as long as the connection is registered.
                let Some(first) = got else { break };
                let mut n = 0;
                let mut next = Some(first);
                while let Some(el) = next {
                    tracing::trace!(link = id, xml = %el.to_xml(), what = "router-out", "to component");
                    match throttled.as_mut() {
                        // A component that stays throttled must not grow this without bound:
                        // beyond a mailbox's worth, routes go back to their senders.
                        Some(q) if q.len() >= MAILBOX => route::undeliverable(&server, &hub, el).await,
                        Some(q) => q.push_back(el),
                        None => put(&mut stream, &el),
                    }
                    n += 1;
                    next = if n < BATCH { rx.try_recv().ok() } else { None };
                }
                if throttled.is_none() {
                    if stream.flush().await.is_err() {
                        break;
                    }
                    last_write = Instant::now();
                }
            }
            ev = stream.next_event() => {
                let el = match ev {
                    Ok(StreamEvent::Stanza(el)) => el,
                    Ok(StreamEvent::Close) => {
                        stream.close().await;
                        break;
                    }
                    Ok(StreamEvent::Open(_)) => {
                        stream.fail(&StreamError::new(StreamCondition::NotWellFormed)).await;
                        break;
                    }
                    Err(ReadError::Closed) => break,
                    Err(ReadError::Xml(e)) => {
                        stream.fail(&framer_stream_error(&e)).await;
                        break;
                    }
                };
                tracing::trace!(link = id, xml = %el.to_xml(), what = "router-in", "from component");
                let replies = handle(&server, &hub, id, &acl, &mut throttled, el).await;
                for r in &replies {
                    tracing::trace!(link = id, xml = %r.to_xml(), what = "router-reply", "to component");
                    put(&mut stream, r);
                }
                if !replies.is_empty() {
                    if stream.flush().await.is_err() {
                        break;
                    }
                    last_write = Instant::now();
                }
            }
            _ = tokio::time::sleep_until(last_write + keepalive) => {
                stream.queue_raw(b" ");
                if stream.flush().await.is_err() {
                    break;
                }
                last_write = Instant::now();
            }
        }
    }
    hub.disconnect(id);
    tracing::info!(%peer, user = %acl.user, what = "router-closed", "router component disconnected");
    // Nothing can reach the mailbox any more: bounce what is left, throttled queue first
    // (it is older).
    rx.close();
    let mut left: Vec<Element> = throttled.map(Vec::from).unwrap_or_default();
    while let Ok(el) = rx.try_recv() {
        left.push(el);
    }
    for el in left {
        route::undeliverable(&server, &hub, el).await;
    }
}

/// One element from the component; returns what to write back, in order.
async fn handle(
    server: &Server,
    hub: &RouterHub,
    id: u64,
    acl: &Acl,
    throttled: &mut Option<VecDeque<Element>>,
    el: Element,
) -> Vec<Element> {
    if el.ns() != NS_COMPONENT {
        tracing::debug!(
            name = el.name(),
            ns = el.ns(),
            what = "router-unknown",
            "dropping packet outside the component namespace"
        );
        return Vec::new();
    }
    match el.name() {
        "route" => route::handle(server, hub, id, el)
            .await
            .into_iter()
            .collect(),
        "bind" => {
            let req = BindRequest {
                multi: el.attr("multi").is_some(),
                default_route: el.get_child("default", NS_COMPONENT).is_some(),
                log_sink: el.get_child("log", NS_COMPONENT).is_some(),
            };
            let result = hub.bind(id, el.attr("name"), req, acl);
            if let Ok(()) = result {
                tracing::info!(name = el.attr("name").unwrap_or_default(), user = %acl.user, what = "router-bind", "name bound");
            }
            vec![answer(el, result)]
        }
        "unbind" => {
            let result = hub.unbind(id, el.attr("name"));
            vec![answer(el, result)]
        }
        "throttle" => match throttled.take() {
            None => {
                *throttled = Some(VecDeque::new());
                vec![el]
            }
            // Unthrottle: the echo first, then everything held back, in order.
            Some(q) => std::iter::once(el).chain(q).collect(),
        },
        other => {
            tracing::debug!(
                name = other,
                what = "router-unknown",
                "dropping unknown component packet"
            );
            Vec::new()
        }
    }
}

/// Queues `el` for the component, serialised the way jabberd2 reads it back (`wire.rs`).
fn put<IO>(stream: &mut XmppStream<IO>, el: &Element)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut out = Vec::with_capacity(256);
    wire::write(el, &mut out, NS_COMPONENT);
    stream.queue_raw(&out);
}

/// jabberd2's reply to bind/unbind: the request echoed, `name` removed, and on failure an
/// `error` code (`name` kept only for `400`).
fn answer(mut el: Element, result: Result<(), Refusal>) -> Element {
    match result {
        Ok(()) => {
            el.remove_attr("name");
        }
        Err(r) => {
            if r != Refusal::BadRequest {
                el.remove_attr("name");
            }
            el.set_attr("error", r.code());
        }
    }
    el
}
