//! The server value every task shares: configuration, stores, the session registry, the loaded
//! modules, and the router entry points (`handle_from_client`, `route`). Cheap to clone.

use crate::cluster::{Cluster, SingleNode};
use crate::components::{ComponentRoute, Components};
use crate::hooks::{Event, Flow, IqReply, IqTarget, IqType, Point};
use crate::modules::ModuleHost;
use crate::registry::Registry;
use crate::session::Session;
use crate::sessions::{Ended, Sessions};
use crate::throttle::AuthThrottle;
use rookery_config::Config;
use rookery_proto::error::{Condition, StanzaError};
use rookery_proto::stanza::{BareJid, Jid, Kind, Stanza};
use rookery_store::Stores;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where stanzas for domains that are not ours go. Federation installs one; without it
/// remote destinations bounce with `remote-server-not-found`.
#[async_trait::async_trait]
pub trait RemoteRouter: Send + Sync + 'static {
    async fn route_remote(&self, server: &Server, st: Stanza);
}

#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: Arc<Config>,
    stores: Stores,
    registry: Registry,
    components: Components,
    pub(crate) modules: ModuleHost,
    pub(crate) resumable: crate::resume::Resumable,
    /// The stream-management writer, started on first use (it needs a runtime).
    outbox: OnceLock<crate::outbox::Outbox>,
    cluster: OnceLock<Arc<dyn Cluster>>,
    remote: RwLock<Option<Arc<dyn RemoteRouter>>>,
    throttle: AuthThrottle,
    secret: [u8; 32],
    shutdown: CancellationToken,
    tasks: TaskTracker,
    started: Instant,
}

/// The cluster was installed after sessions could already have been made.
#[derive(Debug, thiserror::Error)]
#[error("the cluster must be installed once, before the server serves anything")]
pub struct ClusterAlreadySet;

impl Server {
    /// A server with no modules running (`start_modules` adds them).
    pub fn new(config: Arc<Config>, stores: Stores) -> Server {
        let mut secret = [0u8; 32];
        // Without OS randomness no stream id or SASL nonce would be safe either; the process
        // cannot run correctly, so fail loudly at start rather than degrade.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut secret).expect("OS random number generator unavailable");
        let throttle = AuthThrottle::new(&config.limits);
        Server {
            inner: Arc::new(Inner {
                config,
                stores,
                registry: Registry::new(),
                components: Components::new(),
                modules: ModuleHost::default(),
                resumable: Default::default(),
                outbox: OnceLock::new(),
                cluster: OnceLock::new(),
                remote: RwLock::new(None),
                throttle,
                secret,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                started: Instant::now(),
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }
    /// The queue to the stream-management store writer (`outbox.rs`).
    pub fn outbox(&self) -> &crate::outbox::Outbox {
        self.inner
            .outbox
            .get_or_init(|| crate::outbox::Outbox::start(self.inner.stores.sm.clone()))
    }
    /// The sessions door: views of accounts' resources and the verbs that change them.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(self, &self.inner.registry)
    }
    /// How sessions on other nodes are reached (`SingleNode` unless a cluster was installed).
    pub fn cluster(&self) -> &dyn Cluster {
        self.inner
            .cluster
            .get_or_init(|| Arc::new(SingleNode::new()))
            .as_ref()
    }
    /// Installs the cluster; only before the first session exists.
    pub fn set_cluster(&self, c: Arc<dyn Cluster>) -> Result<(), ClusterAlreadySet> {
        self.inner.cluster.set(c).map_err(|_| ClusterAlreadySet)
    }
    /// Component routes (XEP-0114 and router components).
    pub fn components(&self) -> &Components {
        &self.inner.components
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
        if self.sessions().is_online(bare) {
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
    pub async fn handle_from_client(&self, session: &Session, mut st: Stanza) {
        let table = self.inner.modules.table();
        let host = session.jid().domain().as_str();
        for m in table.hooks(Point::FromClient, st.kind(), host) {
            if m.from_client(self, session, &mut st).await == Flow::Done {
                return;
            }
        }
        drop(table);
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
        let table = self.inner.modules.table();
        let host = st.from().map(|f| f.domain().as_str()).unwrap_or_default();
        for m in table.hooks(Point::ToRemote, st.kind(), host) {
            if m.to_remote(self, &st).await == Flow::Done {
                return;
            }
        }
        drop(table);
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

    /// Dispatches an iq get/set to the module that registered its type and payload namespace
    /// for this target; routes the reply. Unknown ones get `service-unavailable` (RFC 6120
    /// §8.4), as do modules disabled for the target's host.
    pub async fn dispatch_iq(&self, target: IqTarget, iq: Stanza) {
        let handler = IqType::of(&iq).and_then(|ty| {
            let ns = iq.iq_payload()?.ns();
            let host = match &target {
                IqTarget::Server => iq.to().map(|t| t.domain().as_str()),
                IqTarget::Account(b) => Some(b.domain().as_str()),
                IqTarget::Domain(d) => Some(d.as_str()),
            }
            .unwrap_or_default();
            self.inner
                .modules
                .table()
                .iq_handler(ty, ns, &target)
                .filter(|e| e.enabled_for(host))
                .map(|e| e.module.clone())
        });
        let result = match handler {
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

    /// `Event::SessionBound` (the transport told the client its JID).
    pub async fn fire_session_bound(&self, session: &Session) {
        let table = self.inner.modules.table();
        let host = session.jid().domain().as_str();
        for m in table.events(Event::SessionBound, host) {
            m.session_bound(self, session).await;
        }
    }
    /// `Event::InitialPresence`.
    pub async fn fire_initial_presence(&self, session: &Session) {
        let table = self.inner.modules.table();
        let host = session.jid().domain().as_str();
        for m in table.events(Event::InitialPresence, host) {
            m.initial_presence(self, session).await;
        }
    }
    /// `Event::SessionClosed`, with what `Sessions::unbind` returned.
    pub async fn fire_session_closed(&self, session: &Session, ended: &Ended) {
        let table = self.inner.modules.table();
        let host = session.jid().domain().as_str();
        for m in table.events(Event::SessionClosed, host) {
            m.session_closed(self, session, ended).await;
        }
    }
    /// `Event::AccountDeleted`.
    pub async fn fire_account_deleted(&self, account: &BareJid) {
        let table = self.inner.modules.table();
        let host = account.domain().as_str();
        for m in table.events(Event::AccountDeleted, host) {
            m.account_deleted(self, account).await;
        }
    }
}
