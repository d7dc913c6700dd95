//! rookery-store, stream management: the [`SmStore`] trait, the durable record of every
//! stream-managed session (XEP-0198) and its outbox.
//!
//! Written by core's group-commit writer (`rookery-core/src/outbox.rs`) as the session actors
//! work: a session's record when resumption is enabled and when its presence changes, an
//! outbox row for every stanza written to the client, and a deletion when the client
//! acknowledges. Read once at start (`load`) to rebuild the sessions that a restart
//! interrupted, so a client can resume them. Implemented by `sqlite/sm.rs` and
//! `postgres/sm.rs`, checked by `contract/sm.rs`.
//!
//! Sequence numbers are per session, start at 1 and never wrap (`u64`); XEP-0198's 32-bit
//! `h` is the low half of a sequence number, mapped by the caller. Both backends store them
//! as signed 64-bit integers, so one above `i64::MAX` fails its `apply` (no session lives
//! that long).
//!
//! Resent stanzas: a stanza a stream-managed client sent carries its origin
//! (`"<sender session id>#<n>"`, n the sender's XEP-0198 stanza count). If the server stops
//! after the recipient's row is committed but before the sender's `Handled`, the resumed
//! sender sends stanza n again. The live row catches that while it is unacknowledged; after
//! the ack, the store's memory of delivered origins (`SmSession::seen`) does. That memory is
//! pruned by the sender's progress: a `Handled` of the sender drops what it will never resend,
//! its `End` drops everything it sent, and the recipient's `End` drops what it received.

use std::sync::Arc;

use async_trait::async_trait;

use crate::StoreError;

/// The durable record of one resumable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmSession {
    /// The session (and resumption) id: primary key.
    pub id: String,
    /// The account, as in every store (normalised strings).
    pub user: String,
    pub domain: String,
    pub resource: String,
    /// The cluster node holding the session (`load` reads one node's).
    pub node: String,
    /// Stanzas from the client handled: the `h` reported to it.
    pub handled: u32,
    /// Outbox sequence number the client acknowledged (rows up to it are gone).
    pub acked: u64,
    /// Unix milliseconds until which a parked session may be resumed; `None` while a
    /// connection holds it.
    pub parked_until: Option<i64>,
    /// The last available presence (XML); `None` while unavailable.
    pub presence: Option<String>,
    /// RFC 6121 §4.7.2.3: from -128 to +127; the store refuses any other value, in a `Put`
    /// or a `State` (the whole `apply` fails).
    pub priority: i32,
    /// The resource asked for the roster (RFC 6121 §2.1.5: an interested resource).
    pub interested: bool,
    /// JIDs the session sent directed presence to (RFC 6121 §4.6), in the order sent. JIDs
    /// hold no control characters (RFC 7622 §3), and the SQLite backend relies on it: an
    /// entry with a newline (in a `Put` or a `State`) fails the `apply`.
    pub directed: Vec<String>,
    /// Origins (`"<sender session id>#<n>"`) delivered to this session whose rows are no
    /// longer live (acknowledged or given up on), in any order: an `Append` with one of them
    /// is a resent duplicate and ignored. The origins of live rows are on the rows and not
    /// repeated here. Derived data, filled by `load` only: a `Put` ignores it (the store
    /// keeps it from the `Append`s, `Handled`s and `End`s).
    pub seen: Vec<String>,
}

/// A stanza written to a session's client and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Position in the session's outgoing stream (1, 2, ...).
    pub seq: u64,
    /// The stanza's stable id (XEP-0359), or its `id` attribute, or empty.
    pub stanza_id: String,
    /// The stanza (XML).
    pub xml: String,
    /// How many connections it was written to (1 when appended).
    pub attempts: u32,
    /// `"<sending session id>#<its stanza number>"` when a stream-managed client sent it: a
    /// second row with the same origin for the same session is a resent duplicate and ignored,
    /// while the first is live and, if the origin parses (see [`SmOp::Append`]), after it.
    pub origin: Option<String>,
}

/// A stanza given up on: written to `attempts` connections, never acknowledged. Kept for the
/// operator, never resent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub session: String,
    pub resource: String,
    pub seq: u64,
    pub stanza_id: String,
    pub xml: String,
    pub attempts: u32,
    /// Unix milliseconds when it was given up on.
    pub died_at: i64,
}

