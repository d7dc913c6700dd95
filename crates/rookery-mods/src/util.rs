//! Helpers shared by the IQ modules: who is asking (the requester's bare JID), the store-key
//! split of an account, store-error mapping, the RFC 6121 "may see presence" check, and XEP-0082
//! timestamps. Everything here runs inside `Module::handle_iq` / hooks, after core has routed the
//! stanza to a local account or the server.

use rookery_core::Server;
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::{StoreError, Subscription};

pub use rookery_proto::datetime::{civil_from_days, format_utc, unix_now};

/// `(user, domain)` as the stores key an account (rookery-store's conventions: already normalised).
pub fn parts(bare: &BareJid) -> (&str, &str) {
    (
        bare.node().map(|n| n.as_str()).unwrap_or_default(),
        bare.domain().as_str(),
    )
}

/// The bare JID of whoever sent `st` (core stamps `from` on everything from a client).
pub fn requester(st: &Stanza) -> Option<BareJid> {
    st.from().map(Jid::to_bare)
}

/// Whether `st` was sent by the account `owner` itself (any of its resources).
pub fn is_own(st: &Stanza, owner: &BareJid) -> bool {
    requester(st).is_some_and(|r| &r == owner)
}

/// Logs a storage failure with context and turns it into the stanza error the requester sees
/// (the details stay in the log; the requester gets `internal-server-error`, RFC 6120 §8.3.3.6).
pub fn store_error(what: &'static str, account: &BareJid, e: &StoreError) -> StanzaError {
    tracing::error!(jid = %account, error = %e, what, "store error");
    StanzaError::internal()
}

/// A get-only namespace received a set (or the reverse): RFC 6120 §8.4 lets the entity answer
/// `service-unavailable` for a request it does not support.
pub fn unsupported() -> StanzaError {
    StanzaError::service_unavailable()
}

/// An error with an explicit type and a human-readable text.
pub fn error(condition: Condition, kind: ErrorType, text: &str) -> StanzaError {
    StanzaError::new(condition).with_type(kind).with_text(text)
}

/// RFC 6121 §3 / XEP-0012 §3: whether `contact` may see `owner`'s presence, i.e. the owner's
/// roster holds the contact with subscription `from` or `both`. Store errors deny (never leak
/// presence because storage hiccupped).
pub async fn may_see_presence(server: &Server, owner: &BareJid, contact: &BareJid) -> bool {
    let (user, domain) = parts(owner);
    match server
        .stores()
        .roster
        .get(user, domain, contact.as_str())
        .await
    {
        Ok(Some(item)) => matches!(item.subscription, Subscription::From | Subscription::Both),
        Ok(None) => false,
        Err(e) => {
            tracing::error!(jid = %owner, error = %e, what = "roster-get", "store error");
            false
        }
    }
}
