//! Incoming s2s streams (RFC 6120, XEP-0178, XEP-0220), one task per connection. The peer
//! authenticates (sender, receiver) domain pairs — with SASL EXTERNAL when its certificate is
//! valid for the sender, or with dialback checked against the sender's authoritative server —
//! and every stanza must then carry a `from`/`to` of an authenticated pair (else
//! `improper-addressing` / `invalid-from`). `db:verify` requests for our own keys are answered
//! here too. Verdicts nobody asked for are ignored.

mod auth;

use super::{S2s, TlsPolicy};
use crate::shaper::Shaper;
use auth::{Checked, cert_valid, external, on_dialback, verdict};
use rookery_config::PeerKind;
use rookery_core::Server;
use rookery_proto::dialback::{DbParseError, Dialback};
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Stanza, StanzaParseError, normalize_domain};
use rookery_transport::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_xml::{Element, StreamEvent};
use rustls_pki_types::CertificateDer;
use std::collections::HashSet;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Per-connection state.
struct In {
    peer: SocketAddr,
    tls: bool,
    /// The peer's certificate chain (TLS client certificate), if it sent one.
    chain: Vec<CertificateDer<'static>>,
    stream_id: String,
    /// The `from` of the peer's stream header (the sender domain it claims).
    header_from: Option<String>,
    /// The `to` of the peer's stream header, one of our hosts or component domains.
    header_to: String,
    /// Authenticated (sender, receiver) pairs.
    pairs: HashSet<(String, String)>,
    sasl_done: bool,
    /// Until an authenticated pair exists, the stream must get one by then (counted from
    /// connect, across STARTTLS), so nobody can hold unauthenticated streams open.
    auth_deadline: Instant,
    /// Dialback checks running for this stream (each opens a connection to another server;
    /// capped so one peer can't make us dial out without bound).
    pending_checks: usize,
}

/// Entry point for an accepted s2s TCP connection.
pub async fn serve(server: Server, s2s: S2s, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let _ = tcp.set_nodelay(true);
    let limits = crate::limits::framer_limits(&server, false);
    let mut st = In {
        peer,
        tls: false,
        chain: Vec::new(),
        stream_id: String::new(),
        header_from: None,
        header_to: String::new(),
        pairs: HashSet::new(),
        sasl_done: false,
        auth_deadline: Instant::now() + server.config().limits.auth_timeout(),
        pending_checks: 0,
    };
    if direct_tls {
        let hs = tokio::time::timeout(
            server.config().limits.header_timeout(),
            s2s.acceptor(true).accept(tcp),
        )
        .await;
        let Ok(Ok(tls)) = hs else {
            tracing::debug!(%peer, what = "s2s-tls", "Direct TLS handshake failed");
            return;
        };
        st.tls = true;
        st.chain = peer_chain(tls.get_ref().1.peer_certificates());
        run(
            &server,
            &s2s,
            XmppStream::new(tls, limits, ns::SERVER),
            &mut st,
        )
        .await;
        return;
    }
    let stream = XmppStream::new(tcp, limits, ns::SERVER);
    if let Some(stream) = run(&server, &s2s, stream, &mut st).await {
        let tcp = stream.into_inner();
        let hs = tokio::time::timeout(
            server.config().limits.header_timeout(),
            s2s.acceptor(false).accept(tcp),
        )
        .await;
        let Ok(Ok(tls)) = hs else {
            tracing::debug!(%peer, what = "s2s-starttls", "TLS handshake failed");
            return;
        };
        st.tls = true;
        st.chain = peer_chain(tls.get_ref().1.peer_certificates());
        let limits = crate::limits::framer_limits(&server, false);
        run(
            &server,
            &s2s,
            XmppStream::new(tls, limits, ns::SERVER),
            &mut st,
        )
        .await;
    }
}

