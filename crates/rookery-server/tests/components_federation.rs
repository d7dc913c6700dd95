//! XEP-0114 components federate through their server: a component of a.test
//! (`echo.a.test`) talks to a user of b.test over real s2s streams, authenticated with dialback
//! in both directions — b.test checks `echo.a.test` against a.test, which must answer for its
//! component's domain as for its own hosts.
#![allow(clippy::unwrap_used)]

use rookery_config::ListenerKind;
use rookery_testkit::Client;
use rookery_testkit::net::component;
use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, Opts, node, node_with};

const SECRET: &str = "echo-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_and_remote_user_exchange_messages() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            tail: format!(
                "[[component]]\ndomain = \"echo.a.test\"\nsecret = \"{SECRET}\"\n\
                 [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"component\"\n"
            ),
            ..Opts::default()
        },
    )
    .await;
    // Remote servers find the component's domain the way they find any domain: SRV records
    // pointing at the server it is attached to.
    publish_at(&dns, "echo.a.test", a.s2s_port(), false);
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let addr = a.running.addr(ListenerKind::Component).unwrap();
    let mut echo = component::login(addr, "echo.a.test", SECRET).await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    // Remote user → component: b.test dials a.test's s2s listener for echo.a.test.
    juliet.send("<message xmlns='jabber:client' to='echo.a.test' id='in'><body>hi echo</body></message>",
    )
    .await;
    let got = echo.element(20).await;
    assert_eq!(
        (got.attr("id"), got.attr("from")),
        (Some("in"), Some("juliet@b.test/j")),
        "{}",
        got.to_xml()
    );

    // Component → remote user: a.test dials b.test from echo.a.test, and b.test's dialback
    // check asks a.test, which vouches for its component's domain.
    echo.raw(
        "<message from='echo.a.test' to='juliet@b.test/j' id='out'><body>hi juliet</body></message>",
    )
    .await;
    let got = juliet.next_non_presence(20).await;
    assert_eq!(got.id(), Some("out"), "{}", got.element().to_xml());
    assert_eq!(got.from().map(|f| f.as_str()), Some("echo.a.test"));
}
