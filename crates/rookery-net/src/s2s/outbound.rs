//! An authenticated outgoing s2s stream and its actor. `authenticate` first tries to add the
//! pair to a live dialback stream to the same remote domain (sender multiplexing, XEP-0220 §3;
//! never on a SASL EXTERNAL stream, whose pair set is fixed), else opens a new stream and
//! authenticates it with SASL EXTERNAL when the peer's certificate is valid, falling back to
//! dialback when policy allows. The actor then owns the socket: it writes stanzas from its
//! mailbox, adds pairs on request, and closes when idle.

use super::connect::{self, BoxIo, OutStream};
use super::pool::Pair;
use super::{Failure, S2s};
use rookery_core::Server;
use rookery_proto::dialback::{self, DbKind, DbType, Dialback, Pending};
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_transport::stream::XmppStream;
use rookery_xml::{Element, StreamEvent};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type PairReply = oneshot::Sender<Result<(), Failure>>;

/// Handle to an outgoing stream actor: stanzas and pair requests travel on separate channels
/// so that a stanza handed back on failure needs no unpacking.
#[derive(Clone)]
pub(crate) struct OutHandle {
    id: u64,
    dialback: bool,
    tx: mpsc::Sender<Stanza>,
    ctl: mpsc::Sender<(String, PairReply)>,
}

impl OutHandle {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn is_dialback(&self) -> bool {
        self.dialback
    }
    /// Queues a stanza; gives it back, saying whether the stream is gone (`Closed`) or its
    /// mailbox is full (`Full`: the peer is not keeping up).
    #[allow(clippy::result_large_err)] // the stanza is handed back, not an error value
    pub(crate) fn send(&self, st: Stanza) -> Result<(), TrySendError<Stanza>> {
        self.tx.try_send(st)
    }
    async fn add_pair(&self, local: &str) -> Result<(), Failure> {
        let (tx, rx) = oneshot::channel();
        self.ctl
            .send((local.to_owned(), tx))
            .await
            .map_err(|_| Failure::Unreachable("stream closed".into()))?;
        rx.await
            .map_err(|_| Failure::Unreachable("stream closed".into()))?
    }
}

/// Sets up a route for `pair`: reuse a dialback stream or open and authenticate a new one.
pub(crate) async fn authenticate(
    s2s: &S2s,
    server: &Server,
    pair: &Pair,
) -> Result<OutHandle, Failure> {
    let (local, remote) = (pair.0.as_str(), pair.1.as_str());
    for h in s2s.pool().live_to(remote) {
        if !h.dialback {
            continue;
        }
        match h.add_pair(local).await {
            Ok(()) => {
                tracing::info!(%local, %remote, what = "s2s-piggyback", "pair added to an existing stream");
                return Ok(h);
            }
            // The peer's verdict on our key is final: a new stream would only hear it again.
            Err(Failure::DialbackInvalid) => return Err(Failure::DialbackInvalid),
            // Stream closing, or a dialback error such as resource-constraint: a new stream.
            Err(_) => {}
        }
    }
    let policy = server.config().s2s.policy(remote);
    let mut out = connect::open(s2s, server, local, remote).await?;
    let cert_ok = matches!(out.cert, Some(Ok(())));
    if !cert_ok && policy.require_valid_certs {
        let why = match &out.cert {
            Some(Err(e)) => e.to_string(),
            _ => "no TLS".to_owned(),
        };
        out.stream.close().await;
        return Err(Failure::Policy(format!("peer certificate required: {why}")));
    }
    let offers_external = out
        .features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
    let mut method = None;
    if cert_ok && offers_external {
        match external(&mut out, local, remote).await {
            Ok(()) => method = Some(false),
            Err(e) => {
                tracing::info!(%local, %remote, error = %e, what = "s2s-external", "SASL EXTERNAL failed, trying dialback")
            }
        }
    }
    if method.is_none() {
        let offers_db = out
            .features
            .get_child("dialback", ns::DIALBACK_FEATURE)
            .is_some()
            || out.dialback_declared;
        if !(policy.allow_dialback && offers_db) {
            out.stream.close().await;
            return Err(Failure::Policy(
                "no authentication method both sides accept".into(),
            ));
        }
        dialback_on_open(s2s, &mut out, local, remote).await?;
        method = Some(true);
    }
    let dialback = method == Some(true);
    tracing::info!(%local, %remote, method = if dialback { "dialback" } else { "sasl-external" }, what = "s2s-out", "outgoing stream authenticated");
    let cap = server.config().s2s.queue_max + 1024;
    let (tx, rx) = mpsc::channel(cap);
    let (ctl, ctl_rx) = mpsc::channel(16);
    let handle = OutHandle {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        dialback,
        tx,
        ctl,
    };
    let actor = Actor {
        s2s: s2s.clone(),
        server: server.clone(),
        id: handle.id,
        remote: remote.to_owned(),
        stream_id: out.stream_id.clone(),
        pairs: HashSet::from([local.to_owned()]),
        pending: Pending::default(),
        waiting: HashMap::new(),
    };
    server.tasks().spawn(actor.run(out.stream, rx, ctl_rx));
    Ok(handle)
}

