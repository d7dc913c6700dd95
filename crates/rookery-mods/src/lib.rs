//! rookery-mods: the feature modules. Each is a `rookery_core::Module` that core calls at its
//! hook points (see rookery-core `hooks.rs` for the flow of a stanza). `default_modules` is the
//! list the server loads; its order is the order of the `outbound` / `inbound` hooks:
//! blocking first (a blocked stanza must not reach presence, roster or offline handling), then
//! last activity (it watches broadcast presence before the presence module consumes it).

// `StanzaError` (the `Module::handle_iq` error type, defined in rookery-proto) is large;
// boxing it in each helper that returns it would only move the cost around.
#![allow(clippy::result_large_err)]
// Test code: a panic is how a failed expectation is reported.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use rookery_core::Module;
use std::sync::Arc;

pub mod blocking;
pub mod disco;
pub mod last;
pub mod ping;
pub mod private;
pub mod register;
pub mod time;
pub mod util;
pub mod vcard;
pub mod version;

/// The IQ feature modules of this crate, in hook order (blocking first, then last activity).
pub fn iq_modules() -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(blocking::Blocking::new()),
        Arc::new(last::LastActivity::new()),
        Arc::new(disco::Disco::new()),
        Arc::new(ping::Ping::new()),
        Arc::new(version::Version::new()),
        Arc::new(time::Time::new()),
        Arc::new(vcard::VCard::new()),
        Arc::new(private::Private::new()),
        Arc::new(register::Register::new()),
    ]
}

/// Every module the server loads by default (roster, presence and offline storage join once
/// they land, after blocking and last activity).
pub fn default_modules() -> Vec<Arc<dyn Module>> {
    iq_modules()
}
