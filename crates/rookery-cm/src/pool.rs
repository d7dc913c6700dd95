//! The link pool: one task per link slot keeps a link to the server's `cm` listener open —
//! connect, stream header, `<handshake/>`, the configuration IQ, then the read loop that hands
//! routed payloads to client actors — and reconnects with backoff (1 s doubling to 30 s) when
//! it drops. A dropped link's clients move to another live link with `<resume previd h/>`,
//! which also brings over whatever either side had not acknowledged. A watchdog disconnects
//! every client with `system-shutdown` once all links have been down for the grace period.

use crate::state::{Cm, ServerSettings, ToClient};
use bytes::Bytes;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_transport::cm::link::{self, Link, LinkReader};
use rookery_transport::cm::wire;
use rookery_transport::stream::{ReadError, XmppStream};
use rookery_xml::{Element, Node, StreamEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout while the link is being set up (the original CM: 7 s).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub fn start(cm: &Arc<Cm>) {
    let resumes: Resumes = Arc::new(Mutex::new(HashMap::new()));
    for i in 0..cm.opts.links {
        cm.tasks.spawn(slot(cm.clone(), i, resumes.clone()));
    }
    cm.tasks.spawn(watchdog(cm.clone()));
}

/// dead link id → id of the link the `<resume/>` was sent on.
type Resumes = Arc<Mutex<HashMap<String, String>>>;

fn resumes_map(r: &Resumes) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    // Plain map; a panic elsewhere cannot leave it inconsistent.
    r.lock().unwrap_or_else(|p| p.into_inner())
}

enum End {
    /// The link broke (network, idle, peer closed).
    Broken,
    /// The server said `system-shutdown`: its sessions are gone.
    ServerShutdown,
    /// We are shutting down.
    Local,
}

async fn slot(cm: Arc<Cm>, i: usize, resumes: Resumes) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if cm.shutdown.is_cancelled() {
            return;
        }
        match connect(&cm, i).await {
            Ok((link, reader, wr)) => {
                backoff = Duration::from_secs(1);
                cm.hub.add_link(link.clone());
                cm.links_opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(link = %link.address, what = "cm-link-up", "link to server up");
                cm.links_changed.notify_waiters();
                resume_orphans(&cm, &link, &resumes);
                let writer = tokio::spawn(link::run_writer(link.clone(), wr, cm.opts.heartbeat));
                let end = read_loop(&cm, &link, reader, &resumes).await;
                if matches!(end, End::Local) {
                    // Closing: the clients go first (each tells the server its session is
                    // over, on its link), then the link. Otherwise the server would keep their
                    // sessions for the resume grace, as if the link had failed.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                    while cm.hub.session_count() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    link.close_after_queued(Duration::from_secs(2)).await;
                }
                link.kill();
                let _ = writer.await;
                tracing::info!(link = %link.address, what = "cm-link-down", "link to server down");
                cm.links_changed.notify_waiters();
                match end {
                    End::Local => return,
                    End::ServerShutdown => fail_everyone(&cm, StreamCondition::SystemShutdown),
                    End::Broken => link_lost(&cm, &link, &resumes),
                }
            }
            Err(e) => {
                tracing::warn!(slot = i, error = %e, what = "cm-link-connect", "cannot open link to server")
            }
        }
        tokio::select! {
            _ = cm.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

type Parts = (
    Arc<Link>,
    LinkReader<ReadHalf<TcpStream>>,
    WriteHalf<TcpStream>,
);

/// Opens and authenticates one link; reads the configuration IQ.
async fn connect(cm: &Cm, i: usize) -> Result<Parts, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(cm.opts.server))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let limits = rookery_xml::Limits {
        max_stanza_bytes: 1 << 20,
        max_depth: 66,
        ..rookery_xml::Limits::default()
    };
    let mut stream = XmppStream::new(tcp, limits, ns::CM_LINK);
    let address = format!("{}/Connection Worker - {}", cm.opts.name, i + 1);
    stream
        .send_header(&[("to", address.as_str()), ("version", "1.0")])
        .await
        .map_err(|e| format!("write: {e}"))?;
    let header = match next(&mut stream).await? {
        StreamEvent::Open(h) => h,
        _ => return Err("expected the server's stream header".into()),
    };
    let id = header
        .attr("id")
        .ok_or("the server's stream header has no id")?
        .to_owned();
    let features = expect_element(&mut stream).await?;
    if !features.is("features", ns::STREAM) {
        return Err(format!("expected features, got <{}/>", features.name()));
    }
    let digest = wire::handshake_digest(&id, &cm.opts.secret);
    stream
        .send(&Element::new("handshake", ns::CM_LINK).with_text(digest))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let ok = expect_element(&mut stream).await?;
    if !ok.is("handshake", ns::CM_LINK) {
        return Err(format!("handshake refused: <{}/>", ok.name()));
    }
    let config = expect_element(&mut stream).await?;
    let Some(c) = config.get_child("configuration", ns::CM) else {
        return Err("expected the configuration iq".into());
    };
    let settings = ServerSettings::from_config(c);
    let acks = settings.acks;
    cm.set_settings(settings);
    let link = Link::new(id, address.clone());
    link.note_received();
    let mut result = Element::new("iq", ns::CM_LINK)
        .with_attr("type", "result")
        .with_attr("from", address.as_str());
    if let Some(i) = config.attr("id") {
        result.set_attr("id", i);
    }
    if acks {
        result.append_child(Element::new("acks", ns::ROOKERY_CM));
    }
    link.push(Bytes::from(wire::to_link_bytes(&result)));
    if !acks {
        link.stop_retaining();
    }
    let (framer, io) = stream.into_parts();
    let (rd, wr) = tokio::io::split(io);
    Ok((link, LinkReader::new(framer, rd), wr))
}