/// XEP-0178: `<auth mechanism='EXTERNAL'>` with our domain as authzid, then a stream restart.
async fn external(out: &mut OutStream, local: &str, remote: &str) -> Result<(), String> {
    use base64::Engine;
    let authzid = base64::engine::general_purpose::STANDARD.encode(local);
    let auth = Element::new("auth", ns::SASL)
        .with_attr("mechanism", "EXTERNAL")
        .with_text(authzid);
    out.stream.send(&auth).await.map_err(|e| e.to_string())?;
    let el = connect::next_element(&mut out.stream).await?;
    if !el.is("success", ns::SASL) {
        let cond = el
            .children()
            .next()
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        return Err(format!("SASL failure {cond}"));
    }
    let (id, features, _) = connect::open_stream(&mut out.stream, local, remote).await?;
    out.stream_id = id;
    out.features = features;
    Ok(())
}

/// XEP-0220 on a freshly opened stream: send our key, wait for the correlated verdict.
async fn dialback_on_open(
    s2s: &S2s,
    out: &mut OutStream,
    local: &str,
    remote: &str,
) -> Result<(), Failure> {
    let key = dialback::key(s2s.secret(), remote, local, &out.stream_id);
    let req = Dialback {
        kind: DbKind::Result,
        from: local.to_owned(),
        to: remote.to_owned(),
        id: None,
        ty: DbType::Request(key),
    };
    let mut pending = Pending::default();
    pending.sent_result(local, remote);
    out.stream
        .send(&req.to_element())
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    loop {
        let el = connect::next_element(&mut out.stream)
            .await
            .map_err(Failure::Unreachable)?;
        let Ok(v) = Dialback::parse(&el) else {
            continue;
        };
        // Only the verdict for the request we sent counts (unsolicited-dialback attacks).
        if v.kind != DbKind::Result || !pending.take_verdict(&v) {
            tracing::warn!(from = %v.from, to = %v.to, what = "s2s-unsolicited", "ignoring unsolicited dialback verdict");
            continue;
        }
        return match v.ty {
            DbType::Valid => Ok(()),
            DbType::Invalid => {
                out.stream.close().await;
                Err(Failure::DialbackInvalid)
            }
            DbType::Error(e) => {
                // This stream carries nothing else yet: end it properly.
                out.stream.close().await;
                Err(Failure::DialbackError(
                    e.map(|e| e.to_string())
                        .unwrap_or_else(|| "unspecified".into()),
                ))
            }
            DbType::Request(_) => continue,
        };
    }
}

struct Actor {
    s2s: S2s,
    server: Server,
    id: u64,
    remote: String,
    stream_id: String,
    /// Local domains authenticated on this stream.
    pairs: HashSet<String>,
    pending: Pending,
    waiting: HashMap<String, PairReply>,
}

