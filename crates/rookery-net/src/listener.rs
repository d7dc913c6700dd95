//! Accept loops. Listeners arrive already bound (the binary binds after the config validated;
//! tests bind port 0), and each accepted socket becomes one connection task tracked for
//! shutdown. The per-IP unauthenticated connection cap is applied here, before any byte is read,
//! to client and component listeners (a component's secret is guessed one connection at a
//! time, so the connection-rate budget also bounds guessing).

use rookery_config::ListenerKind;
use rookery_core::Server;
use rookery_transport::limits::UnauthLimiter;
use rookery_transport::tls::TlsContext;
use tokio::net::TcpListener;

/// What connections of the server-side kinds attach to, shared by every listener: federation
/// (s2s), connection-manager links (cm) and the jabberd2 router's bind table (router).
#[derive(Clone)]
pub struct Shared {
    pub s2s: Option<crate::s2s::S2s>,
    pub cms: crate::cm::CmRegistry,
    pub router: Option<crate::router::RouterHub>,
}

/// Runs one listener until shutdown.
pub async fn serve(
    server: Server,
    listener: TcpListener,
    kind: ListenerKind,
    tls: TlsContext,
    limiter: UnauthLimiter,
    shared: Shared,
) {
    let Shared { s2s, cms, router } = shared;
    let shutdown = server.shutdown_token().clone();
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, what = "accept", "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if kind == ListenerKind::Cm {
            // Links authenticate with the shared secret; a CM legitimately holds several.
            server.tasks().spawn(crate::cm::serve::serve_link(
                server.clone(),
                cms.clone(),
                tcp,
                peer,
            ));
            continue;
        }
        if kind == ListenerKind::Router {
            // Router components are few, but the port is as exposed as its address: the same
            // per-IP caps as for clients apply until a component has authenticated (a
            // jabberd2 machine opens a handful of links at start, far below them).
            let Some(hub) = &router else {
                tracing::debug!(?local, %peer, what = "router-disabled", "closing router connection");
                continue;
            };
            let Some(guard) = admit(&server, &limiter, peer) else {
                continue;
            };
            server.tasks().spawn(crate::router::serve_connection(
                server.clone(),
                hub.clone(),
                tls.clone(),
                tcp,
                peer,
                guard,
            ));
            continue;
        }
        if !kind.is_c2s() && kind != ListenerKind::Component {
            match &s2s {
                // Peer servers legitimately hold several connections; the per-IP cap on
                // unauthenticated connections is a client-listener protection.
                Some(s2s) => {
                    let direct = kind.is_direct_tls();
                    server.tasks().spawn(crate::s2s::inbound::serve(
                        server.clone(),
                        s2s.clone(),
                        tcp,
                        peer,
                        direct,
                    ));
                }
                None => {
                    tracing::debug!(?local, %peer, what = "s2s-disabled", "closing s2s connection")
                }
            }
            continue;
        }
        let Some(guard) = admit(&server, &limiter, peer) else {
            continue;
        };
        if kind == ListenerKind::Component {
            server
                .tasks()
                .spawn(crate::component::serve(server.clone(), tcp, peer, guard));
            continue;
        }
        let direct = kind.is_direct_tls();
        let srv = server.clone();
        let tls = tls.clone();
        server.tasks().spawn(crate::c2s::serve_connection(
            srv, tls, tcp, peer, direct, guard,
        ));
    }
}

/// The per-IP connection-attempt budget and unauthenticated-connection cap; `None` (and a log
/// line) when this connection is over either. The guard frees the slot when dropped.
fn admit(
    server: &Server,
    limiter: &UnauthLimiter,
    peer: std::net::SocketAddr,
) -> Option<rookery_transport::limits::UnauthGuard> {
    let per_minute = server.config().limits.connects_per_minute_per_ip;
    if !limiter.attempt(peer.ip(), per_minute, std::time::Instant::now()) {
        tracing::info!(%peer, what = "connect-rate", "too many connection attempts from this address");
        return None;
    }
    let max = server.config().limits.unauth_per_ip as usize;
    let guard = limiter.try_acquire(peer.ip(), max);
    if guard.is_none() {
        tracing::info!(%peer, what = "unauth-limit", "too many unauthenticated connections from this address");
    }
    guard
}
