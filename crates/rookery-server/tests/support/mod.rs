//! Helpers for in-process federation tests: a test CA issuing per-domain certificates, Rookery
//! nodes started on 127.0.0.1 port 0 whose s2s listeners are published in a real DNS server
//! (rookery-testdns) by SRV records, and bound "fake" client sessions whose mailboxes the tests
//! read — the c2s path is covered by the interop suite; these tests are about s2s.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rookery_config::{Config, ListenerKind};
use rookery_core::session::{SessionMsg, SessionReceiver};
use rookery_core::{PresenceUpdate, Server, Session};
use rookery_net::s2s::S2s;
use rookery_proto::stanza::{FullJid, Stanza};
use rookery_server::Running;
use rookery_testdns::TestDns;
use rookery_transport::stream::XmppStream;
use rookery_xml::Element;
use rookery_xml::StreamEvent;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Rookery Federation Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// Writes cert and key PEM for `domain` (SAN domain and *.domain, serverAuth only, as
    /// Let's Encrypt issues them now) into `dir`; returns their paths.
    pub fn issue(&self, domain: &str, dir: &Path) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec![domain.to_owned(), format!("*.{domain}")]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let c = dir.join(format!("{domain}.crt"));
        let k = dir.join(format!("{domain}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

/// How a node's certificates and trust are set up.
pub enum Certs<'a> {
    /// Certificates from this CA, which the node also trusts (SASL EXTERNAL works).
    Ca(&'a Ca),
    /// Self-signed certificates and no trust anchors: only dialback can authenticate.
    SelfSigned,
}

pub struct Node {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub domains: Vec<String>,
}

impl Node {
    pub fn server(&self) -> &Server {
        &self.running.server
    }
    pub fn s2s(&self) -> &S2s {
        self.running.s2s.as_ref().unwrap()
    }
    /// The outgoing stream carrying (local, remote): (stream handle id, dialback?).
    pub fn stream_of(&self, local: &str, remote: &str) -> Option<(u64, bool)> {
        self.s2s()
            .pool()
            .stream_of(&(local.to_owned(), remote.to_owned()))
    }
    /// Whether the node listens for s2s with Direct TLS.
    pub fn direct_tls(&self) -> bool {
        self.running.addr(ListenerKind::S2s).is_none()
    }
    pub fn s2s_port(&self) -> u16 {
        self.running
            .addr(ListenerKind::S2s)
            .or_else(|| self.running.addr(ListenerKind::S2sTls))
            .unwrap()
            .port()
    }
    /// Publishes this node's domains in `dns`: SRV `_xmpp-server._tcp.DOMAIN` (or
    /// `_xmpps-server._tcp.DOMAIN` for a Direct TLS listener) → `xmpp.DOMAIN` on the s2s port,
    /// and its A record.
    pub fn publish(&self, dns: &TestDns) {
        let service = if self.direct_tls() {
            "_xmpps-server"
        } else {
            "_xmpp-server"
        };
        for d in &self.domains {
            dns.add_srv(
                &format!("{service}._tcp.{d}"),
                10,
                1,
                self.s2s_port(),
                &format!("xmpp.{d}"),
            );
            dns.add_a(&format!("xmpp.{d}"), Ipv4Addr::LOCALHOST);
        }
    }
}

/// How a test node is configured beyond its domains and certificates.
pub struct Opts {
    /// `[s2s] connect_timeout_secs`.
    pub connect_timeout: u64,
    /// More `[s2s]` keys (appended inside the section).
    pub s2s: String,
    /// More config after the `[s2s]` section (other sections, `[[s2s.route]]`).
    pub tail: String,
    /// More `[limits]` keys.
    pub limits: String,
    /// Listen with Direct TLS (`s2s-tls`) instead of STARTTLS (`s2s`).
    pub direct_tls: bool,
    /// Publish the node's domains in the DNS it resolves through.
    pub publish: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            connect_timeout: 5,
            s2s: String::new(),
            tail: String::new(),
            limits: String::new(),
            direct_tls: false,
            publish: true,
        }
    }
}

/// Starts a node serving `domains`, resolving through `dns`; `extra` is appended to the
/// `[s2s]` section.
pub async fn node(domains: &[&str], dns: &TestDns, certs: Certs<'_>, extra: &str) -> Node {
    node_with(
        domains,
        dns,
        certs,
        Opts {
            s2s: extra.to_owned(),
            ..Opts::default()
        },
    )
    .await
}

