//! rookery-testdns: a small, real, authoritative DNS server for tests.
//!
//! Where it sits: federation tests start one on loopback and point `rookery-dns`'s `Resolver`
//! (`ResolverConfig::nameserver`) at it, so the s2s pool in `rookery-net` resolves remote
//! domains (RFC 6120 §3.2 SRV, then A/AAAA) exactly as it would against the Internet, but with
//! records the test controls. Interop tests run the `rookery-testdns` binary (a zone file in, the
//! bound address on stdout) so Prosody/ejabberd can use it too.
//!
//! It speaks the real wire format through hickory-proto's encoder/decoder over UDP and TCP
//! (RFC 1035 §4.2: TCP messages carry a 2-byte length prefix) on the same port. Answers are
//! authoritative (AA bit): NXDOMAIN for a name that does not exist, NoData (NOERROR with an empty
//! answer) for a name that exists without the asked type. Per RFC 8020 a name "exists" when it has
//! records or is an ancestor of a name that has them (an empty non-terminal such as
//! `_tcp.a.test`), so NXDOMAIN never wrongly claims a whole subtree is empty.

mod zone;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use zone::ZoneError;

/// TTL of served records unless [`TestDns::set_ttl`] changes it. Long enough that a resolver's
/// cache is observable through [`TestDns::query_count`].
pub const DEFAULT_TTL: u32 = 60;

/// Classic DNS UDP payload limit (RFC 1035 §4.2.1), used when the query carries no EDNS OPT.
const UDP_PLAIN_LIMIT: usize = 512;

/// How often `start` re-picks a port when UDP got one that TCP cannot have.
const BIND_TRIES: usize = 16;

/// A running test DNS server. Dropping it stops both listeners and every open TCP connection.
pub struct TestDns {
    addr: SocketAddr,
    state: Arc<Mutex<Zone>>,
    shutdown: CancellationToken,
}

/// The served data. Keys are lowercase names without the trailing dot (DNS names compare
/// case-insensitively, RFC 4343).
struct Zone {
    records: HashMap<String, Vec<RData>>,
    servfail: HashSet<String>,
    counts: HashMap<String, usize>,
    ttl: u32,
}

impl TestDns {
    /// Starts a server on `bind_ip`, UDP and TCP on one free port.
    pub async fn start(bind_ip: IpAddr) -> io::Result<TestDns> {
        Self::start_on(SocketAddr::new(bind_ip, 0)).await
    }

    /// Starts a server on `addr`. Port 0 picks a port free for both UDP and TCP: UDP binds
    /// first, then TCP takes the same number, retrying with a new UDP port if TCP's is taken.
    pub async fn start_on(addr: SocketAddr) -> io::Result<TestDns> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let state = Arc::new(Mutex::new(Zone {
            records: HashMap::new(),
            servfail: HashSet::new(),
            counts: HashMap::new(),
            ttl: DEFAULT_TTL,
        }));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_udp(udp, state.clone(), shutdown.clone()));
        tokio::spawn(serve_tcp(tcp, state.clone(), shutdown.clone()));
        tracing::debug!(%addr, "test DNS server listening");
        Ok(TestDns {
            addr,
            state,
            shutdown,
        })
    }

    /// The address both UDP and TCP listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds an SRV record (RFC 2782). `name` like `_xmpp-server._tcp.a.test`; `target` may be
    /// `"."`, the "service decidedly not available" marker.
    ///
    /// # Panics
    /// If `name` or `target` is not a valid DNS name (a bug in the calling test).
    pub fn add_srv(&self, name: &str, priority: u16, weight: u16, port: u16, target: &str) {
        let target = parse_name(target);
        self.add(name, RData::SRV(SRV::new(priority, weight, port, target)));
    }

    /// Adds an A record.
    pub fn add_a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// Adds an AAAA record.
    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// Removes every record of `name` (and a SERVFAIL mark); the name answers NXDOMAIN again
    /// unless it still has descendants.
    pub fn remove(&self, name: &str) {
        let key = key_of(name);
        let mut zone = self.zone();
        zone.records.remove(&key);
        zone.servfail.remove(&key);
    }

    /// Makes every query for `name` answer SERVFAIL, to test how callers treat a broken zone
    /// (a failure, not an absence).
    pub fn set_servfail(&self, name: &str) {
        self.zone().servfail.insert(key_of(name));
    }

    /// Sets the TTL of records in later answers (0: resolvers must not cache them).
    pub fn set_ttl(&self, ttl: u32) {
        self.zone().ttl = ttl;
    }

    /// How many queries (any type, UDP or TCP) have asked about `name` so far.
    pub fn query_count(&self, name: &str) -> usize {
        let key = key_of(name);
        self.zone().counts.get(&key).copied().unwrap_or(0)
    }

    /// Adds the records of a zone text: one `NAME SRV prio weight port target`,
    /// `NAME A ip` or `NAME AAAA ip` per line, `#` starts a comment. Returns how many records
    /// were added; on an error nothing is added.
    pub fn load_zone(&self, text: &str) -> Result<usize, ZoneError> {
        let entries = zone::parse(text)?;
        let count = entries.len();
        for (name, rdata) in entries {
            self.add(&name, rdata);
        }
        Ok(count)
    }

    fn add(&self, name: &str, rdata: RData) {
        let key = key_of(name);
        // Validate now so a bad name fails in the test that wrote it, not in a later answer.
        parse_name(&key);
        self.zone().records.entry(key).or_default().push(rdata);
    }

    fn zone(&self) -> MutexGuard<'_, Zone> {
        lock(&self.state)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A poisoned lock only means a test thread panicked while holding it; the map itself is still
