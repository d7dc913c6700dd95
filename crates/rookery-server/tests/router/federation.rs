//! Router names federate through Rookery like component domains: a jabberd2-style component
//! on a.test's router listener binds `jd2.a.test`, and a user of b.test exchanges messages with
//! a user of that domain over real s2s streams (dialback both ways: b.test checks
//! `jd2.a.test` against a.test, which answers for names bound on its router).

use super::SECRET;
use rookery_config::ListenerKind;
use rookery_testkit::Client;
use rookery_testkit::net::dns::{dns, publish_at};
use rookery_testkit::net::federation::{Certs, Opts, node, node_with};
use rookery_testkit::net::router::{RouterComponent, route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_domain_and_remote_user_exchange_messages() {
    let dns = dns().await;
    let a = node_with(
        &["a.test"],
        &dns,
        Certs::SelfSigned,
        Opts {
            tail: format!(
                "[[router.user]]\nname = \"jabberd\"\nsecret = \"{SECRET}\"\n\
                 [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"router\"\n"
            ),
            ..Opts::default()
        },
    )
    .await;
    publish_at(&dns, "jd2.a.test", a.s2s_port(), false);
    let b = node(&["b.test"], &dns, Certs::SelfSigned, "").await;
    let mut sm = RouterComponent::bound(
        a.running.addr(ListenerKind::Router).unwrap(),
        "jabberd",
        SECRET,
        "jd2.a.test",
    )
    .await;
    let _ = sm.drain().await;
    let mut juliet = Client::available(b.server(), "juliet@b.test/j").await;

    // Remote user → router domain: b.test dials a.test's s2s listener for jd2.a.test.
    juliet.send("<message xmlns='jabber:client' to='bob@jd2.a.test' id='in'><body>hi bob</body></message>",
    )
    .await;
    let got = sm.next_named("route", 20).await;
    assert_eq!(
        (got.attr("from"), got.attr("to")),
        (Some("b.test"), Some("jd2.a.test"))
    );
    let m = got.children().next().unwrap();
    assert_eq!(
        (m.attr("id"), m.attr("from")),
        (Some("in"), Some("juliet@b.test/j")),
        "{}",
        got.to_xml()
    );

    // Router domain → remote user: a.test dials b.test from jd2.a.test.
    sm.raw(&route(
        "jd2.a.test",
        "b.test",
        "<message xmlns='jabber:client' from='bob@jd2.a.test/x' to='juliet@b.test/j' id='out'>\
         <body>hi juliet</body></message>",
    ))
    .await;
    let got = juliet.next_non_presence(20).await;
    assert_eq!(got.id(), Some("out"), "{}", got.element().to_xml());
    assert_eq!(got.from().map(|f| f.as_str()), Some("bob@jd2.a.test/x"));
}