/// Starts a node with `opts`.
pub async fn node_with(domains: &[&str], dns: &TestDns, certs: Certs<'_>, opts: Opts) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    let mut trust = String::from("use_webpki_roots = false\n");
    for d in domains {
        toml.push_str(&format!("[[host]]\ndomain = \"{d}\"\n"));
        if let Certs::Ca(ca) = &certs {
            let (c, k) = ca.issue(d, dir.path());
            toml.push_str(&format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                c.display(),
                k.display()
            ));
        }
    }
    if let Certs::Ca(ca) = &certs {
        trust.push_str(&format!(
            "ca_files = [\"{}\"]\n",
            ca.write(dir.path()).display()
        ));
    }
    let kind = if opts.direct_tls { "s2s-tls" } else { "s2s" };
    toml.push_str(&format!(
        "[server]\ndata_dir = \"data\"\n[limits]\nsession_mailbox = 4096\n{}\n\
         [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"{kind}\"\n\
         [s2s]\nnameserver = \"{}\"\nconnect_timeout_secs = {}\n{trust}{}\n{}",
        opts.limits,
        dns.addr(),
        opts.connect_timeout,
        opts.s2s,
        opts.tail,
    ));
    let path = dir.path().join("rookery.toml");
    std::fs::write(&path, &toml).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let running = rookery_server::start(cfg).await.unwrap();
    let node = Node {
        running,
        dir,
        domains: domains.iter().map(|d| d.to_string()).collect(),
    };
    if opts.publish {
        node.publish(dns);
    }
    node
}

/// A bound, available session for `jid` (priority 0) and its mailbox.
pub async fn session(server: &Server, jid: &str) -> (Session, SessionReceiver) {
    session_with_mailbox(server, jid, 4096).await
}

/// `session` with a mailbox of `capacity` stanzas.
pub async fn session_with_mailbox(
    server: &Server,
    jid: &str,
    capacity: usize,
) -> (Session, SessionReceiver) {
    let (h, rx) = server
        .sessions()
        .bind_with_mailbox(FullJid::new(jid).unwrap(), false, capacity)
        .await
        .unwrap_or_else(|e| panic!("bind {jid}: {e:?}"));
    available(server, &h);
    (h, rx)
}

/// Marks the session available with priority 0, as its initial presence would.
fn available(server: &Server, h: &Session) {
    let last = stanza("<presence xmlns='jabber:client'/>");
    server
        .sessions()
        .set_presence(h, PresenceUpdate::Available { priority: 0, last })
        .expect("bound");
}

pub fn stanza(xml: &str) -> Stanza {
    Stanza::new(Element::parse(xml).unwrap()).unwrap()
}

/// Sends as the client of `h` would (from stamped).
pub async fn send(server: &Server, h: &Session, xml: &str) {
    let mut st = stanza(xml);
    st.set_from(Some(h.jid().clone().into()));
    server.handle_from_client(h, st).await;
}

/// The next stanza in the mailbox, failing the test after `secs`.
pub async fn recv(rx: &mut SessionReceiver, secs: u64) -> Stanza {
    match tokio::time::timeout(Duration::from_secs(secs), rx.rx.recv()).await {
        Ok(Some(SessionMsg::Stanza(st))) => *st,
        Ok(Some(SessionMsg::Close(e))) => panic!("session closed: {e}"),
        Ok(None) => panic!("mailbox closed"),
        Err(_) => panic!("no stanza within {secs} s"),
    }
}

/// Like `recv` but skips presence stanzas.
pub async fn recv_non_presence(rx: &mut SessionReceiver, secs: u64) -> Stanza {
    loop {
        let st = recv(rx, secs).await;
        if st.kind() != rookery_proto::stanza::Kind::Presence {
            return st;
        }
    }
}

pub async fn dns() -> TestDns {
    TestDns::start(Ipv4Addr::LOCALHOST.into()).await.unwrap()
}

