//! RFC 6121 §2 roster management with XEP-0237 versioning. Where it sits: core's `dispatch_iq`
//! hands us every `jabber:iq:roster` get/set addressed to a local account (bare JID, or no `to`
//! on the client's own stream). A get returns the roster (or a version delta) and marks the
//! session an interested resource; a set updates or removes one item and pushes the change
//! (`push.rs`). Subscription states are never set here: they change only through presence
//! stanzas (the presence module, via `state.rs` and the RFC 6121 state machine), except that a
//! removal cancels both directions first (§2.5.2).

pub(crate) mod item;
pub(crate) mod push;
pub(crate) mod state;

#[cfg(test)]
mod tests;

use crate::presence::subscription as sub;
use crate::util::{parts, store_error};
use async_trait::async_trait;
use item::{SetRequest, item_element, parse_set};
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Server, Session, SessionRef, Stage, StartResult,
    Targets,
};
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::ns;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_proto::subscription::SubKind;
use rookery_store::{RosterChange, RosterItem};
use rookery_xml::Element;

/// Most items one roster may hold. RFC 6121 leaves the limit to the server; this bounds what one
/// account can make the server store and what every presence broadcast has to walk.
pub(crate) const MAX_ROSTER_ITEMS: usize = 2000;

/// The roster module (`jabber:iq:roster`).
#[derive(Debug, Default)]
pub struct Roster;

impl Roster {
    pub fn new() -> Self {
        Roster
    }
}

#[async_trait]
impl Module for Roster {
    fn name(&self) -> &'static str {
        "roster"
    }

    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        for ty in [IqType::Get, IqType::Set] {
            cx.iq(ty, ns::ROSTER, Targets::ACCOUNT);
        }
        cx.stream_features(Stage::AfterAuth);
        Ok(())
    }

    fn stream_features(&self, _stage: Stage, _host: &str) -> Vec<Element> {
        // XEP-0237 §2.1 roster versioning; RFC 6121 §3.4 subscription pre-approval (which the
        // presence module carries out, on roster state).
        vec![
            Element::new("ver", ns::ROSTER_VER),
            Element::new("sub", ns::PRE_APPROVAL),
        ]
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        // A roster belongs to an account; the server itself has none.
        let IqTarget::Account(account) = target else {
            return Err(StanzaError::service_unavailable());
        };
        // RFC 6121 §2.1.3 / §2.1.5: only the account's own resources may read or change its
        // roster; anyone else asking about it (another user, a remote entity) is refused.
        if iq.from().map(Jid::to_bare).as_ref() != Some(account) {
            return Err(StanzaError::forbidden());
        }
        let Some(query) = iq.iq_payload().filter(|q| q.is("query", ns::ROSTER)) else {
            return Err(StanzaError::bad_request("expected a roster query"));
        };
        match iq.type_attr() {
            "get" => get(server, account, iq, query).await,
            _ => set(server, account, iq, query).await,
        }
    }
}

/// The session that sent `iq`, if it is a bound local session.
fn requester(server: &Server, iq: &Stanza) -> Option<Session> {
    let full = iq.from()?.try_as_full().ok()?;
    server.sessions().local(full)
}

/// Sends the empty result now instead of leaving it to core: pushes caused by this request must
/// follow the result (RFC 6121 §2.3.2 and XEP-0237 §2.3 show the result first; clients and
/// Prosody's test suite rely on that order).
async fn reply_now(server: &Server, account: &BareJid, iq: &Stanza) {
    let mut reply = iq.iq_result(None);
    if reply.from().is_none() {
        reply.set_from(Some(Jid::from(account.clone())));
    }
    server.route(reply).await;
}

/// Roster get (RFC 6121 §2.1.3) with XEP-0237 versioning.
async fn get(
    server: &Server,
    account: &BareJid,
    iq: &Stanza,
    query: &Element,
) -> Result<IqReply, StanzaError> {
    let (user, domain) = parts(account);
    let roster = &server.stores().roster;
    let session = requester(server, iq);
    // §2.1.6: requesting the roster makes the resource "interested" in pushes. Set before
    // reading so no change made meanwhile can fall between the read and the first push.
    if let Some(s) = &session {
        server.sessions().set_interested(s);
    }
    // XEP-0237 §2.3: a version we can answer gets an empty result, then one push per change
    // (none if up to date). Versions are our own decimal counters; anything else (including
    // `ver=''` and an absent attribute) gets the full roster.
    let known = query.attr("ver").and_then(|v| v.parse::<u64>().ok());
    if let (Some(v), Some(s)) = (known, &session) {
        match roster.changes_since(user, domain, v).await {
            Ok(Some((_, changes))) if changes.is_empty() => return Ok(IqReply::Empty),
            Ok(Some((_, changes))) => {
                reply_now(server, account, iq).await;
                let s = SessionRef::Local(s.clone());
                for change in &changes {
                    push::push_to(server, &s, change);
                }
                return Ok(IqReply::Handled);
            }
            Ok(None) => {}
            Err(e) => return Err(store_error("roster-changes", account, &e)),
        }
    }
    let (version, items) = roster
        .get_all(user, domain)
        .await
        .map_err(|e| store_error("roster-get", account, &e))?;
    let mut out = Element::new("query", ns::ROSTER).with_attr("ver", version.to_string());
    for it in &items {
        out.append_child(item_element(it));
    }
    Ok(IqReply::Payload(out))
}

