//! SASL on a c2s stream (RFC 6120 §6): drives the sans-IO `SaslSession` from rookery-proto,
//! looks credentials up in the account store, applies the brute-force throttle, and reports
//! success so the caller restarts the stream. Also XEP-0077 registration before authentication.
//!
//! Only [`Step::CredentialsRejected`] (a checked and wrong password or proof) reaches the
//! throttle and its delay; every other failure is answered at once and not counted, so a client
//! that walks through mechanisms it cannot complete (docs/decisions/0008) is never slowed.

use super::io::ClientIo;
use super::{Conn, features, read_element};
use rookery_core::Server;
use rookery_proto::error::{Condition, StanzaError, StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::{self, Mechanism, SaslConfig, SaslFailure, SaslSession, Step};
use rookery_proto::stanza::BareJid;
use rookery_xml::Element;
use std::time::Instant;

pub(crate) enum Outcome {
    Success,
    Failed,
    Closed,
}

pub(crate) async fn exchange<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
    first: Element,
) -> Outcome {
    if !first.is("auth", ns::SASL) {
        // <response/> or <abort/> outside an exchange.
        return fail(stream, conn, SaslFailure::MalformedRequest, None).await;
    }
    if !features::sasl_allowed(server, conn) {
        return fail(stream, conn, SaslFailure::EncryptionRequired, None).await;
    }
    if server.throttle().is_banned(conn.peer.ip(), Instant::now()) {
        let _ = stream
            .send(&failure_el(
                SaslFailure::TemporaryAuthFailure,
                Some("too many failed attempts"),
            ))
            .await;
        stream
            .fail(
                &StreamError::new(StreamCondition::PolicyViolation)
                    .with_text("too many failed authentication attempts"),
            )
            .await;
        return Outcome::Closed;
    }
    let advertised = features::mechanisms(server, conn);
    let mech = match first.attr("mechanism").and_then(Mechanism::from_name) {
        Some(m) if advertised.contains(&m) => m,
        _ => return fail(stream, conn, SaslFailure::InvalidMechanism, None).await,
    };
    let domain = conn.domain.clone().unwrap_or_default();
    let secret = server.secret().to_vec();
    let cfg = SaslConfig {
        domain: &domain,
        secure: conn.secure,
        allow_plain_unencrypted: server.config().c2s.allow_plain_unencrypted,
        advertised: &advertised,
        bindings: &conn.bindings,
        server_secret: &secret,
    };
    let initial = match sasl::decode_b64_payload(&first.text()) {
        Ok(p) => p,
        Err(f) => return fail(stream, conn, f, None).await,
    };
    let (mut session, mut step) = SaslSession::start(mech, initial.as_deref(), &cfg);
    let mut account: Option<BareJid> = None;
    loop {
        match step {
            Step::NeedCredentials { username } => {
                let bare = BareJid::new(&format!("{username}@{domain}")).ok();
                let creds = match &bare {
                    Some(b) => match server
                        .stores()
                        .accounts
                        .credentials(b.node().map(|n| n.as_str()).unwrap_or_default(), &domain)
                        .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!(error = %e, what = "sasl-credentials", "store error");
                            return fail(stream, conn, SaslFailure::TemporaryAuthFailure, None)
                                .await;
                        }
                    },
                    None => None,
                };
                account = bare;
                step = session.provide_credentials(creds.as_ref(), &cfg);
            }
            Step::Challenge(data) => {
                let ch =
                    Element::new("challenge", ns::SASL).with_text(sasl::encode_b64_payload(&data));
                if stream.send(&ch).await.is_err() {
                    return Outcome::Closed;
                }
                let Ok(el) = read_element(server, stream, conn).await else {
                    return Outcome::Closed;
                };
                if el.is("abort", ns::SASL) {
                    return fail(stream, conn, SaslFailure::Aborted, None).await;
                }
                if !el.is("response", ns::SASL) {
                    return fail(stream, conn, SaslFailure::MalformedRequest, None).await;
                }
                step = match sasl::decode_b64_payload(&el.text()) {
                    Ok(p) => session.step(p.as_deref().unwrap_or_default(), &cfg),
                    Err(f) => Step::Failure(f),
                };
            }
            Step::Success {
                username,
                additional_data,
            } => {
                let Ok(bare) = BareJid::new(&format!("{username}@{domain}")) else {
                    // Unreachable in practice: the same name passed at NeedCredentials.
                    return fail(stream, conn, SaslFailure::NotAuthorized, None).await;
                };
                server.throttle().record_success(bare.as_str());
                let mut ok = Element::new("success", ns::SASL);
                if let Some(d) = additional_data {
                    ok = ok.with_text(sasl::encode_b64_payload(&d));
                }
                if stream.send(&ok).await.is_err() {
                    return Outcome::Closed;
                }
                tracing::info!(jid = %bare, peer = %conn.peer, mech = mech.name(), what = "authenticated", "login");
                conn.authenticated = Some(bare);
                conn.unauth_guard = None;
                stream.set_limits(crate::limits::framer_limits(server, true));
                return Outcome::Success;
            }
            Step::CredentialsRejected => {
                return reject(server, stream, conn, account.as_ref()).await;
            }
            Step::Failure(f) => return fail(stream, conn, f, session.failure_text()).await,
        }
    }
}

