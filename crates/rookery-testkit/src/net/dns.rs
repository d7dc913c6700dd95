//! The loopback test DNS (rookery-testdns) servers resolve through, and publishing a domain
//! in it the way RFC 6120 §3.2.1 looks servers up: an SRV record pointing at a host name and
//! that name's A record.

pub use rookery_testdns::TestDns;
use std::net::Ipv4Addr;

/// A test DNS server on 127.0.0.1.
pub async fn dns() -> TestDns {
    TestDns::start(Ipv4Addr::LOCALHOST.into()).await.unwrap()
}

/// Publishes `domain` as served on 127.0.0.1:`port`: SRV `_xmpp-server._tcp.DOMAIN` (or, with
/// `direct_tls`, `_xmpps-server._tcp.DOMAIN`, XEP-0368) → `xmpp.DOMAIN`, and its A record.
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