/// Roster set (RFC 6121 §2.3, §2.4, §2.5).
async fn set(
    server: &Server,
    account: &BareJid,
    iq: &Stanza,
    query: &Element,
) -> Result<IqReply, StanzaError> {
    match parse_set(query)? {
        SetRequest::Update { jid, name, groups } => {
            update(server, account, iq, jid, name, groups).await
        }
        SetRequest::Remove { jid } => remove(server, account, iq, jid).await,
    }
}

async fn update(
    server: &Server,
    account: &BareJid,
    iq: &Stanza,
    jid: BareJid,
    name: Option<String>,
    groups: Vec<String>,
) -> Result<IqReply, StanzaError> {
    if &jid == account {
        // The user always sees its own presence; a roster item for itself would only confuse
        // subscription handling (Prosody refuses it the same way).
        return Err(StanzaError::not_allowed().with_text("cannot add yourself to your roster"));
    }
    let (user, domain) = parts(account);
    let roster = &server.stores().roster;
    let existing = roster
        .get(user, domain, jid.as_str())
        .await
        .map_err(|e| store_error("roster-get", account, &e))?;
    if existing.is_none() && roster_full(server, account).await? {
        return Err(StanzaError::not_allowed().with_text("roster is full"));
    }
    // §2.1.5: `subscription` (other than remove), `ask` and `approved` from the client are
    // ignored; the stored values stay.
    let item = RosterItem {
        jid: jid.as_str().to_owned(),
        name,
        groups,
        ..existing.unwrap_or_default()
    };
    let version = roster
        .put(user, domain, &item)
        .await
        .map_err(|e| store_error("roster-put", account, &e))?;
    reply_now(server, account, iq).await;
    push::push(server, account, &RosterChange::Updated { version, item });
    Ok(IqReply::Handled)
}

/// Whether `account` already holds [`MAX_ROSTER_ITEMS`] items.
pub(crate) async fn roster_full(server: &Server, account: &BareJid) -> Result<bool, StanzaError> {
    let (user, domain) = parts(account);
    let (_, items) = server
        .stores()
        .roster
        .get_all(user, domain)
        .await
        .map_err(|e| store_error("roster-get", account, &e))?;
    Ok(items.len() >= MAX_ROSTER_ITEMS)
}

/// §2.5: removing an item cancels the subscriptions in both directions first (§2.5.2: the
/// server sends `unsubscribe` if the user is subscribed to the contact or asked to be, and
/// `unsubscribed` if the contact is subscribed or asked), then deletes the item and any stored
/// request from the contact, and pushes `subscription='remove'`.
async fn remove(
    server: &Server,
    account: &BareJid,
    iq: &Stanza,
    jid: BareJid,
) -> Result<IqReply, StanzaError> {
    let contact = jid.as_str();
    let loaded = state::load(server, account, contact)
        .await
        .map_err(|e| store_error("roster-load", account, &e))?;
    if loaded.item.is_none() {
        // §2.5.3: removing an item that is not in the roster.
        return Err(StanzaError::new(Condition::ItemNotFound));
    }
    let (user, domain) = parts(account);
    let roster = &server.stores().roster;
    roster
        .remove_pending_in(user, domain, contact)
        .await
        .map_err(|e| store_error("pending-remove", account, &e))?;
    let version = roster
        .remove(user, domain, contact)
        .await
        .map_err(|e| store_error("roster-remove", account, &e))?;
    reply_now(server, account, iq).await;
    // The cancellations run through the state machine for their routing and presence effects
    // (e.g. `unavailable` to a contact who could see the user, §3.2.2) but store nothing: the
    // item is already gone, and one push announces that.
    let mut current = loaded.state.normalized();
    if current.sub.has_to() || current.pending_out {
        current = sub::outbound_effects(server, account, &jid, current, SubKind::Unsubscribe).await;
    }
    if current.sub.has_from() || current.pending_in {
        sub::outbound_effects(server, account, &jid, current, SubKind::Unsubscribed).await;
    }
    // `None`: another resource removed it concurrently, and its removal pushed already.
    if let Some(version) = version {
        let change = RosterChange::Removed {
            version,
            jid: contact.to_owned(),
        };
        push::push(server, account, &change);
    }
    Ok(IqReply::Handled)
}