/// Publishes `domain` as served on 127.0.0.1:`port` (SRV `_xmpp-server` or, with
/// `direct_tls`, `_xmpps-server`, and the target's A record).
pub fn publish_at(dns: &TestDns, domain: &str, port: u16, direct_tls: bool) {
    let service = if direct_tls {
        "_xmpps-server"
    } else {
        "_xmpp-server"
    };
    dns.add_srv(
        &format!("{service}._tcp.{domain}"),
        10,
        1,
        port,
        &format!("xmpp.{domain}"),
    );
    dns.add_a(&format!("xmpp.{domain}"), Ipv4Addr::LOCALHOST);
}

/// Like `session`, and the session requested the roster (it gets roster pushes).
pub async fn session_interested(server: &Server, jid: &str) -> (Session, SessionReceiver) {
    let (h, rx) = session(server, jid).await;
    server.sessions().set_interested(&h);
    (h, rx)
}

/// Creates the account `bare` (password "pw").
pub async fn account(server: &Server, bare: &str) {
    let bare = rookery_proto::stanza::BareJid::new(bare).unwrap();
    rookery_core::accounts::create(server.stores(), &bare, "pw", 4096)
        .await
        .unwrap();
}

/// The (condition, type) of an error stanza.
pub fn error_of(st: &Stanza) -> (String, String) {
    assert_eq!(
        st.type_attr(),
        "error",
        "not an error: {}",
        st.element().to_xml()
    );
    let err = st
        .element()
        .get_child("error", rookery_proto::ns::CLIENT)
        .unwrap_or_else(|| panic!("no <error/>: {}", st.element().to_xml()));
    let cond = err
        .children()
        .find(|c| c.ns() == rookery_proto::ns::STANZAS)
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    (cond, err.attr("type").unwrap_or_default().to_owned())
}

/// Receives the next stanza, which must be an error with `cond` and `ty`; returns it.
pub async fn expect_error(rx: &mut SessionReceiver, secs: u64, cond: &str, ty: &str) -> Stanza {
    let st = recv(rx, secs).await;
    let got = error_of(&st);
    assert_eq!(
        (got.0.as_str(), got.1.as_str()),
        (cond, ty),
        "{}",
        st.element().to_xml()
    );
    st
}

/// Asserts that nothing is waiting in the mailbox now.
pub fn assert_empty(rx: &mut SessionReceiver) {
    match rx.rx.try_recv() {
        Ok(SessionMsg::Stanza(st)) => panic!("unexpected stanza: {}", st.element().to_xml()),
        Ok(SessionMsg::Close(e)) => panic!("unexpected close: {e}"),
        Err(_) => {}
    }
}

/// Waits (polling every 10 ms) until `cond` holds; fails the test after `secs`.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP listener on 127.0.0.1 that accepts connections, keeps them open and never speaks.
pub struct Silent {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        Silent {
            port,
            accepted,
            task,
        }
    }
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a raw peer read next.
#[derive(Debug)]
pub enum Ev {
    Header(rookery_xml::StreamHeader),
    El(Element),
    /// `</stream:stream>`, EOF or a broken connection.
    End,
}

/// A hand-written s2s peer (either side of a stream): raw XML out, framed events in.
pub struct RawPeer {
    pub stream: XmppStream<Box<dyn Io>>,
    /// The id of the current stream (the one the other side gave us, or the one we gave).
    pub stream_id: String,
    pub features: Option<Element>,
}

fn raw_stream(io: Box<dyn Io>) -> XmppStream<Box<dyn Io>> {
    XmppStream::new(
        io,
        rookery_xml::Limits::default(),
        rookery_proto::ns::SERVER,
    )
}

impl RawPeer {
    /// Connects to a Rookery s2s listener as the initiating server: header (`from` if given),
    /// STARTTLS with a client that accepts any certificate, the header again. Returns after
    /// the features of the TLS stream.
    pub async fn connect(addr: SocketAddr, from: Option<&str>, to: &str) -> RawPeer {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut p = RawPeer {
            stream: raw_stream(Box::new(tcp)),
            stream_id: String::new(),
            features: None,
        };
        p.open(from, to).await;
        let f = p.features.clone().unwrap();
        assert!(
            f.get_child("starttls", rookery_proto::ns::TLS).is_some(),
            "{}",
            f.to_xml()
        );
        p.raw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        match p.next(5).await {
            Ev::El(e) if e.name() == "proceed" => {}
            other => panic!("expected <proceed/>, got {other:?}"),
        }
        let io =
            std::mem::replace(&mut p.stream, raw_stream(Box::new(tokio::io::empty()))).into_inner();
        let cfg = Arc::new(rookery_tls::client_config_insecure_for_tests());
        let name = ServerName::try_from(to.to_owned()).unwrap();
        let tls = TlsConnector::from(cfg).connect(name, io).await.unwrap();
        p.stream = raw_stream(Box::new(tls));
        p.open(from, to).await;
        p
    }

