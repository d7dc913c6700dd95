//! rookery-cluster: several Rookery nodes serving one set of domains (decision 0018). Sits
//! beside rookery-net under rookery-server, which is to start it when `[cluster]` is
//! configured (today `serve` refuses the section); it is to reach core only through core's
//! `Cluster` seam, and the store through its traits.
//!
//! Built so far: the node's lease on its name (`lease.rs`: an epoch per start, heartbeats,
//! and fencing when the lease is lost) and its NATS connection (`bus.rs`: subjects per node
//! and for all). Still to come, in decision 0018's order: the session cache, remote
//! delivery, resumption on another node, the jobs.

pub mod bus;
pub mod lease;

pub use bus::{Bus, BusError};
pub use lease::{Lease, LeaseError};
