//! Authentication on an incoming s2s stream: SASL EXTERNAL when the peer's certificate proves
//! the sender domain (XEP-0178), and dialback (XEP-0220) — as receiving server we ask the
//! sender's authoritative server (`verify`) in a task and answer when it replies; as
//! authoritative server we answer `db:verify` for our own keys. Part of `inbound`.

use super::{In, Next};
use crate::s2s::{S2s, TlsPolicy, verify};
use rookery_core::Server;
use rookery_proto::dialback::{self, DbKind, DbType, Dialback};
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::ns;
use rookery_tls::CertError;
use rookery_transport::stream::XmppStream;
use rookery_xml::Element;
use rustls_pki_types::UnixTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Result of an asynchronous dialback check (step 2–3 of XEP-0220, run in a task).
/// Dialback checks one incoming stream may have running at once.
const MAX_PENDING_CHECKS: usize = 8;

pub(super) struct Checked {
    request: Dialback,
    verdict: DbType,
}

pub(super) fn cert_valid(s2s: &S2s, st: &In, domain: &str) -> Result<(), CertError> {
    if !st.tls {
        return Err(CertError::NoCertificate);
    }
    s2s.trust().verify_peer(&st.chain, domain, UnixTime::now())
}

/// XEP-0178 on the receiving side.
pub(super) async fn external<IO>(
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
        match base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(a) => Some(a),
            None => {
                // RFC 6120 §6.4.2: a payload that isn't base64 is <incorrect-encoding/>.
                let _ = stream.send(&fail("incorrect-encoding")).await;
                return Next::Continue;
            }
        }
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
    if let Err(e) = cert_valid(s2s, st, &from) {
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

pub(super) async fn on_dialback<IO>(
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
            let ours = server.serves_domain(&db.to);
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
            let answer = if !server.serves_domain(&db.to) {
                Some(refuse(
                    Condition::ItemNotFound,
                    "not a domain of this server",
                ))
            } else if !policy.allowed || !policy.allow_dialback {
                Some(refuse(
                    Condition::Forbidden,
                    "dialback from this domain is not allowed",
                ))
            } else if !TlsPolicy::of(server).allows_auth(st.tls) {
                Some(refuse(
                    Condition::PolicyViolation,
                    "TLS is required before dialback",
                ))
            } else if policy.require_valid_certs && cert_valid(s2s, st, &db.from).is_err() {
                Some(refuse(
                    Condition::NotAuthorized,
                    "a valid certificate is required",
                ))
            } else if st.pending_checks >= MAX_PENDING_CHECKS {
                // XEP-0220 §2.4: too many pairs in flight on this stream.
                Some(refuse(
                    Condition::ResourceConstraint,
                    "too many dialback requests pending on this stream",
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
            st.pending_checks += 1;
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
pub(super) async fn verdict<IO>(stream: &mut XmppStream<IO>, st: &mut In, c: Checked) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    st.pending_checks = st.pending_checks.saturating_sub(1);
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
