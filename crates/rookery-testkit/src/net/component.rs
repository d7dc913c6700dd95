//! A hand-written XEP-0114 component on a real component listener: the stream header, the
//! handshake digest computed from the server's stream id, then raw XML.

use super::{Ev, RawPeer, raw_connect};
use rookery_proto::ns;
use std::net::SocketAddr;

/// Connects a component for `domain` to the listener at `addr` and completes the handshake.
pub async fn login(addr: SocketAddr, domain: &str, secret: &str) -> RawPeer {
    let mut c = open(addr, domain).await;
    handshake(&mut c, secret).await;
    match c.next(5).await {
        Ev::El(e) if e.is("handshake", ns::COMPONENT) => {}
        other => panic!("expected an empty <handshake/>, got {other:?}"),
    }
    c
}

/// Opens a component stream to `to` (`jabber:component:accept`) and reads the server's header
/// (its id is kept in `stream_id`). Panics if the server answers with anything else.
pub async fn open(addr: SocketAddr, to: &str) -> RawPeer {
    let mut c = connect(addr, to).await;
    match c.next(5).await {
        Ev::Header(h) => {
            assert_eq!(h.attr("from"), Some(to), "header from");
            c.stream_id = h.attr("id").unwrap().to_owned();
        }
        other => panic!("expected a stream header, got {other:?}"),
    }
    c
}

/// Connects and sends a component stream header to `to`; reads nothing.
pub async fn connect(addr: SocketAddr, to: &str) -> RawPeer {
    let mut c = raw_connect(addr, ns::COMPONENT).await;
    c.stream.send_header(&[("to", to)]).await.unwrap();
    c
}

/// Sends `<handshake>` for the current stream id and `secret` (reads nothing).
pub async fn handshake(c: &mut RawPeer, secret: &str) {
    let digest = rookery_proto::component::handshake_digest(&c.stream_id, secret);
    c.raw(&format!("<handshake>{digest}</handshake>")).await;
}