    /// Sends our header and reads theirs (id) and the features.
    pub async fn open(&mut self, from: Option<&str>, to: &str) {
        self.stream.restart();
        let mut attrs = vec![("to", to), ("version", "1.0")];
        if let Some(f) = from {
            attrs.push(("from", f));
        }
        self.stream
            .send_header_ns(&attrs, &[("db", rookery_proto::ns::DIALBACK)])
            .await
            .unwrap();
        match self.next(5).await {
            Ev::Header(h) => self.stream_id = h.attr("id").unwrap().to_owned(),
            other => panic!("expected a stream header, got {other:?}"),
        }
        match self.next(5).await {
            Ev::El(f) if f.name() == "features" => self.features = Some(f),
            other => panic!("expected features, got {other:?}"),
        }
    }

    pub async fn raw(&mut self, xml: &str) {
        self.stream.queue_raw(xml.as_bytes());
        self.stream.flush().await.unwrap();
    }

    /// The next event; fails the test after `secs`.
    pub async fn next(&mut self, secs: u64) -> Ev {
        match tokio::time::timeout(Duration::from_secs(secs), self.stream.next_event()).await {
            Err(_) => panic!("raw peer: nothing within {secs} s"),
            Ok(Ok(StreamEvent::Open(h))) => Ev::Header(h),
            Ok(Ok(StreamEvent::Stanza(e))) => Ev::El(e),
            Ok(Ok(StreamEvent::Close)) | Ok(Err(_)) => Ev::End,
        }
    }

    /// The next event if one arrives within `d` (None: nothing did).
    pub async fn next_within(&mut self, d: Duration) -> Option<Ev> {
        match tokio::time::timeout(d, self.stream.next_event()).await {
            Err(_) => None,
            Ok(Ok(StreamEvent::Open(h))) => Some(Ev::Header(h)),
            Ok(Ok(StreamEvent::Stanza(e))) => Some(Ev::El(e)),
            Ok(Ok(StreamEvent::Close)) | Ok(Err(_)) => Some(Ev::End),
        }
    }

