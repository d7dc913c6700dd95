//! Network-level test support (feature `net`): real servers started from a configuration on
//! 127.0.0.1 port 0, and hand-written peers that speak to their listeners over TCP and TLS.
//! What the peers send is written out in the tests (raw XML), and what they read is framed
//! by the server's own `XmppStream`, so a test sees the wire as a real peer would.
//!
//! - `server`: a server in its own temporary directory (`TestServer`, `LocalOpts`).
//! - `peer`: the raw stream peer every client below is built on (`RawPeer`, `Ev`).
//! - `c2s`: a client logging in over plain TCP (SASL PLAIN) or STARTTLS (SCRAM-SHA-1-PLUS).
//! - `component`: an XEP-0114 component.
//! - `router`: a jabberd2-style component on the router listener (DIGEST-MD5, SCRAM-SHA-1).
//! - `s2s`: raw s2s peers: the initiating side, a fake receiving server, a silent listener.
//! - `federation`: nodes with s2s listeners, certificates from a test CA, published in DNS.
//! - `dns`: the loopback test DNS (rookery-testdns) and its SRV/A publishing.

pub mod c2s;
pub mod component;
pub mod dns;
pub mod federation;
mod peer;
pub mod router;
pub mod s2s;
mod scram;
mod server;

pub use peer::{Ev, Io, RawPeer, raw_connect};
pub use scram::scram_sha1_final;
pub use server::{LocalOpts, TestServer, listen};

/// The framed stream the peers read and write: the server's own, so tests frame exactly as
/// it does.
pub use rookery_transport::stream::XmppStream;
