//! Federation between in-process servers: a test CA issuing per-domain certificates, nodes
//! (servers with an s2s listener on 127.0.0.1 port 0) resolving through the loopback test DNS
//! in which their domains are published, and a raw peer that authenticates as a.test with
//! dialback (XEP-0220) against a node that knows a.test's secret.

use super::dns::publish_at;
use super::{RawPeer, TestServer, listen};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rookery_config::ListenerKind;
use rookery_core::Server;
use rookery_net::s2s::S2s;
use rookery_proto::ns;
use rookery_server::Running;
use rookery_testdns::TestDns;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// A test certificate authority.
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

    /// Writes the CA certificate into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.pem");
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

impl Default for Ca {
    fn default() -> Self {
        Ca::new()
    }
}

/// How a node's certificates and trust are set up.
pub enum Certs<'a> {
    /// Certificates from this CA, which the node also trusts (SASL EXTERNAL works).
    Ca(&'a Ca),
    /// Self-signed certificates and no trust anchors: only dialback can authenticate.
    SelfSigned,
}

/// A server with an s2s listener, serving `domains`.
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
    /// Publishes this node's domains in `dns` (`publish_at` on its s2s port).
    pub fn publish(&self, dns: &TestDns) {
        for d in &self.domains {
            publish_at(dns, d, self.s2s_port(), self.direct_tls());
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
        "[server]\ndata_dir = \"data\"\n[limits]\nsession_mailbox = 4096\n{}\n{}\
         [s2s]\nnameserver = \"{}\"\nconnect_timeout_secs = {}\n{trust}{}\n{}",
        opts.limits,
        listen(kind),
        dns.addr(),
        opts.connect_timeout,
        opts.s2s,
        opts.tail,
    ));
    let TestServer { running, dir } = TestServer::start_in(dir, &toml).await;
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
/// authoritative server for a.test, confirms it to B; XEP-0220 §2.1).
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
            ns::DIALBACK,
            Some("valid"),
            Some("b.test"),
            Some("a.test")
        ),
        "{}",
        v.to_xml()
    );
}