    /// The next element (skipping nothing); panics at the end of the stream.
    pub async fn element(&mut self, secs: u64) -> Element {
        match self.next(secs).await {
            Ev::El(e) => e,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    /// Reads until a stream error; returns its condition. The stream must then end.
    pub async fn expect_stream_error(&mut self, secs: u64) -> String {
        loop {
            match self.next(secs).await {
                Ev::El(e) if e.name() == "error" && e.ns() == rookery_proto::ns::STREAM => {
                    let cond = e
                        .children()
                        .find(|c| c.ns() == rookery_proto::ns::STREAMS)
                        .map(|c| c.name().to_owned())
                        .unwrap_or_default();
                    assert!(
                        matches!(self.next(secs).await, Ev::End),
                        "stream must end after the error"
                    );
                    return cond;
                }
                Ev::El(_) | Ev::Header(_) => {}
                Ev::End => panic!("stream ended without a stream error"),
            }
        }
    }
}

/// How a `FakeServer` behaves.
pub struct FakeOpts {
    /// The raw XML sent in answer to a `db:result` request (given the request).
    pub reply: Arc<dyn Fn(&Element) -> String + Send + Sync>,
    /// Offer STARTTLS first (else dialback on the plain stream).
    pub starttls: bool,
    /// Put an `id` on the stream headers.
    pub with_id: bool,
    /// After the first reply, stop reading (keeping the connection open).
    pub stall: bool,
}

impl FakeOpts {
    pub fn replying(reply: &str) -> FakeOpts {
        FakeOpts {
            reply: {
                let reply = reply.to_owned();
                Arc::new(move |_: &Element| reply.clone())
            },
            starttls: true,
            with_id: true,
            stall: false,
        }
    }
}

/// A fake receiving server for outgoing-stream tests: accepts one s2s connection as `domain`,
/// offers STARTTLS (self-signed certificate) and then dialback, and answers each `db:result`
/// request with a canned reply. Every element it receives is reported on `received`, which
/// closes when the connection ends.
pub struct FakeServer {
    pub port: u16,
    /// What the first connection received (closes when that connection ends).
    pub received: tokio::sync::mpsc::UnboundedReceiver<Element>,
    /// What later connections received (they behave alike but never stall).
    pub later: tokio::sync::mpsc::UnboundedReceiver<Element>,
    /// Makes a stalled first connection drop (close the socket without reading).
    pub kill_first: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

const DIALBACK_FEATURE: &str = "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>";

impl FakeServer {
    pub async fn start(domain: &str, reply: &str) -> FakeServer {
        Self::start_with(domain, FakeOpts::replying(reply)).await
    }

    /// Like `start`, but after answering the first `db:result` the fake stops reading (and
    /// keeps the connection open): a peer that does not keep up.
    pub async fn start_stalling(domain: &str, reply: &str) -> FakeServer {
        Self::start_with(
            domain,
            FakeOpts {
                stall: true,
                ..FakeOpts::replying(reply)
            },
        )
        .await
    }

    pub async fn start_with(domain: &str, opts: FakeOpts) -> FakeServer {
        let dir = tempfile::tempdir().unwrap();
        rookery_tls::install_crypto_provider();
        let certs =
            rookery_tls::CertStore::load(&[rookery_tls::HostCert::self_signed(domain)], dir.path())
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[]));
        let l = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let (later_tx, later) = tokio::sync::mpsc::unbounded_channel();
        let kill_first = Arc::new(tokio::sync::Notify::new());
        let opts = Arc::new(opts);
        let (domain, kill) = (domain.to_owned(), kill_first.clone());
        let task = tokio::spawn(async move {
            let mut tx = Some(tx);
            // Dropping the set (when the server is dropped) ends every connection.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = l.accept().await {
                let (tx, stall) = match tx.take() {
                    Some(first) => (first, opts.stall),
                    None => (later_tx.clone(), false),
                };
                conns.spawn(fake_connection(
                    tcp,
                    domain.clone(),
                    opts.clone(),
                    acceptor.clone(),
                    tx,
                    stall.then(|| kill.clone()),
                ));
            }
        });
        FakeServer {
            port,
            received,
            later,
            kill_first,
            task,
            _dir: dir,
        }
    }
}

