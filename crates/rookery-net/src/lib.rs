//! rookery-net: the only crate doing network I/O. Listeners accept sockets; per-connection
//! actors drive the protocol (negotiation, then a bound session) and connect them to the core
//! `Server`. The transport under a session is abstract (`XmppStream<IO>`): TCP and TLS, or a route on a
//! connection-manager link (`c2s::io::ClientIo`); WebSocket and BOSH later.
pub mod c2s;
pub mod cm;
pub mod limits;
pub mod listener;
pub mod s2s;
pub mod stream;
pub mod tls;
