//! The connection-manager link as both ends keep it (Openfire's `jabber:connectionmanager`
//! protocol with Rookery's acknowledgement extension; docs/decisions/0006 and 0009): `link`, an
//! ordered, acknowledged outgoing queue and its writer; `hub`, one CM's links and its sessions,
//! each pinned to one link; `wire`, the encoding. The server's link listener
//! (rookery-net `cm/`) and the `rookery cm` process (rookery-cm) are the two ends.

pub mod hub;
pub mod link;
pub mod wire;
