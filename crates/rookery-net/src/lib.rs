//! rookery-net: the server's network side. Listeners accept sockets; per-connection actors
//! drive the protocol (negotiation, then a bound session) and connect them to the core
//! `Server` (c2s clients, s2s peers, XEP-0114 components, connection-manager and jabberd2
//! router links). The transport under a client session is abstract (`c2s::io::ClientIo`): a
//! socket (TCP or TLS) or a route on a connection-manager link; WebSocket and BOSH later. The
//! framed stream, client-facing TLS, the connection-manager link and the per-IP connection
//! limits are rookery-transport's, which the connection manager shares without linking core.
pub mod c2s;
pub mod cm;
pub mod component;
pub mod limits;
pub mod listener;
pub mod router;
pub mod s2s;
pub mod shaper;
