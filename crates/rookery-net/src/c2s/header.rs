//! Stream header checks for c2s (RFC 6120 §4.7 and §4.9.3): namespace, version, host. Every
//! failure sends our own header first (a stream error must be inside a stream, §4.9.1.1) and then
//! the matching stream error.

use super::Conn;
use super::io::ClientIo;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, normalize_domain};
use rookery_transport::stream::new_stream_id;
use rookery_transport::stream::{ReadError, framer_stream_error};
use rookery_xml::{StreamEvent, StreamHeader};

/// Reads and answers the client's stream header. Err = the stream was closed with an error.
pub(crate) async fn open<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
) -> Result<(), ()> {
    let timeout = server.config().limits.header_timeout();
    let ev = tokio::select! {
        _ = server.shutdown_token().cancelled() => {
            return fail(server, stream, conn, None, StreamCondition::SystemShutdown, None).await;
        }
        ev = tokio::time::timeout(timeout, stream.next_event()) => ev,
    };
    let header = match ev {
        Err(_) => {
            return fail(
                server,
                stream,
                conn,
                None,
                StreamCondition::ConnectionTimeout,
                None,
            )
            .await;
        }
        Ok(Err(ReadError::Closed)) => return Err(()),
        Ok(Err(ReadError::Xml(e))) => {
            let err = framer_stream_error(&e);
            let fallback = conn.domain.clone();
            queue_our_header(server, stream, conn, fallback.as_deref());
            stream.fail(&err).await;
            return Err(());
        }
        Ok(Ok(StreamEvent::Open(h))) => h,
        Ok(Ok(_)) => {
            return fail(
                server,
                stream,
                conn,
                None,
                StreamCondition::NotWellFormed,
                Some("expected a stream header"),
            )
            .await;
        }
    };
    let to = header.attr("to").map(str::to_owned);
    if let Err((cond, text)) = check(server, &header, conn) {
        return fail(server, stream, conn, to.as_deref(), cond, Some(text)).await;
    }
    // `check` guarantees a valid local host here.
    let domain = normalize_domain(to.as_deref().unwrap_or_default()).unwrap_or_default();
    conn.domain = Some(domain.clone());
    queue_our_header(server, stream, conn, Some(&domain));
    Ok(())
}

fn check(
    server: &Server,
    h: &StreamHeader,
    conn: &Conn,
) -> Result<(), (StreamCondition, &'static str)> {
    if h.ns != ns::STREAM || h.name != "stream" {
        return Err((
            StreamCondition::InvalidNamespace,
            "the stream element must be {http://etherx.jabber.org/streams}stream",
        ));
    }
    if h.default_ns.as_deref() != Some(ns::CLIENT) {
        return Err((
            StreamCondition::InvalidNamespace,
            "the content namespace must be jabber:client",
        ));
    }
    // RFC 6120 §4.7.5: we speak 1.x; a missing version means a pre-RFC peer.
    match h.attr("version") {
        Some(v) if v.split('.').next() == Some("1") => {}
        _ => {
            return Err((
                StreamCondition::UnsupportedVersion,
                "version 1.0 is required",
            ));
        }
    }
    let Some(to) = h.attr("to") else {
        return Err((
            StreamCondition::HostUnknown,
            "the stream header needs a 'to' address",
        ));
    };
    let Some(domain) = normalize_domain(to) else {
        return Err((StreamCondition::HostUnknown, "'to' is not a domain"));
    };
    if !server.is_local_host(&domain) {
        return Err((
            StreamCondition::HostUnknown,
            "this server does not serve that domain",
        ));
    }
    // A restarted stream must address the same host (RFC 6120 §4.3.3).
    if conn.domain.as_ref().is_some_and(|prev| *prev != domain) {
        return Err((
            StreamCondition::HostUnknown,
            "the restarted stream names another host",
        ));
    }
    if let Some(from) = h.attr("from") {
        // An ill-formed 'from' on the initial header is an addressing error (RFC 6120 §4.7.1).
        if BareJid::new(from).is_err() && rookery_proto::stanza::Jid::new(from).is_err() {
            return Err((StreamCondition::InvalidFrom, "'from' is not a valid JID"));
        }
    }
    Ok(())
}

fn queue_our_header<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
    domain: Option<&str>,
) {
    conn.stream_id = new_stream_id();
    let from = domain
        .map(str::to_owned)
        .or_else(|| server.config().hosts.first().map(|h| h.domain.clone()))
        .unwrap_or_default();
    let id = conn.stream_id.clone();
    stream.queue_header(&[
        ("from", from.as_str()),
        ("id", id.as_str()),
        ("version", "1.0"),
        ("xml:lang", "en"),
    ]);
}

async fn fail<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
    to: Option<&str>,
    cond: StreamCondition,
    text: Option<&str>,
) -> Result<(), ()> {
    // Echo the requested host only if it is ours; never reflect arbitrary input.
    let own = to
        .and_then(normalize_domain)
        .filter(|d| server.is_local_host(d));
    queue_our_header(server, stream, conn, own.as_deref());
    let mut err = StreamError::new(cond);
    if let Some(t) = text {
        err = err.with_text(t);
    }
    stream.fail(&err).await;
    Err(())
}
