//! Incoming s2s streams (RFC 6120, XEP-0178, XEP-0220), one task per connection. The peer
//! authenticates (sender, receiver) domain pairs — with SASL EXTERNAL when its certificate is
//! valid for the sender, or with dialback checked against the sender's authoritative server —
//! and every stanza must then carry a `from`/`to` of an authenticated pair (else
//! `improper-addressing` / `invalid-from`). `db:verify` requests for our own keys are answered
//! here too. Verdicts nobody asked for are ignored.

use super::{S2s, verify};
use crate::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_core::Server;
use rookery_proto::dialback::{self, DbKind, DbParseError, DbType, Dialback};
use rookery_proto::error::{Condition, StanzaError, StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::{Stanza, StanzaParseError};
use rookery_tls::CertError;
use rookery_xml::{Element, StreamEvent};
use rustls_pki_types::{CertificateDer, UnixTime};
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
    /// The `to` of the peer's stream header, one of our hosts.
    header_to: String,
    /// Authenticated (sender, receiver) pairs.
    pairs: HashSet<(String, String)>,
    sasl_done: bool,
    /// Until an authenticated pair exists, the stream must get one by then (counted from
    /// connect, across STARTTLS; SECURITY.md §4).
    auth_deadline: Instant,
}

/// Result of an asynchronous dialback check (step 2–3 of XEP-0220, run in a task).
struct Checked {
    request: Dialback,
    verdict: DbType,
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
        auth_deadline: Instant::now() + crate::limits::auth_timeout(&server),
    };
    if direct_tls {
        let hs = tokio::time::timeout(
            crate::limits::header_timeout(&server),
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
        let (tcp, _) = stream.into_inner();
        let hs = tokio::time::timeout(
            crate::limits::header_timeout(&server),
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
    loop {
        loop {
            if !full_limits && !st.pairs.is_empty() {
                // Authenticated: stanzas may now be as large as for any authenticated stream,
                // not just the pre-authentication size.
                stream.set_limits(crate::limits::framer_limits(server, true));
                full_limits = true;
            }
            match stream.poll_event() {
                Ok(Some(StreamEvent::Stanza(el))) => {
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
            r = tokio::time::timeout(idle, stream.read_more()) => match r {
                Ok(Ok(())) => {}
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
    let ev = tokio::time::timeout(crate::limits::header_timeout(server), stream.next_event()).await;
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
    let to = header
        .attr("to")
        .map(|t| t.trim_end_matches('.').to_ascii_lowercase());
    match to {
        Some(t) if server.is_local_host(&t) => st.header_to = t,
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
    st.header_from = header
        .attr("from")
        .map(|f| f.trim_end_matches('.').to_ascii_lowercase());
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
    let require_tls = server.config().s2s.require_tls;
    if !st.tls {
        let mut tls = Element::new("starttls", ns::TLS);
        if require_tls {
            tls.append_child(Element::new("required", ns::TLS));
        }
        f.append_child(tls);
    }
    let authed = st.sasl_done;
    if !authed && (st.tls || !require_tls) {
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
    st.stream_id = crate::c2s::new_stream_id();
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

fn cert_valid(s2s: &S2s, st: &In, domain: &str) -> Result<(), CertError> {
    if !st.tls {
        return Err(CertError::NoCertificate);
    }
    s2s.trust().verify_peer(&st.chain, domain, UnixTime::now())
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

/// XEP-0178 on the receiving side.
async fn external<IO>(
    server: &Server,
    s2s: &S2s,
    stream: &mut XmppStream<IO>,
    st: &mut In,
    el: &Element,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    use base64::Engine;
    let fail = |cond: &str| Element::new("failure", ns::SASL).child(Element::new(cond, ns::SASL));
    if el.attr("mechanism") != Some("EXTERNAL") || st.sasl_done {
        let _ = stream.send(&fail("invalid-mechanism")).await;
        return Next::Continue;
    }
    let Some(from) = st.header_from.clone() else {
        let _ = stream.send(&fail("not-authorized")).await;
        return Next::Continue;
    };
    // The authzid, if any, must be the domain the stream claims (RFC 6120 §6.4.6).
    let text = el.text();
    let text = text.trim();
    let authzid = if text.is_empty() || text == "=" {
        None
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    if authzid
        .as_deref()
        .is_some_and(|a| !a.eq_ignore_ascii_case(&from))
    {
        let _ = stream.send(&fail("invalid-authzid")).await;
        return Next::Continue;
    }
    if !server.config().s2s.policy(&from).allowed {
        let _ = stream.send(&fail("not-authorized")).await;
        return Next::Continue;
    }
    if let Err(e) = s2s.trust().verify_peer(&st.chain, &from, UnixTime::now()) {
        tracing::info!(peer = %st.peer, %from, error = %e, what = "s2s-external", "certificate does not prove the sender");
        let _ = stream.send(&fail("not-authorized")).await;
        return Next::Continue;
    }
    if stream
        .send(&Element::new("success", ns::SASL))
        .await
        .is_err()
    {
        return Next::Close;
    }
    tracing::info!(peer = %st.peer, %from, to = %st.header_to, what = "s2s-in", "incoming stream authenticated (SASL EXTERNAL)");
    st.pairs.insert((from, st.header_to.clone()));
    st.sasl_done = true;
    Next::Restart
}

async fn on_dialback<IO>(
    server: &Server,
    s2s: &S2s,
    stream: &mut XmppStream<IO>,
    st: &mut In,
    db: Dialback,
    checks: &mpsc::Sender<Checked>,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let DbType::Request(key) = db.ty.clone() else {
        // We send no requests on incoming streams, so every verdict here is unsolicited.
        tracing::warn!(peer = %st.peer, from = %db.from, to = %db.to, what = "s2s-unsolicited", "ignoring dialback verdict");
        return Next::Continue;
    };
    match db.kind {
        // We are the authoritative server: was this key made by us for this stream id?
        DbKind::Verify => {
            let ours = server.is_local_host(&db.to);
            let valid = ours
                && db.id.as_deref().is_some_and(|id| {
                    dialback::verify_key(s2s.secret(), &db.from, &db.to, id, &key)
                });
            let ty = if !ours {
                DbType::Error(Some(StanzaError::new(Condition::ItemNotFound)))
            } else if valid {
                DbType::Valid
            } else {
                DbType::Invalid
            };
            if stream.send(&db.verdict(ty).to_element()).await.is_err() {
                return Next::Close;
            }
            Next::Continue
        }
        // We are the receiving server: ask the sender's authoritative server.
        DbKind::Result => {
            let policy = server.config().s2s.policy(&db.from);
            let refuse = |cond: Condition, text: &str| {
                db.verdict(DbType::Error(Some(StanzaError::new(cond).with_text(text))))
            };
            let answer = if !server.is_local_host(&db.to) {
                Some(refuse(
                    Condition::ItemNotFound,
                    "not a domain of this server",
                ))
            } else if !policy.allowed || !policy.allow_dialback {
                Some(refuse(
                    Condition::Forbidden,
                    "dialback from this domain is not allowed",
                ))
            } else if server.config().s2s.require_tls && !st.tls {
                Some(refuse(
                    Condition::PolicyViolation,
                    "TLS is required before dialback",
                ))
            } else if policy.require_valid_certs
                && s2s
                    .trust()
                    .verify_peer(&st.chain, &db.from, UnixTime::now())
                    .is_err()
            {
                Some(refuse(
                    Condition::NotAuthorized,
                    "a valid certificate is required",
                ))
            } else {
                None
            };
            if let Some(a) = answer {
                return if stream.send(&a.to_element()).await.is_err() {
                    Next::Close
                } else {
                    Next::Continue
                };
            }
            let (s2s, server, tx, id) = (
                s2s.clone(),
                server.clone(),
                checks.clone(),
                st.stream_id.clone(),
            );
            server.clone().tasks().spawn(async move {
                let verdict = verify::check(&s2s, &server, &db.to, &db.from, &id, &key).await;
                let _ = tx
                    .send(Checked {
                        request: db,
                        verdict,
                    })
                    .await;
            });
            Next::Continue
        }
    }
}

/// Sends the verdict of a finished check. Valid: the pair is added BEFORE the verdict is sent,
/// so stanzas the peer sends right after it are accepted (OF-2626). False = close.
async fn verdict<IO>(stream: &mut XmppStream<IO>, st: &mut In, c: Checked) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let valid = c.verdict == DbType::Valid;
    if valid {
        st.pairs
            .insert((c.request.from.clone(), c.request.to.clone()));
        tracing::info!(peer = %st.peer, from = %c.request.from, to = %c.request.to, what = "s2s-in", "incoming pair authenticated (dialback)");
    }
    let invalid = c.verdict == DbType::Invalid;
    let el = c.request.verdict(c.verdict).to_element();
    if stream.send(&el).await.is_err() {
        return false;
    }
    if invalid && st.pairs.is_empty() {
        // XEP-0220 §2.4: an invalid key ends the stream - unless it carries other
        // authenticated pairs: then only this pair is refused, so one misconfigured (or
        // impersonated) domain cannot cut off the others' traffic on a shared stream.
        stream.close().await;
        return false;
    }
    true
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
        // Nothing authenticated yet: stanzas are not allowed (SECURITY.md §3.6).
        stream
            .fail(&StreamError::new(StreamCondition::NotAuthorized))
            .await;
        return Next::Close;
    }
    let stanza = match Stanza::from_element(el, ns::SERVER) {
        Ok(s) => s,
        Err(StanzaParseError::NotAStanza) => {
            stream
                .fail(&StreamError::new(StreamCondition::UnsupportedStanzaType))
                .await;
            return Next::Close;
        }
        Err(StanzaParseError::Bad(_)) => {
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
