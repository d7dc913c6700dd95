//! rookery-core: the server's heart, with no sockets. `Server` holds config, stores, the session
//! `Registry` and the loaded `Module`s; `route` classifies every stanza by its destination
//! (local host / component / remote) and `deliver`
//! applies RFC 6121's delivery rules. rookery-net drives sessions into it; rookery-mods plug
//! features in through `hooks::Module`.
pub mod accounts;
pub mod components;
pub mod deliver;
pub mod hooks;
mod mailbox;
pub mod registry;
pub mod server;
pub mod session;
pub mod throttle;

pub use hooks::{Flow, IqReply, IqTarget, Module};
pub use server::Server;
pub use session::{SessionHandle, SessionMsg};
