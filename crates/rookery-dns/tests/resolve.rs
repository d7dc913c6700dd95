//! The resolver against a real DNS server on loopback (rookery-testdns): what the s2s pool gets
//! for each way a domain can publish (or not publish) its XMPP server.
#![allow(clippy::unwrap_used)] // test helpers: a failure should panic loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rookery_dns::{ResolveError, Resolver, ResolverConfig, Target};
use rookery_testdns::TestDns;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn setup() -> (TestDns, Resolver) {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    let resolver = Resolver::new(&ResolverConfig {
        nameserver: Some(dns.addr()),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    (dns, resolver)
}

fn target(host: &str, port: u16, direct_tls: bool) -> Target {
    Target {
        host: host.to_owned(),
        port,
        direct_tls,
    }
}

#[tokio::test]
async fn both_services_merge_by_priority_with_direct_tls_flags() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpp-server._tcp.a.test", 30, 0, 5270, "backup.a.test");
    dns.add_srv("_xmpp-server._tcp.a.test", 10, 0, 5269, "xmpp.a.test");
    dns.add_srv("_xmpps-server._tcp.a.test", 20, 0, 443, "tls.a.test");
    // An address on the domain itself must not add a fallback candidate: SRV records exist.
    dns.add_a("a.test", Ipv4Addr::new(127, 0, 0, 9));

    let targets = resolver.resolve_server("a.test").await.unwrap();
    assert_eq!(
        targets,
        [
            target("xmpp.a.test", 5269, false),
            target("tls.a.test", 443, true),
            target("backup.a.test", 5270, false),
        ]
    );
    assert_eq!(dns.query_count("_xmpp-server._tcp.a.test"), 1);
    assert_eq!(dns.query_count("_xmpps-server._tcp.a.test"), 1);
    assert_eq!(
        dns.query_count("a.test"),
        0,
        "no A/AAAA fallback when SRV exists"
    );
}

#[tokio::test]
async fn same_priority_mixes_services_by_weight_reproducibly() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpp-server._tcp.w.test", 5, 10, 5269, "starttls.w.test");
    dns.add_srv("_xmpps-server._tcp.w.test", 5, 10, 5223, "direct.w.test");

    let mut firsts = std::collections::HashSet::new();
    for seed in 0..32 {
        let one = resolver
            .resolve_server_with_rng("w.test", &mut StdRng::seed_from_u64(seed))
            .await
            .unwrap();
        let again = resolver
            .resolve_server_with_rng("w.test", &mut StdRng::seed_from_u64(seed))
            .await
            .unwrap();
        assert_eq!(one, again, "same seed, same order");
        assert_eq!(one.len(), 2);
        firsts.insert(one[0].clone());
    }
    // XEP-0368: equal weights across the two services, so both come first for some seed.
    assert_eq!(
        firsts,
        [
            target("starttls.w.test", 5269, false),
            target("direct.w.test", 5223, true)
        ]
        .into_iter()
        .collect()
    );
}

#[tokio::test]
async fn dot_target_is_no_service_without_any_address_lookup() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpp-server._tcp.nofed.test", 0, 0, 0, ".");
    dns.add_a("nofed.test", Ipv4Addr::new(127, 0, 0, 2));

    assert_eq!(
        resolver.resolve_server("nofed.test").await,
        Err(ResolveError::NoService)
    );
    assert_eq!(
        dns.query_count("nofed.test"),
        0,
        "RFC 6120 §3.2.1: no fallback"
    );

    // The same when `_xmpps-server` says "." as well.
    dns.add_srv("_xmpps-server._tcp.nofed.test", 0, 0, 0, ".");
    assert_eq!(
        resolver.resolve_server("nofed.test").await,
        Err(ResolveError::NoService)
    );
    assert_eq!(dns.query_count("nofed.test"), 0);
}

#[tokio::test]
async fn xmpps_dot_only_disables_direct_tls() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpps-server._tcp.plain.test", 0, 0, 0, ".");
    dns.add_srv(
        "_xmpp-server._tcp.plain.test",
        0,
        0,
        5269,
        "xmpp.plain.test",
    );
    assert_eq!(
        resolver.resolve_server("plain.test").await.unwrap(),
        [target("xmpp.plain.test", 5269, false)]
    );

    // With no `_xmpp-server` records the "." still forbids the A/AAAA fallback (XEP-0368 §5).
    dns.add_srv("_xmpps-server._tcp.half.test", 0, 0, 0, ".");
    dns.add_a("half.test", Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(
        resolver.resolve_server("half.test").await,
        Err(ResolveError::NoService)
    );
    assert_eq!(dns.query_count("half.test"), 0);
}

#[tokio::test]
async fn xmpp_dot_with_direct_tls_records_uses_direct_tls() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpp-server._tcp.tlsonly.test", 0, 0, 0, ".");
    dns.add_srv(
        "_xmpps-server._tcp.tlsonly.test",
        0,
        0,
        5270,
        "tls.tlsonly.test",
    );
    assert_eq!(
        resolver.resolve_server("tlsonly.test").await.unwrap(),
        [target("tls.tlsonly.test", 5270, true)]
    );
}

#[tokio::test]
async fn no_srv_falls_back_to_the_domain_on_5269() {
    let (dns, resolver) = setup().await;
    dns.add_a("v4.test", Ipv4Addr::new(127, 0, 0, 4));
    dns.add_aaaa("v6.test", Ipv6Addr::LOCALHOST);
    assert_eq!(
        resolver.resolve_server("v4.test").await.unwrap(),
        [target("v4.test", 5269, false)]
    );
    assert_eq!(
        resolver.resolve_server("v6.test").await.unwrap(),
        [target("v6.test", 5269, false)]
    );
}

