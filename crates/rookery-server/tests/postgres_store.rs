//! A real server on the PostgreSQL store (`[storage] backend = "postgres"`), reached over c2s
//! by hand-written clients: accounts, SASL credentials, presence, a message between two
//! online users, and a message to an offline user stored in PostgreSQL and handed out at the
//! next login, exactly once. So the server's path to the store (config, `open_stores`,
//! modules) runs on PostgreSQL, not only the store's contract suite. The test runs in a
//! schema of its own, dropped afterwards; without a reachable PostgreSQL it skips with a
//! notice, in CI it fails (rookery_store::testing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rookery_config::ListenerKind;
use rookery_store::testing::PgTestSchema;
use rookery_testkit::net::{LocalOpts, RawPeer, TestServer, c2s};
use rookery_testkit::{PASSWORD, wait_until};
use rookery_xml::Element;
use std::time::Duration;

async fn server(schema: &PgTestSchema) -> TestServer {
    let opts = schema.options();
    TestServer::local_with(LocalOpts {
        listeners: vec!["c2s"],
        extra: format!(
            "[storage]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
            opts.url, opts.schema
        ),
        ..LocalOpts::default()
    })
    .await
}

/// The next `<message/>` with a body, skipping presence and anything else.
async fn next_message(p: &mut RawPeer) -> Element {
    loop {
        let e = p.next_non_presence(10).await;
        if e.name() == "message" {
            return e;
        }
    }
}

fn body(e: &Element) -> String {
    e.children()
        .find(|c| c.name() == "body")
        .map(|b| b.text().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_message_and_offline_round_trip_on_postgres() {
    let Some(schema) = PgTestSchema::create().await else {
        return;
    };
    let s = server(&schema).await;
    let stores = s.server().stores().clone();

    // Accounts are created in PostgreSQL; logging in reads the SCRAM credentials back.
    let mut romeo = s.client("romeo", "balcony").await;
    romeo.raw("<presence/>").await;
    let mut juliet = s.client("juliet", "chamber").await;
    juliet.raw("<presence/>").await;
    assert_eq!(
        stores.accounts.list(Some("localhost")).await.unwrap(),
        vec![
            ("juliet".to_owned(), "localhost".to_owned()),
            ("romeo".to_owned(), "localhost".to_owned())
        ]
    );

    // Online: straight through.
    romeo
        .raw("<message to='juliet@localhost' type='chat' id='m1'><body>hello</body></message>")
        .await;
    let got = next_message(&mut juliet).await;
    assert_eq!(body(&got), "hello");
    assert_eq!(got.attr("from"), Some("romeo@localhost/balcony"));

    // Offline: juliet leaves; the message waits in PostgreSQL.
    juliet.raw("</stream:stream>").await;
    drop(juliet);
    let juliet_bare = rookery_proto::stanza::BareJid::new("juliet@localhost").unwrap();
    wait_until(10, "juliet's session to end", || {
        !s.server().sessions().is_online(&juliet_bare)
    })
    .await;
    romeo
        .raw("<message to='juliet@localhost' type='chat' id='m2'><body>wherefore</body></message>")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stores.offline.count("juliet", "localhost").await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message was not stored offline"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        stores.offline.count("juliet", "localhost").await.unwrap(),
        1
    );

    // Back online: initial presence hands the stored message out (with its XEP-0203 delay),
    // and deletes it from PostgreSQL.
    let mut juliet = c2s::login_plain(
        s.addr(ListenerKind::C2s),
        "localhost",
        "juliet",
        PASSWORD,
        "chamber",
    )
    .await;
    juliet.raw("<presence/>").await;
    let stored = next_message(&mut juliet).await;
    assert_eq!(body(&stored), "wherefore");
    assert!(
        stored.children().any(|c| c.name() == "delay"),
        "{}",
        stored.to_xml()
    );
    assert_eq!(
        stores.offline.count("juliet", "localhost").await.unwrap(),
        0
    );

    // It really was PostgreSQL: the rows are in the test's schema, and no SQLite file was made.
    assert_eq!(schema.query_i64("SELECT count(*) FROM accounts").await, 2);
    assert_eq!(
        schema
            .query_i64("SELECT count(*) FROM offline_messages")
            .await,
        0
    );
    assert!(!s.dir.path().join("data/rookery.sqlite").exists());
    drop(s);
}
