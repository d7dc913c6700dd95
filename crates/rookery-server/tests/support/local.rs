//! One server on 127.0.0.1 without federation, reached over real TCP by hand-written peers: a
//! c2s client (plaintext, SASL PLAIN, resource bound) and an XEP-0114 component. Used by the
//! component and connection-manager tests; generic enough for any test that needs a real
//! client, component or raw stream on one of the server's listeners.

use super::{Ev, Io, RawPeer};
use base64::Engine;
use rookery_config::{Config, ListenerKind};
use rookery_proto::ns;
use rookery_server::Running;
use rookery_xml::Element;
use std::net::SocketAddr;

pub struct Local {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

/// How a `Local` server is configured.
pub struct LocalOpts {
    /// The keys of the `[c2s]` section.
    pub c2s: String,
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
            listeners: vec!["c2s", "component"],
            extra: String::new(),
        }
    }
}

impl Local {
    /// Starts a server for `localhost` with the default options and `extra` appended to the
    /// config (e.g. `[[component]]` entries).
    pub async fn start(extra: &str) -> Local {
        Self::start_with(LocalOpts {
            extra: extra.to_owned(),
            ..LocalOpts::default()
        })
        .await
    }

    /// Starts a server for `localhost` configured by `opts`.
    pub async fn start_with(opts: LocalOpts) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = format!(
            "[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n[c2s]\n{}\n\
             [[host]]\ndomain = \"localhost\"\n",
            opts.c2s
        );
        for kind in &opts.listeners {
            toml.push_str(&format!(
                "[[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"{kind}\"\n"
            ));
        }
        toml.push_str(&opts.extra);
        let path = dir.path().join("rookery.toml");
        std::fs::write(&path, &toml).unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let running = rookery_server::start(cfg).await.unwrap();
        Local { running, dir }
    }

    /// The bound address of the first listener of `kind`.
    pub fn addr(&self, kind: ListenerKind) -> SocketAddr {
        self.running
            .addr(kind)
            .unwrap_or_else(|| panic!("no {} listener", kind.as_str()))
    }

    pub fn server(&self) -> &rookery_core::Server {
        &self.running.server
    }

    pub fn component_addr(&self) -> SocketAddr {
        self.running.addr(ListenerKind::Component).unwrap()
    }

    /// Creates `user@localhost` (password "pw") and logs in as `user@localhost/resource`.
    pub async fn client(&self, user: &str, resource: &str) -> RawPeer {
        super::account(self.server(), &format!("{user}@localhost")).await;
        let addr = self.running.addr(ListenerKind::C2s).unwrap();
        c2s_login(addr, "localhost", user, "pw", resource).await
    }

    /// A component stream for `domain` that has completed the handshake with `secret`.
    pub async fn component(&self, domain: &str, secret: &str) -> RawPeer {
        component_login(self.component_addr(), domain, secret).await
    }
}

/// Connects a component for `domain` to the listener at `addr` and completes the handshake.
pub async fn component_login(addr: SocketAddr, domain: &str, secret: &str) -> RawPeer {
    let mut c = component_open(addr, domain).await;
    component_handshake(&mut c, secret).await;
    match c.next(5).await {
        Ev::El(e) if e.is("handshake", ns::COMPONENT) => {}
        other => panic!("expected an empty <handshake/>, got {other:?}"),
    }
    c
}

/// A TCP connection to `addr` framed as an XMPP stream whose content namespace is
/// `content_ns`; nothing is sent yet.
pub async fn raw_connect(addr: SocketAddr, content_ns: &'static str) -> RawPeer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io: Box<dyn Io> = Box::new(tcp);
    RawPeer {
        stream: rookery_transport::stream::XmppStream::new(
            io,
            rookery_xml::Limits::default(),
            content_ns,
        ),
        stream_id: String::new(),
        features: None,
    }
}

/// Logs in over plaintext c2s with SASL PLAIN and binds `resource`; returns after the bind
/// result. The stream id is kept in `stream_id`, the bound JID is `user@domain/resource`.
pub async fn c2s_login(
    addr: SocketAddr,
    domain: &str,
    user: &str,
    password: &str,
    resource: &str,
) -> RawPeer {
    let mut p = raw_connect(addr, ns::CLIENT).await;
    p.open(None, domain).await;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    p.raw(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    let r = p.element(10).await;
    assert_eq!(r.name(), "success", "{}", r.to_xml());
    p.open(None, domain).await;
    p.raw(&format!(
        "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    ))
    .await;
    let r = p.element(10).await;
    assert_eq!(r.attr("type"), Some("result"), "{}", r.to_xml());
    p
}

/// Opens a component stream to `to` (`jabber:component:accept`) and reads the server's header
/// (its id is kept in `stream_id`). Panics if the server answers with anything else.
pub async fn component_open(addr: SocketAddr, to: &str) -> RawPeer {
    let mut c = component_connect(addr, to).await;
    match c.next(5).await {
        Ev::Header(h) => {
            assert_eq!(h.attr("from"), Some(to), "header from");
            c.stream_id = h.attr("id").unwrap().to_owned();
        }
        other => panic!("expected a stream header, got {other:?}"),
    }
    c
}

/// Connects and sends a component stream header to `to`; reads nothing.
pub async fn component_connect(addr: SocketAddr, to: &str) -> RawPeer {
    let mut c = raw_connect(addr, ns::COMPONENT).await;
    c.stream.send_header(&[("to", to)]).await.unwrap();
    c
}

/// Sends `<handshake>` for the current stream id and `secret` (reads nothing).
pub async fn component_handshake(c: &mut RawPeer, secret: &str) {
    let digest = rookery_proto::component::handshake_digest(&c.stream_id, secret);
    c.raw(&format!("<handshake>{digest}</handshake>")).await;
}

/// The next element that is not a presence (clients get their own presence echoed).
pub async fn next_non_presence(p: &mut RawPeer, secs: u64) -> Element {
    loop {
        let e = p.element(secs).await;
        if e.name() != "presence" {
            return e;
        }
    }
}
