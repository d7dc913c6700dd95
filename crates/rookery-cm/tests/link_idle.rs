//! The CM's end of an idle link: the server's whitespace heartbeats must keep it open.
//! Regression: the CM timed out links that carried only heartbeats (its idle timer restarted on
//! complete elements only), so every idle CM dropped and reopened its links each
//! `idle_timeout`.
#![allow(clippy::unwrap_used)]

use rookery_cm::{CmOptions, Host, Listen};
use rookery_config::ListenerKind;
use rookery_testkit::net::{TestServer, listen};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn heartbeats_keep_an_idle_link_open() {
    let server = TestServer::start(&format!(
        "[server]\ndata_dir = \"srv\"\n[s2s]\nenabled = false\n\
         [cm]\nsecret = \"s3cret-for-tests\"\nheartbeat_secs = 1\n\
         [[host]]\ndomain = \"localhost\"\n{}",
        listen("cm")
    ))
    .await;
    let mut opts = CmOptions::new(
        "cm1",
        server.addr(ListenerKind::Cm),
        "s3cret-for-tests",
        server.dir.path().join("cm"),
    );
    opts.links = 1;
    opts.idle_timeout = Duration::from_secs(2);
    opts.listen = vec![Listen {
        addr: "127.0.0.1:0".parse().unwrap(),
        direct_tls: false,
    }];
    opts.hosts = vec![Host {
        domain: "localhost".into(),
        cert: None,
        key: None,
    }];
    let cm = rookery_cm::start(opts, CancellationToken::new())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), cm.wait_links(1))
        .await
        .unwrap();
    // Real time on purpose: the heartbeats are real socket traffic. Three idle timeouts' worth.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(cm.live_links(), 1);
    assert_eq!(
        cm.links_opened(),
        1,
        "the idle link was dropped and reopened"
    );
    cm.shutdown().await;
    server.running.shutdown(Duration::from_secs(5)).await;
}