fn peer_chain(certs: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    certs
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

/// Runs the stream; returns it when the peer asked for STARTTLS.
async fn run<IO>(
    server: &Server,
    s2s: &S2s,
    mut stream: XmppStream<IO>,
    st: &mut In,
) -> Option<XmppStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (tx, mut checked) = mpsc::channel::<Checked>(16);
    let idle = server.config().s2s.idle_timeout();
    let shutdown = server.shutdown_token().clone();
    if open(server, s2s, &mut stream, st).await.is_err() {
        return None;
    }
    let mut full_limits = false;
    let stanza_idle = server.config().limits.stanza_idle_timeout();
    let mut last_read = Instant::now();
    let mut shaper = Shaper::new(server.config().limits.shaping(PeerKind::Server));
    // Reading is paused until then (the peer overspent its rate: `shaper.rs`).
    let mut paused_until: Option<Instant> = None;
    loop {
        while paused_until.is_none() {
            if let Some(at) = shaper.pause(&st.peer) {
                paused_until = Some(at);
                break;
            }
            if !full_limits && !st.pairs.is_empty() {
                // Authenticated: stanzas may now be as large as for any authenticated stream,
                // not just the pre-authentication size.
                stream.set_limits(crate::limits::framer_limits_s2s(server));
                full_limits = true;
            }
            match stream.poll_event() {
                Ok(Some(StreamEvent::Stanza(el))) => {
                    shaper.charge_stanza();
                    match on_element(server, s2s, &mut stream, st, el, &tx).await {
                        Next::Continue => {}
                        Next::StartTls => return Some(stream),
                        Next::Restart => {
                            stream.restart();
                            if open(server, s2s, &mut stream, st).await.is_err() {
                                return None;
                            }
                        }
                        Next::Close => return None,
                    }
                }
                Ok(Some(StreamEvent::Close)) => {
                    stream.close().await;
                    return None;
                }
                Ok(Some(StreamEvent::Open(_))) => {
                    stream
                        .fail(&StreamError::new(StreamCondition::NotWellFormed))
                        .await;
                    return None;
                }
                Ok(None) => break,
                Err(e) => {
                    stream.fail(&framer_stream_error(&e)).await;
                    return None;
                }
            }
        }
        let buffered_before = stream.framer().buffered_len();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
                return None;
            }
            Some(c) = checked.recv() => {
                if !verdict(&mut stream, st, c).await {
                    return None;
                }
            }
            _ = tokio::time::sleep_until(st.auth_deadline), if st.pairs.is_empty() => {
                stream
                    .fail(
                        &StreamError::new(StreamCondition::ConnectionTimeout)
                            .with_text("not authenticated in time"),
                    )
                    .await;
                return None;
            }
            // A peer trickling one stanza forever keeps no buffer and no task hostage.
            _ = tokio::time::sleep_until(last_read + stanza_idle), if stream.framer().in_stanza() => {
                stream
                    .fail(
                        &StreamError::new(StreamCondition::ConnectionTimeout)
                            .with_text("stanza not completed in time"),
                    )
                    .await;
                return None;
            }
            _ = tokio::time::sleep_until(paused_until.unwrap_or(last_read)), if paused_until.is_some() => {
                paused_until = None;
                // Not idle: we were not reading it.
                last_read = Instant::now();
            }
            r = tokio::time::timeout(idle, stream.read_more()), if paused_until.is_none() => match r {
                Ok(Ok(())) => {
                    shaper.charge_bytes(stream.framer().buffered_len().saturating_sub(buffered_before));
                    last_read = Instant::now();
                }
                Ok(Err(ReadError::Closed)) => return None,
                Ok(Err(ReadError::Xml(e))) => {
                    stream.fail(&framer_stream_error(&e)).await;
                    return None;
                }
                Err(_) => {
                    stream.fail(&StreamError::new(StreamCondition::ConnectionTimeout)).await;
                    return None;
                }
            },
        }
    }
}

/// Reads the peer's header and answers with ours and the features.
async fn open<IO>(
    server: &Server,
    s2s: &S2s,
    stream: &mut XmppStream<IO>,
    st: &mut In,
) -> Result<(), ()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let ev =
        tokio::time::timeout(server.config().limits.header_timeout(), stream.next_event()).await;
    let header = match ev {
        Ok(Ok(StreamEvent::Open(h))) => h,
        Err(_) => {
            return reject(
                server,
                stream,
                st,
                StreamCondition::ConnectionTimeout,
                "no stream header",
            )
            .await;
        }
        Ok(Err(ReadError::Xml(e))) => {
            let _ = send_header(server, stream, st).await;
            stream.fail(&framer_stream_error(&e)).await;
            return Err(());
        }
        Ok(_) => return Err(()),
    };
    if header.ns != ns::STREAM || header.default_ns.as_deref() != Some(ns::SERVER) {
        return reject(
            server,
            stream,
            st,
            StreamCondition::InvalidNamespace,
            "the content namespace must be jabber:server",
        )
        .await;
    }
    // Normalised like the JIDs of the stanzas that follow, so pairs compare equal.
    let header_domain = |d: &str| normalize_domain(d.trim_end_matches('.'));
    match header.attr("to").map(&header_domain) {
        // Our hosts and our components' domains (remote servers reach components through us).
        Some(Some(t)) if server.serves_domain(&t) => st.header_to = t,
        // RFC 6120 §4.7.2: a missing 'to' means our default host.
        None => {
            st.header_to = server
                .config()
                .hosts
                .first()
                .map(|h| h.domain.clone())
                .unwrap_or_default()
        }
        Some(_) => {
            return reject(
                server,
                stream,
                st,
                StreamCondition::HostUnknown,
                "this server does not serve that domain",
            )
            .await;
        }
    }
    st.header_from = header.attr("from").and_then(header_domain);
    if !server.config().s2s.enabled {
        return reject(
            server,
            stream,
            st,
            StreamCondition::PolicyViolation,
            "federation is disabled",
        )
        .await;
    }
    send_header(server, stream, st).await.map_err(|_| ())?;
    let mut f = Element::new("features", ns::STREAM);
    let policy = st
        .header_from
        .as_deref()
        .map(|d| server.config().s2s.policy(d));
    let tls_policy = TlsPolicy::of(server);
    if !st.tls {
        let mut tls = Element::new("starttls", ns::TLS);
        if tls_policy.tls_required() {
            tls.append_child(Element::new("required", ns::TLS));
        }
        f.append_child(tls);
    }
    let authed = st.sasl_done;
    if !authed && tls_policy.allows_auth(st.tls) {
        // XEP-0178: offer EXTERNAL only when the certificate proves the claimed sender.
        if let Some(from) = &st.header_from
            && cert_valid(s2s, st, from).is_ok()
        {
            f.append_child(
                Element::new("mechanisms", ns::SASL)
                    .child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
            );
        }
        if policy.is_none_or(|p| p.allow_dialback) {
            f.append_child(
                Element::new("dialback", ns::DIALBACK_FEATURE)
                    .child(Element::new("errors", ns::DIALBACK_FEATURE)),
            );
        }
    }
    stream.send(&f).await.map_err(|_| ())
}

