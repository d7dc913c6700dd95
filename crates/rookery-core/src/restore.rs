//! Start-up: the resumable sessions a restart interrupted (a crash, SIGKILL, or a stop) come
//! back from their durable records (`SmStore::load`) as parked sessions, bound again with the
//! presence they had and their unacknowledged stanzas queued, so their clients can resume
//! them (XEP-0198 §5) as if the server had never gone. A session whose window ran out while
//! the server was down is ended at once the same way an expiry ends one (what it held goes to
//! other resources or offline storage). Runs before the listeners open (`rookery-server`).

use crate::resume::{Parked, hold};
use crate::server::Server;
use crate::session::Session;
use crate::session_id::SessionId;
use crate::unacked::{Sent, Unacked};
use rookery_proto::datetime::unix_now;
use rookery_proto::stanza::{FullJid, Stanza};
use rookery_store::{OutboxRow, SmOp, SmSession, StoreError};
use rookery_xml::Element;
use std::time::Duration;

impl Server {
    /// Brings back this node's resumable sessions; how many.
    pub async fn restore_sessions(&self) -> Result<usize, StoreError> {
        let node = self.cluster().node().as_str().to_owned();
        let records = self.stores().sm.load(&node).await?;
        let mut restored = 0;
        for (rec, rows) in records {
            if restore_one(self, rec, rows) {
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::info!(
                sessions = restored,
                what = "sm-restored",
                "resumable sessions restored"
            );
        }
        Ok(restored)
    }
}

/// One record: bound again and parked, or (unusable) ended. Whether it was restored.
fn restore_one(server: &Server, rec: SmSession, rows: Vec<OutboxRow>) -> bool {
    let full = format!("{}@{}/{}", rec.user, rec.domain, rec.resource);
    let (Some(id), Ok(jid)) = (SessionId::parse(&rec.id), FullJid::new(&full)) else {
        tracing::warn!(session = %rec.id, what = "sm-restore", "unusable session record; dropped");
        server.outbox().queue(SmOp::End { session: rec.id }, None);
        return false;
    };
    let capacity = server.config().limits.session_mailbox;
    let (session, rx) = Session::with_id(id, jid, capacity);
    if !server.sessions().rebind(&session) {
        // The resource is taken (two records for one resource): the older stays.
        server.outbox().queue(SmOp::End { session: rec.id }, None);
        return false;
    }
    session.with_state(|s| *s = crate::sm_record::state_of(&rec));
    session.set_durable(true);
    let sent = rows.into_iter().filter_map(|row| {
        let stanza = Element::parse(&row.xml)
            .ok()
            .and_then(|el| Stanza::new(el).ok());
        if stanza.is_none() {
            tracing::warn!(session = %rec.id, seq = row.seq, what = "sm-restore", "stored stanza unreadable; skipped");
        }
        Some(Sent {
            seq: row.seq,
            stanza: stanza?,
            origin: row.origin.map(Into::into),
            attempts: row.attempts,
        })
    });
    let mut unacked = Unacked::restore(rec.acked, sent);
    // Delivered and acknowledged before the restart, but their senders may not know it yet.
    unacked.remember(rec.seen.iter().map(|o| o.as_str().into()));
    let now = unix_now() * 1000;
    let window = server
        .config()
        .c2s
        .sm_resume_window()
        .unwrap_or(Duration::ZERO);
    // A session that was connected when the server went gets a whole window from now: its
    // client only now has a server to come back to.
    let left = match rec.parked_until {
        Some(until) => Duration::from_millis(until.saturating_sub(now).max(0) as u64).min(window),
        None => window,
    };
    let parked = Parked {
        rx,
        unacked,
        handled: rec.handled,
    };
    server.outbox().queue(
        SmOp::Park {
            session: rec.id.clone(),
            until_ms: now + left.as_millis() as i64,
        },
        None,
    );
    tracing::debug!(jid = %session.jid(), what = "sm-restored", "session restored, waits to be resumed");
    hold(server, session, parked, left);
    true
}
