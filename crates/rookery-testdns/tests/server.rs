//! TestDns speaks real DNS: queries built with hickory-proto go over UDP and TCP sockets and the
//! answers are checked field by field (AA bit, NXDOMAIN vs NoData, TC over UDP, counting).
#![allow(clippy::unwrap_used)] // test helpers: a failure should panic loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Stdio;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rookery_testdns::TestDns;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn query(name: &str, kind: RecordType, edns: bool) -> Message {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        msg.set_edns(e);
    }
    msg
}

async fn udp(server: SocketAddr, msg: &Message) -> Message {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    sock.send_to(&msg.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (len, from) = sock.recv_from(&mut buf).await.unwrap();
    assert_eq!(from, server);
    Message::from_vec(&buf[..len]).unwrap()
}

async fn tcp_exchange(stream: &mut TcpStream, msg: &Message) -> Message {
    let wire = msg.to_vec().unwrap();
    stream
        .write_all(&u16::try_from(wire.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&wire).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

#[tokio::test]
async fn answers_srv_a_aaaa_authoritatively_over_udp() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    dns.add_srv("_xmpp-server._tcp.a.test", 10, 5, 5269, "xmpp.a.test");
    dns.add_a("xmpp.a.test", Ipv4Addr::new(127, 0, 0, 2));
    dns.add_aaaa("xmpp.a.test", Ipv6Addr::LOCALHOST);

    let reply = udp(
        dns.addr(),
        &query("_xmpp-server._tcp.a.test.", RecordType::SRV, true),
    )
    .await;
    assert_eq!(reply.metadata.id, 0x4242);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert!(reply.metadata.authoritative);
    assert!(
        reply.metadata.recursion_desired,
        "RD is copied from the query"
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.edns.is_some(), "RFC 6891: OPT answered with OPT");
    assert_eq!(reply.queries.len(), 1);
    assert_eq!(reply.answers.len(), 1);
    let RData::SRV(srv) = &reply.answers[0].data else {
        panic!("{:?}", reply.answers[0])
    };
    assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 5269));
    assert_eq!(srv.target, Name::from_ascii("xmpp.a.test.").unwrap());
    assert_eq!(reply.answers[0].ttl, rookery_testdns::DEFAULT_TTL);

    let a = udp(dns.addr(), &query("xmpp.a.test.", RecordType::A, false)).await;
    assert_eq!(a.answers.len(), 1);
    assert_eq!(
        a.answers[0].data,
        RData::A(Ipv4Addr::new(127, 0, 0, 2).into())
    );
    assert!(a.edns.is_none());
    let aaaa = udp(dns.addr(), &query("xmpp.a.test.", RecordType::AAAA, false)).await;
    assert_eq!(
        aaaa.answers[0].data,
        RData::AAAA(Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(dns.query_count("xmpp.a.test"), 2);
    assert_eq!(dns.query_count("_xmpp-server._tcp.a.test."), 1);
}

#[tokio::test]
async fn nxdomain_nodata_and_empty_non_terminals() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    dns.add_srv("_xmpp-server._tcp.a.test", 0, 0, 5269, "xmpp.a.test");
    dns.add_a("b.test", Ipv4Addr::new(127, 0, 0, 3));

    let nx = udp(dns.addr(), &query("nowhere.test.", RecordType::A, true)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());

    // A known name without the asked type: NOERROR, empty answer.
    let nodata = udp(dns.addr(), &query("b.test.", RecordType::AAAA, true)).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());

    // a.test only has records below it: it exists (RFC 8020), so NoData rather than NXDOMAIN.
    let ent = udp(dns.addr(), &query("a.test.", RecordType::A, true)).await;
    assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
    assert!(ent.answers.is_empty());

    // Removing the records turns the name back into NXDOMAIN.
    dns.remove("b.test");
    let gone = udp(dns.addr(), &query("b.test.", RecordType::A, true)).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn names_match_case_insensitively_and_keep_the_askers_case() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    dns.add_a("Mixed.Test", Ipv4Addr::new(127, 0, 0, 4));
    let reply = udp(dns.addr(), &query("mIXED.tEST.", RecordType::A, true)).await;
    assert_eq!(reply.answers.len(), 1);
    assert!(
        reply.answers[0]
            .name
            .eq_case(&Name::from_ascii("mIXED.tEST.").unwrap())
    );
    assert_eq!(dns.query_count("mixed.test"), 1);
}

