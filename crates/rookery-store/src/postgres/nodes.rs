//! rookery-store, PostgreSQL backend: `NodeStore` (the nodes of a cluster, decision 0018).
//! Each call is one statement; `claim` and `heartbeat` are single-row upserts and updates,
//! so two processes claiming one node name serialise on its row and get different epochs.

use std::sync::Arc;

use async_trait::async_trait;

use super::db::Pg;
use super::{Ctx, checked_bigint, to_unsigned};
use crate::{NodeRow, NodeStore, StoreError};

pub(crate) struct PgNodes(pub(crate) Arc<Pg>);

#[async_trait]
impl NodeStore for PgNodes {
    async fn claim(&self, node: &str, now_ms: i64) -> Result<u64, StoreError> {
        let node = node.to_owned();
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "INSERT INTO cluster_nodes AS n (node, epoch, started_ms, heartbeat_ms)
                         VALUES ($1::text, 1, $2::bigint, $2::bigint)
                         ON CONFLICT (node) DO UPDATE SET epoch = n.epoch + 1,
                             started_ms = excluded.started_ms,
                             heartbeat_ms = excluded.heartbeat_ms
                         RETURNING epoch",
                    )
                    .await?;
                let epoch: i64 = c
                    .query_one("claiming a node epoch", &stmt, &[&node, &now_ms])
                    .await?
                    .try_get(0)
                    .ctx("claiming a node epoch")?;
                to_unsigned(epoch, "epoch")
            })
            .await
    }

    async fn heartbeat(&self, node: &str, epoch: u64, now_ms: i64) -> Result<bool, StoreError> {
        let node = node.to_owned();
        let epoch = checked_bigint(epoch, "epoch")?;
        self.0
            .run(move |c| async move {
                let stmt = c
                    .prepare(
                        "UPDATE cluster_nodes SET heartbeat_ms = GREATEST(heartbeat_ms, $3::bigint)
                         WHERE node = $1::text AND epoch = $2::bigint",
                    )
                    .await?;
                let n = c
                    .execute(
                        "recording a node heartbeat",
                        &stmt,
                        &[&node, &epoch, &now_ms],
                    )
                    .await?;
                Ok(n == 1)
            })
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.0
            .run(|c| async move {
                let stmt = c
                    .prepare(
                        "SELECT node, epoch, started_ms, heartbeat_ms FROM cluster_nodes
                         ORDER BY node",
                    )
                    .await?;
                let rows = c.query("reading nodes", &stmt, &[]).await?;
                rows.iter()
                    .map(|row| {
                        Ok(NodeRow {
                            node: row.try_get(0).ctx("reading nodes")?,
                            epoch: to_unsigned(row.try_get(1).ctx("reading nodes")?, "epoch")?,
                            started_ms: row.try_get(2).ctx("reading nodes")?,
                            heartbeat_ms: row.try_get(3).ctx("reading nodes")?,
                        })
                    })
                    .collect()
            })
            .await
    }
}
