//! Helpers for in-process federation tests: a test CA issuing per-domain certificates, Rookery
//! nodes started on 127.0.0.1 port 0 whose s2s listeners are published in a real DNS server
//! (rookery-testdns) by SRV records, and bound "fake" client sessions whose mailboxes the tests
//! read — the c2s path is covered by the interop suite; these tests are about s2s.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rookery_config::{Config, ListenerKind};
use rookery_core::registry::BindOutcome;
use rookery_core::session::{SessionMsg, SessionReceiver};
use rookery_core::{Server, SessionHandle};
use rookery_proto::stanza::{FullJid, Stanza};
use rookery_server::Running;
use rookery_testdns::TestDns;
use rookery_xml::Element;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub fn s2s_port(&self) -> u16 {
        self.running.addr(ListenerKind::S2s).unwrap().port()
    }
    /// Publishes this node's domains in `dns`: SRV `_xmpp-server._tcp.DOMAIN` → `xmpp.DOMAIN`
    /// on the s2s port, and its A record.
    pub fn publish(&self, dns: &TestDns) {
        for d in &self.domains {
            dns.add_srv(
                &format!("_xmpp-server._tcp.{d}"),
                10,
                1,
                self.s2s_port(),
                &format!("xmpp.{d}"),
            );
            dns.add_a(&format!("xmpp.{d}"), Ipv4Addr::LOCALHOST);
        }
    }
}

/// Starts a node serving `domains`, resolving through `dns`; `extra` is appended to the
/// config (more [s2s] keys, limits).
pub async fn node(domains: &[&str], dns: &TestDns, certs: Certs<'_>, extra: &str) -> Node {
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
    toml.push_str(&format!(
        "[server]\ndata_dir = \"data\"\n[limits]\nsession_mailbox = 4096\n\
         [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"s2s\"\n\
         [s2s]\nnameserver = \"{}\"\nconnect_timeout_secs = 5\n{trust}{extra}",
        dns.addr()
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
    node.publish(dns);
    node
}

/// A bound, available session for `jid` (priority 0) and its mailbox.
pub fn session(server: &Server, jid: &str) -> (SessionHandle, SessionReceiver) {
    let (h, rx) = SessionHandle::new(FullJid::new(jid).unwrap(), 4096);
    match server.registry().bind(h.clone(), false, 10) {
        BindOutcome::Bound(e) => e.with_state(|s| s.available = true),
        other => panic!("bind {jid}: {other:?}"),
    }
    (h, rx)
}

pub fn stanza(xml: &str) -> Stanza {
    Stanza::new(Element::parse(xml).unwrap()).unwrap()
}

/// Sends as the client of `h` would (from stamped).
pub async fn send(server: &Server, h: &SessionHandle, xml: &str) {
    let mut st = stanza(xml);
    st.set_from(Some(h.jid().clone().into()));
    server.handle_from_client(h, st).await;
}

/// The next stanza in the mailbox, failing the test after `secs`.
pub async fn recv(rx: &mut SessionReceiver, secs: u64) -> Stanza {
    match tokio::time::timeout(Duration::from_secs(secs), rx.rx.recv()).await {
        Ok(Some(SessionMsg::Stanza(st))) => st,
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