async fn send_header<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    st: &mut In,
) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    st.stream_id = rookery_transport::stream::new_stream_id();
    let from = if st.header_to.is_empty() {
        server
            .config()
            .hosts
            .first()
            .map(|h| h.domain.clone())
            .unwrap_or_default()
    } else {
        st.header_to.clone()
    };
    let id = st.stream_id.clone();
    let mut attrs = vec![
        ("from", from.as_str()),
        ("id", id.as_str()),
        ("version", "1.0"),
    ];
    let to = st.header_from.clone();
    if let Some(t) = &to {
        attrs.push(("to", t.as_str()));
    }
    stream.send_header_ns(&attrs, &[("db", ns::DIALBACK)]).await
}

async fn reject<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    st: &mut In,
    cond: StreamCondition,
    text: &str,
) -> Result<(), ()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let _ = send_header(server, stream, st).await;
    stream.fail(&StreamError::new(cond).with_text(text)).await;
    Err(())
}

enum Next {
    Continue,
    StartTls,
    Restart,
    Close,
}

async fn on_element<IO>(
    server: &Server,
    s2s: &S2s,
    stream: &mut XmppStream<IO>,
    st: &mut In,
    el: Element,
    checks: &mpsc::Sender<Checked>,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    if el.is("starttls", ns::TLS) && !st.tls {
        if stream.framer().buffered_len() != 0 {
            stream
                .fail(
                    &StreamError::new(StreamCondition::PolicyViolation)
                        .with_text("data after starttls"),
                )
                .await;
            return Next::Close;
        }
        if stream
            .send(&Element::new("proceed", ns::TLS))
            .await
            .is_err()
        {
            return Next::Close;
        }
        return Next::StartTls;
    }
    if el.is("auth", ns::SASL) {
        return external(server, s2s, stream, st, &el).await;
    }
    match Dialback::parse(&el) {
        Ok(db) => return on_dialback(server, s2s, stream, st, db, checks).await,
        Err(DbParseError::NotDialback) => {}
        Err(DbParseError::Addressing) => {
            stream
                .fail(&StreamError::new(StreamCondition::ImproperAddressing))
                .await;
            return Next::Close;
        }
        Err(DbParseError::Malformed(why)) => {
            stream
                .fail(&StreamError::new(StreamCondition::InvalidXml).with_text(why))
                .await;
            return Next::Close;
        }
    }
    on_stanza(server, stream, st, el).await
}

async fn on_stanza<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    st: &mut In,
    el: Element,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if st.pairs.is_empty() {
        // Nothing authenticated yet: stanzas are not allowed (RFC 6120 §4.9.3.12).
        stream
            .fail(&StreamError::new(StreamCondition::NotAuthorized))
            .await;
        return Next::Close;
    }
    let stanza = match Stanza::from_element(el, ns::SERVER) {
        Ok(s) => s,
        Err((StanzaParseError::NotAStanza, _)) => {
            stream
                .fail(&StreamError::new(StreamCondition::UnsupportedStanzaType))
                .await;
            return Next::Close;
        }
        Err((StanzaParseError::Bad(_), _)) => {
            stream
                .fail(
                    &StreamError::new(StreamCondition::ImproperAddressing).with_text("bad from/to"),
                )
                .await;
            return Next::Close;
        }
    };
    let (Some(from), Some(to)) = (stanza.from(), stanza.to()) else {
        stream
            .fail(&StreamError::new(StreamCondition::ImproperAddressing))
            .await;
        return Next::Close;
    };
    let pair = (
        from.domain().as_str().to_owned(),
        to.domain().as_str().to_owned(),
    );
    if !st.pairs.contains(&pair) {
        tracing::warn!(peer = %st.peer, from = %pair.0, to = %pair.1, what = "s2s-invalid-from", "stanza for an unauthenticated pair");
        stream
            .fail(&StreamError::new(StreamCondition::InvalidFrom))
            .await;
        return Next::Close;
    }
    server.route(stanza).await;
    Next::Continue
}
