//! A real server (rookery-server: listeners, modules, federation) started from a
//! configuration in its own temporary directory, every listener on 127.0.0.1 port 0; the
//! bound addresses are read back from it.

use super::RawPeer;
use rookery_config::{Config, ListenerKind};
use rookery_core::Server;
use rookery_server::Running;
use std::net::SocketAddr;

/// A running server and the directory holding its configuration and data.
pub struct TestServer {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

/// A `[[listen]]` entry for `kind` on 127.0.0.1, port chosen by the system.
pub fn listen(kind: &str) -> String {
    format!("[[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"{kind}\"\n")
}

/// How `TestServer::local_with` configures a server for `localhost`.
pub struct LocalOpts {
    /// The keys of the `[c2s]` section (none: no `[c2s]` section, `extra` may hold one).
    pub c2s: String,
    /// More keys of the `[[host]]` entry for `localhost` (certificates).
    pub host: String,
    /// Listener kinds, each bound on 127.0.0.1 port 0.
    pub listeners: Vec<&'static str>,
    /// Appended to the config (further sections).
    pub extra: String,
}

impl Default for LocalOpts {
    /// A c2s and a component listener; the c2s listener allows PLAIN without TLS, so test
    /// clients stay short.
    fn default() -> Self {
        LocalOpts {
            c2s: "require_encryption = false\nallow_plain_unencrypted = true\n".to_owned(),
            host: String::new(),
            listeners: vec!["c2s", "component"],
            extra: String::new(),
        }
    }
}

impl TestServer {
    /// Writes `toml` to `rookery.toml` in a new temporary directory and starts a server from
    /// it (a relative `data_dir` lands in that directory).
    pub async fn start(toml: &str) -> TestServer {
        TestServer::start_in(tempfile::tempdir().unwrap(), toml).await
    }

    /// `start` in `dir`, which may already hold files the configuration names (certificates).
    pub async fn start_in(dir: tempfile::TempDir, toml: &str) -> TestServer {
        let path = dir.path().join("rookery.toml");
        std::fs::write(&path, toml).unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let running = rookery_server::start(cfg).await.unwrap();
        TestServer { running, dir }
    }

    /// A server for `localhost` without federation, with the default `LocalOpts` and `extra`
    /// appended to the config (e.g. `[[component]]` entries).
    pub async fn local(extra: &str) -> TestServer {
        TestServer::local_with(LocalOpts {
            extra: extra.to_owned(),
            ..LocalOpts::default()
        })
        .await
    }

    /// A server for `localhost` without federation, configured by `opts`.
    pub async fn local_with(opts: LocalOpts) -> TestServer {
        let mut toml = String::from("[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n");
        if !opts.c2s.is_empty() {
            toml.push_str(&format!("[c2s]\n{}\n", opts.c2s));
        }
        toml.push_str(&format!(
            "[[host]]\ndomain = \"localhost\"\n{}\n",
            opts.host
        ));
        for kind in &opts.listeners {
            toml.push_str(&listen(kind));
        }
        toml.push_str(&opts.extra);
        TestServer::start(&toml).await
    }

    /// Stops the server as SIGTERM does (streams get `system-shutdown`) and starts it again
    /// from the same directory, configuration and data; listeners get new ports.
    pub async fn restart(self) -> TestServer {
        assert!(
            self.running
                .shutdown(std::time::Duration::from_secs(10))
                .await,
            "the server did not stop in time"
        );
        let TestServer { running, dir } = self;
        drop(running);
        let path = dir.path().join("rookery.toml");
        let toml = std::fs::read_to_string(&path).unwrap();
        TestServer::start_in(dir, &toml).await
    }

    pub fn server(&self) -> &Server {
        &self.running.server
    }

    /// The bound address of the first listener of `kind`.
    pub fn addr(&self, kind: ListenerKind) -> SocketAddr {
        self.running
            .addr(kind)
            .unwrap_or_else(|| panic!("no {} listener", kind.as_str()))
    }

    pub fn component_addr(&self) -> SocketAddr {
        self.addr(ListenerKind::Component)
    }

    /// Creates `user@localhost` (password `PASSWORD`) unless it exists.
    pub async fn account(&self, user: &str) {
        crate::create_account(self.server(), &format!("{user}@localhost")).await;
    }

    /// Creates `user@localhost` and logs in as `user@localhost/resource` over plain c2s.
    pub async fn client(&self, user: &str, resource: &str) -> RawPeer {
        self.account(user).await;
        let addr = self.addr(ListenerKind::C2s);
        super::c2s::login_plain(addr, "localhost", user, crate::PASSWORD, resource).await
    }

    /// A component stream for `domain` that has completed the handshake with `secret`.
    pub async fn component(&self, domain: &str, secret: &str) -> RawPeer {
        super::component::login(self.component_addr(), domain, secret).await
    }
}
