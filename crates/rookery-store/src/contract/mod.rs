//! rookery-store: the backend-neutral contract test suite.
//!
//! Every backend (SQLite, PostgreSQL) must pass all of these. Each case is a
//! plain async function that panics on failure; a backend's test module calls them, one
//! `#[tokio::test]` per case, on a fresh empty database (see `sqlite/tests.rs` and
//! `postgres/tests.rs`). Cases that
//! take a `&Stores` work on one handle; cases that take an [`Opener`] open several handles
//! on the same database (reopening, two processes, concurrency). Compiled for this crate's
//! tests, and for other crates with the `contract` feature.
//!
//! One file per feature, named like the feature's trait file in `src/` (`accounts.rs`,
//! `roster.rs`, `offline.rs`, `kv.rs`, `blocking.rs`, `nodes.rs`, `sm.rs`, whose batching case has
//! `sm_batches.rs` to itself), plus `concurrency.rs` for the cases that span several
//! handles and `ordering.rs` for the sort order every listing shares. [`CASES`] /
//! [`MULTI_HANDLE_CASES`] list every case by name so a backend's runner can check it did
//! not miss one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test code: a panic is how a failed expectation is reported.

mod accounts;
mod blocking;
mod concurrency;
mod kv;
mod nodes;
mod offline;
mod ordering;
mod roster;
mod sm;
mod sm_batches;

use async_trait::async_trait;
use rookery_proto::sasl::{Credentials, ScramCredential};

use crate::Stores;

pub use accounts::*;
pub use blocking::*;
pub use concurrency::*;
pub use kv::*;
pub use nodes::*;
pub use offline::*;
pub use ordering::*;
pub use roster::*;
pub use sm::*;
pub use sm_batches::*;

/// Opens a new handle on the *same* database each call, as a second process would.
#[async_trait]
pub trait Opener: Send + Sync {
    async fn open(&self) -> Stores;
}

/// Names of the cases taking `&Stores`.
pub const CASES: &[&str] = &[
    "account_create_conflict_exists",
    "account_credentials_round_trip",
    "account_set_credentials",
    "account_list_sorted_and_filtered",
    "account_delete_cascades",
    "account_missing_reads_empty_writes_not_found",
    "roster_item_round_trip",
    "roster_versioning",
    "roster_versions_are_per_account",
    "roster_pending_in",
    "offline_order_limit_take_all",
    "kv_round_trip",
    "blocklist",
    "sorting_is_byte_order",
    "sm_session_round_trip",
    "sm_ops_apply_in_order",
    "sm_ack_deletes_and_never_lowers_acked",
    "sm_duplicate_appends_are_ignored",
    "sm_ops_on_a_missing_session_do_nothing",
    "sm_attempts_make_dead_letters",
    "sm_end_deletes_record_and_rows",
    "sm_load_filters_by_node",
    "sm_apply_is_atomic",
    "sm_remove_account",
    "sm_batches_match_one_by_one",
    "sm_seen_outlives_acks",
    "sm_seen_pruning_survives_the_wrap",
    "nodes_claim_heartbeat_and_fence",
];

/// Names of the cases taking an [`Opener`].
pub const MULTI_HANDLE_CASES: &[&str] = &[
    "pending_in_survives_reopen",
    "data_survives_reopen",
    "two_handles_see_each_others_writes",
    "concurrent_writers",
    "concurrent_writers_two_handles",
];

/// Distinct credentials per `seed`, with bytes that would break a text round trip (NUL,
/// 0xff, invalid UTF-8) and an empty field, so "bytes intact" is really tested.
pub fn creds(seed: u8) -> Credentials {
    let scram = |tag: u8, len: usize| ScramCredential {
        salt: vec![0x00, 0xff, seed, tag, 0xc3, 0x28],
        iterations: 4096 + u32::from(seed),
        stored_key: (0..len).map(|i| (i as u8) ^ seed ^ tag).collect(),
        server_key: vec![tag; len],
    };
    Credentials {
        sha1: scram(1, 20),
        sha256: scram(2, 32),
    }
}

/// Creates an account with `creds(0)` and panics if that fails.
pub async fn make_account(stores: &Stores, user: &str, domain: &str) {
    stores
        .accounts
        .create(user, domain, &creds(0))
        .await
        .unwrap_or_else(|e| panic!("creating {user}@{domain}: {e}"));
}
