//! A resumable session's durable record (`rookery_store::SmSession`) made from, and turned
//! back into, the session's in-memory state: written when resumption is enabled
//! (`resume.rs`) and whenever the session's own presence state changes (`sessions.rs` verbs),
//! read at start (`restore.rs`). The counters in it are the actor's, written by the ops the
//! actor queues (`outbox.rs`).

use crate::server::Server;
use crate::session::{PresenceState, Session};
use rookery_proto::stanza::{Jid, Stanza};
use rookery_store::{SmOp, SmSession};
use rookery_xml::Element;
use std::sync::Arc;

/// The record of `session` as it stands.
pub(crate) fn record(
    server: &Server,
    session: &Session,
    handled: u32,
    acked: u64,
    parked_until: Option<i64>,
) -> SmSession {
    let jid = session.jid();
    let (presence, priority, interested, directed) = session.with_state(state_fields);
    SmSession {
        id: session.id_str().to_owned(),
        user: jid
            .node()
            .map(|n| n.as_str())
            .unwrap_or_default()
            .to_owned(),
        domain: jid.domain().as_str().to_owned(),
        resource: jid.resource().as_str().to_owned(),
        node: server.cluster().node().as_str().to_owned(),
        handled,
        acked,
        parked_until,
        presence,
        priority,
        interested,
        directed,
        // Derived by the store from the outbox ops; a Put ignores it.
        seen: Vec::new(),
    }
}

type Fields = (Option<String>, i32, bool, Vec<String>);

fn state_fields(s: &mut PresenceState) -> Fields {
    let mut directed: Vec<String> = s.directed.iter().map(|j| j.as_str().to_owned()).collect();
    // A set has no order; a stable one keeps rewrites of the same state identical.
    directed.sort();
    (
        s.available
            .then(|| s.last.as_ref().map(|p| p.element().to_xml()))
            .flatten(),
        i32::from(s.priority),
        s.interested,
        directed,
    )
}

/// The session's presence state changed: queue it for its record (durable sessions only).
pub(crate) fn persist_state(server: &Server, session: &Session) {
    if !session.is_durable() {
        return;
    }
    let (presence, priority, interested, directed) = session.with_state(state_fields);
    server.outbox().queue(
        SmOp::State {
            session: session.id_str().to_owned(),
            presence,
            priority,
            interested,
            directed,
        },
        None,
    );
}

/// The session ended for good: its record (and live rows) go, once.
pub(crate) fn end_record(server: &Server, session: &Session) {
    if session.set_durable(false) {
        server.outbox().queue(
            SmOp::End {
                session: session.id_str().to_owned(),
            },
            None,
        );
    }
}

/// The presence state a record describes. Unparsable parts are dropped (logged): a record is
/// only ever written by this server, so that means a damaged row, not a client's input.
pub(crate) fn state_of(rec: &SmSession) -> PresenceState {
    let last = rec.presence.as_deref().and_then(|xml| {
        let st = Element::parse(xml).ok().and_then(|el| Stanza::new(el).ok());
        if st.is_none() {
            tracing::warn!(session = %rec.id, what = "sm-restore", "stored presence unreadable; restored unavailable");
        }
        st
    });
    PresenceState {
        available: last.is_some(),
        priority: rec.priority.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8,
        last: last.map(Arc::new),
        interested: rec.interested,
        directed: rec
            .directed
            .iter()
            .filter_map(|j| Jid::new(j).ok())
            .collect(),
    }
}
