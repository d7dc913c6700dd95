//! rookery-dns: where an outgoing server-to-server stream should connect.
//!
//! Where it sits: before the s2s pool in `rookery-net` opens a stream to a remote domain, it asks
//! [`Resolver::resolve_server`] for the candidates (host, port, Direct TLS or not) in the order
//! to try them, then [`Resolver::lookup_ip`] for each candidate's addresses. The outcome decides
//! what happens to queued stanzas: candidates → connect; [`ResolveError::NotFound`] /
//! [`ResolveError::NoService`] → bounce with `remote-server-not-found`; [`ResolveError::Failed`]
//! → a transient DNS problem (the pool decides whether to retry or bounce with
//! `remote-server-timeout`).
//!
//! The procedure is RFC 6120 §3.2 (SRV for `_xmpp-server._tcp`, then the A/AAAA fallback on port
//! 5269) extended by XEP-0368 (`_xmpps-server._tcp` records for Direct TLS, mixed with the
//! STARTTLS records by priority and weight as if they were one record set). Ordering within a
//! priority is RFC 2782's weighted random selection, in [`order_srv`] so it can be tested without
//! a network. DNS itself is hickory-resolver (UDP, TCP on truncation; no DNSSEC, no encrypted
//! DNS). Certificates are still checked against the XMPP domain, never the SRV target (RFC 6120
//! §13.7.2.1), so the target's name here is only where to connect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use rand::Rng;
use rand::seq::SliceRandom;

/// RFC 6120 §3.2.2 / §14.7: the fallback port when a domain publishes no SRV records.
pub const XMPP_SERVER_PORT: u16 = 5269;

/// How the resolver finds DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// `None`: the system's configuration (resolv.conf, plus /etc/hosts for addresses).
    /// `Some`: only this server, UDP and TCP on its port, and /etc/hosts is not consulted (an
    /// explicit server is meant to be the whole truth — tests point this at `rookery-testdns`).
    pub nameserver: Option<SocketAddr>,
    /// Upper bound for one DNS question (one name and type, retransmissions included).
    /// `resolve_server` asks its two SRV questions concurrently and may then ask for the
    /// fallback addresses, so it takes at most about twice this.
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameserver: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// One place to try to connect, in the order [`Resolver::resolve_server`] returns them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The SRV target (without the trailing dot), or the domain itself in the fallback case.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// XEP-0368: from an `_xmpps-server` record, so TLS starts at once (no STARTTLS), with SNI
    /// set to the XMPP domain and ALPN `xmpp-server`.
    pub direct_tls: bool,
}

/// One SRV record as [`order_srv`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first (RFC 2782).
    pub priority: u16,
    /// Relative chance among records of the same priority; 0 means "only if nothing else".
    pub weight: u16,
    /// TCP port on the target.
    pub port: u16,
    /// Target host without the trailing dot; `"."` is RFC 2782's "no service" marker.
    pub target: String,
    /// Whether the record came from `_xmpps-server` (XEP-0368).
    pub direct_tls: bool,
}

/// Why there is nothing to connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The domain says it does not federate: its only `_xmpp-server` record has the target `.`
    /// (RFC 2782, RFC 6120 §3.2.1 "decidedly not available") and `_xmpps-server` offers nothing
    /// either, or `_xmpps-server` alone says `.` (XEP-0368 §5 forbids the A/AAAA fallback then).
    #[error("the domain publishes that it offers no XMPP server service")]
    NoService,
    /// The name does not exist or has no usable records: no SRV and no A/AAAA for the domain
    /// (or, from `lookup_ip`, no addresses for the host). Callers bounce with
    /// `remote-server-not-found`.
    #[error("no such XMPP server domain or host in DNS")]
    NotFound,
    /// DNS could not answer: timeout, SERVFAIL, refused, I/O. Nothing is known about the domain.
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

/// DNS for s2s. Cheap to clone; clones share one cache and one set of connections.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<TokioResolver>,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What one SRV question produced.
#[derive(Debug)]
enum SrvAnswer {
    Records(Vec<SrvRecord>),
    /// NXDOMAIN or NoData: the service name has no SRV records.
    Absent,
    Failed(String),
}

/// What the two SRV answers together mean (RFC 6120 §3.2.1, XEP-0368 §5).
#[derive(Debug, PartialEq, Eq)]
enum SrvDecision {
    Candidates(Vec<SrvRecord>),
    NoService,
    /// Neither service has SRV records: RFC 6120 §3.2.2's A/AAAA fallback.
    Fallback,
    Failed(String),
}