fn failure_el(f: SaslFailure, text: Option<&str>) -> Element {
    let mut el = Element::new("failure", ns::SASL).child(Element::new(f.condition(), ns::SASL));
    if let Some(t) = text {
        el.append_child(Element::new("text", ns::SASL).with_text(t));
    }
    el
}

/// Wrong credentials: counts against the IP and the account, waits the throttle's delay, then
/// sends `<failure><not-authorized/></failure>`.
async fn reject<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &Conn,
    account: Option<&BareJid>,
) -> Outcome {
    let now = Instant::now();
    let acct = account.map(|a| a.as_str());
    let delay = server.throttle().delay(conn.peer.ip(), acct, now);
    server.throttle().record_failure(conn.peer.ip(), acct, now);
    tracing::info!(peer = %conn.peer, account = acct.unwrap_or("-"), what = "auth-failed", "failed login");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if stream
        .send(&failure_el(SaslFailure::NotAuthorized, None))
        .await
        .is_err()
    {
        return Outcome::Closed;
    }
    Outcome::Failed
}

/// A negotiation failure: answered at once and not counted by the throttle, since no
/// credential was checked (the client may go on with another mechanism).
async fn fail<S: ClientIo>(
    stream: &mut S,
    conn: &Conn,
    f: SaslFailure,
    text: Option<&str>,
) -> Outcome {
    tracing::debug!(peer = %conn.peer, condition = f.condition(), reason = text.unwrap_or("-"), what = "sasl-refused", "SASL negotiation refused");
    if stream.send(&failure_el(f, text)).await.is_err() {
        return Outcome::Closed;
    }
    Outcome::Failed
}

/// XEP-0077 before authentication: registration form and account creation (when allowed).
pub(crate) async fn preauth_register<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &Conn,
    iq: &Element,
) -> Result<(), ()> {
    let id = iq.attr("id").unwrap_or_default().to_owned();
    let reply_err = |err: StanzaError| {
        let mut el = Element::new("iq", ns::CLIENT)
            .with_attr("type", "error")
            .with_attr("id", id.as_str());
        el.append_child(err.to_element(ns::CLIENT));
        el
    };
    if !features::registration_open(server, conn) || !features::sasl_allowed(server, conn) {
        let err = StanzaError::new(Condition::ServiceUnavailable);
        return stream.send(&reply_err(err)).await.map_err(|_| ());
    }
    let domain = conn.domain.clone().unwrap_or_default();
    let reply = match iq.attr("type") {
        Some("get") => Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", id.as_str())
            .child(
                Element::new("query", ns::REGISTER)
                    .child(
                        Element::new("instructions", ns::REGISTER)
                            .with_text("Choose a username and password."),
                    )
                    .child(Element::new("username", ns::REGISTER))
                    .child(Element::new("password", ns::REGISTER)),
            ),
        Some("set") => {
            let q = iq.get_child("query", ns::REGISTER);
            let user = q
                .and_then(|q| q.get_child("username", ns::REGISTER))
                .map(|e| e.text());
            let pass = q
                .and_then(|q| q.get_child("password", ns::REGISTER))
                .map(|e| e.text());
            match (user, pass) {
                (Some(u), Some(p)) if !u.is_empty() => {
                    match register(server, &format!("{u}@{domain}"), &p).await {
                        Ok(()) => Element::new("iq", ns::CLIENT)
                            .with_attr("type", "result")
                            .with_attr("id", id.as_str()),
                        Err(e) => reply_err(e),
                    }
                }
                _ => reply_err(
                    StanzaError::new(Condition::BadRequest)
                        .with_text("username and password are required"),
                ),
            }
        }
        _ => reply_err(StanzaError::new(Condition::BadRequest)),
    };
    stream.send(&reply).await.map_err(|_| ())
}

async fn register(server: &Server, jid: &str, password: &str) -> Result<(), StanzaError> {
    let bare = rookery_core::accounts::parse_account(jid)
        .map_err(|e| StanzaError::new(Condition::JidMalformed).with_text(e.to_string()))?;
    if let Err(why) =
        rookery_core::accounts::check_password_policy(&server.config().registration, password)
    {
        return Err(StanzaError::new(Condition::NotAcceptable).with_text(why));
    }
    match rookery_core::accounts::create(server.stores(), &bare, password, sasl::DEFAULT_ITERATIONS)
        .await
    {
        Ok(()) => {
            tracing::info!(jid = %bare, what = "registered", "in-band registration");
            Ok(())
        }
        Err(rookery_core::accounts::AccountError::Exists(_)) => {
            Err(StanzaError::new(Condition::Conflict))
        }
        Err(e) => {
            tracing::warn!(error = %e, what = "register", "failed");
            Err(StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))
        }
    }
}
