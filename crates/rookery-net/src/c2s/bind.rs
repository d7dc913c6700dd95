//! Resource binding (RFC 6120 §7): server-generated resources, resourceprep, the configured
//! conflict policy (§7.7.2.2), the per-account resource cap, and registration in the registry.

use super::Conn;
use super::io::ClientIo;
use rookery_config::ResourceConflict;
use rookery_core::session::SessionReceiver;
use rookery_core::sessions::BindRefused;
use rookery_core::{Server, Session};
use rookery_proto::error::{Condition, StanzaError, StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::stanza::FullJid;
use rookery_transport::stream::new_stream_id;
use rookery_xml::Element;

pub(crate) enum Outcome {
    Bound(Session, SessionReceiver),
    Continue,
    Closed,
}

pub(crate) async fn handle<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &mut Conn,
    iq: &Element,
) -> Outcome {
    let id = iq.attr("id").unwrap_or_default().to_owned();
    let Some(bind) = iq
        .get_child("bind", ns::BIND)
        .filter(|_| iq.attr("type") == Some("set"))
    else {
        // Anything but bind before the session exists (RFC 6120 §7.1).
        stream
            .fail(
                &StreamError::new(StreamCondition::NotAuthorized)
                    .with_text("bind a resource first"),
            )
            .await;
        return Outcome::Closed;
    };
    let Some(bare) = conn.authenticated.clone() else {
        return Outcome::Closed;
    };
    let requested = bind
        .get_child("resource", ns::BIND)
        .map(|r| r.text())
        .filter(|r| !r.trim().is_empty());
    let policy = server.config().c2s.resource_conflict;
    let mut resource = requested.unwrap_or_else(generated);
    for _attempt in 0..3 {
        let full = match FullJid::new(&format!("{bare}/{resource}")) {
            Ok(f) => f,
            Err(_) => {
                // §7.7.2.1: a resource that fails resourceprep.
                let err = StanzaError::new(Condition::BadRequest).with_text("invalid resource");
                return reply(stream, &id, Err(err)).await;
            }
        };
        let replace = policy == ResourceConflict::KickOld;
        // With `replace`, core closes the old session with <conflict/> and tells the modules.
        let (handle, rx) = match server.sessions().bind(full.clone(), replace).await {
            Ok(bound) => bound,
            Err(BindRefused::Conflict) => {
                if policy == ResourceConflict::RandomSuffix {
                    resource = format!("{resource}-{}", &new_stream_id()[..8]);
                    continue;
                }
                return reply(stream, &id, Err(StanzaError::new(Condition::Conflict))).await;
            }
            Err(BindRefused::TooManyResources) => {
                let err = StanzaError::new(Condition::ResourceConstraint)
                    .with_text("too many sessions for this account");
                return reply(stream, &id, Err(err)).await;
            }
        };
        let payload = Element::new("bind", ns::BIND)
            .child(Element::new("jid", ns::BIND).with_text(full.as_str()));
        if let Outcome::Closed = reply(stream, &id, Ok(payload)).await {
            // Never announced to the modules: nothing to report.
            server.sessions().unbind(&handle);
            return Outcome::Closed;
        }
        tracing::info!(jid = %full, what = "bound", "session started");
        server.fire_session_bound(&handle).await;
        return Outcome::Bound(handle, rx);
    }
    reply(stream, &id, Err(StanzaError::new(Condition::Conflict))).await
}

fn generated() -> String {
    format!("rookery-{}", &new_stream_id()[..12])
}

async fn reply<S: ClientIo>(
    stream: &mut S,
    id: &str,
    res: Result<Element, StanzaError>,
) -> Outcome {
    let el = match res {
        Ok(payload) => Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", id)
            .child(payload),
        Err(e) => Element::new("iq", ns::CLIENT)
            .with_attr("type", "error")
            .with_attr("id", id)
            .child(e.to_element(ns::CLIENT)),
    };
    match stream.send(&el).await {
        Ok(()) => Outcome::Continue,
        Err(_) => Outcome::Closed,
    }
}