async fn next(stream: &mut XmppStream<TcpStream>) -> Result<StreamEvent, String> {
    match tokio::time::timeout(SETUP_TIMEOUT, stream.next_event()).await {
        Err(_) => Err("the server did not answer in time".into()),
        Ok(Err(ReadError::Closed)) => Err("the server closed the link".into()),
        Ok(Err(ReadError::Xml(e))) => Err(format!("bad XML from the server: {e}")),
        Ok(Ok(ev)) => Ok(ev),
    }
}

async fn expect_element(stream: &mut XmppStream<TcpStream>) -> Result<Element, String> {
    match next(stream).await? {
        StreamEvent::Stanza(el) if el.is("error", ns::STREAM) => Err(format!(
            "stream error from the server: {}",
            el.children()
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
                .join(" ")
        )),
        StreamEvent::Stanza(el) => Ok(el),
        _ => Err("unexpected stream event during link set-up".into()),
    }
}

async fn read_loop(
    cm: &Arc<Cm>,
    link: &Arc<Link>,
    mut reader: LinkReader<ReadHalf<TcpStream>>,
    resumes: &Resumes,
) -> End {
    loop {
        let ev = tokio::select! {
            _ = cm.shutdown.cancelled() => return End::Local,
            _ = link.closed.cancelled() => return End::Broken,
            // Idle counts from the last bytes, not the last element: the server's whitespace
            // heartbeats are what keeps an idle link open.
            ev = tokio::time::timeout_at(reader.last_read() + cm.opts.idle_timeout, reader.next_event()) => ev,
        };
        let el = match ev {
            Ok(Ok(StreamEvent::Stanza(el))) => el,
            Err(_) if reader.last_read().elapsed() < cm.opts.idle_timeout => continue,
            Err(_) => {
                tracing::info!(link = %link.address, what = "cm-link-idle", "link silent too long");
                return End::Broken;
            }
            Ok(Ok(_)) | Ok(Err(_)) => return End::Broken,
        };
        if wire::is_reliable(&el) && !el.is("error", ns::STREAM) {
            link.note_received();
        }
        match (el.ns(), el.name()) {
            (ns::CM_LINK, "route") => on_route(cm, link, el).await,
            (ns::CM_LINK, "iq") => on_iq(cm, link, &el).await,
            (ns::ROOKERY_CM, "a") => {
                if let Some(h) = wire::h_attr(&el) {
                    link.ack(h);
                }
            }
            (ns::ROOKERY_CM, "resumed") => {
                if let (Some(previd), Some(h)) = (el.attr("previd"), wire::h_attr(&el)) {
                    resumes_map(resumes).remove(previd);
                    if let Some(r) = cm.hub.resume(previd, link, h, None) {
                        tracing::info!(onto = %link.address, clients = r.moved, what = "cm-link-resumed", "clients moved to another link");
                    }
                }
            }
            (ns::ROOKERY_CM, "failed") => {
                if let Some(previd) = el.attr("previd") {
                    resumes_map(resumes).remove(previd);
                    // The server already closed those sessions.
                    if let Some((clients, _)) = cm.hub.drop_link(previd) {
                        let err = StreamError::new(StreamCondition::ConnectionTimeout)
                            .with_text("the server closed this session");
                        for (_, tx) in clients {
                            let _ = tx.try_send(ToClient::Fail(err.clone()));
                        }
                    }
                }
            }
            (ns::STREAM, "error") => {
                return if el.get_child("system-shutdown", ns::STREAMS).is_some() {
                    End::ServerShutdown
                } else {
                    tracing::warn!(link = %link.address, error = %el.to_xml(), what = "cm-link-error", "stream error from the server");
                    End::Broken
                };
            }
            _ => {
                tracing::debug!(link = %link.address, el = el.name(), what = "cm-link-ignored", "unexpected element on link")
            }
        }
    }
}

