//! Framer limits from `[limits]`: before and after authentication (c2s), and on authenticated
//! server-to-server, component and link streams. `[limits]` timeouts are read through the
//! config's own getters (`Limits::header_timeout` and friends); the per-IP caps on
//! unauthenticated connections are rookery-transport's `limits` (the connection manager uses
//! them too).

use rookery_core::Server;

pub fn framer_limits(server: &Server, authenticated: bool) -> rookery_xml::Limits {
    let l = &server.config().limits;
    rookery_xml::Limits {
        max_stanza_bytes: if authenticated {
            l.stanza_bytes
        } else {
            l.preauth_stanza_bytes
        },
        max_depth: l.max_depth,
        max_elements: l.max_elements,
        max_attrs: l.max_attrs,
        max_ns_decls: l.max_ns_decls,
        ..rookery_xml::Limits::default()
    }
}

/// Framer limits on an authenticated server-to-server or component stream (a larger stanza cap:
/// one stream carries many users' traffic).
pub fn framer_limits_s2s(server: &Server) -> rookery_xml::Limits {
    rookery_xml::Limits {
        max_stanza_bytes: server.config().limits.s2s_stanza_bytes,
        ..framer_limits(server, true)
    }
}
