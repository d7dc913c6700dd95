//! The core-level harness: a real `Server` (zero-config `localhost`, SQLite in a temporary
//! directory) running the modules the test names, with no sockets. Sessions are `Client`s.

use crate::client::Client;
use rookery_config::Config;
use rookery_core::{Module, Server};
use rookery_proto::sasl::MIN_ITERATIONS;
use rookery_proto::stanza::BareJid;
use rookery_store::{RosterItem, Subscription};
use std::sync::Arc;

/// The password of every account the kit creates.
pub const PASSWORD: &str = "pw";

pub struct Harness {
    pub server: Server,
    config: Arc<Config>,
    dir: tempfile::TempDir,
}

impl Harness {
    /// A server for `localhost` with the zero configuration, running `modules`.
    pub async fn new(modules: Vec<Arc<dyn Module>>) -> Harness {
        Harness::with_config(modules, |_| {}).await
    }

    /// `new` with the configuration changed by `tweak` first (limits, module tables,
    /// components).
    pub async fn with_config(
        modules: Vec<Arc<dyn Module>>,
        tweak: impl FnOnce(&mut Config),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::zero_config(dir.path());
        tweak(&mut config);
        let config = Arc::new(config);
        let server = open(dir.path(), config.clone(), modules).await;
        Harness {
            server,
            config,
            dir,
        }
    }

    /// A new `Server` on the same database and configuration, running `modules` (fresh
    /// instances): what a restart looks like to the modules. Clients of the old server keep
    /// talking to it.
    pub async fn restart(&mut self, modules: Vec<Arc<dyn Module>>) {
        self.server = open(self.dir.path(), self.config.clone(), modules).await;
    }

    /// `user@localhost`.
    pub fn bare(&self, user: &str) -> BareJid {
        BareJid::new(&format!("{user}@localhost")).unwrap()
    }

    /// Creates `user@localhost` (password `PASSWORD`) unless it exists.
    pub async fn account(&self, user: &str) -> BareJid {
        let bare = self.bare(user);
        create_account(&self.server, bare.as_str()).await;
        bare
    }

    /// A bound session `user@localhost/resource`; the account is created if needed.
    pub async fn login(&self, user: &str, resource: &str) -> Client {
        self.account(user).await;
        Client::bind(&self.server, &format!("{user}@localhost/{resource}")).await
    }

    /// A bound session for the full JID `jid`; no account is created.
    pub async fn connect(&self, jid: &str) -> Client {
        Client::bind(&self.server, jid).await
    }

    /// Puts `contact` in `owner`'s roster with `sub`, straight into the store.
    pub async fn roster_put(&self, owner: &BareJid, contact: &BareJid, sub: Subscription) {
        put_roster_item(&self.server, owner, contact, sub).await;
    }
}

async fn open(dir: &std::path::Path, config: Arc<Config>, modules: Vec<Arc<dyn Module>>) -> Server {
    let stores = rookery_store::open_sqlite(&dir.join("rookery.sqlite"))
        .await
        .unwrap();
    let server = Server::new(config, stores);
    server.start_modules(modules).unwrap();
    server
}

/// Creates the account `bare` (password `PASSWORD`) on `server` unless it exists.
pub async fn create_account(server: &Server, bare: &str) {
    let bare = BareJid::new(bare).unwrap_or_else(|e| panic!("{bare}: {e}"));
    let (user, domain) = (
        bare.node().expect("an account has a localpart").as_str(),
        bare.domain().as_str(),
    );
    if !server.stores().accounts.exists(user, domain).await.unwrap() {
        rookery_core::accounts::create(server.stores(), &bare, PASSWORD, MIN_ITERATIONS)
            .await
            .unwrap();
    }
}

/// Puts `contact` in `owner`'s roster with `sub`, straight into the store.
pub async fn put_roster_item(
    server: &Server,
    owner: &BareJid,
    contact: &BareJid,
    sub: Subscription,
) {
    let item = RosterItem {
        jid: contact.as_str().to_owned(),
        subscription: sub,
        ..RosterItem::default()
    };
    let user = owner.node().expect("an account has a localpart").as_str();
    server
        .stores()
        .roster
        .put(user, owner.domain().as_str(), &item)
        .await
        .unwrap();
}