async fn on_route(cm: &Cm, link: &Arc<Link>, mut el: Element) {
    if el.attr("type") == Some("error") {
        tracing::debug!(route = %el.to_xml(), what = "cm-route-error", "server could not route");
        return;
    }
    let Some(streamid) = el.attr("streamid").map(str::to_owned) else {
        return;
    };
    // Openfire's server writes stanzas inheriting the link namespace, Rookery's declared
    // `jabber:client` before decision 0009: both are client stanzas.
    let payload = el.take_nodes().into_iter().find_map(|n| match n {
        Node::Element(e) => Some(wire::client_payload(e)),
        Node::Text(_) => None,
    });
    let Some(payload) = payload else {
        return;
    };
    if payload.ns() == ns::SM && matches!(payload.name(), "enabled" | "resumed") {
        cm.sm
            .managed(&streamid, || cm.hub.session(&streamid).is_some());
    }
    match cm.hub.session(&streamid) {
        Some(tx) => {
            if let Err(e) = tx.send(ToClient::Element(Box::new(payload))).await {
                undeliverable(cm, link, &streamid, e.0);
            }
        }
        None => {
            undeliverable(cm, link, &streamid, ToClient::Element(Box::new(payload)));
        }
    }
}

/// A payload for a client that is gone: messages go back to the server as `<failed/>` (it
/// stores them offline), unless the server runs stream management on that stream and so
/// still holds them itself (`sm_streams.rs`); anything else is dropped.
fn undeliverable(cm: &Cm, link: &Arc<Link>, streamid: &str, what: ToClient) {
    let ToClient::Element(el) = what else {
        return;
    };
    if cm.sm.is_managed(streamid) {
        tracing::debug!(stream = %streamid, what = "cm-undeliverable-sm", "payload for a client that is gone; the server resends it (stream management)");
        return;
    }
    tracing::debug!(stream = %streamid, what = "cm-undeliverable", "payload for a client that is gone");
    if let Ok(st) = Stanza::new((*el).clone())
        && st.kind() == Kind::Message
    {
        let failed = Element::new("failed", ns::CM).child(*el);
        let iq = wire::session_iq("set", &cm.next_id("failed"), streamid, Some(failed));
        link.push(Bytes::from(wire::to_link_bytes(&iq)));
    }
}

