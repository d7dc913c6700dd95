//! Namespace constants used across Rookery. Routing, negotiation and every module refer to these
//! names rather than to string literals, so a typo becomes a compile error.

pub const STREAM: &str = "http://etherx.jabber.org/streams";
pub const CLIENT: &str = "jabber:client";
pub const SERVER: &str = "jabber:server";
pub const COMPONENT: &str = "jabber:component:accept";
/// Content namespace of a connection-manager link stream (Openfire's protocol).
pub const CM_LINK: &str = "jabber:connectionmanager";
/// Connection-manager control payloads (configuration, session create/close/failed).
pub const CM: &str = "http://jabber.org/protocol/connectionmanager";
pub const CM_ERRORS: &str = "http://jabber.org/protocol/connectionmanager#errors";
/// Rookery's extension of the CM link: per-link acknowledgements and resumption of a dropped
/// link's traffic on another link, and the features a client gets after authentication.
pub const ROOKERY_CM: &str = "urn:rookery:cm:0";
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
pub const STREAM_LIMITS: &str = "urn:xmpp:stream-limits:0";
pub const DIALBACK: &str = "jabber:server:dialback";
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

pub const ROSTER: &str = "jabber:iq:roster";
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const CAPS: &str = "http://jabber.org/protocol/caps";
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
pub const VERSION: &str = "jabber:iq:version";
pub const TIME: &str = "urn:xmpp:time";
pub const LAST: &str = "jabber:iq:last";
pub const VCARD: &str = "vcard-temp";
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
pub const PRIVATE: &str = "jabber:iq:private";
pub const BLOCKING: &str = "urn:xmpp:blocking";
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
pub const REGISTER: &str = "jabber:iq:register";
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0359 unique and stable stanza ids.
pub const SID: &str = "urn:xmpp:sid:0";
pub const OFFLINE: &str = "msgoffline";
pub const DATA_FORMS: &str = "jabber:x:data";
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
