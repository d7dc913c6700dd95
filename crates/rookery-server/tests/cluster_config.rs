//! `[cluster]` is read and checked, but this build cannot run a cluster node: `start` refuses
//! it, rather than run a lone node that its operator takes for a cluster member.
#![allow(clippy::unwrap_used)]

use rookery_config::Config;
use rookery_server::StartError;
use std::path::Path;

#[tokio::test]
async fn a_cluster_config_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "[server]\ndata_dir = \"{}\"\n[[host]]\ndomain = \"localhost\"\n\
             [storage]\nbackend = \"postgres\"\nurl = \"postgresql://nobody@127.0.0.1:1/none\"\n\
             [cluster]\nnode = \"n1\"\nnats = \"nats://127.0.0.1:4222\"\n",
            dir.path().display()
        ),
        Path::new("/etc/rookery/rookery.toml"),
    )
    .unwrap();
    match rookery_server::start(cfg).await {
        Err(e @ StartError::ClusterNotBuilt(_)) => {
            let shown = e.to_string();
            assert!(
                shown.contains("\"n1\"") && shown.contains("remove [cluster]"),
                "{shown}"
            );
        }
        Err(other) => panic!("expected ClusterNotBuilt, got {other}"),
        Ok(_) => panic!("a cluster config started"),
    }
}
