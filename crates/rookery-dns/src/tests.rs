//! Unit tests of the pure parts: RFC 2782 ordering (statistically, with seeded RNGs) and how the
//! two SRV answers combine (RFC 6120 §3.2, XEP-0368 §5).

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5269,
        target: target.to_owned(),
        direct_tls: false,
    }
}

fn hosts(targets: &[Target]) -> Vec<&str> {
    targets.iter().map(|t| t.host.as_str()).collect()
}

/// How often each host comes first over `runs` orderings of `records`.
fn first_counts(records: &[SrvRecord], runs: u64) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    for seed in 0..runs {
        let order = order_srv(records.to_vec(), &mut StdRng::seed_from_u64(seed));
        *counts.entry(order[0].host.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn priorities_are_strictly_ascending_whatever_the_rng() {
    let records = vec![
        srv(30, 100, "c1"),
        srv(10, 1, "a1"),
        srv(20, 0, "b1"),
        srv(10, 50, "a2"),
        srv(30, 0, "c2"),
        srv(20, 7, "b2"),
    ];
    for seed in 0..200 {
        let order = order_srv(records.clone(), &mut StdRng::seed_from_u64(seed));
        assert_eq!(order.len(), 6);
        let prio_of = |host: &str| records.iter().find(|r| r.target == host).unwrap().priority;
        let prios: Vec<u16> = order.iter().map(|t| prio_of(&t.host)).collect();
        assert!(prios.windows(2).all(|w| w[0] <= w[1]), "{prios:?}");
    }
}

#[test]
fn higher_weight_comes_first_proportionally_more_often() {
    // Weights 10, 30, 60: first-place shares should be near 10%, 30%, 60%.
    let records = vec![srv(5, 10, "light"), srv(5, 30, "mid"), srv(5, 60, "heavy")];
    let counts = first_counts(&records, 10_000);
    let share = |h: &str| counts.get(h).copied().unwrap_or(0) as f64 / 10_000.0;
    assert!((share("light") - 0.10).abs() < 0.02, "{counts:?}");
    assert!((share("mid") - 0.30).abs() < 0.03, "{counts:?}");
    assert!((share("heavy") - 0.60).abs() < 0.03, "{counts:?}");
}

#[test]
fn weight_zero_is_rarely_first_while_weighted_records_remain() {
    // Sum of weights 20: a weight-0 record wins the first pick only on a draw of 0, 1 in 21.
    let records = vec![srv(0, 0, "zero"), srv(0, 10, "x"), srv(0, 10, "y")];
    let counts = first_counts(&records, 10_000);
    let zero = counts.get("zero").copied().unwrap_or(0) as f64 / 10_000.0;
    assert!(zero > 0.0, "RFC 2782 still gives weight 0 a small chance");
    assert!((zero - 1.0 / 21.0).abs() < 0.015, "{counts:?}");
}

#[test]
fn all_zero_weights_are_spread_evenly() {
    let records = vec![
        srv(0, 0, "p"),
        srv(0, 0, "q"),
        srv(0, 0, "r"),
        srv(0, 0, "s"),
    ];
    let counts = first_counts(&records, 8_000);
    for host in ["p", "q", "r", "s"] {
        let share = counts.get(host).copied().unwrap_or(0) as f64 / 8_000.0;
        assert!((share - 0.25).abs() < 0.03, "{counts:?}");
    }
}

#[test]
fn ordering_is_deterministic_for_a_seed_and_keeps_every_record() {
    let records = vec![
        srv(1, 5, "a"),
        srv(1, 5, "b"),
        srv(1, 0, "c"),
        srv(2, 1, "d"),
    ];
    let one = order_srv(records.clone(), &mut StdRng::seed_from_u64(7));
    let two = order_srv(records, &mut StdRng::seed_from_u64(7));
    assert_eq!(one, two);
    let mut all = hosts(&one);
    all.sort_unstable();
    assert_eq!(all, ["a", "b", "c", "d"]);
    assert_eq!(one[3].host, "d");
}

#[test]
fn dot_targets_never_become_candidates_and_flags_carry_over() {
    let mut direct = srv(0, 0, "tls.example");
    direct.port = 5270;
    direct.direct_tls = true;
    let order = order_srv(
        vec![srv(0, 0, "."), direct.clone()],
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(
        order,
        [Target {
            host: "tls.example".into(),
            port: 5270,
            direct_tls: true
        }]
    );
    assert!(order_srv(vec![], &mut StdRng::seed_from_u64(1)).is_empty());
}

fn recs(records: &[&SrvRecord]) -> SrvAnswer {
    SrvAnswer::Records(records.iter().map(|r| (*r).clone()).collect())
}

#[test]
fn decide_follows_rfc6120_and_xep0368() {
    let dot = srv(0, 0, ".");
    let mut dot_tls = dot.clone();
    dot_tls.direct_tls = true;
    let host = srv(0, 0, "xmpp.example");
    let mut tls = srv(0, 0, "tls.example");
    tls.direct_tls = true;
    let failed = || SrvAnswer::Failed("SERVFAIL".into());

    // Neither service has records: A/AAAA fallback.
    assert_eq!(
        decide(SrvAnswer::Absent, SrvAnswer::Absent),
        SrvDecision::Fallback
    );
    // `_xmpp-server` "." alone, `_xmpps-server` absent or "." too: not available.
    assert_eq!(
        decide(recs(&[&dot]), SrvAnswer::Absent),
        SrvDecision::NoService
    );
    assert_eq!(
        decide(recs(&[&dot]), recs(&[&dot_tls])),
        SrvDecision::NoService
    );
    // `_xmpps-server` "." only disables Direct TLS...
    assert_eq!(
        decide(recs(&[&host]), recs(&[&dot_tls])),
        SrvDecision::Candidates(vec![host.clone()])
    );
    // ...but still rules out the A/AAAA fallback (XEP-0368 §5).
    assert_eq!(
        decide(SrvAnswer::Absent, recs(&[&dot_tls])),
        SrvDecision::NoService
    );
    // `_xmpp-server` "." while Direct TLS is offered: connect with Direct TLS.
    assert_eq!(
        decide(recs(&[&dot]), recs(&[&tls])),
        SrvDecision::Candidates(vec![tls.clone()])
    );
    // Both services: merged.
    assert_eq!(
        decide(recs(&[&host]), recs(&[&tls])),
        SrvDecision::Candidates(vec![host.clone(), tls.clone()])
    );
    // A failure with usable records elsewhere is tolerated; otherwise it is the answer.
    assert_eq!(
        decide(recs(&[&host]), failed()),
        SrvDecision::Candidates(vec![host.clone()])
    );
    assert_eq!(
        decide(failed(), SrvAnswer::Absent),
        SrvDecision::Failed("SERVFAIL".into())
    );
    assert_eq!(
        decide(recs(&[&dot]), failed()),
        SrvDecision::Failed("SERVFAIL".into())
    );
}

#[test]
fn names_are_made_fully_qualified() {
    let name = fqdn("a.test").unwrap();
    assert!(name.is_fqdn());
    assert_eq!(host_of(&name), "a.test");
    assert_eq!(host_of(&Name::root()), ".");
    assert_eq!(fqdn(&"x".repeat(64)), Err(ResolveError::NotFound));
    assert_eq!(fqdn("bücher.example"), Err(ResolveError::NotFound));
}

#[test]
fn new_needs_no_runtime_and_clones_cheaply() {
    let cfg = ResolverConfig {
        nameserver: Some("127.0.0.1:53".parse().unwrap()),
        ..ResolverConfig::default()
    };
    let resolver = Resolver::new(&cfg).unwrap();
    let clone = resolver.clone();
    assert!(Arc::ptr_eq(&resolver.inner, &clone.inner));
    assert_eq!(ResolverConfig::default().timeout, Duration::from_secs(5));
}
