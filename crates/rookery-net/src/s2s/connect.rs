//! Opening an outgoing s2s stream (RFC 6120 §3.2, XEP-0368): candidates from a static route or
//! DNS, TCP connect, Direct TLS or STARTTLS, and the stream header and features. Used by the
//! outgoing stream (`outbound`) and by the dialback verify client (`verify`). The transport is
//! boxed so STARTTLS can replace it mid-stream.

use super::{Failure, S2s, TlsPolicy};
use rookery_core::Server;
use rookery_proto::error::{StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_tls::CertError;
use rookery_transport::stream::{ReadError, XmppStream};
use rookery_xml::{Element, StreamEvent};
use rustls_pki_types::{ServerName, UnixTime};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type BoxIo = Box<dyn Io>;

/// An opened (not yet authenticated) outgoing stream.
pub(crate) struct OutStream {
    pub stream: XmppStream<BoxIo>,
    /// The id the peer gave the current stream (dialback keys bind it).
    pub stream_id: String,
    pub features: Element,
    /// Whether the peer's certificate is valid for the remote domain (None without TLS).
    pub cert: Option<Result<(), CertError>>,
    /// The peer declared the dialback namespace on its header (pre-features peers).
    pub dialback_declared: bool,
}

/// How long one step of negotiation may take (the whole set-up is bounded by the caller).
const STEP: Duration = Duration::from_secs(30);

/// Candidate addresses for `remote`, in order, with their Direct-TLS flag.
async fn candidates(
    s2s: &S2s,
    server: &Server,
    remote: &str,
) -> Result<Vec<(SocketAddr, bool)>, Failure> {
    if let Some(r) = server.config().s2s.route(remote) {
        return Ok(vec![(SocketAddr::new(r.address, r.port), r.direct_tls)]);
    }
    // JID domains may be Unicode (IDNA U-labels); DNS speaks A-labels.
    let ascii = ascii_domain(remote)?;
    let targets = s2s
        .resolver()
        .resolve_server(&ascii)
        .await
        .map_err(|e| match e {
            rookery_dns::ResolveError::NoService | rookery_dns::ResolveError::NotFound => {
                Failure::NotFound(e.to_string())
            }
            other => Failure::Unreachable(format!("DNS: {other}")),
        })?;
    let mut out = Vec::new();
    for t in targets {
        match s2s.resolver().lookup_ip(&t.host).await {
            Ok(ips) => out.extend(
                ips.into_iter()
                    .map(|ip| (SocketAddr::new(ip, t.port), t.direct_tls)),
            ),
            Err(e) => {
                tracing::debug!(host = %t.host, error = %e, what = "s2s-dns", "target has no address")
            }
        }
    }
    if out.is_empty() {
        return Err(Failure::NotFound(format!(
            "no address for any server of {remote}"
        )));
    }
    Ok(out)
}

/// The A-label (ASCII) form of a domain for DNS and TLS SNI (RFC 5890; certificates carry
/// A-labels too).
pub(crate) fn ascii_domain(domain: &str) -> Result<String, Failure> {
    idna::domain_to_ascii(domain)
        .map_err(|_| Failure::NotFound(format!("{domain} is not a valid domain name")))
}

/// How one candidate address failed; the strings are for the log.
enum Attempt {
    /// No TCP connection: refused, or the host or network unreachable.
    NoConnection(String),
    /// The TCP connect did not complete within the step timeout.
    ConnectTimeout,
    /// Connected, but TLS or the stream could not be set up.
    Stream(String),
}

impl From<String> for Attempt {
    fn from(detail: String) -> Self {
        Attempt::Stream(detail)
    }
}

impl From<&str> for Attempt {
    fn from(detail: &str) -> Self {
        Attempt::Stream(detail.to_owned())
    }
}

/// Resolves, connects and opens a stream `local` → `remote`; returns after the features of the
/// final (TLS-protected, per `TlsPolicy`) stream. When every candidate fails, the one that got
/// furthest decides the failure: a stream that could not be set up, else a connect timeout,
/// else no connection at all.
pub(crate) async fn open(
    s2s: &S2s,
    server: &Server,
    local: &str,
    remote: &str,
) -> Result<OutStream, Failure> {
    let mut failure: Option<Failure> = None;
    for (addr, direct) in candidates(s2s, server, remote).await? {
        let attempt = match open_one(s2s, server, local, remote, addr, direct).await {
            Ok(s) => return Ok(s),
            Err(a) => a,
        };
        let this = match attempt {
            Attempt::NoConnection(e) => Failure::Refused(format!("{addr}: {e}")),
            Attempt::ConnectTimeout => Failure::Timeout(format!("{addr}: connect timed out")),
            Attempt::Stream(e) => Failure::Unreachable(format!("{addr}: {e}")),
        };
        tracing::debug!(%remote, error = %this, what = "s2s-connect", "candidate failed");
        let rank = |f: &Failure| match f {
            Failure::Refused(_) => 0,
            Failure::Timeout(_) => 1,
            _ => 2,
        };
        if failure.as_ref().is_none_or(|f| rank(&this) >= rank(f)) {
            failure = Some(this);
        }
    }
    // `candidates` never returns an empty list; the fallback only keeps this total.
    Err(failure.unwrap_or_else(|| Failure::NotFound(format!("no candidates for {remote}"))))
}

async fn open_one(
    s2s: &S2s,
    server: &Server,
    local: &str,
    remote: &str,
    addr: SocketAddr,
    direct_tls: bool,
) -> Result<OutStream, Attempt> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| Attempt::ConnectTimeout)?
        .map_err(|e| Attempt::NoConnection(format!("connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let limits = crate::limits::framer_limits(server, true);
    let (io, mut tls, mut cert): (BoxIo, bool, Option<Result<(), CertError>>) = if direct_tls {
        let (io, c) = tls_connect(s2s, local, remote, Box::new(tcp), true).await?;
        (io, true, Some(c))
    } else {
        (Box::new(tcp), false, None)
    };
    let mut stream = XmppStream::new(io, limits.clone(), ns::SERVER);
    loop {
        let (id, features, db) = open_stream(&mut stream, local, remote).await?;
        let offers_tls = features.get_child("starttls", ns::TLS).is_some();
        if !tls && offers_tls {
            stream
                .send(&Element::new("starttls", ns::TLS))
                .await
                .map_err(|e| e.to_string())?;
            let el = next_element(&mut stream).await?;
            if !el.is("proceed", ns::TLS) {
                return Err("peer refused STARTTLS".into());
            }
            let io = stream.into_inner();
            let (io, c) = tls_connect(s2s, local, remote, io, false).await?;
            stream = XmppStream::new(io, limits.clone(), ns::SERVER);
            tls = true;
            cert = Some(c);
            continue;
        }
        if !TlsPolicy::of(server).allows_auth(tls) {
            stream
                .fail(
                    &StreamError::new(StreamCondition::PolicyViolation)
                        .with_text("encryption is required"),
                )
                .await;
            return Err("peer does not offer TLS, which our policy requires".into());
        }
        return Ok(OutStream {
            stream,
            stream_id: id,
            features,
            cert,
            dialback_declared: db,
        });
    }
}

/// TLS client handshake with SNI = the remote domain; returns the stream and whether the
/// peer's certificate is valid for that domain.
async fn tls_connect(
    s2s: &S2s,
    local: &str,
    remote: &str,
    io: BoxIo,
    direct_tls: bool,
) -> Result<(BoxIo, Result<(), CertError>), String> {
    let cfg = rookery_tls::s2s_client_config(s2s.certs(), local, direct_tls)
        .map_err(|e| e.to_string())?;
    let ascii = ascii_domain(remote).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(ascii.clone()).map_err(|e| format!("server name: {e}"))?;
    let tls = tokio::time::timeout(STEP, TlsConnector::from(cfg).connect(name, io))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let verdict = s2s.trust().verify_peer(chain, &ascii, UnixTime::now());
    if let Err(e) = &verdict {
        tracing::debug!(%remote, error = %e, what = "s2s-cert", "peer certificate not valid for its domain");
    }
    Ok((Box::new(tls), verdict))
}

/// Sends our header, reads theirs (it must carry an id) and, for 1.0 peers, the features.
/// Returns (stream id, features, whether the peer declared the dialback namespace).
pub(crate) async fn open_stream(
    stream: &mut XmppStream<BoxIo>,
    local: &str,
    remote: &str,
) -> Result<(String, Element, bool), String> {
    stream.restart();
    stream
        .send_header_ns(
            &[("from", local), ("to", remote), ("version", "1.0")],
            &[("db", ns::DIALBACK)],
        )
        .await
        .map_err(|e| e.to_string())?;
    let header = match tokio::time::timeout(STEP, stream.next_event()).await {
        Err(_) => return Err("no stream header from the peer".into()),
        Ok(Err(ReadError::Closed)) => return Err("connection closed".into()),
        Ok(Err(ReadError::Xml(e))) => return Err(format!("bad XML from the peer: {e}")),
        Ok(Ok(StreamEvent::Open(h))) => h,
        Ok(Ok(_)) => return Err("expected a stream header".into()),
    };
    if header.ns != ns::STREAM || header.default_ns.as_deref() != Some(ns::SERVER) {
        stream
            .fail(&StreamError::new(StreamCondition::InvalidNamespace))
            .await;
        return Err("peer's stream is not jabber:server".into());
    }
    let Some(id) = header.attr("id").map(str::to_owned) else {
        // OF-2692: a header without id can't anchor dialback; RFC 6120 §4.7.3 requires one.
        stream
            .fail(&StreamError::new(StreamCondition::InvalidXml).with_text("stream id missing"))
            .await;
        return Err("peer's stream header has no id".into());
    };
    let db = header.ns_decls.iter().any(|(_, uri)| uri == ns::DIALBACK);
    let v1 = header.attr("version").is_some_and(|v| v.starts_with("1."));
    let features = if v1 {
        let el = next_element(stream).await?;
        if !el.is("features", ns::STREAM) {
            return Err("expected stream features".into());
        }
        el
    } else {
        Element::new("features", ns::STREAM)
    };
    Ok((id, features, db))
}

/// The next top-level element, bounded by the step timeout.
pub(crate) async fn next_element(stream: &mut XmppStream<BoxIo>) -> Result<Element, String> {
    match tokio::time::timeout(STEP, stream.next_event()).await {
        Err(_) => Err("peer did not answer in time".into()),
        Ok(Err(ReadError::Closed)) => Err("connection closed".into()),
        Ok(Err(ReadError::Xml(e))) => Err(format!("bad XML from the peer: {e}")),
        Ok(Ok(StreamEvent::Stanza(el))) => {
            if el.is("error", ns::STREAM) {
                let cond = el
                    .children()
                    .next()
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                return Err(format!("peer sent stream error {cond}"));
            }
            Ok(el)
        }
        Ok(Ok(StreamEvent::Close)) => Err("peer closed the stream".into()),
        Ok(Ok(StreamEvent::Open(_))) => Err("unexpected stream header".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::ascii_domain;

    #[test]
    fn unicode_domains_become_a_labels() {
        assert_eq!(
            ascii_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(ascii_domain("plain.example").unwrap(), "plain.example");
    }
}
