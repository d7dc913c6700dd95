//! rookery-proto: sans-IO XMPP protocol pieces (namespaces, stanza and stream errors, SASL,
//! stream negotiation machines). No sockets, no clock: everything here is driven by callers in
//! rookery-net and tested in memory.
pub mod component;
pub mod dialback;
pub mod error;
pub mod ns;
pub mod sasl;
pub mod stanza;
pub mod subscription;
