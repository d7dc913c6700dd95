//! `<route/>` handling on an open router link (as jabberd2's `router.c` does): loop guard, unicast
//! by name, broadcast, and the hand-over to Rookery's core for names Rookery itself serves.
//!
//! Where it sits: `router/mod.rs` calls [`handle`] for every `<route/>` a connection sends and
//! writes back whatever bounce it returns; [`undeliverable`] returns routes that were queued for
//! a connection that went away. Unicast order of decisions:
//! 1. a route carrying `error` is dropped (never bounce a bounce);
//! 2. missing or invalid `to`/`from` → `400`; `from` not bound by the sender → `401`;
//! 3. a router connection holds `to` → the route goes to it as is;
//! 4. `to` is a Rookery host or another core component → the payload is unwrapped, its own
//!    `from` must be a name the sender holds (`401`, the spoofing guard), and `Server::route`
//!    delivers it;
//! 5. otherwise, with a default route bound: to its holder, except that the default route's
//!    own routes to unbound names get `404` (jabberd2's s2s→s2s loop rule);
//! 6. otherwise Rookery is the default route: a stanza payload goes to `Server::route`, which
//!    federates it (router names are component domains, `Server::serves_domain`) or bounces
//!    it; anything else gets `404`.

use super::NS_COMPONENT;
use super::table::{RouterHub, Target, parse_name};
use rookery_core::Server;
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::{Jid, Stanza, StanzaParseError};
use rookery_xml::{Element, Node};

/// Handles one route from connection `id`; returns the bounce to write back to it, if any.
pub(crate) async fn handle(
    server: &Server,
    hub: &RouterHub,
    id: u64,
    el: Element,
) -> Option<Element> {
    if el.attr("error").is_some() {
        tracing::debug!(
            what = "router-error-route",
            "dropping a route that carries an error"
        );
        return None;
    }
    let from = el.attr("from").and_then(parse_name);
    match el.attr("type") {
        None => {}
        Some("broadcast") => {
            let Some(from) = from else {
                return Some(bounce(el, "400"));
            };
            if !hub.holds(id, &from) {
                return Some(bounce(el, "401"));
            }
            hub.broadcast(id, &el);
            return None;
        }
        Some(other) => {
            tracing::debug!(
                r#type = other,
                what = "router-route-type",
                "dropping a route of unknown type"
            );
            return None;
        }
    }
    let (Some(to), Some(from)) = (el.attr("to").and_then(parse_name), from) else {
        return Some(bounce(el, "400"));
    };
    if !hub.holds(id, &from) {
        tracing::info!(%from, what = "router-spoof", "route from a name the connection does not hold");
        return Some(bounce(el, "401"));
    }
    let inner_to = payload(&el)
        .and_then(|p| p.attr("to").or_else(|| p.attr("target")))
        .and_then(|t| t.parse::<Jid>().ok());
    match hub.lookup(&to, inner_to.as_ref()) {
        Target::Link(_, tx) => {
            return match tx.try_send(el) {
                Ok(()) => None,
                // The holder is not reading (or just went away): tell the sender.
                Err(e) => Some(bounce(e.into_inner(), "503")),
            };
        }
        Target::Unbound => {}
    }
    if hub.core_serves(&to) {
        return to_core(server, hub, id, el, false).await;
    }
    let Some((default_name, holder)) = hub.default_route() else {
        return to_core(server, hub, id, el, true).await;
    };
    if from == default_name {
        return Some(bounce(el, "404"));
    }
    match hub.lookup(&default_name, inner_to.as_ref()) {
        Target::Link(h, tx) if h == holder => {
            tx.try_send(el).err().map(|e| bounce(e.into_inner(), "503"))
        }
        _ => Some(bounce(el, "404")),
    }
}

/// Unwraps the payload and routes it in the core. The payload is moved out of the route, not
/// copied; a refused one is put back so the sender gets its own route with the error code.
/// `unbound`: the name is nobody's here (a payload that is not a stanza is then `404`).
async fn to_core(
    server: &Server,
    hub: &RouterHub,
    id: u64,
    mut el: Element,
    unbound: bool,
) -> Option<Element> {
    let Some(pos) = el
        .nodes()
        .iter()
        .position(|n| matches!(n, Node::Element(_)))
    else {
        return Some(bounce(el, "400"));
    };
    let child = match el.nodes_mut().remove(pos) {
        Node::Element(c) => c,
        // `pos` names an element node; a text node here would be a logic error, answered as
        // a bad request rather than a panic.
        Node::Text(_) => return Some(bounce(el, "400")),
    };
    let content_ns = if child.ns() == NS_COMPONENT {
        NS_COMPONENT
    } else {
        ns::CLIENT
    };
    let refuse = |mut el: Element, child: Element, code: &str| {
        el.nodes_mut().insert(pos, Node::Element(child));
        bounce(el, code)
    };
    let st = match Stanza::from_element(child, content_ns) {
        Ok(st) => st,
        Err((StanzaParseError::NotAStanza, child)) => {
            // Session-protocol packets and the like: nobody here understands them.
            let code = if unbound { "404" } else { "400" };
            return Some(refuse(el, child, code));
        }
        Err((StanzaParseError::Bad(_), child)) => return Some(refuse(el, child, "400")),
    };
    let from_domain = st.from().map(|f| f.domain().as_str().to_ascii_lowercase());
    let Some(from_domain) = from_domain else {
        return Some(refuse(el, st.into_element(), "400"));
    };
    if !hub.holds(id, &from_domain) {
        tracing::info!(from = %from_domain, what = "router-spoof", "stanza from a domain the connection does not hold");
        return Some(refuse(el, st.into_element(), "401"));
    }
    server.route(st).await;
    None
}

/// The route's payload: its first child element.
fn payload(el: &Element) -> Option<&Element> {
    el.children().next()
}

fn bounce(mut el: Element, code: &str) -> Element {
    el.set_attr("error", code);
    el
}

/// A route that was queued for a connection that went away (or stayed throttled until it
/// closed): the sender learns about it instead of the route vanishing. A router sender gets it
/// back with `error='503'`; a stanza from Rookery's side is bounced in the core with
/// `service-unavailable`. Errors, broadcasts and announcements are dropped.
pub(crate) async fn undeliverable(server: &Server, hub: &RouterHub, el: Element) {
    if !el.is("route", NS_COMPONENT) || el.attr("error").is_some() || el.attr("type").is_some() {
        return;
    }
    let from = el.attr("from").and_then(parse_name);
    let from_router = from
        .as_deref()
        .is_some_and(|f| matches!(hub.lookup(f, None), Target::Link(..)));
    if from_router {
        hub.bounce_to_sender(el, "503");
        return;
    }
    let Some(child) = payload(&el).cloned() else {
        return;
    };
    if let Ok(st) = Stanza::from_element(child, ns::CLIENT) {
        server.bounce(&st, StanzaError::service_unavailable()).await;
    }
}
