//! rookery-core: the server's heart, with no sockets. `Server` holds config, stores, the
//! sessions (behind the `sessions` door, local ones in a private registry, others through a
//! `Cluster`) and the running `Module`s (`modules` host, hook points in `hooks`); `route`
//! classifies every stanza by its destination (local host / component or module domain /
//! remote) and `deliver` applies RFC 6121's delivery rules. rookery-net drives sessions into
//! it; rookery-mods plug features in through `Module::start`.
pub mod accounts;
pub mod cluster;
pub mod components;
pub mod deliver;
pub mod hooks;
mod mailbox;
pub mod modules;
pub mod outbox;
pub mod recent;
mod registry;
mod restore;
pub mod resume;
pub mod server;
pub mod session;
pub mod session_id;
pub mod sessions;
mod sm_record;
pub mod throttle;
pub mod unacked;

pub use hooks::{
    Event, Flow, IqReply, IqTarget, IqType, Module, Point, Priority, Scope, Stage, StartResult,
    Targets,
};
pub use modules::{ModuleCx, ModuleError};
pub use resume::{Parked, ResumeFailed};
pub use server::Server;
pub use session::{Queued, Session, SessionMsg};
pub use session_id::{NodeName, SessionId};
pub use sessions::{Ended, PresenceChange, PresenceUpdate, Resource, SessionRef};