impl Actor {
    async fn run(
        mut self,
        mut stream: XmppStream<BoxIo>,
        mut rx: mpsc::Receiver<Stanza>,
        mut ctl: mpsc::Receiver<(String, PairReply)>,
    ) {
        let idle = self.server.config().s2s.idle_timeout();
        let shutdown = self.server.shutdown_token().clone();
        let mut last = Instant::now();
        loop {
            // Verdicts and stream ends that are already buffered.
            loop {
                match stream.poll_event() {
                    Ok(Some(StreamEvent::Stanza(el))) => self.on_element(&el),
                    Ok(Some(StreamEvent::Close)) | Err(_) => {
                        return self.finish(stream, rx, ctl).await;
                    }
                    Ok(Some(StreamEvent::Open(_))) | Ok(None) => break,
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return self.finish(stream, rx, ctl).await,
                req = ctl.recv() => {
                    let Some((local, reply)) = req else { return self.finish(stream, rx, ctl).await };
                    self.start_pair(&mut stream, local, reply);
                    if stream.flush().await.is_err() {
                        return self.finish(stream, rx, ctl).await;
                    }
                }
                st = rx.recv() => {
                    let Some(st) = st else { return self.finish(stream, rx, ctl).await };
                    last = Instant::now();
                    let mut next = Some(st);
                    let mut n = 0;
                    while let Some(st) = next.take() {
                        let from = st.from().map(|f| f.domain().as_str()).unwrap_or_default();
                        if self.pairs.contains(from) {
                            stream.queue(st.element());
                        } else {
                            // Never send for a pair this stream did not authenticate.
                            tracing::warn!(%from, remote = %self.remote, what = "s2s-unauthenticated-pair", "dropping stanza");
                        }
                        n += 1;
                        if n < 64 {
                            next = rx.try_recv().ok();
                        }
                    }
                    if stream.flush().await.is_err() {
                        return self.finish(stream, rx, ctl).await;
                    }
                }
                r = stream.read_more() => {
                    last = Instant::now();
                    if r.is_err() {
                        return self.finish(stream, rx, ctl).await;
                    }
                }
                _ = tokio::time::sleep_until(last + idle) => {
                    tracing::debug!(remote = %self.remote, what = "s2s-idle", "closing idle outgoing stream");
                    return self.finish(stream, rx, ctl).await;
                }
            }
        }
    }

    fn start_pair(&mut self, stream: &mut XmppStream<BoxIo>, local: String, reply: PairReply) {
        if self.pairs.contains(&local) {
            let _ = reply.send(Ok(()));
            return;
        }
        let key = dialback::key(self.s2s.secret(), &self.remote, &local, &self.stream_id);
        let req = Dialback {
            kind: DbKind::Result,
            from: local.clone(),
            to: self.remote.clone(),
            id: None,
            ty: DbType::Request(key),
        };
        stream.queue(&req.to_element());
        self.pending.sent_result(&local, &self.remote);
        self.waiting.insert(local, reply);
    }

    fn on_element(&mut self, el: &Element) {
        let Ok(v) = Dialback::parse(el) else {
            // Without bidi (XEP-0288) the peer has nothing else to send on our stream.
            return;
        };
        if v.kind != DbKind::Result || !self.pending.take_verdict(&v) {
            tracing::warn!(from = %v.from, to = %v.to, what = "s2s-unsolicited", "ignoring unsolicited dialback verdict");
            return;
        }
        let result = match v.ty {
            DbType::Valid => {
                self.pairs.insert(v.to.clone());
                Ok(())
            }
            DbType::Invalid => Err(Failure::DialbackInvalid),
            DbType::Error(e) => Err(Failure::DialbackError(
                e.map(|e| e.to_string())
                    .unwrap_or_else(|| "unspecified".into()),
            )),
            DbType::Request(_) => return,
        };
        if let Some(w) = self.waiting.remove(&v.to) {
            let _ = w.send(result);
        }
    }

    /// Closes the stream, forgets its routes and re-routes what was still queued for it, so
    /// nothing accepted is lost: the router starts a new attempt.
    async fn finish(
        self,
        mut stream: XmppStream<BoxIo>,
        mut rx: mpsc::Receiver<Stanza>,
        mut ctl: mpsc::Receiver<(String, PairReply)>,
    ) {
        // Routes and mailbox first, in one step: the stanzas left in the mailbox are queued
        // for a new stream before anything routed from now on.
        super::pool::retire(&self.s2s, &self.server, self.id, &mut rx).await;
        stream.close().await;
        ctl.close();
        let closed = || Err(Failure::Unreachable("stream closed".into()));
        while let Ok((_, reply)) = ctl.try_recv() {
            let _ = reply.send(closed());
        }
        for (_, w) in self.waiting {
            let _ = w.send(closed());
        }
        tracing::debug!(remote = %self.remote, what = "s2s-out-closed", "outgoing stream closed");
    }
}
