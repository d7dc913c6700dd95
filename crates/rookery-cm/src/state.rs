//! The connection manager's shared state: its options, the hub of clients and links, the
//! settings the server sent in its configuration IQ, and the messages a client actor gets.

use crate::options::CmOptions;
use crate::sm_streams::SmStreams;
use rookery_proto::error::StreamError;
use rookery_proto::ns;
use rookery_transport::cm::hub::Hub;
use rookery_xml::Element;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the link side tells a client actor.
#[derive(Debug)]
pub enum ToClient {
    /// A payload the server routed to this client (boxed: inbox slots are allocated up front).
    Element(Box<Element>),
    /// The server answered the session `create` (true: created).
    Created(bool),
    /// The server closed the session.
    Close,
    /// Close the client with this stream error (every link lost, CM shutting down).
    Fail(StreamError),
}

pub type ClientTx = mpsc::Sender<ToClient>;

/// Elements a client actor may have waiting from the links.
pub const CLIENT_INBOX: usize = 64;

/// The server's configuration IQ, as the CM applies it to clients.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub tls_required: bool,
    pub tls_offered: bool,
    pub mechanisms: Vec<String>,
    pub register: bool,
    /// Features after authentication (bind, session, …).
    pub bound: Vec<Element>,
    pub limits: rookery_xml::Limits,
    pub preauth_bytes: usize,
    pub auth_secs: u64,
    /// The server acknowledges link traffic (Rookery's extension).
    pub acks: bool,
}

impl ServerSettings {
    /// From `<configuration xmlns='http://jabber.org/protocol/connectionmanager'>`.
    pub fn from_config(c: &Element) -> ServerSettings {
        let tls = c.get_child("starttls", ns::TLS);
        let num = |el: Option<&Element>, k: &str, d: usize| {
            el.and_then(|e| e.attr(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let lim = c.get_child("limits", ns::ROOKERY_CM);
        let defaults = rookery_xml::Limits::default();
        ServerSettings {
            tls_offered: tls.is_some(),
            tls_required: tls.is_some_and(|t| t.get_child("required", ns::TLS).is_some()),
            mechanisms: c
                .get_child("mechanisms", ns::SASL)
                .map(|m| m.children().map(|x| x.text()).collect())
                .unwrap_or_default(),
            register: c.get_child("register", ns::REGISTER_FEATURE).is_some(),
            bound: c
                .get_child("bound", ns::ROOKERY_CM)
                .map(|b| b.children().cloned().collect())
                .unwrap_or_else(|| {
                    // An Openfire-style server: the RFC 6120 minimum.
                    vec![
                        Element::new("bind", ns::BIND),
                        Element::new("session", ns::SESSION)
                            .child(Element::new("optional", ns::SESSION)),
                    ]
                }),
            limits: rookery_xml::Limits {
                max_stanza_bytes: num(lim, "stanza-bytes", defaults.max_stanza_bytes),
                max_depth: num(lim, "depth", defaults.max_depth),
                max_elements: num(lim, "elements", defaults.max_elements),
                max_attrs: num(lim, "attrs", defaults.max_attrs),
                max_ns_decls: num(lim, "ns-decls", defaults.max_ns_decls),
                ..defaults
            },
            preauth_bytes: num(lim, "preauth-bytes", 10_000),
            auth_secs: num(lim, "auth-secs", 30) as u64,
            acks: c.get_child("acks", ns::ROOKERY_CM).is_some(),
        }
    }

    /// Framer limits for a client before / after authentication.
    pub fn client_limits(&self, authenticated: bool) -> rookery_xml::Limits {
        let mut l = self.limits.clone();
        if !authenticated {
            l.max_stanza_bytes = self.preauth_bytes.min(l.max_stanza_bytes);
        }
        l
    }
}

pub struct Cm {
    pub opts: CmOptions,
    pub hub: Hub<ClientTx>,
    /// The client streams with XEP-0198 on (their undeliverable messages are the server's).
    pub sm: SmStreams,
    pub settings: RwLock<Option<Arc<ServerSettings>>>,
    pub settings_ready: Notify,
    pub links_changed: Notify,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Links opened since start (reconnects included).
    pub links_opened: AtomicU64,
    seq: AtomicU64,
}

impl Cm {
    pub fn new(opts: CmOptions, shutdown: CancellationToken, tasks: TaskTracker) -> Arc<Cm> {
        Arc::new(Cm {
            hub: Hub::new(opts.name.clone()),
            sm: SmStreams::default(),
            opts,
            settings: RwLock::new(None),
            settings_ready: Notify::new(),
            links_changed: Notify::new(),
            shutdown,
            tasks,
            links_opened: AtomicU64::new(0),
            seq: AtomicU64::new(1),
        })
    }

    pub fn settings(&self) -> Option<Arc<ServerSettings>> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_settings(&self, s: ServerSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(s));
        self.settings_ready.notify_waiters();
    }

    /// Waits up to `patience` for the server's settings (the first link's configuration IQ).
    pub async fn wait_settings(
        &self,
        patience: std::time::Duration,
    ) -> Option<Arc<ServerSettings>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let ready = self.settings_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(s) = self.settings() {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return self.settings();
            }
        }
    }

    /// A fresh IQ id on the links.
    pub fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh client stream id: the CM's name and 128 random bits (RFC 6120 §4.7.3 wants
    /// stream ids unpredictable; Openfire's CM used 32 bits of a non-cryptographic RNG).
    pub fn new_stream_id(&self) -> String {
        format!(
            "{}-{}",
            self.opts.name,
            rookery_transport::stream::new_stream_id()
        )
    }
}
