//! Router link set-up (SEED-PROTOCOLS §5.2): the component's header (jabberd2 sends neither
//! `to` nor a default namespace), our header with a 128-bit random id, features (STARTTLS while
//! plaintext, SASL mechanisms until authenticated), SASL — DIGEST-MD5 for jabberd2, SCRAM from
//! the same secret for everyone else — and the restart after which the link is `OPEN` and
//! `router/mod.rs` runs it.
//!
//! Anything but STARTTLS and SASL before authentication is dropped, as jabberd2's router does.

use super::table::Acl;
use crate::limits::UnauthGuard;
use crate::stream::{ReadError, XmppStream, framer_stream_error};
use rookery_config::RouterUser;
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::digest_md5::{DigestMd5, ROUTER_REALM, ROUTER_SERVICE};
use rookery_proto::sasl::{
    self, ChannelBindings, Credentials, DEFAULT_ITERATIONS, Mechanism, SaslConfig, SaslFailure,
    SaslSession, Step,
};
use rookery_xml::{Element, StreamEvent};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Mechanisms offered, in this order. SCRAM is listed first for components that can choose;
/// jabberd2 ignores the list and always asks for DIGEST-MD5.
const SCRAM: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha1];
const DIGEST_MD5: &str = "DIGEST-MD5";

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
    IO: AsyncRead + AsyncWrite + Unpin,
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
    IO: AsyncRead + AsyncWrite + Unpin,
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
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let id = crate::c2s::new_stream_id();
    let _ = stream
        .send_header(&[("id", id.as_str()), ("version", "1.0")])
        .await;
}

/// Reads one element before the link is open, within the negotiation deadline.
async fn read_element<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    deadline: Instant,
) -> Result<Element, ()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let ev = tokio::select! {
        _ = server.shutdown_token().cancelled() => {
            stream.fail(&StreamError::new(StreamCondition::SystemShutdown)).await;
            return Err(());
        }
        ev = tokio::time::timeout_at(deadline, stream.next_event()) => ev,
    };
    match ev {
        Ok(Ok(StreamEvent::Stanza(el))) => Ok(el),
        Err(_) => {
            stream
                .fail(&StreamError::new(StreamCondition::ConnectionTimeout))
                .await;
            Err(())
        }
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
                .fail(&StreamError::new(StreamCondition::NotWellFormed))
                .await;
            Err(())
        }
        Ok(Err(ReadError::Closed)) => Err(()),
    }
}

enum Sasl {
    Success(Acl),
    Failed,
    Closed,
}

fn acl(user: &RouterUser) -> Acl {
    Acl {
        user: user.name.clone(),
        bind_any: user.bind_any,
        default_route: user.default_route,
    }
}

/// One `<auth/>` exchange.
async fn authenticate<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    auth: Element,
    peer: SocketAddr,
    deadline: Instant,
) -> Sasl
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let now = std::time::Instant::now();
    if server.throttle().is_banned(peer.ip(), now) {
        return fail(
            server,
            stream,
            peer,
            None,
            SaslFailure::TemporaryAuthFailure,
        )
        .await;
    }
    let result = match auth.attr("mechanism") {
        Some(DIGEST_MD5) => digest(server, stream, deadline).await,
        Some(name) => match Mechanism::from_name(name).filter(|m| SCRAM.contains(m)) {
            Some(mech) => scram(server, stream, &auth, mech, deadline).await,
            None => Err((None, SaslFailure::InvalidMechanism)),
        },
        None => Err((None, SaslFailure::InvalidMechanism)),
    };
    match result {
        Ok(Some((user, additional))) => {
            let mut ok = Element::new("success", ns::SASL);
            if let Some(d) = additional {
                ok = ok.with_text(sasl::encode_b64_payload(&d));
            }
            if stream.send(&ok).await.is_err() {
                return Sasl::Closed;
            }
            server.throttle().record_success(&user.name);
            Sasl::Success(acl(&user))
        }
        Ok(None) => Sasl::Closed,
        Err((user, f)) => fail(server, stream, peer, user.as_deref(), f).await,
    }
}

type Authed = Option<(RouterUser, Option<Vec<u8>>)>;
type AuthErr = (Option<String>, SaslFailure);

