//! XEP-0114 §3, the component's side of the stream before it may send stanzas: its header in
//! `jabber:component:accept` naming a configured component domain (`host-unknown` otherwise,
//! `invalid-namespace` for another content namespace), our header with a fresh stream id, and
//! `<handshake>` = hex SHA-1(stream id ‖ secret) (`not-authorized` otherwise), all within the
//! header and authentication timeouts, with failures throttled like client logins. Success sends
//! nothing yet: the caller binds the domain first, so a `conflict` can still be reported before
//! the component believes it is connected.

use rookery_core::Server;
use rookery_proto::component::verify_handshake;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::normalize_domain;
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Reads the header and the handshake. Some(domain) once the component proved the secret for
/// it; None after the stream was closed (with a stream error where one applies).
pub(super) async fn accept<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    peer: SocketAddr,
) -> Option<String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    // Counted from connect, like c2s and s2s authentication.
    let deadline = Instant::now() + server.config().limits.auth_timeout();
    let stream_id = rookery_transport::stream::new_stream_id();
    let header = tokio::select! {
        _ = server.shutdown_token().cancelled() => {
            return fail(stream, &stream_id, StreamError::new(StreamCondition::SystemShutdown)).await;
        }
        ev = tokio::time::timeout(server.config().limits.header_timeout(), stream.next_event()) => ev,
    };
    let header = match header {
        Ok(Ok(StreamEvent::Open(h))) => h,
        Ok(Err(ReadError::Closed)) => return None,
        Ok(Err(ReadError::Xml(e))) => {
            return fail(stream, &stream_id, framer_stream_error(&e)).await;
        }
        Ok(Ok(_)) => {
            let err = StreamError::new(StreamCondition::NotWellFormed)
                .with_text("expected a stream header");
            return fail(stream, &stream_id, err).await;
        }
        Err(_) => {
            let err =
                StreamError::new(StreamCondition::ConnectionTimeout).with_text("no stream header");
            return fail(stream, &stream_id, err).await;
        }
    };
    if header.default_ns.as_deref() != Some(ns::COMPONENT) {
        let err = StreamError::new(StreamCondition::InvalidNamespace)
            .with_text("the content namespace must be jabber:component:accept");
        return fail(stream, &stream_id, err).await;
    }
    // XEP-0114 §3: `to` names the component's domain (not the server's).
    let domain = header
        .attr("to")
        .and_then(|t| normalize_domain(t.trim_end_matches('.')));
    let config = domain.as_deref().and_then(|d| server.config().component(d));
    let (Some(domain), Some(config)) = (domain.clone(), config) else {
        tracing::info!(%peer, to = ?header.attr("to"), what = "component-unknown", "component stream for an unconfigured domain");
        let err = StreamError::new(StreamCondition::HostUnknown)
            .with_text("no component is configured for that domain");
        return fail(stream, &stream_id, err).await;
    };
    if server.is_local_host(&domain) {
        // Config validation refuses this; checked again because a host must never be handed
        // to an outside process.
        let err = StreamError::new(StreamCondition::HostUnknown)
            .with_text("that domain is one of the server's hosts");
        return fail(stream, &stream_id, err).await;
    }
    stream
        .send_header(&[("from", domain.as_str()), ("id", stream_id.as_str())])
        .await
        .ok()?;
    let el = tokio::select! {
        _ = server.shutdown_token().cancelled() => {
            stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
            return None;
        }
        ev = tokio::time::timeout_at(deadline, stream.next_event()) => ev,
    };
    let el = match el {
        Ok(Ok(StreamEvent::Stanza(el))) => el,
        Ok(Ok(StreamEvent::Close)) => {
            stream.close().await;
            return None;
        }
        Ok(Ok(StreamEvent::Open(_))) => {
            let err = StreamError::new(StreamCondition::NotWellFormed)
                .with_text("unexpected stream header");
            stream.fail(&err).await;
            return None;
        }
        Ok(Err(ReadError::Closed)) => return None,
        Ok(Err(ReadError::Xml(e))) => {
            stream.fail(&framer_stream_error(&e)).await;
            return None;
        }
        Err(_) => {
            let err = StreamError::new(StreamCondition::ConnectionTimeout)
                .with_text("no handshake in time");
            stream.fail(&err).await;
            return None;
        }
    };
    // The same brute-force brake as client logins (XEP-0205): per-IP ban, and growing
    // delays per IP and per component domain (counted apart from accounts: no '@' in a domain).
    let throttle = server.throttle();
    let now = std::time::Instant::now();
    if throttle.is_banned(peer.ip(), now) {
        let err =
            StreamError::new(StreamCondition::NotAuthorized).with_text("too many failed attempts");
        stream.fail(&err).await;
        return None;
    }
    if !is_handshake(&el) {
        // Nothing was checked against the secret: refused at once and not counted (the
        // throttle counts failed credential checks only, docs/decisions/0008).
        let err = StreamError::new(StreamCondition::NotAuthorized)
            .with_text("expected <handshake/> (XEP-0114) before anything else");
        stream.fail(&err).await;
        return None;
    }
    if !verify_handshake(&stream_id, &config.secret, &el.text()) {
        tracing::warn!(%peer, %domain, what = "component-auth-failed", "component handshake did not match the secret");
        let delay = throttle.delay(peer.ip(), Some(&domain), now);
        throttle.record_failure(peer.ip(), Some(&domain), now);
        tokio::time::sleep(delay).await;
        let err = StreamError::new(StreamCondition::NotAuthorized)
            .with_text("the handshake does not match the configured secret");
        stream.fail(&err).await;
        return None;
    }
    throttle.record_success(&domain);
    Some(domain)
}

/// Whether `el` is a bare `<handshake>` (anything else before it, a stanza or a handshake with
/// child elements, is not authorised and carries no digest to check).
fn is_handshake(el: &Element) -> bool {
    el.is("handshake", ns::COMPONENT) && el.children().next().is_none()
}

/// Whether `el` is a bare `<handshake>` carrying the right digest.
#[cfg(test)]
fn is_valid_handshake(el: &Element, stream_id: &str, secret: &str) -> bool {
    is_handshake(el) && verify_handshake(stream_id, secret, &el.text())
}

/// Our header (a stream error must be inside a stream, RFC 6120 §4.9.1.1; without `from`, as
/// the requested domain is not one we serve and input is never reflected), then the error.
async fn fail<IO>(stream: &mut XmppStream<IO>, stream_id: &str, err: StreamError) -> Option<String>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let _ = stream.send_header(&[("id", stream_id)]).await;
    stream.fail(&err).await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_handshake_with_the_digest_counts() {
        let digest = rookery_proto::component::handshake_digest("id1", "s");
        let ok = Element::new("handshake", ns::COMPONENT).with_text(digest.as_str());
        assert!(is_valid_handshake(&ok, "id1", "s"));
        assert!(!is_valid_handshake(&ok, "id2", "s"));
        let wrong_ns = Element::new("handshake", ns::CLIENT).with_text(digest.as_str());
        assert!(!is_valid_handshake(&wrong_ns, "id1", "s"));
        let nested = ok.clone().child(Element::new("x", ns::COMPONENT));
        assert!(!is_valid_handshake(&nested, "id1", "s"));
    }
}