/// One connection of a `FakeServer`; with `stall`, stops reading after the first reply until
/// notified, then drops the connection.
async fn fake_connection(
    tcp: tokio::net::TcpStream,
    domain: String,
    opts: Arc<FakeOpts>,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: tokio::sync::mpsc::UnboundedSender<Element>,
    stall: Option<Arc<tokio::sync::Notify>>,
) {
    let mut p = RawPeer {
        stream: raw_stream(Box::new(tcp)),
        stream_id: if opts.with_id {
            "fake-1".into()
        } else {
            String::new()
        },
        features: None,
    };
    let first = if opts.starttls {
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    } else {
        DIALBACK_FEATURE
    };
    if !p.answer(&domain, first).await {
        return;
    }
    loop {
        let Ok(Ok(StreamEvent::Stanza(el))) =
            tokio::time::timeout(Duration::from_secs(30), p.stream.next_event()).await
        else {
            return;
        };
        let (name, ns) = (el.name().to_owned(), el.ns().to_owned());
        let reply = (opts.reply)(&el);
        let _ = tx.send(el);
        if name == "starttls" && ns == rookery_proto::ns::TLS {
            p.raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await;
            let io = std::mem::replace(&mut p.stream, raw_stream(Box::new(tokio::io::empty())))
                .into_inner();
            let Ok(tls) = acceptor.accept(io).await else {
                return;
            };
            p.stream = raw_stream(Box::new(tls));
            if opts.with_id {
                p.stream_id = "fake-2".into();
            }
            if !p.answer(&domain, DIALBACK_FEATURE).await {
                return;
            }
        } else if name == "result" && ns == rookery_proto::ns::DIALBACK {
            p.raw(&reply).await;
            if let Some(kill) = &stall {
                kill.notified().await;
                return;
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawPeer {
    /// As the receiving side: reads the initiator's header, answers with ours (with
    /// `stream_id` as id unless it is empty) and features holding `features` (raw XML).
    /// False if the initiator went away first.
    async fn answer(&mut self, domain: &str, features: &str) -> bool {
        self.stream.restart();
        let Ok(Ok(StreamEvent::Open(h))) =
            tokio::time::timeout(Duration::from_secs(5), self.stream.next_event()).await
        else {
            return false;
        };
        let from = h.attr("from").map(str::to_owned);
        let id = self.stream_id.clone();
        let mut attrs = vec![("from", domain), ("version", "1.0")];
        if !id.is_empty() {
            attrs.push(("id", id.as_str()));
        }
        if let Some(f) = &from {
            attrs.push(("to", f.as_str()));
        }
        self.stream
            .send_header_ns(&attrs, &[("db", rookery_proto::ns::DIALBACK)])
            .await
            .unwrap();
        self.raw(&format!("<stream:features>{features}</stream:features>"))
            .await;
        true
    }
}

/// The stanza already waiting in the mailbox (fails if there is none yet).
pub fn take_now(rx: &mut SessionReceiver) -> Stanza {
    match rx.rx.try_recv() {
        Ok(SessionMsg::Stanza(st)) => *st,
        Ok(SessionMsg::Close(e)) => panic!("unexpected close: {e}"),
        Err(e) => panic!("nothing in the mailbox: {e}"),
    }
}

/// The dialback secret tests give node A, so a raw peer can claim a.test with a real key.
pub const A_SECRET: &str = "the-dialback-secret-of-a-test";

/// Node A (a.test) with the known dialback secret: the authoritative server that confirms a
/// raw peer's `dialback_as_a` key.
pub async fn node_a(dns: &TestDns) -> Node {
    node(
        &["a.test"],
        dns,
        Certs::SelfSigned,
        &format!("dialback_secret = \"{A_SECRET}\"\n"),
    )
    .await
}

/// A raw peer connected to node `b` (b.test) and authenticated as a.test with dialback
/// (`dialback_as_a`; node A must run, see `node_a`).
pub async fn peer_as_a(b: &Node) -> RawPeer {
    let mut peer = RawPeer::connect(
        SocketAddr::from((Ipv4Addr::LOCALHOST, b.s2s_port())),
        Some("a.test"),
        "b.test",
    )
    .await;
    dialback_as_a(&mut peer).await;
    peer
}

/// Authenticates a raw peer as a.test → b.test with a key computed from A's secret (A, the
/// authoritative server for a.test, confirms it to B).
pub async fn dialback_as_a(peer: &mut RawPeer) {
    let key =
        rookery_proto::dialback::key(A_SECRET.as_bytes(), "b.test", "a.test", &peer.stream_id);
    peer.raw(&format!(
        "<db:result from='a.test' to='b.test'>{key}</db:result>"
    ))
    .await;
    let v = peer.element(10).await;
    assert_eq!(
        (
            v.name(),
            v.ns(),
            v.attr("type"),
            v.attr("from"),
            v.attr("to")
        ),
        (
            "result",
            rookery_proto::ns::DIALBACK,
            Some("valid"),
            Some("b.test"),
            Some("a.test")
        ),
        "{}",
        v.to_xml()
    );
}

pub mod c2s_tls;
pub mod local;

/// The client side of SCRAM-SHA-1 (RFC 5802) after the server's first message: the
/// client-final message and the server signature to expect. `cbind`: the GS2 header plus any
/// channel-binding data (`c=` is its base64).
pub fn scram_sha1_final(
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    cbind: &[u8],
) -> (String, Vec<u8>) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, KeyInit, Mac};
    use sha1::Sha1;
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let (nonce, salt, iters) = (attr("r"), STANDARD.decode(attr("s")).unwrap(), attr("i"));
    let mut salted = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(
        password.as_bytes(),
        &salt,
        iters.parse().unwrap(),
        &mut salted,
    );
    let hmac = |k: &[u8], d: &[u8]| {
        let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(k).unwrap();
        m.update(d);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored = <Sha1 as sha1::Digest>::digest(&client_key);
    let without_proof = format!("c={},r={nonce}", STANDARD.encode(cbind));
    let auth_msg = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hmac(&stored, auth_msg.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let server_sig = hmac(&hmac(&salted, b"Server Key"), auth_msg.as_bytes());
    (
        format!("{without_proof},p={}", STANDARD.encode(proof)),
        server_sig,
    )
}
