//! rookery-cm, link reader (`pool.rs`): what becomes of a message the server routes to a
//! client that is gone — handed back as `<failed/>`, unless the server runs stream management
//! on that stream (it resends the message itself, XEP-0198 §5).
//!
//! Regression: a client behind the CM that enabled stream management and lost its connection
//! got a message twice. The server had written it to the CM just before hearing that the
//! client left; the CM handed it back as `<failed/>`, the server stored it offline, and it
//! also resent it from its unacknowledged queue when the client resumed; the stored copy came
//! with the next initial presence.
#![allow(clippy::unwrap_used)] // test code: a panic reports a failed expectation

use super::*;
use crate::options::CmOptions;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn cm() -> Arc<Cm> {
    let opts = CmOptions::new(
        "cm1",
        "127.0.0.1:9".parse().unwrap(),
        "secret",
        std::env::temp_dir(),
    );
    Cm::new(opts, CancellationToken::new(), TaskTracker::new())
}

fn route(streamid: &str, payload: Element) -> Element {
    Element::new("route", ns::CM_LINK)
        .with_attr("streamid", streamid)
        .child(payload)
}

fn message(body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", "juliet@localhost/balcony")
        .with_attr("type", "chat")
        .child(Element::new("body", ns::CLIENT).with_text(body))
}

/// What the CM queued for the server on `link`, as text.
fn sent(link: &Link) -> Vec<String> {
    link.take_tail(0)
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[tokio::test]
async fn a_message_for_a_departed_client_goes_back_as_failed() {
    let (cm, link) = (cm(), Link::new("l1".into(), "cm1/1".into()));
    on_route(&cm, &link, route("s1", message("m1"))).await;
    let out = sent(&link);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].contains("<failed") && out[0].contains("m1"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_stream_managed_clients_message_is_left_to_the_server() {
    let (cm, link) = (cm(), Link::new("l1".into(), "cm1/1".into()));
    let (tx, mut rx) = mpsc::channel(8);
    assert!(cm.hub.insert_session("s1", tx, link.clone()));
    on_route(&cm, &link, route("s1", Element::new("enabled", ns::SM))).await;
    assert!(matches!(rx.recv().await, Some(ToClient::Element(e)) if e.is("enabled", ns::SM)));
    // The client leaves (client.rs: out of the hub, then `client_gone`); the server had sent
    // a message meanwhile.
    cm.hub.remove_session("s1");
    cm.sm.client_gone("s1");
    on_route(&cm, &link, route("s1", message("m1"))).await;
    assert_eq!(sent(&link), Vec::<String>::new());
}

#[tokio::test]
async fn enabled_routed_after_the_client_left_counts() {
    let (cm, link) = (cm(), Link::new("l1".into(), "cm1/1".into()));
    on_route(&cm, &link, route("s1", Element::new("resumed", ns::SM))).await;
    on_route(&cm, &link, route("s1", message("m1"))).await;
    assert_eq!(sent(&link), Vec::<String>::new());
    // Another stream's messages still go back.
    on_route(&cm, &link, route("s2", message("m2"))).await;
    assert_eq!(sent(&link).len(), 1);
}
