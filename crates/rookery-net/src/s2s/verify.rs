//! The receiving server's half of dialback (XEP-0220 steps 2–3): open a dedicated stream to the
//! originating domain's authoritative server, send `db:verify` with the key the peer gave us and
//! the stream id we issued, and read its verdict. Only a reply matching our request's
//! from/to/id counts; unreachable servers and timeouts become dialback errors.

use super::{Failure, S2s, connect};
use rookery_core::Server;
use rookery_proto::dialback::{self, DbKind, DbType, Dialback, Pending};
use rookery_proto::error::{Condition, StanzaError, StreamCondition, StreamError};
use std::time::Duration;

/// Whole verify exchange deadline (the peer waits for our verdict meanwhile).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks `key` for (receiving = our domain, originating = the peer's claimed domain, id).
pub(crate) async fn check(
    s2s: &S2s,
    server: &Server,
    receiving: &str,
    originating: &str,
    id: &str,
    key: &str,
) -> DbType {
    if server.serves_domain(originating) {
        // We are the authoritative server ourselves: no need to dial back.
        return if dialback::verify_key(s2s.secret(), receiving, originating, id, key) {
            DbType::Valid
        } else {
            DbType::Invalid
        };
    }
    match tokio::time::timeout(
        VERIFY_TIMEOUT,
        ask(s2s, server, receiving, originating, id, key),
    )
    .await
    {
        Ok(Ok(v)) => v,
        Ok(Err(f)) => {
            tracing::info!(%originating, error = %f, what = "s2s-verify", "authoritative server check failed");
            DbType::Error(Some(StanzaError::new(f.condition())))
        }
        Err(_) => DbType::Error(Some(StanzaError::new(Condition::RemoteServerTimeout))),
    }
}

async fn ask(
    s2s: &S2s,
    server: &Server,
    receiving: &str,
    originating: &str,
    id: &str,
    key: &str,
) -> Result<DbType, Failure> {
    let mut out = connect::open(s2s, server, receiving, originating).await?;
    let req = Dialback {
        kind: DbKind::Verify,
        from: receiving.to_owned(),
        to: originating.to_owned(),
        id: Some(id.to_owned()),
        ty: DbType::Request(key.to_owned()),
    };
    let mut pending = Pending::default();
    pending.sent_verify(receiving, originating, id);
    out.stream
        .send(&req.to_element())
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    loop {
        let el = connect::next_element(&mut out.stream)
            .await
            .map_err(Failure::Unreachable)?;
        let Ok(v) = Dialback::parse(&el) else {
            continue;
        };
        if v.kind != DbKind::Verify {
            continue;
        }
        if !pending.take_verdict(&v) {
            if v.id.as_deref() != Some(id) {
                // XEP-0220: a verify answer for another stream id.
                out.stream
                    .fail(
                        &StreamError::new(StreamCondition::UndefinedCondition)
                            .with_text("invalid-id"),
                    )
                    .await;
                return Err(Failure::DialbackError(
                    "verify answer with the wrong id".into(),
                ));
            }
            continue;
        }
        out.stream.close().await;
        return Ok(match v.ty {
            DbType::Valid => DbType::Valid,
            DbType::Invalid => DbType::Invalid,
            other => other,
        });
    }
}
