//! XEP-0114 external components over real TCP: a hand-written component connects to the
//! `component` listener, a hand-written client logs in over c2s, and stanzas go both ways
//! through the router. Covers the handshake and its failures (not-authorized, host-unknown,
//! invalid-namespace, conflict), spoofing (invalid-from), routing to subdomains, disco#items,
//! and what clients see while the component is away (service-unavailable).
#![allow(clippy::unwrap_used)]

use rookery_core::components::ComponentRoute;
use rookery_proto::ns;
use rookery_testkit::net::{Ev, RawPeer, TestServer, component, raw_connect};
use rookery_testkit::wait_until;

const SECRET: &str = "component-secret";

async fn server() -> TestServer {
    TestServer::local(&format!(
        "[[component]]\ndomain = \"echo.localhost\"\nsecret = \"{SECRET}\"\n\
         [[component]]\ndomain = \"other.localhost\"\nsecret = \"other-secret\"\n"
    ))
    .await
}

/// The `<error/>` condition of an error stanza.
fn condition(el: &rookery_xml::Element) -> String {
    assert_eq!(el.attr("type"), Some("error"), "{}", el.to_xml());
    el.children()
        .find(|c| c.name() == "error")
        .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| panic!("no condition: {}", el.to_xml()))
}

async fn expect_error_header_then(mut c: RawPeer, cond: &str) {
    assert_eq!(c.expect_stream_error(5).await, cond);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_component_exchange_messages() {
    let s = server().await;
    let mut echo = s.component("echo.localhost", SECRET).await;
    let mut romeo = s.client("romeo", "r").await;

    romeo
        .raw("<message to='echo.localhost' id='m1' type='chat'><body>ping</body></message>")
        .await;
    let got = echo.element(10).await;
    assert!(
        got.is("message", ns::COMPONENT),
        "written in the stream's namespace: {}",
        got.to_xml()
    );
    assert_eq!(got.attr("from"), Some("romeo@localhost/r"));
    assert_eq!(got.attr("to"), Some("echo.localhost"));
    assert_eq!(
        got.get_child("body", ns::COMPONENT).map(|b| b.text()),
        Some("ping".into())
    );

    echo.raw(
        "<message from='echo.localhost' to='romeo@localhost/r' id='m2' type='chat'>\
         <body>pong</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(got.attr("id"), Some("m2"), "{}", got.to_xml());
    assert_eq!(got.attr("from"), Some("echo.localhost"));

    // Without `from`, a stanza comes from the component's domain (Prosody's reading).
    echo.raw("<message to='romeo@localhost/r' id='nofrom'><body>anonymous?</body></message>")
        .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(
        (got.attr("id"), got.attr("from")),
        (Some("nofrom"), Some("echo.localhost")),
        "{}",
        got.to_xml()
    );

    // Addresses at the component's subdomains belong to it, both ways.
    romeo
        .raw("<message to='bot@room.echo.localhost' id='m3'><body>hi room</body></message>")
        .await;
    let got = echo.element(10).await;
    assert_eq!(
        got.attr("to"),
        Some("bot@room.echo.localhost"),
        "{}",
        got.to_xml()
    );
    echo.raw(
        "<message from='bot@room.echo.localhost/x' to='romeo@localhost/r' id='m4'>\
         <body>from the room</body></message>",
    )
    .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(
        got.attr("from"),
        Some("bot@room.echo.localhost/x"),
        "{}",
        got.to_xml()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_iq_reaches_the_server_and_server_disco_lists_the_component() {
    let s = server().await;
    let mut echo = s.component("echo.localhost", SECRET).await;
    // The component asks the server (replies come back to the component's domain).
    echo.raw(
        "<iq from='echo.localhost' to='localhost' type='get' id='d1'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await;
    let r = echo.element(10).await;
    assert_eq!(
        (r.attr("type"), r.attr("id"), r.attr("to")),
        (Some("result"), Some("d1"), Some("echo.localhost")),
        "{}",
        r.to_xml()
    );
    // A client browsing the server finds the connected component, not the absent one.
    let mut romeo = s.client("romeo", "r").await;
    romeo
        .raw("<iq to='localhost' type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    let r = romeo.next_non_presence(10).await;
    let items: Vec<String> = r
        .get_child("query", ns::DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect();
    assert_eq!(items, ["echo.localhost"], "{}", r.to_xml());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_not_authorized() {
    let s = server().await;
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    component::handshake(&mut c, "not-the-secret").await;
    assert_eq!(c.expect_stream_error(5).await, "not-authorized");
    // The secret of another component does not open this one either.
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    component::handshake(&mut c, "other-secret").await;
    assert_eq!(c.expect_stream_error(5).await, "not-authorized");
    // A stanza instead of the handshake is refused the same way.
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    c.raw("<message from='echo.localhost' to='romeo@localhost'/>")
        .await;
    assert_eq!(c.expect_stream_error(5).await, "not-authorized");
    assert!(matches!(
        s.server().components().lookup("echo.localhost"),
        ComponentRoute::Down
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_domain_or_namespace_is_refused() {
    let s = server().await;
    for to in ["nope.localhost", "localhost", "xecho.localhost"] {
        let c = component::connect(s.component_addr(), to).await;
        expect_error_header_then(c, "host-unknown").await;
    }
    // No `to` at all.
    let mut c = raw_connect(s.component_addr(), ns::COMPONENT).await;
    c.stream.send_header(&[]).await.unwrap();
    assert_eq!(c.expect_stream_error(5).await, "host-unknown");
    // A client stream on the component port.
    let mut c = raw_connect(s.component_addr(), ns::CLIENT).await;
    c.stream
        .send_header(&[("to", "echo.localhost"), ("version", "1.0")])
        .await
        .unwrap();
    assert_eq!(c.expect_stream_error(5).await, "invalid-namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_conflicts_and_the_first_keeps_working() {
    let s = server().await;
    let mut first = s.component("echo.localhost", SECRET).await;
    let mut second = component::open(s.component_addr(), "echo.localhost").await;
    component::handshake(&mut second, SECRET).await;
    assert_eq!(second.expect_stream_error(5).await, "conflict");

    let mut romeo = s.client("romeo", "r").await;
    romeo
        .raw("<message to='echo.localhost' id='after'><body>still there?</body></message>")
        .await;
    let got = first.element(10).await;
    assert_eq!(got.attr("id"), Some("after"), "{}", got.to_xml());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_from_is_invalid_from() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    for from in ["juliet@localhost", "x@xecho.localhost", "other.localhost"] {
        let mut echo = s.component("echo.localhost", SECRET).await;
        echo.raw(&format!(
            "<message from='{from}' to='romeo@localhost/r' id='spoof'><body>trust me</body></message>"
        ))
        .await;
        assert_eq!(
            echo.expect_stream_error(5).await,
            "invalid-from",
            "from {from}"
        );
        // The connection is gone, and so is its binding (the next round binds again).
        wait_until(5, "the domain to be released", || {
            matches!(
                s.server().components().lookup("echo.localhost"),
                ComponentRoute::Down
            )
        })
        .await;
    }
    // Nothing reached romeo: the next thing he gets is the answer to his own ping.
    romeo
        .raw("<iq to='localhost' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let got = romeo.next_non_presence(10).await;
    assert_eq!(got.attr("id"), Some("p"), "{}", got.to_xml());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanza_without_to_gets_bad_request() {
    let s = server().await;
    let mut echo = s.component("echo.localhost", SECRET).await;
    echo.raw("<message from='echo.localhost' id='nt'><body>to whom?</body></message>")
        .await;
    let r = echo.element(10).await;
    assert_eq!(r.attr("id"), Some("nt"));
    assert_eq!(r.attr("to"), Some("echo.localhost"), "{}", r.to_xml());
    assert_eq!(condition(&r), "bad-request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_bounce_while_the_component_is_away() {
    let s = server().await;
    let mut romeo = s.client("romeo", "r").await;
    // Configured but never connected: service-unavailable, not a federation attempt.
    romeo
        .raw("<message to='echo.localhost' id='b1'><body>anyone?</body></message>")
        .await;
    let r = romeo.next_non_presence(10).await;
    assert_eq!(
        (r.attr("id"), r.attr("from")),
        (Some("b1"), Some("echo.localhost"))
    );
    assert_eq!(condition(&r), "service-unavailable");

    // Connected, then gone.
    let mut echo = s.component("echo.localhost", SECRET).await;
    romeo
        .raw("<message to='echo.localhost' id='b2'><body>hello</body></message>")
        .await;
    assert_eq!(echo.element(10).await.attr("id"), Some("b2"));
    echo.raw("</stream:stream>").await;
    assert!(matches!(echo.next(5).await, Ev::End));
    wait_until(5, "the domain to be released", || {
        matches!(
            s.server().components().lookup("echo.localhost"),
            ComponentRoute::Down
        )
    })
    .await;
    romeo
        .raw("<message to='echo.localhost' id='b3'><body>still there?</body></message>")
        .await;
    let r = romeo.next_non_presence(10).await;
    assert_eq!(r.attr("id"), Some("b3"), "{}", r.to_xml());
    assert_eq!(condition(&r), "service-unavailable");

    // And it can come back.
    let mut echo = s.component("echo.localhost", SECRET).await;
    romeo
        .raw("<message to='echo.localhost' id='b4'><body>welcome back</body></message>")
        .await;
    assert_eq!(echo.element(10).await.attr("id"), Some("b4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_system_shutdown() {
    let s = server().await;
    let mut echo = s.component("echo.localhost", SECRET).await;
    let mut pending = component::open(s.component_addr(), "other.localhost").await;
    assert!(s.running.shutdown(std::time::Duration::from_secs(10)).await);
    assert_eq!(echo.expect_stream_error(5).await, "system-shutdown");
    assert_eq!(pending.expect_stream_error(5).await, "system-shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_handshake_is_refused_before_authentication() {
    let s = server().await;
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    // Larger than the pre-authentication stanza cap (10 kB by default).
    c.raw(&format!("<handshake>{}</handshake>", "a".repeat(20_000)))
        .await;
    assert_eq!(c.expect_stream_error(5).await, "policy-violation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_component_times_out() {
    let s = TestServer::local(&format!(
        "[[component]]\ndomain = \"echo.localhost\"\nsecret = \"{SECRET}\"\n\
         [limits]\nheader_timeout_secs = 1\nauth_timeout_secs = 1\n"
    ))
    .await;
    // A header but no handshake.
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    assert_eq!(c.expect_stream_error(5).await, "connection-timeout");
    // Not even a header.
    let mut c = raw_connect(s.component_addr(), ns::COMPONENT).await;
    assert_eq!(c.expect_stream_error(5).await, "connection-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_secrets_ban_the_address() {
    let s = TestServer::local(&format!(
        "[[component]]\ndomain = \"echo.localhost\"\nsecret = \"{SECRET}\"\n\
         [limits]\nauth_failures_per_ip = 2\nauth_ban_threshold = 2\n"
    ))
    .await;
    for _ in 0..2 {
        let mut c = component::open(s.component_addr(), "echo.localhost").await;
        component::handshake(&mut c, "guess").await;
        assert_eq!(c.expect_stream_error(5).await, "not-authorized");
    }
    // Banned now: even the right secret is refused from this address.
    let mut c = component::open(s.component_addr(), "echo.localhost").await;
    component::handshake(&mut c, SECRET).await;
    assert_eq!(c.expect_stream_error(5).await, "not-authorized");
}

/// Only a handshake checked against the secret counts: a stream that sends something else
/// first is refused at once and not counted (docs/decisions/0008).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elements_other_than_a_handshake_are_not_counted_as_guesses() {
    let s = TestServer::local(&format!(
        "[[component]]\ndomain = \"echo.localhost\"\nsecret = \"{SECRET}\"\n\
         [limits]\nauth_failures_per_ip = 1\nauth_ban_threshold = 1\n"
    ))
    .await;
    for _ in 0..3 {
        let mut c = component::open(s.component_addr(), "echo.localhost").await;
        c.raw("<message to='x@localhost'><body>hi</body></message>")
            .await;
        assert_eq!(c.expect_stream_error(5).await, "not-authorized");
    }
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        !s.server()
            .throttle()
            .is_banned(ip, std::time::Instant::now())
    );
    let _echo = s.component("echo.localhost", SECRET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_address_is_answered_and_unknown_elements_close_the_stream() {
    let s = server().await;
    let mut echo = s.component("echo.localhost", SECRET).await;
    // An unusable `to`: the component gets the error, addressed back to where it came from.
    echo.raw("<message from='bot@echo.localhost' to='a@b@c' id='bad'><body>x</body></message>")
        .await;
    let r = echo.element(10).await;
    assert_eq!(
        (r.attr("id"), r.attr("to")),
        (Some("bad"), Some("bot@echo.localhost")),
        "{}",
        r.to_xml()
    );
    assert_eq!(condition(&r), "jid-malformed");
    // The stream is still usable; something that is not a stanza ends it.
    echo.raw("<handshake>again</handshake>").await;
    assert_eq!(echo.expect_stream_error(5).await, "unsupported-stanza-type");
}
