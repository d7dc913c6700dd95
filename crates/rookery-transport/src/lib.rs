//! rookery-transport: the transport pieces both ends of Rookery's network use — the server
//! (through rookery-net) and the connection manager (rookery-cm). It knows streams, TLS and
//! the connection-manager link, and nothing of accounts, sessions, routing or configuration:
//! it depends on neither rookery-core nor rookery-config nor rookery-store, so a connection
//! manager links no SQLite. Values that come from the configuration are passed in as plain
//! arguments.
//!
//! `stream`: a framed XMPP stream over any byte transport, and fresh stream ids. `tls`: TLS for
//! client-facing listeners (handshake, channel bindings, the compact TLS 1.3 record layer).
//! `cm`: the connection-manager link (acknowledged queue and writer, one CM's links and pinned
//! sessions, the wire format). `limits`: the per-IP cap on unauthenticated connections and the
//! connection-attempt budget.
pub mod cm;
pub mod limits;
pub mod stream;
pub mod tls;
