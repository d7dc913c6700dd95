//! The server value every task shares: configuration, stores, the session registry, the loaded
//! modules, and the router entry points (`handle_from_client`, `route`). Cheap to clone.

use crate::components::{ComponentRoute, Components};
use crate::hooks::{Flow, IqReply, IqTarget, Module};
use crate::registry::Registry;
use crate::session::SessionHandle;
use crate::throttle::AuthThrottle;
use rookery_config::Config;
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::{BareJid, Jid, Kind, Stanza};
use rookery_store::Stores;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where stanzas for domains that are not ours go. Federation (issue 3) installs one; until then
/// remote destinations bounce with `remote-server-not-found`.
#[async_trait::async_trait]
pub trait RemoteRouter: Send + Sync + 'static {
    async fn route_remote(&self, server: &Server, st: Stanza);
}

#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    stores: Stores,
    registry: Registry,
    components: Components,
    modules: Vec<Arc<dyn Module>>,
    iq_handlers: HashMap<&'static str, Arc<dyn Module>>,
    remote: RwLock<Option<Arc<dyn RemoteRouter>>>,
    throttle: AuthThrottle,
    secret: [u8; 32],
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started: Instant,
}

/// A module list that claims one iq namespace twice.
#[derive(Debug, thiserror::Error)]
#[error("iq namespace {ns} is registered by both {first} and {second}")]
pub struct DuplicateIqHandler {
    pub ns: &'static str,
    pub first: &'static str,
    pub second: &'static str,
}