#[tokio::test]
async fn no_srv_and_no_address_is_not_found() {
    let (dns, resolver) = setup().await;
    // NXDOMAIN everywhere.
    assert_eq!(
        resolver.resolve_server("nowhere.test").await,
        Err(ResolveError::NotFound)
    );
    assert_eq!(dns.query_count("nowhere.test"), 2, "A and AAAA were asked");
    // The domain exists (NoData for A/AAAA), but publishes nothing for XMPP.
    dns.add_srv("_imap._tcp.mailonly.test", 0, 0, 143, "mail.mailonly.test");
    assert_eq!(
        resolver.resolve_server("mailonly.test").await,
        Err(ResolveError::NotFound)
    );
}

#[tokio::test]
async fn servfail_is_a_failure_not_an_absence() {
    let (dns, resolver) = setup().await;
    dns.set_servfail("_xmpp-server._tcp.broken.test");
    dns.add_a("broken.test", Ipv4Addr::new(127, 0, 0, 5));
    let result = resolver.resolve_server("broken.test").await;
    assert!(matches!(result, Err(ResolveError::Failed(_))), "{result:?}");
    assert_eq!(
        dns.query_count("broken.test"),
        0,
        "no fallback on a broken zone"
    );

    // A failing `_xmpps-server` does not hide working `_xmpp-server` records.
    dns.set_servfail("_xmpps-server._tcp.half.test");
    dns.add_srv("_xmpp-server._tcp.half.test", 0, 0, 5269, "xmpp.half.test");
    assert_eq!(
        resolver.resolve_server("half.test").await.unwrap(),
        [target("xmpp.half.test", 5269, false)]
    );
}

#[tokio::test]
async fn unreachable_nameserver_fails_within_the_timeout() {
    // A port nothing listens on: bind one, note it, close it.
    let closed: SocketAddr = {
        let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.local_addr().unwrap()
    };
    let timeout = Duration::from_millis(300);
    let resolver = Resolver::new(&ResolverConfig {
        nameserver: Some(closed),
        timeout,
    })
    .unwrap();
    let started = Instant::now();
    let result = resolver.resolve_server("a.test").await;
    let took = started.elapsed();
    assert!(matches!(result, Err(ResolveError::Failed(_))), "{result:?}");
    // The two SRV questions run concurrently, each bounded by `timeout` (hickory alone would
    // retry for several times that); the rest is scheduling slack for a busy CI machine.
    assert!(took < timeout * 4, "took {took:?}");

    let started = Instant::now();
    let result = resolver.lookup_ip("a.test").await;
    assert!(matches!(result, Err(ResolveError::Failed(_))), "{result:?}");
    assert!(started.elapsed() < timeout * 4);
}

#[tokio::test]
async fn lookup_ip_returns_ipv6_then_ipv4() {
    let (dns, resolver) = setup().await;
    dns.add_a("dual.test", Ipv4Addr::new(127, 0, 0, 6));
    dns.add_aaaa("dual.test", Ipv6Addr::LOCALHOST);
    dns.add_a("dual.test", Ipv4Addr::new(127, 0, 0, 7));
    assert_eq!(
        resolver.lookup_ip("dual.test").await.unwrap(),
        [
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)),
        ]
    );
    assert_eq!(
        resolver.lookup_ip("none.test").await,
        Err(ResolveError::NotFound)
    );
    // An IP literal needs no DNS.
    assert_eq!(
        resolver.lookup_ip("127.0.0.8").await.unwrap(),
        [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 8))]
    );
    // Only one family published: NoData for the other is no error.
    dns.add_aaaa("v6ok.test", Ipv6Addr::LOCALHOST);
    assert_eq!(
        resolver.lookup_ip("v6ok.test").await.unwrap(),
        [IpAddr::V6(Ipv6Addr::LOCALHOST)]
    );
}

#[tokio::test]
async fn answers_are_cached_within_their_ttl() {
    let (dns, resolver) = setup().await;
    dns.add_srv(
        "_xmpp-server._tcp.cache.test",
        0,
        0,
        5269,
        "xmpp.cache.test",
    );
    let first = resolver.resolve_server("cache.test").await.unwrap();
    let second = resolver.clone().resolve_server("cache.test").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(dns.query_count("_xmpp-server._tcp.cache.test"), 1);
}

#[tokio::test]
async fn large_srv_sets_arrive_over_tcp_after_truncation() {
    let (dns, resolver) = setup().await;
    for i in 0..100u16 {
        dns.add_srv(
            "_xmpp-server._tcp.big.test",
            i % 3,
            i,
            5269,
            &format!("host{i}.big.test"),
        );
    }
    let targets = resolver.resolve_server("big.test").await.unwrap();
    assert_eq!(targets.len(), 100);
}

#[tokio::test]
async fn trailing_dot_and_case_do_not_matter() {
    let (dns, resolver) = setup().await;
    dns.add_srv("_xmpp-server._tcp.case.test", 0, 0, 5269, "XMPP.Case.Test");
    let targets = resolver.resolve_server("Case.Test.").await.unwrap();
    assert_eq!(targets.len(), 1);
    assert!(targets[0].host.eq_ignore_ascii_case("xmpp.case.test"));
}