impl Resolver {
    /// Builds a resolver; reads the system configuration now when `cfg.nameserver` is `None`.
    /// Building needs no tokio runtime; the lookups must run inside one.
    pub fn new(cfg: &ResolverConfig) -> Result<Resolver, ResolveError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match cfg.nameserver {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let mut builder = TokioResolver::builder_with_config(
                    HickoryConfig::from_name_servers(vec![server]),
                    provider,
                );
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
            None => TokioResolver::builder(provider).map_err(|e| {
                ResolveError::Failed(format!("reading the system DNS configuration: {e}"))
            })?,
        };
        let opts = builder.options_mut();
        opts.timeout = cfg.timeout;
        let inner = builder
            .build()
            .map_err(|e| ResolveError::Failed(format!("setting up the DNS resolver: {e}")))?;
        Ok(Resolver {
            inner: Arc::new(inner),
            timeout: cfg.timeout,
        })
    }

    /// RFC 6120 §3.2 + XEP-0368: the candidates to try, in order, for an s2s connection to
    /// `domain` (an A-label/ASCII domain: IDNA conversion is the caller's job).
    pub async fn resolve_server(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        // The thread RNG is created after the lookups: it is not `Send` and must not live across
        // an `.await`, or this future could not be spawned.
        match self.srv_phase(domain).await? {
            Some(records) => Ok(order_srv(records, &mut rand::rng())),
            None => self.fallback(domain).await,
        }
    }

    /// [`resolve_server`](Self::resolve_server) with the RNG for the weighted ordering supplied,
    /// so tests get a reproducible order.
    pub async fn resolve_server_with_rng(
        &self,
        domain: &str,
        rng: &mut impl Rng,
    ) -> Result<Vec<Target>, ResolveError> {
        match self.srv_phase(domain).await? {
            Some(records) => Ok(order_srv(records, rng)),
            None => self.fallback(domain).await,
        }
    }

    /// A and AAAA for `host`, asked concurrently. Returns the IPv6 addresses first, then IPv4
    /// (RFC 6724's default preference; a later Happy Eyeballs connector, RFC 8305, interleaves
    /// them itself). One family failing while the other answers still yields the answered
    /// addresses. An IP literal is returned as is.
    pub async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let name = fqdn(host)?;
        let (v6, v4) = tokio::join!(
            self.query(name.clone(), RecordType::AAAA),
            self.query(name, RecordType::A),
        );
        let mut ips = Vec::new();
        let mut failure = None;
        for answer in [v6, v4] {
            match answer {
                Ok(Some(lookup)) => ips.extend(lookup.answers().iter().filter_map(|r| {
                    match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        // CNAMEs on the way are followed by hickory; skip them here.
                        _ => None,
                    }
                })),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        if !ips.is_empty() {
            if let Some(e) = failure {
                tracing::debug!(host, error = %e, "one address family failed; using the other");
            }
            return Ok(ips);
        }
        match failure {
            Some(e) => Err(ResolveError::Failed(e)),
            None => Err(ResolveError::NotFound),
        }
    }

    /// Both SRV questions, concurrently. `Ok(None)` means: fall back to A/AAAA.
    async fn srv_phase(&self, domain: &str) -> Result<Option<Vec<SrvRecord>>, ResolveError> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let starttls = fqdn(&format!("_xmpp-server._tcp.{domain}"))?;
        let direct = fqdn(&format!("_xmpps-server._tcp.{domain}"))?;
        let (starttls, direct) = tokio::join!(self.srv(starttls, false), self.srv(direct, true));
        match decide(starttls, direct) {
            SrvDecision::Candidates(records) => Ok(Some(records)),
            SrvDecision::Fallback => Ok(None),
            SrvDecision::NoService => Err(ResolveError::NoService),
            SrvDecision::Failed(e) => Err(ResolveError::Failed(e)),
        }
    }

    /// RFC 6120 §3.2.2: no SRV at all, so the domain itself on 5269 — but only if it has an
    /// address; a domain without one has no server, which callers must learn now rather than
    /// through a connect error.
    async fn fallback(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.lookup_ip(domain).await?;
        Ok(vec![Target {
            host: domain.to_owned(),
            port: XMPP_SERVER_PORT,
            direct_tls: false,
        }])
    }

    async fn srv(&self, name: Name, direct_tls: bool) -> SrvAnswer {
        match self.query(name, RecordType::SRV).await {
            Ok(Some(lookup)) => {
                let records: Vec<SrvRecord> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(srv) => Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: host_of(&srv.target),
                            direct_tls,
                        }),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    SrvAnswer::Absent
                } else {
                    SrvAnswer::Records(records)
                }
            }
            Ok(None) => SrvAnswer::Absent,
            Err(e) => SrvAnswer::Failed(e),
        }
    }

    /// One DNS question under the configured bound. `Ok(None)`: NXDOMAIN or NoData.
    async fn query(&self, name: Name, kind: RecordType) -> Result<Option<Lookup>, String> {
        let shown = name.to_ascii();
        // hickory bounds each attempt itself; this outer bound also covers its retries, so one
        // question never takes longer than `timeout` in total.
        match tokio::time::timeout(self.timeout, self.inner.lookup(name, kind)).await {
            Err(_elapsed) => Err(format!("{kind} {shown}: timed out")),
            Ok(Ok(lookup)) => Ok(Some(lookup)),
            Ok(Err(e)) => classify(e).map_err(|e| format!("{kind} {shown}: {e}")),
        }
    }
}

