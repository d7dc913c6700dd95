//! Raw s2s peers (RFC 6120, XEP-0220 dialback): the initiating side connecting to a node's s2s
//! listener (`RawPeer::connect`), a fake receiving server for outgoing-stream tests
//! (`FakeServer`), and a listener that accepts and never speaks (`Silent`).

use super::peer::framed;
use super::{Ev, Io, RawPeer};
use rookery_proto::ns;
use rookery_xml::{Element, StreamEvent};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// An s2s stream (`jabber:server`) on `io`.
fn s2s_peer(io: Box<dyn Io>) -> RawPeer {
    RawPeer::new(io, ns::SERVER)
}

/// Swaps the peer's transport out (to wrap it in TLS); the placeholder is never read.
fn take_io(p: &mut RawPeer) -> Box<dyn Io> {
    std::mem::replace(
        &mut p.stream,
        framed(Box::new(tokio::io::empty()), ns::SERVER),
    )
    .into_inner()
}

impl RawPeer {
    /// Connects to a Rookery s2s listener as the initiating server: header (`from` if given),
    /// STARTTLS with a client that accepts any certificate, the header again. Returns after
    /// the features of the TLS stream.
    pub async fn connect(addr: SocketAddr, from: Option<&str>, to: &str) -> RawPeer {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut p = s2s_peer(Box::new(tcp));
        p.open(from, to).await;
        let f = p.features.clone().unwrap();
        assert!(f.get_child("starttls", ns::TLS).is_some(), "{}", f.to_xml());
        p.raw("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        match p.next(5).await {
            Ev::El(e) if e.name() == "proceed" => {}
            other => panic!("expected <proceed/>, got {other:?}"),
        }
        let io = take_io(&mut p);
        let cfg = Arc::new(rookery_tls::client_config_insecure_for_tests());
        let name = ServerName::try_from(to.to_owned()).unwrap();
        let tls = TlsConnector::from(cfg).connect(name, io).await.unwrap();
        p.stream = framed(Box::new(tls), ns::SERVER);
        p.open(from, to).await;
        p
    }

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
            .send_header_ns(&attrs, &[("db", ns::DIALBACK)])
            .await
            .unwrap();
        self.raw(&format!("<stream:features>{features}</stream:features>"))
            .await;
        true
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
    /// How many connections it accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
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

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
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
    let mut p = s2s_peer(Box::new(tcp));
    if opts.with_id {
        p.stream_id = "fake-1".into();
    }
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
        let (name, el_ns) = (el.name().to_owned(), el.ns().to_owned());
        let reply = (opts.reply)(&el);
        let _ = tx.send(el);
        if name == "starttls" && el_ns == ns::TLS {
            p.raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await;
            let io = take_io(&mut p);
            let Ok(tls) = acceptor.accept(io).await else {
                return;
            };
            p.stream = framed(Box::new(tls), ns::SERVER);
            if opts.with_id {
                p.stream_id = "fake-2".into();
            }
            if !p.answer(&domain, DIALBACK_FEATURE).await {
                return;
            }
        } else if name == "result" && el_ns == ns::DIALBACK {
            p.raw(&reply).await;
            if let Some(kill) = &stall {
                kill.notified().await;
                return;
            }
        }
    }
}