/// consistent (every mutation is a single insert/remove), so keep serving.
fn lock(state: &Mutex<Zone>) -> MutexGuard<'_, Zone> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse_name(name: &str) -> Name {
    match Name::from_ascii(name) {
        Ok(name) => name,
        Err(e) => panic!("rookery-testdns: invalid DNS name {name:?}: {e}"),
    }
}

/// Lowercase, without the trailing dot; the root is "".
fn key_of(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp, tcp));
    }
    let mut last_err = None;
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind(addr).await?;
        let port_addr = udp.local_addr()?;
        match TcpListener::bind(port_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Another process holds this TCP port; drop the UDP socket and try a new port.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<Zone>>, shutdown: CancellationToken) {
    // The largest UDP payload; anything longer was already cut by the kernel.
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // A stray ICMP error surfacing on the socket: keep serving.
                Err(e) => {
                    tracing::debug!(error = %e, "test DNS: UDP receive failed");
                    continue;
                }
            },
        };
        let Some(reply) = answer(&state, &buf[..len], Transport::Udp) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply, peer).await {
            tracing::debug!(error = %e, %peer, "test DNS: UDP send failed");
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<Zone>>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "test DNS: TCP accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = serve_tcp_conn(stream, &state) => if let Err(e) = result {
                    tracing::debug!(error = %e, "test DNS: TCP connection ended");
                },
            }
        });
    }
}

/// RFC 1035 §4.2.2: each message is preceded by its length as two bytes; a client may send
/// several queries on one connection.
async fn serve_tcp_conn(mut stream: TcpStream, state: &Mutex<Zone>) -> io::Result<()> {
    loop {
        let len = match stream.read_u16().await {
            Ok(len) => usize::from(len),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut query = vec![0u8; len];
        stream.read_exact(&mut query).await?;
        let Some(reply) = answer(state, &query, Transport::Tcp) else {
            continue;
        };
        // Our answers are far below 64 KiB; a longer one would be a bug, reported as an error.
        let reply_len = u16::try_from(reply.len()).map_err(io::Error::other)?;
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Builds the wire reply to one wire query; `None` means send nothing (not a query at all).
fn answer(state: &Mutex<Zone>, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(e) => {
            tracing::debug!(error = %e, "test DNS: undecodable query");
            // RFC 1035 §4.1.1: FORMERR, echoing the ID if there is a header to take it from.
            let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    // Never answer a response: two servers pointed at each other would loop forever.
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    reply.metadata = Metadata::response_from_request(&request.metadata);
    reply.metadata.authoritative = true;
    // RFC 6891 §6.1.1: a query with an OPT record gets one back.
    let udp_limit = match &request.edns {
        Some(edns) => {
            let mut ours = Edns::new();
            ours.set_max_payload(hickory_proto::op::DEFAULT_MAX_PAYLOAD_LEN);
            reply.set_edns(ours);
            usize::from(edns.max_payload()).max(UDP_PLAIN_LIMIT)
        }
        None => UDP_PLAIN_LIMIT,
    };
    fill(state, &request, &mut reply);
    let wire = reply.to_vec().ok()?;
    if transport == Transport::Udp && wire.len() > udp_limit {
        // RFC 1035 §4.2.1 / RFC 7766: too big for UDP, set TC so the client retries over TCP.
        return reply.truncate().to_vec().ok();
    }
    Some(wire)
}

/// Fills in the question echo, the response code and the answers.
fn fill(state: &Mutex<Zone>, request: &Message, reply: &mut Message) {
    if request.metadata.op_code != OpCode::Query {
        reply.metadata.response_code = ResponseCode::NotImp;
        return;
    }
    let [question] = request.queries.as_slice() else {
        // RFC 9619: exactly one question per query.
        reply.metadata.response_code = ResponseCode::FormErr;
        return;
    };
    reply.add_query(question.clone());
    let key = key_of(&question.name().to_ascii());
    let mut zone = lock(state);
    *zone.counts.entry(key.clone()).or_default() += 1;
    if zone.servfail.contains(&key) {
        reply.metadata.response_code = ResponseCode::ServFail;
        return;
    }
    let wanted = question.query_type();
    match zone.records.get(&key) {
        Some(rdatas) => {
            let ttl = zone.ttl;
            for rdata in rdatas {
                if wanted == RecordType::ANY || rdata.record_type() == wanted {
                    // The owner name is the question's, byte for byte, so a resolver that
                    // randomizes case (DNS 0x20) sees its own spelling back.
                    reply.add_answer(Record::from_rdata(
                        question.name().clone(),
                        ttl,
                        rdata.clone(),
                    ));
                }
            }
        }
        None if has_descendant(&zone, &key) => {} // empty non-terminal: NoData
        None => reply.metadata.response_code = ResponseCode::NXDomain,
    }
}

/// Whether some name with records lies below `key` (RFC 8020: then `key` exists).
fn has_descendant(zone: &Zone, key: &str) -> bool {
    if key.is_empty() {
        return !zone.records.is_empty();
    }
    let suffix = format!(".{key}");
    zone.records.keys().any(|name| name.ends_with(&suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_trailing_dot() {
        assert_eq!(key_of("A.Test."), "a.test");
        assert_eq!(key_of("a.test"), "a.test");
        assert_eq!(key_of("."), "");
    }
}
