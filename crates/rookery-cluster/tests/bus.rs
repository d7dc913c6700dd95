//! The bus on the real NATS server these machines run (127.0.0.1:4222, or
//! `ROOKERY_TEST_NATS`): two nodes under a prefix of their own reach each other by node
//! subject with request and reply, and both hear what is published to all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use rookery_cluster::Bus;
use rookery_config::ClusterConfig;
use std::time::Duration;

fn cfg(node: &str, prefix: &str) -> ClusterConfig {
    ClusterConfig {
        node: node.to_owned(),
        nats: vec![std::env::var("ROOKERY_TEST_NATS").unwrap_or("nats://127.0.0.1:4222".into())],
        subject_prefix: prefix.to_owned(),
        heartbeat_ms: 1000,
        dead_after_ms: 5000,
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("within 5 s")
}

#[tokio::test]
async fn nodes_reach_each_other_by_subject() {
    // A prefix of this run's own: other runs on the same NATS never see these messages.
    let prefix = format!("t{}_{}", std::process::id(), rand_token());
    let n1 = Bus::connect(&cfg("n1", &prefix))
        .await
        .expect("NATS on 127.0.0.1:4222");
    let n2 = Bus::connect(&cfg("n2", &prefix)).await.unwrap();
    assert_eq!(
        n2.own_subject("deliver"),
        format!("{prefix}.node.n2.deliver")
    );

    let mut inbox = n2.client().subscribe(n2.own_subject("ping")).await.unwrap();
    let mut all1 = n1
        .client()
        .subscribe(n1.all_subject("hello"))
        .await
        .unwrap();
    let mut all2 = n2
        .client()
        .subscribe(n2.all_subject("hello"))
        .await
        .unwrap();
    n2.client().flush().await.unwrap();
    n1.client().flush().await.unwrap();

    let answer = tokio::spawn(async move {
        let req = inbox.next().await.unwrap();
        assert_eq!(&req.payload[..], b"are you there");
        n2.client()
            .publish(req.reply.unwrap(), "n2 here".into())
            .await
            .unwrap();
        n2.client().flush().await.unwrap();
    });
    let reply = within(
        n1.client()
            .request(n1.node_subject("n2", "ping"), "are you there".into()),
    )
    .await
    .unwrap();
    assert_eq!(&reply.payload[..], b"n2 here");
    answer.await.unwrap();

    n1.client()
        .publish(n1.all_subject("hello"), "from n1".into())
        .await
        .unwrap();
    for sub in [&mut all1, &mut all2] {
        assert_eq!(&within(sub.next()).await.unwrap().payload[..], b"from n1");
    }
}

/// A few random-enough characters for a subject token (no extra dependency).
fn rand_token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:x}")
}
