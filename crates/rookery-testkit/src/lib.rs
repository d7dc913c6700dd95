//! rookery-testkit: what Rookery's tests build servers, sessions and clients with. A
//! dev-dependency only; never part of a shipped binary.
//!
//! Two levels, so every test sits as close to the code it checks as it can:
//! - core (always): a real `rookery_core::Server` on a temporary SQLite database with the
//!   modules the test names (`Harness`), and fake client sessions bound through
//!   `Server::sessions()` whose mailboxes the test reads (`Client`): a stanza goes in as the
//!   c2s actor hands it over (`handle_from_client`, `from` stamped) and whatever the server
//!   queued for the session comes out. Depends only on the crates below rookery-mods, so
//!   rookery-mods' own unit tests use it with their crate's modules.
//! - `net` (feature): real servers started from a configuration on 127.0.0.1 port 0
//!   (rookery-server), hand-written peers over TCP and TLS (c2s, component, s2s, connection
//!   manager, jabberd2 router), a test CA and the loopback test DNS. For integration tests
//!   (`tests/`) only: it links rookery-server and everything below it.
//!
//! docs/architecture.md ("Tests") shows what a test written with it looks like.

// Test support: a panic here is a failed expectation, reported in the test that hit it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod harness;
mod wait;
pub mod xml;

#[cfg(feature = "net")]
pub mod net;

pub use client::Client;
pub use harness::{Harness, PASSWORD, create_account, put_roster_item};
pub use wait::wait_until;
pub use xml::{error_condition, error_of, features_of, presences, pushes, stanza};
