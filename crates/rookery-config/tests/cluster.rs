//! `[cluster]`: absent means one node; present, it needs a node name, NATS and the shared
//! PostgreSQL store, and every mistake names file, line and key.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError};
use std::path::Path;
use std::time::Duration;

const FILE: &str = "/etc/rookery/rookery.toml";
const PG: &str = "[storage]\nbackend = \"postgres\"\nurl = \"postgresql://rookery@db/rookery\"\n";

/// Lines 1-2 are the host, 3-5 the store; `text` starts on line 6.
fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!("[[host]]\ndomain = \"example.org\"\n{PG}{text}"),
        Path::new(FILE),
    )
}

#[test]
fn no_section_is_one_node() {
    assert_eq!(parse("").unwrap().cluster, None);
}

#[test]
fn a_node_with_defaults_and_a_list_of_servers() {
    let c = parse("[cluster]\nnode = \"n1\"\nnats = \"nats://127.0.0.1:4222\"\n")
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.node, "n1");
    assert_eq!(c.nats, ["nats://127.0.0.1:4222"]);
    assert_eq!(c.subject_prefix, "rookery");
    assert_eq!(c.heartbeat(), Duration::from_secs(1));
    assert_eq!(c.dead_after(), Duration::from_secs(5));
    let c = parse(
        "[cluster]\nnode = \"edge_2\"\nnats = [\"nats://a:4222\", \"nats://b:4222\"]\n\
         subject_prefix = \"Test_7\"\nheartbeat_ms = 200\ndead_after_ms = 600\n",
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.nats.len(), 2);
    assert_eq!((c.heartbeat_ms, c.dead_after_ms), (200, 600));
}

fn err(text: &str) -> ConfigError {
    parse(text).unwrap_err()
}

#[test]
fn mistakes_are_located() {
    let e = err("[cluster]\nnats = \"nats://a:4222\"\n");
    assert!(e.to_string().contains("node = "), "{e}");
    assert_eq!(e.file, Path::new(FILE), "{e}");
    let e = err("[cluster]\nnode = \"N/1\"\nnats = \"nats://a:4222\"\n");
    assert_eq!(e.key.as_deref(), Some("cluster.node"), "{e}");
    assert_eq!(e.line, Some(7), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\n");
    assert!(e.to_string().contains("nats ="), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = [\"nats://a:4222\", \"http://b\"]\n");
    assert_eq!(e.key.as_deref(), Some("cluster.nats[1]"), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = []\n");
    assert_eq!(e.key.as_deref(), Some("cluster.nats"), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = \"nats://a\"\nsubject_prefix = \"a.b\"\n");
    assert_eq!(e.key.as_deref(), Some("cluster.subject_prefix"), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = \"nats://a\"\nheartbeat_ms = 50\n");
    assert_eq!(e.key.as_deref(), Some("cluster.heartbeat_ms"), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = \"nats://a\"\ndead_after_ms = 2999\n");
    assert_eq!(e.key.as_deref(), Some("cluster.dead_after_ms"), "{e}");
    assert!(e.to_string().contains("3000"), "{e}");
    let e = err("[cluster]\nnode = \"n1\"\nnats = \"nats://a\"\nnodes = 3\n");
    assert!(e.to_string().contains("nodes"), "{e}");
}

#[test]
fn a_cluster_needs_the_shared_postgres_store() {
    let e = Config::parse(
        "[[host]]\ndomain = \"example.org\"\n[cluster]\nnode = \"n1\"\nnats = \"nats://a:4222\"\n",
        Path::new(FILE),
    )
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("cluster.node"), "{e}");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.to_string().contains("backend = \"postgres\""), "{e}");
}