impl Server {
    pub fn new(
        config: Arc<Config>,
        stores: Stores,
        modules: Vec<Arc<dyn Module>>,
    ) -> Result<Server, DuplicateIqHandler> {
        let mut iq_handlers: HashMap<&'static str, Arc<dyn Module>> = HashMap::new();
        for m in &modules {
            for ns in m.iq_namespaces() {
                if let Some(prev) = iq_handlers.insert(ns, m.clone()) {
                    return Err(DuplicateIqHandler {
                        ns,
                        first: prev.name(),
                        second: m.name(),
                    });
                }
            }
        }
        let mut secret = [0u8; 32];
        // Without OS randomness no stream id or SASL nonce would be safe either; the process
        // cannot run correctly, so fail loudly at start rather than degrade.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut secret).expect("OS random number generator unavailable");
        let throttle = AuthThrottle::new(&config.limits);
        Ok(Server {
            inner: Arc::new(Inner {
                config,
                stores,
                registry: Registry::new(),
                components: Components::new(),
                modules,
                iq_handlers,
                remote: RwLock::new(None),
                throttle,
                secret,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                started: Instant::now(),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
    /// Component routes (XEP-0114 and router components).
    pub fn components(&self) -> &Components {
        &self.inner.components
    }
    pub fn modules(&self) -> &[Arc<dyn Module>] {
        &self.inner.modules
    }
    pub fn throttle(&self) -> &AuthThrottle {
        &self.inner.throttle
    }
    /// Per-process secret (fake SASL salts for unknown users; later dialback keys).
    pub fn secret(&self) -> &[u8] {
        &self.inner.secret
    }
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started.elapsed()
    }

    pub fn set_remote_router(&self, r: Arc<dyn RemoteRouter>) {
        *self.inner.remote.write().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    /// Whether `domain` is one of our virtual hosts.
    pub fn is_local_host(&self, domain: &str) -> bool {
        self.inner.config.host(domain).is_some()
    }

    /// Whether federation should treat `domain` as ours: a virtual host, or a component domain
    /// (or a subdomain of one), connected or not. Components federate through the server like
    /// hosts do: their stanzas leave from it and remote servers reach them through it.
    pub fn serves_domain(&self, domain: &str) -> bool {
        self.is_local_host(domain)
            || !matches!(self.inner.components.lookup(domain), ComponentRoute::None)
    }

    /// Whether the account exists: a bound session proves it without touching storage.
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        let Some(node) = bare.node() else {
            return false;
        };
        if !self.inner.registry.sessions(bare).is_empty() {
            return true;
        }
        match self
            .inner
            .stores
            .accounts
            .exists(node.as_str(), bare.domain().as_str())
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, what = "account-exists", "store error");
                false
            }
        }
    }

    /// A stanza from a bound local client session. `from` is already stamped by the actor.
    pub async fn handle_from_client(&self, session: &SessionHandle, mut st: Stanza) {
        for m in &self.inner.modules {
            if m.outbound(self, session, &mut st).await == Flow::Done {
                return;
            }
        }
        if st.to().is_none() {
            // RFC 6120 §10.3.3: no `to` = addressed to the sender's own account.
            let bare = session.jid().to_bare();
            match st.kind() {
                Kind::Iq => {
                    crate::deliver::deliver_iq_to_account(self, st, bare, true).await;
                    return;
                }
                // Presence without `to` is broadcast by the presence module; anything it left is
                // dropped rather than echoed.
                Kind::Presence => return,
                Kind::Message => st.set_to(Some(Jid::from(bare))),
            }
        }
        self.route(st).await;
    }

    /// Routes a stanza by its `to` domain: local host, component, remote.
    pub async fn route(&self, st: Stanza) {
        let Some(to) = st.to() else {
            tracing::debug!(what = "route-no-to", "dropping stanza without to");
            return;
        };
        let domain = to.domain().as_str().to_owned();
        if self.is_local_host(&domain) {
            crate::deliver::deliver(self, st).await;
            return;
        }
        let remote = self
            .inner
            .remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for m in &self.inner.modules {
            if m.remote_outbound(self, &st).await == Flow::Done {
                return;
            }
        }
        match self.inner.components.lookup(&domain) {
            ComponentRoute::Bound(link) => {
                if let Err(st) = link.send(st) {
                    self.bounce(&st, StanzaError::service_unavailable()).await;
                }
                return;
            }
            ComponentRoute::Down => {
                self.bounce(&st, StanzaError::service_unavailable()).await;
                return;
            }
            ComponentRoute::None => {}
        }
        match remote {
            Some(r) => r.route_remote(self, st).await,
            None => {
                self.bounce(&st, StanzaError::new(Condition::RemoteServerNotFound))
                    .await
            }
        }
    }

    /// Sends the error reply for `st` back to its sender (never for errors or results).
    pub async fn bounce(&self, st: &Stanza, err: StanzaError) {
        if let Some(reply) = st.error_reply(err) {
            // Errors for stanzas without a sender have nowhere to go.
            if reply.to().is_some() {
                Box::pin(self.route(reply)).await;
            }
        }
    }

    /// Dispatches an iq get/set to the module that registered its payload namespace; routes the
    /// reply. Unknown namespaces get `service-unavailable` (RFC 6120 §8.4).
    pub async fn dispatch_iq(&self, target: IqTarget, iq: Stanza) {
        let ns = iq.iq_payload().map(|p| p.ns().to_owned());
        let module = ns
            .as_deref()
            .and_then(|ns| self.inner.iq_handlers.get(ns).cloned());
        let result = match module {
            Some(m) => m.handle_iq(self, &target, &iq).await,
            None => Err(StanzaError::service_unavailable()),
        };
        let reply = match result {
            Ok(IqReply::Empty) => Some(iq.iq_result(None)),
            Ok(IqReply::Payload(p)) => Some(iq.iq_result(Some(p))),
            Ok(IqReply::Handled) => None,
            Err(e) => iq.error_reply(e),
        };
        if let Some(mut reply) = reply {
            if reply.from().is_none() {
                // Only an iq without `to` lacks a reply sender, and those address the account.
                if let IqTarget::Account(b) = &target {
                    reply.set_from(Some(Jid::from(b.clone())));
                }
            }
            if reply.to().is_some() {
                Box::pin(self.route(reply)).await;
            }
        }
    }

    pub async fn fire_session_bound(&self, session: &SessionHandle) {
        for m in &self.inner.modules {
            m.session_bound(self, session).await;
        }
    }
    pub async fn fire_initial_presence(&self, session: &SessionHandle) {
        for m in &self.inner.modules {
            m.initial_presence(self, session).await;
        }
    }
    pub async fn fire_session_closed(&self, session: &SessionHandle, clean: bool) {
        for m in &self.inner.modules {
            m.session_closed(self, session, clean).await;
        }
    }

    /// The features of every module, for disco#info.
    pub fn server_features(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .inner
            .modules
            .iter()
            .flat_map(|m| m.server_features())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    pub fn account_features(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .inner
            .modules
            .iter()
            .flat_map(|m| m.account_features())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}