/// DIGEST-MD5: challenge, response, `<success>rspauth</success>`. Ok(None): the stream broke.
async fn digest<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    deadline: Instant,
) -> Result<Authed, AuthErr>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let ex = DigestMd5::new(ROUTER_REALM, ROUTER_SERVICE).map_err(|f| (None, f))?;
    let Some(resp) = challenge(server, stream, ex.challenge(), deadline).await? else {
        return Ok(None);
    };
    let parsed = ex.parse_response(&resp).map_err(|f| (None, f))?;
    let name = parsed.username.clone();
    // jabberd2's rule: no authorization identity other than the user itself.
    if parsed.authzid.as_deref().is_some_and(|z| z != name) {
        return Err((Some(name), SaslFailure::InvalidAuthzid));
    }
    let user = server.config().router.user(&name).cloned();
    // An unknown user is checked against a throw-away secret, so it costs the same and fails
    // the same way as a wrong secret.
    let secret = user
        .as_ref()
        .map_or_else(crate::c2s::new_stream_id, |u| u.secret.clone());
    let rspauth = ex
        .verify(&parsed, &secret)
        .map_err(|f| (Some(name.clone()), f))?;
    match user {
        Some(u) => Ok(Some((u, Some(rspauth)))),
        None => Err((Some(name), SaslFailure::NotAuthorized)),
    }
}

/// SCRAM-SHA-1/256 with credentials derived from the router user's secret.
async fn scram<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    auth: &Element,
    mech: Mechanism,
    deadline: Instant,
) -> Result<Authed, AuthErr>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let secret = server.secret().to_vec();
    let bindings = ChannelBindings::default();
    let cfg = SaslConfig {
        domain: ROUTER_REALM,
        secure: false,
        allow_plain_unencrypted: false,
        advertised: &SCRAM,
        bindings: &bindings,
        server_secret: &secret,
    };
    let initial = sasl::decode_b64_payload(&auth.text()).map_err(|f| (None, f))?;
    // Our <mechanisms/> also lists DIGEST-MD5, which the XEP-0474 hash can't cover.
    let (mut session, mut step) = SaslSession::start_without_ssdp(mech, initial.as_deref(), &cfg);
    let mut user: Option<RouterUser> = None;
    loop {
        step = match step {
            Step::NeedCredentials { username } => {
                user = server.config().router.user(&username).cloned();
                let creds = match &user {
                    Some(u) => {
                        let pass = u.secret.clone();
                        // PBKDF2 is CPU work: keep it off the reactor threads.
                        tokio::task::spawn_blocking(move || {
                            Credentials::new(&pass, DEFAULT_ITERATIONS).ok()
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                    None => None,
                };
                session.provide_credentials(creds.as_ref(), &cfg)
            }
            Step::Challenge(data) => {
                let Some(resp) = challenge(server, stream, data, deadline).await? else {
                    return Ok(None);
                };
                session.step(&resp, &cfg)
            }
            Step::Success {
                additional_data, ..
            } => {
                return match user {
                    Some(u) => Ok(Some((u, additional_data))),
                    None => Err((None, SaslFailure::NotAuthorized)),
                };
            }
            Step::Failure(f) => return Err((user.map(|u| u.name), f)),
        };
    }
}

/// Sends a `<challenge/>` and returns the decoded `<response/>`; Ok(None) if the stream broke.
async fn challenge<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    data: Vec<u8>,
    deadline: Instant,
) -> Result<Option<Vec<u8>>, AuthErr>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let ch = Element::new("challenge", ns::SASL).with_text(sasl::encode_b64_payload(&data));
    if stream.send(&ch).await.is_err() {
        return Ok(None);
    }
    let Ok(el) = read_element(server, stream, deadline).await else {
        return Ok(None);
    };
    if el.is("abort", ns::SASL) {
        return Err((None, SaslFailure::Aborted));
    }
    if !el.is("response", ns::SASL) {
        return Err((None, SaslFailure::MalformedRequest));
    }
    let payload = sasl::decode_b64_payload(&el.text()).map_err(|f| (None, f))?;
    Ok(Some(payload.unwrap_or_default()))
}

/// Sends `<failure/>`; wrong credentials count against the address (and user) in the same
/// brute-force throttle client logins use.
async fn fail<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    peer: SocketAddr,
    user: Option<&str>,
    f: SaslFailure,
) -> Sasl
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if matches!(f, SaslFailure::NotAuthorized | SaslFailure::InvalidAuthzid) {
        let now = std::time::Instant::now();
        let delay = server.throttle().delay(peer.ip(), user, now);
        server.throttle().record_failure(peer.ip(), user, now);
        tracing::info!(%peer, user = user.unwrap_or("-"), what = "router-auth-failed", "router component failed to authenticate");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let el = Element::new("failure", ns::SASL).child(Element::new(f.condition(), ns::SASL));
    if stream.send(&el).await.is_err() {
        return Sasl::Closed;
    }
    Sasl::Failed
}
