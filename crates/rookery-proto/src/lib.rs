//! rookery-proto: sans-IO XMPP protocol pieces (namespaces, stanza and stream errors, SASL,
//! stream negotiation machines, XEP-0082 dates). No sockets, and the clock is read only by
//! `datetime::unix_now`: everything here is driven by callers in rookery-net, rookery-core and
//! rookery-mods and tested in memory.
pub mod component;
pub mod datetime;
pub mod dialback;
pub mod error;
pub mod ns;
pub mod sasl;
pub mod stanza;
pub mod subscription;