/// One change, applied with others in one transaction (`SmStore::apply`), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmOp {
    /// Inserts the record or replaces every field of it (its rows are untouched).
    Put(SmSession),
    /// Appends a row. Ignored when the session already has a row with that `seq`, or (with an
    /// origin) with that origin or one in its `seen`, or when the session has no record.
    ///
    /// A stored row's origin is also remembered for the session (its `seen`, once the row is
    /// gone) if it parses: split at the last `'#'`, the right part a `u32` in plain decimal
    /// (no sign, no leading zero). One that does not parse is stored on the row all the same
    /// and guards against duplicates only while the row is live.
    Append { session: String, row: OutboxRow },
    /// The client acknowledged everything up to `upto`: deletes those rows and raises
    /// `acked` to `upto` (never lowers it).
    Ack { session: String, upto: u64 },
    /// Sets `handled`; and, `session` being a sender that will never resend what it has
    /// handled, forgets the origins `"<session>#<n>"` with n up to `handled` in every
    /// recipient's `seen` (whether or not `session` has a record). XEP-0198 counts wrap at
    /// 2^32, so "up to" is serial-number order (RFC 1982 §3.2): n is at most 2^31 - 1 behind
    /// `handled`, modulo 2^32. A stale `handled` from before a wrap thus spares the small n
    /// sent after it (a plain `n <= handled` would forget them while the sender may still
    /// resend them), and an origin more than 2^31 behind stays until an `End`: late, never
    /// early.
    Handled { session: String, handled: u32 },
    /// The session's presence state changed: sets `presence`, `priority`, `interested` and
    /// `directed` (the other fields are untouched).
    State {
        session: String,
        presence: Option<String>,
        priority: i32,
        interested: bool,
        directed: Vec<String>,
    },
    /// The live rows are being written to a new connection: each row's `attempts` grows by
    /// one; a row that has already reached `max_attempts` (written to that many connections)
    /// moves to the dead letters instead, with its `attempts` as it is and the time `now_ms`.
    /// So `max_attempts` is the most connections a stanza is ever written to.
    Attempt {
        session: String,
        max_attempts: u32,
        now_ms: i64,
    },
    /// The connection was lost; resumable until `until_ms`.
    Park { session: String, until_ms: i64 },
    /// A connection holds it again.
    Attach { session: String },
    /// The session ended: deletes its record, its live rows and its `seen` (dead letters
    /// stay); and forgets the origins it sent in every recipient's `seen` (it will never
    /// resend them), whether or not it had a record.
    End { session: String },
}

/// Durable stream-management sessions and their outboxes.
#[async_trait]
pub trait SmStore: Send + Sync {
    /// Applies `ops` in order in one transaction: all or nothing. An op naming a session that
    /// has no record does nothing to it (it ended meanwhile); `Handled` and `End` still forget
    /// what it sent.
    async fn apply(&self, ops: &[SmOp]) -> Result<(), StoreError> {
        self.apply_shared(ops.into()).await
    }

    /// `apply` for a batch the caller hands over: core's writer builds one per commit, and a
    /// backend that runs it on another thread (SQLite) takes it there without copying every
    /// row's XML. The caller keeps a share to retry with.
    async fn apply_shared(&self, ops: Arc<[SmOp]>) -> Result<(), StoreError>;

    /// Every session of `node` with its `seen` and its live rows in `seq` order, sessions
    /// sorted by id.
    async fn load(&self, node: &str) -> Result<Vec<(SmSession, Vec<OutboxRow>)>, StoreError>;

    /// The account's dead letters, oldest first.
    async fn dead_letters(&self, user: &str, domain: &str) -> Result<Vec<DeadLetter>, StoreError>;

    /// Deletes the account's sessions, rows and dead letters (account deletion), and forgets
    /// the origins its sessions sent; returns how many dead letters went.
    async fn remove_account(&self, user: &str, domain: &str) -> Result<usize, StoreError>;
}

/// An origin as remembered in `seen`: `"<session>#<n>"` split at the last `'#'`, n a `u32` in
/// plain decimal, so that printing the pair again gives the same text (`load` tells live
/// origins from remembered ones by that text). `None` for any other text.
pub(crate) fn parse_origin(origin: &str) -> Option<(&str, u32)> {
    let (session, n) = origin.rsplit_once('#')?;
    let plain = n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    Some((session, n.parse().ok().filter(|_| plain)?))
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_parse_at_the_last_hash_in_plain_decimal() {
        assert_eq!(parse_origin("s#1"), Some(("s", 1)));
        assert_eq!(parse_origin("a#b#0"), Some(("a#b", 0)));
        assert_eq!(parse_origin("#4294967295"), Some(("", u32::MAX)));
        for bad in [
            "s",
            "s#",
            "s#4294967296",
            "s#01",
            "s#+1",
            "s#-1",
            "s# 1",
            "s#1#x",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
