//! `<stream:features/>` for each negotiation stage (RFC 6120 §4.3.2): before TLS, before
//! authentication, and after authentication. Modules add theirs (`ModuleCx::stream_features`):
//! the roster's versioning and pre-approval today, stream management and CSI later.

use super::Conn;
use super::io::ClientIo;
use rookery_core::{Server, Stage};
use rookery_proto::ns;
use rookery_proto::sasl;
use rookery_xml::Element;

/// Whether SASL may be offered on this connection now.
pub(crate) fn sasl_allowed(server: &Server, conn: &Conn) -> bool {
    conn.secure || !server.config().c2s.require_encryption
}

pub(crate) fn mechanisms(server: &Server, conn: &Conn) -> Vec<sasl::Mechanism> {
    sasl::advertised_mechanisms(
        conn.secure,
        server.config().c2s.allow_plain_unencrypted,
        &conn.bindings,
    )
}

/// Whether in-band registration is open on this connection's host.
pub(crate) fn registration_open(server: &Server, conn: &Conn) -> bool {
    let Some(domain) = &conn.domain else {
        return false;
    };
    // Resolved per host by the config crate ([registration].allow unless the host overrides).
    server.config().host(domain).is_some_and(|h| h.registration)
}

pub(crate) async fn send<S: ClientIo>(
    server: &Server,
    stream: &mut S,
    conn: &Conn,
) -> std::io::Result<()> {
    let mut f = Element::new("features", ns::STREAM);
    if conn.authenticated.is_none() {
        if !conn.secure {
            let mut tls = Element::new("starttls", ns::TLS);
            if server.config().c2s.require_encryption {
                tls.append_child(Element::new("required", ns::TLS));
            }
            f.append_child(tls);
        }
        if sasl_allowed(server, conn) {
            let mut mechs = Element::new("mechanisms", ns::SASL);
            for m in mechanisms(server, conn) {
                mechs.append_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
            }
            f.append_child(mechs);
            let cbs = sasl::channel_binding_types(&conn.bindings);
            if !cbs.is_empty() {
                // XEP-0440: which channel-binding types -PLUS may use.
                let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
                for t in cbs {
                    cb.append_child(
                        Element::new("channel-binding", ns::SASL_CB).with_attr("type", t.name()),
                    );
                }
                f.append_child(cb);
            }
            if registration_open(server, conn) {
                f.append_child(Element::new("register", ns::REGISTER_FEATURE));
            }
        }
        for el in server.stream_features(
            Stage::BeforeAuth,
            conn.domain.as_deref().unwrap_or_default(),
        ) {
            f.append_child(el);
        }
    } else {
        f.append_child(Element::new("bind", ns::BIND));
        // XEP-0198: stream management (enabled after binding, or resumed instead of it).
        f.append_child(Element::new("sm", ns::SM));
        // RFC 6121 legacy session establishment, optional (draft-cridland-xmpp-session).
        f.append_child(
            Element::new("session", ns::SESSION).child(Element::new("optional", ns::SESSION)),
        );
        for el in
            server.stream_features(Stage::AfterAuth, conn.domain.as_deref().unwrap_or_default())
        {
            f.append_child(el);
        }
    }
    f.append_child(stream_limits(server, conn.authenticated.is_some()));
    stream.send(&f).await
}

/// XEP-0478 stream limits: what the framer will enforce.
fn stream_limits(server: &Server, authenticated: bool) -> Element {
    let l = &server.config().limits;
    let c2s = &server.config().c2s;
    let bytes = if authenticated {
        l.stanza_bytes
    } else {
        l.preauth_stanza_bytes
    };
    // Silence after which we close: unauthenticated streams get the auth deadline; after login
    // an idle client is pinged and dropped only if the ping goes unanswered (0: never).
    let idle = if !authenticated {
        l.auth_timeout_secs
    } else if c2s.ping_interval_secs > 0 {
        c2s.ping_interval_secs + c2s.ping_timeout_secs
    } else {
        0
    };
    let mut limits = Element::new("limits", ns::STREAM_LIMITS)
        .child(Element::new("max-bytes", ns::STREAM_LIMITS).with_text(bytes.to_string()));
    if idle > 0 {
        limits.append_child(
            Element::new("idle-seconds", ns::STREAM_LIMITS).with_text(idle.to_string()),
        );
    }
    limits
}
