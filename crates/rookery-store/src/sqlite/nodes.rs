//! rookery-store, SQLite backend: `NodeStore` (the nodes of a cluster, decision 0018). A
//! cluster runs on PostgreSQL; this backend keeps the same table and meaning so that the
//! contract suite holds both to it.

use std::sync::Arc;

use async_trait::async_trait;

use super::db::Db;
use super::{Ctx, to_i64, to_unsigned};
use crate::{NodeRow, NodeStore, StoreError};

pub(crate) struct SqliteNodes(pub(crate) Arc<Db>);

#[async_trait]
impl NodeStore for SqliteNodes {
    async fn claim(&self, node: &str, now_ms: i64) -> Result<u64, StoreError> {
        let node = node.to_owned();
        self.0
            .write(move |conn| {
                let epoch: i64 = conn
                    .prepare_cached(
                        "INSERT INTO cluster_nodes (node, epoch, started_ms, heartbeat_ms)
                         VALUES (?1, 1, ?2, ?2)
                         ON CONFLICT (node) DO UPDATE SET epoch = epoch + 1,
                             started_ms = excluded.started_ms,
                             heartbeat_ms = excluded.heartbeat_ms
                         RETURNING epoch",
                    )
                    .and_then(|mut stmt| stmt.query_row((&node, now_ms), |row| row.get(0)))
                    .ctx("claiming a node epoch")?;
                to_unsigned(epoch, "epoch")
            })
            .await
    }

    async fn heartbeat(&self, node: &str, epoch: u64, now_ms: i64) -> Result<bool, StoreError> {
        let node = node.to_owned();
        let epoch = to_i64(epoch, "epoch")?;
        self.0
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE cluster_nodes SET heartbeat_ms = max(heartbeat_ms, ?3)
                     WHERE node = ?1 AND epoch = ?2",
                )
                .and_then(|mut stmt| stmt.execute((&node, epoch, now_ms)))
                .map(|n| n == 1)
                .ctx("recording a node heartbeat")
            })
            .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.0
            .read(|conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT node, epoch, started_ms, heartbeat_ms FROM cluster_nodes
                         ORDER BY node",
                    )
                    .ctx("preparing node query")?;
                let mut rows = stmt.query([]).ctx("querying nodes")?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().ctx("reading nodes")? {
                    out.push(NodeRow {
                        node: row.get(0).ctx("reading nodes")?,
                        epoch: to_unsigned(row.get(1).ctx("reading nodes")?, "epoch")?,
                        started_ms: row.get(2).ctx("reading nodes")?,
                        heartbeat_ms: row.get(3).ctx("reading nodes")?,
                    });
                }
                Ok(out)
            })
            .await
    }
}