/// NXDOMAIN and NoData are answers ("nothing here"); everything else is a failure.
fn classify(e: NetError) -> Result<Option<Lookup>, NetError> {
    if e.is_no_records_found() {
        Ok(None)
    } else {
        Err(e)
    }
}

/// A fully qualified name, so the system's search domains are never appended (`a.test` must not
/// become `a.test.corp.example`).
fn fqdn(host: &str) -> Result<Name, ResolveError> {
    let mut name = Name::from_ascii(host).map_err(|e| {
        // Not a valid DNS name (non-ASCII, label over 63 bytes...): nothing in DNS can be it.
        tracing::debug!(host, error = %e, "not a DNS name");
        ResolveError::NotFound
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// The SRV target as a host string: no trailing dot; the root stays `"."`.
fn host_of(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let ascii = name.to_ascii();
    ascii.strip_suffix('.').unwrap_or(&ascii).to_owned()
}

/// Combines the `_xmpp-server` and `_xmpps-server` answers.
fn decide(starttls: SrvAnswer, direct: SrvAnswer) -> SrvDecision {
    let mut usable = Vec::new();
    let mut saw_dot = false;
    let mut failure = None;
    for answer in [starttls, direct] {
        match answer {
            SrvAnswer::Records(records) => {
                for record in records {
                    if record.target == "." {
                        saw_dot = true;
                    } else {
                        usable.push(record);
                    }
                }
            }
            SrvAnswer::Absent => {}
            SrvAnswer::Failed(e) => failure = Some(e),
        }
    }
    if !usable.is_empty() {
        // One service answered with real targets: use them even if the other question failed;
        // a transient failure of the optional half must not block federation.
        if let Some(e) = failure {
            tracing::debug!(error = %e, "one SRV lookup failed; using the other's records");
        }
        return SrvDecision::Candidates(usable);
    }
    match failure {
        // The failed question might have held the real records: nothing can be concluded.
        Some(e) => SrvDecision::Failed(e),
        // Only "." targets: `_xmpp-server` says "decidedly not available" (RFC 6120 §3.2.1), or
        // `_xmpps-server` does and XEP-0368 §5 forbids falling back to A/AAAA after any SRV.
        None if saw_dot => SrvDecision::NoService,
        None => SrvDecision::Fallback,
    }
}

/// RFC 2782 ordering: ascending priority; within a priority, repeated weighted random selection.
///
/// For each pick the remaining records are arranged with the weight-0 ones first, a number is
/// drawn uniformly from `0..=sum of weights`, and the first record whose running weight sum
/// reaches it is taken. A weight-0 record is thus taken only when the draw is 0 (a chance of
/// `1/(sum+1)`) while weighted ones remain, as RFC 2782 describes. Records are shuffled first so
/// equal weights (all 0, typically) are spread evenly rather than in DNS answer order.
/// Targets of `"."` are dropped: they name no host.
pub fn order_srv(records: Vec<SrvRecord>, rng: &mut impl Rng) -> Vec<Target> {
    let mut records: Vec<SrvRecord> = records.into_iter().filter(|r| r.target != ".").collect();
    records.shuffle(rng);
    // Stable: the shuffle's order survives within each priority.
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|r| r.priority != first.priority)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        order_priority_group(group.to_vec(), rng, &mut out);
        rest = tail;
    }
    out
}

fn order_priority_group(mut group: Vec<SrvRecord>, rng: &mut impl Rng, out: &mut Vec<Target>) {
    // RFC 2782: "all those with weight 0 are placed at the beginning of the list".
    group.sort_by_key(|r| r.weight != 0);
    while !group.is_empty() {
        let sum: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
        let draw = rng.random_range(0..=sum);
        let mut running = 0u64;
        let mut pick = group.len() - 1;
        for (i, r) in group.iter().enumerate() {
            running += u64::from(r.weight);
            if running >= draw {
                pick = i;
                break;
            }
        }
        // `remove` keeps the weight-0-first arrangement for the next round.
        let chosen = group.remove(pick);
        out.push(Target {
            host: chosen.target,
            port: chosen.port,
            direct_tls: chosen.direct_tls,
        });
    }
}

#[cfg(test)]
mod tests;