async fn on_iq(cm: &Cm, link: &Arc<Link>, el: &Element) {
    let ty = el.attr("type").unwrap_or_default();
    let session_id = el
        .get_child("session", ns::CM)
        .and_then(|s| s.attr("id"))
        .map(str::to_owned);
    match ty {
        "result" | "error" => {
            // The answer to a `create`.
            if el.attr("id").is_some_and(|i| i.starts_with("create-"))
                && let Some(id) = session_id
                && let Some(tx) = cm.hub.session(&id)
            {
                let _ = tx.send(ToClient::Created(ty == "result")).await;
            }
        }
        "set" => {
            if let Some(c) = el.get_child("configuration", ns::CM) {
                cm.set_settings(ServerSettings::from_config(c));
            } else if let Some(id) = &session_id
                && el
                    .get_child("session", ns::CM)
                    .is_some_and(|s| s.get_child("close", ns::CM).is_some())
                && let Some(tx) = cm.hub.session(id)
            {
                let _ = tx.send(ToClient::Close).await;
            }
            let mut result = Element::new("iq", ns::CM_LINK).with_attr("type", "result");
            if let Some(i) = el.attr("id") {
                result.set_attr("id", i);
            }
            link.push(Bytes::from(wire::to_link_bytes(&result)));
        }
        _ => {}
    }
}

/// Every dead link still holding clients or unacknowledged traffic gets a `<resume/>` on
/// `via`, unless one is already under way on a live link.
fn resume_orphans(cm: &Cm, via: &Arc<Link>, resumes: &Resumes) {
    let mut pending = resumes_map(resumes);
    for dead in cm.hub.dead_links() {
        let underway = pending
            .get(&dead.id)
            .and_then(|v| cm.hub.link(v))
            .is_some_and(|l| l.is_alive());
        if underway {
            continue;
        }
        let msg = wire::link_ext("resume", &dead.id, Some(dead.received()));
        tracing::debug!(dead = %dead.id, via = %via.id, h = dead.received(), what = "cm-resume-ask", "asking to resume");
        via.push_control(&msg);
        pending.insert(dead.id.clone(), via.id.clone());
    }
}

/// A link broke: if the server does not acknowledge (no resume possible), move its clients to
/// a live link at once; else ask a live link to resume it (or wait for the next one to come up).
fn link_lost(cm: &Cm, dead: &Arc<Link>, resumes: &Resumes) {
    if !dead.retaining() {
        if let Some(live) = cm.hub.pick_link() {
            cm.hub.resume(&dead.id, &live, 0, None);
        }
        return;
    }
    if let Some(live) = cm.hub.pick_link() {
        resume_orphans(cm, &live, resumes);
    }
}

/// Tells every client to go, with `cond`, and forgets dead links.
fn fail_everyone(cm: &Cm, cond: StreamCondition) {
    for l in cm.hub.dead_links() {
        cm.hub.drop_link(&l.id);
    }
    let err = StreamError::new(cond);
    for (_, tx) in cm.hub.all_sessions() {
        let _ = tx.try_send(ToClient::Fail(err.clone()));
    }
}

/// All links down for the grace period: clients get `system-shutdown` (they reconnect, to this
/// CM once it has links again or elsewhere).
async fn watchdog(cm: Arc<Cm>) {
    loop {
        // Wait for "no live link".
        loop {
            let changed = cm.links_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if cm.hub.live_links().is_empty() {
                break;
            }
            tokio::select! {
                _ = cm.shutdown.cancelled() => return,
                _ = changed => {}
            }
        }
        let deadline = tokio::time::Instant::now() + cm.opts.grace;
        loop {
            let changed = cm.links_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !cm.hub.live_links().is_empty() {
                break;
            }
            tokio::select! {
                _ = cm.shutdown.cancelled() => return,
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if cm.hub.session_count() > 0 {
                        tracing::warn!(clients = cm.hub.session_count(), what = "cm-no-links", "no link to the server for the grace period; disconnecting clients");
                    }
                    fail_everyone(&cm, StreamCondition::SystemShutdown);
                    // Wait for a link before counting again.
                    let changed = cm.links_changed.notified();
                    tokio::select! {
                        _ = cm.shutdown.cancelled() => return,
                        _ = changed => {}
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