#[tokio::test]
async fn tcp_carries_several_length_prefixed_queries() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    dns.add_a("c.test", Ipv4Addr::new(127, 0, 0, 5));
    let mut stream = TcpStream::connect(dns.addr()).await.unwrap();
    let first = tcp_exchange(&mut stream, &query("c.test.", RecordType::A, false)).await;
    assert_eq!(first.answers.len(), 1);
    assert!(first.metadata.authoritative);
    let second = tcp_exchange(&mut stream, &query("d.test.", RecordType::A, false)).await;
    assert_eq!(second.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(dns.query_count("c.test") + dns.query_count("d.test"), 2);
}

#[tokio::test]
async fn oversized_udp_answer_is_truncated_and_complete_over_tcp() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    for i in 0..100u16 {
        dns.add_srv(
            "_xmpp-server._tcp.big.test",
            10,
            i,
            5269,
            &format!("host{i}.big.test"),
        );
    }
    let q = query("_xmpp-server._tcp.big.test.", RecordType::SRV, false);
    let cut = udp(dns.addr(), &q).await;
    assert!(cut.metadata.truncation, "100 SRV records exceed 512 bytes");
    assert!(cut.answers.is_empty());
    let mut stream = TcpStream::connect(dns.addr()).await.unwrap();
    let full = tcp_exchange(&mut stream, &q).await;
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), 100);
}

#[tokio::test]
async fn servfail_ttl_and_malformed_queries() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    dns.add_a("e.test", Ipv4Addr::new(127, 0, 0, 6));
    dns.set_ttl(0);
    let zero = udp(dns.addr(), &query("e.test.", RecordType::A, true)).await;
    assert_eq!(zero.answers[0].ttl, 0);

    dns.set_servfail("e.test");
    let fail = udp(dns.addr(), &query("e.test.", RecordType::A, true)).await;
    assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);

    // No question at all: FORMERR.
    let empty = Message::new(7, MessageType::Query, OpCode::Query);
    let formerr = udp(dns.addr(), &empty).await;
    assert_eq!(formerr.metadata.id, 7);
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);

    // Garbage with a header-sized prefix: FORMERR with the same ID.
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    sock.send_to(&[0x12, 0x34, 0x01, 0x00, 0x00, 0x05], dns.addr())
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = sock.recv_from(&mut buf).await.unwrap();
    let garbage = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(garbage.metadata.id, 0x1234);
    assert_eq!(garbage.metadata.response_code, ResponseCode::FormErr);
}

#[tokio::test]
async fn zone_text_loads_atomically() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    let added = dns
        .load_zone("f.test A 127.0.0.7\n_xmpp-server._tcp.f.test SRV 1 1 5269 f.test\n")
        .unwrap();
    assert_eq!(added, 2);
    let err = dns
        .load_zone("g.test A 127.0.0.8\ng.test SRV 1\n")
        .unwrap_err();
    assert_eq!(err.line, 2);
    let g = udp(dns.addr(), &query("g.test.", RecordType::A, true)).await;
    assert_eq!(
        g.metadata.response_code,
        ResponseCode::NXDomain,
        "nothing added"
    );
}

#[tokio::test]
async fn dropping_the_server_closes_its_connections() {
    let dns = TestDns::start(LOOPBACK).await.unwrap();
    let mut stream = TcpStream::connect(dns.addr()).await.unwrap();
    // One exchange proves the connection task is running before the drop.
    tcp_exchange(&mut stream, &query("h.test.", RecordType::A, false)).await;
    drop(dns);
    let mut buf = [0u8; 1];
    // The connection task ends on cancellation, so the socket reports EOF (or a reset).
    let n = stream.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn binary_serves_a_zone_file_and_prints_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.txt");
    std::fs::write(
        &zone,
        "# interop\n_xmpp-server._tcp.i.test SRV 5 0 5269 xmpp.i.test\nxmpp.i.test A 127.0.0.9\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rookery-testdns"))
        .arg("127.0.0.1:0")
        .arg(&zone)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0);
    let srv = udp(
        addr,
        &query("_xmpp-server._tcp.i.test.", RecordType::SRV, true),
    )
    .await;
    assert_eq!(srv.answers.len(), 1);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let a = tcp_exchange(&mut stream, &query("xmpp.i.test.", RecordType::A, false)).await;
    assert_eq!(
        a.answers[0].data,
        RData::A(Ipv4Addr::new(127, 0, 0, 9).into())
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn binary_rejects_a_bad_zone_file() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.txt");
    std::fs::write(&zone, "x.test A 1.2.3\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rookery-testdns"))
        .arg("127.0.0.1:0")
        .arg(&zone)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
}
