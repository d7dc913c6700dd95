//! SASL on a router link: DIGEST-MD5 for jabberd2 (which speaks nothing else; decision 0013)
//! and SCRAM-SHA-1/256 derived from the same `[[router.user]]` secret for components that can
//! choose. `auth.rs` calls [`authenticate`] for each `<auth/>`; wrong secrets count in the same
//! brute-force throttle as client logins, negotiation failures (bad messages, an unknown
//! mechanism, an abort, a stale nonce) do not (docs/decisions/0008).

use super::auth::read_element;
use super::table::Acl;
use rookery_config::RouterUser;
use rookery_core::Server;
use rookery_proto::ns;
use rookery_proto::sasl::digest_md5::{DigestMd5, ROUTER_REALM, ROUTER_SERVICE};
use rookery_proto::sasl::{
    self, ChannelBindings, Credentials, DEFAULT_ITERATIONS, Mechanism, SaslConfig, SaslFailure,
    SaslSession, Step,
};
use rookery_transport::stream::XmppStream;
use rookery_xml::Element;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Mechanisms offered, in this order. SCRAM is listed first for components that can choose;
/// jabberd2 ignores the list and always asks for DIGEST-MD5.
pub(super) const SCRAM: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha1];
pub(super) const DIGEST_MD5: &str = "DIGEST-MD5";

pub(super) enum Sasl {
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
pub(super) async fn authenticate<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    auth: Element,
    peer: SocketAddr,
    deadline: Instant,
) -> Sasl
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let now = std::time::Instant::now();
    if server.throttle().is_banned(peer.ip(), now) {
        return fail(
            server,
            stream,
            peer,
            None,
            Refused::Negotiation(SaslFailure::TemporaryAuthFailure),
        )
        .await;
    }
    let result = match auth.attr("mechanism") {
        Some(DIGEST_MD5) => digest(server, stream, deadline).await,
        Some(name) => match Mechanism::from_name(name).filter(|m| SCRAM.contains(m)) {
            Some(mech) => scram(server, stream, &auth, mech, deadline).await,
            None => Err((None, SaslFailure::InvalidMechanism.into())),
        },
        None => Err((None, SaslFailure::InvalidMechanism.into())),
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
type AuthErr = (Option<String>, Refused);

/// Why an exchange failed. Only a secret that was checked and found wrong counts in the
/// brute-force throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The digest or proof did not match the user's secret, or there is no such user.
    WrongSecret,
    /// Refused before any secret was checked.
    Negotiation(SaslFailure),
}

impl From<SaslFailure> for Refused {
    fn from(f: SaslFailure) -> Self {
        Refused::Negotiation(f)
    }
}

/// DIGEST-MD5: challenge, response, `<success>rspauth</success>`. Ok(None): the stream broke.
async fn digest<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    deadline: Instant,
) -> Result<Authed, AuthErr>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ex = DigestMd5::new(ROUTER_REALM, ROUTER_SERVICE).map_err(|f| (None, f.into()))?;
    let Some(resp) = challenge(server, stream, ex.challenge(), deadline).await? else {
        return Ok(None);
    };
    // A stale nonce or another service's digest-uri is refused here, before the secret is used.
    let parsed = ex.parse_response(&resp).map_err(|f| (None, f.into()))?;
    let name = parsed.username.clone();
    // jabberd2's rule: no authorization identity other than the user itself.
    if parsed.authzid.as_deref().is_some_and(|z| z != name) {
        return Err((Some(name), SaslFailure::InvalidAuthzid.into()));
    }
    let user = server.config().router.user(&name).cloned();
    // An unknown user is checked against a throw-away secret, so it costs the same and fails
    // the same way as a wrong secret.
    let secret = user
        .as_ref()
        .map_or_else(rookery_transport::stream::new_stream_id, |u| {
            u.secret.clone()
        });
    // `verify` fails only when the response does not match the secret.
    let rspauth = ex
        .verify(&parsed, &secret)
        .map_err(|_| (Some(name.clone()), Refused::WrongSecret))?;
    match user {
        Some(u) => Ok(Some((u, Some(rspauth)))),
        None => Err((Some(name), Refused::WrongSecret)),
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
    IO: AsyncRead + AsyncWrite + Unpin + Send,
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
    let initial = sasl::decode_b64_payload(&auth.text()).map_err(|f| (None, f.into()))?;
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
                    None => Err((None, Refused::WrongSecret)),
                };
            }
            Step::CredentialsRejected => return Err((user.map(|u| u.name), Refused::WrongSecret)),
            Step::Failure(f) => return Err((user.map(|u| u.name), f.into())),
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
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ch = Element::new("challenge", ns::SASL).with_text(sasl::encode_b64_payload(&data));
    if stream.send(&ch).await.is_err() {
        return Ok(None);
    }
    let Ok(el) = read_element(server, stream, deadline).await else {
        return Ok(None);
    };
    if el.is("abort", ns::SASL) {
        return Err((None, SaslFailure::Aborted.into()));
    }
    if !el.is("response", ns::SASL) {
        return Err((None, SaslFailure::MalformedRequest.into()));
    }
    let payload = sasl::decode_b64_payload(&el.text()).map_err(|f| (None, f.into()))?;
    Ok(Some(payload.unwrap_or_default()))
}

/// Sends `<failure/>`; wrong secrets count against the address (and user) in the same
/// brute-force throttle client logins use, and wait its delay first.
async fn fail<IO>(
    server: &Server,
    stream: &mut XmppStream<IO>,
    peer: SocketAddr,
    user: Option<&str>,
    refused: Refused,
) -> Sasl
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let f = match refused {
        Refused::WrongSecret => SaslFailure::NotAuthorized,
        Refused::Negotiation(f) => f,
    };
    if refused == Refused::WrongSecret {
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
