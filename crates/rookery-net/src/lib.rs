//! rookery-net: the only crate doing network I/O. Listeners accept sockets; per-connection
//! actors drive the protocol (negotiation, then a bound session) and connect them to the core
//! `Server`. The transport under a session is abstract (`XmppStream<IO>`): TCP and TLS today,
//! connection-manager links, WebSocket and BOSH later.
pub mod c2s;
pub mod limits;
pub mod listener;
pub mod router;
pub mod s2s;
pub mod stream;
pub mod tls;
