//! The TLS hand-over against rustls' own client, over an in-memory pipe: which connections go
//! compact, that bytes cross both ways in every phase (with the client's Finished, large,
//! after KeyUpdates, at the key-usage limit), that closing is clean, and that a tampered
//! record is refused.

use super::*;
use rookery_tls::HostCert;
use rookery_tls::{
    InsecureServerCertVerifier, client_config_insecure_for_tests,
    client_config_insecure_for_tests_with_versions,
};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream as ClientTls;

fn context(dir: &tempfile::TempDir) -> TlsContext {
    let certs = CertStore::load(&[HostCert::self_signed("localhost")], dir.path()).unwrap();
    TlsContext::new(Arc::new(certs), &[])
}

fn client_config_with_suites(suites: Vec<SupportedCipherSuite>) -> ClientConfig {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites;
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(InsecureServerCertVerifier::new()))
        .with_no_client_auth()
}

/// A handshake between rustls' client with `config` and our acceptor. `early`: bytes the
/// client writes the moment its side of the handshake is done.
async fn pair_with(
    config: ClientConfig,
    early: &[u8],
) -> (
    ServerTls<DuplexStream>,
    ClientTls<DuplexStream>,
    ChannelBindings,
) {
    let dir = tempfile::tempdir().unwrap();
    pair_on(&context(&dir), config, early, 64 * 1024).await
}

/// [`pair_with`] against the listener context `ctx` (whose ticket key a later connection may
/// resume with), over a pipe that carries at most `pipe` bytes at a time.
async fn pair_on(
    ctx: &TlsContext,
    config: ClientConfig,
    early: &[u8],
    pipe: usize,
) -> (
    ServerTls<DuplexStream>,
    ClientTls<DuplexStream>,
    ChannelBindings,
) {
    let (a, b) = duplex(pipe);
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let client = async {
        let mut c = connector.connect(name, b).await.unwrap();
        if !early.is_empty() {
            c.write_all(early).await.unwrap();
            c.flush().await.unwrap();
        }
        c
    };
    let (server, client) = tokio::join!(ctx.accept_with_bindings(a), client);
    let (server, bindings) = server.unwrap();
    (server, client, bindings)
}

async fn pair(
    config: ClientConfig,
) -> (
    ServerTls<DuplexStream>,
    ClientTls<DuplexStream>,
    ChannelBindings,
) {
    pair_with(config, b"").await
}

/// Sends `data` one way while the other side reads it all; returns what arrived.
async fn transfer<W, R>(w: &mut W, r: &mut R, data: &[u8]) -> Vec<u8>
where
    W: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
{
    let mut got = vec![0u8; data.len()];
    let (sent, read) = tokio::join!(
        async {
            w.write_all(data).await?;
            w.flush().await
        },
        r.read_exact(&mut got)
    );
    sent.unwrap();
    read.unwrap();
    got
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn compact(s: &mut ServerTls<DuplexStream>) -> &mut CompactTls<DuplexStream> {
    match s {
        ServerTls::Compact(c) => c,
        ServerTls::Rustls(_) => panic!("expected the compact record layer"),
    }
}

#[tokio::test]
async fn tls13_goes_compact_and_carries_data_both_ways() {
    let (mut server, mut client, bindings) = pair(client_config_insecure_for_tests()).await;
    assert!(server.is_compact());
    // The exporter binding was taken from rustls before the hand-over and is the client's.
    let expected = client
        .get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap();
    assert_eq!(bindings.exporter.as_deref(), Some(&expected[..]));
    for len in [1, 100, 16 * 1024, 16 * 1024 + 1, 200_000] {
        let data = pattern(len);
        assert_eq!(transfer(&mut client, &mut server, &data).await, data);
        assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    }
}

#[tokio::test]
async fn records_split_across_many_reads_are_reassembled() {
    // A 7-byte pipe: every record, header included, arrives in pieces. Without a session
    // ticket (the default with this ECDSA certificate, made explicit): the acceptor flushes it
    // before the handshake completes, and this test's client reads nothing until then (a TCP
    // socket's buffer always holds a ticket).
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&dir).with_session_tickets(false);
    let config = client_config_insecure_for_tests();
    let (mut server, mut client, _) = pair_on(&ctx, config, b"", 7).await;
    assert!(server.is_compact());
    for len in [1, 5, 300, 20_000] {
        let data = pattern(len);
        assert_eq!(transfer(&mut client, &mut server, &data).await, data);
        assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    }
}

#[tokio::test]
async fn bytes_sent_with_the_clients_finished_are_not_lost() {
    let (mut server, _client, _) =
        pair_with(client_config_insecure_for_tests(), b"<stream:stream>").await;
    assert!(server.is_compact());
    let mut got = [0u8; 15];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"<stream:stream>");
}

#[tokio::test]
async fn a_large_first_record_with_the_finished_is_not_lost() {
    // 16 KiB right behind the Finished: rustls may take part of it before the hand-over, in
    // which case the connection must stay with rustls; either way every byte arrives.
    let data = pattern(16 * 1024);
    let (mut server, _client, _) = pair_with(client_config_insecure_for_tests(), &data).await;
    let mut got = vec![0u8; data.len()];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn key_updates_from_the_client_are_followed_and_answered() {
    let (mut server, mut client, _) = pair(client_config_insecure_for_tests()).await;
    assert!(server.is_compact());
    for round in 0..3 {
        // rustls' client sends KeyUpdate with update_requested: we must switch our receiving
        // key, and send our own KeyUpdate before our next record, which the client can only
        // open if our derived key is right.
        client.get_mut().1.refresh_traffic_keys().unwrap();
        let data = pattern(1000 + round);
        assert_eq!(transfer(&mut client, &mut server, &data).await, data);
        assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    }
}

#[tokio::test]
async fn our_key_is_replaced_at_the_usage_limit() {
    let (mut server, mut client, _) = pair(client_config_insecure_for_tests()).await;
    compact(&mut server).set_key_limit_for_tests(3);
    for i in 0..10 {
        let data = pattern(10 + i);
        assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    }
    assert!(compact(&mut server).tx_seq_for_tests() <= 3);
}

#[tokio::test]
async fn close_notify_ends_reading_cleanly_both_ways() {
    let (mut server, mut client, _) = pair(client_config_insecure_for_tests()).await;
    client.shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    server.shutdown().await.unwrap();
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test]
async fn a_tampered_record_is_refused() {
    let (server, client, _) = pair(client_config_insecure_for_tests()).await;
    // Seal a record on the client, flip a bit on the way.
    let ServerTls::Compact(server) = server else {
        panic!("expected compact");
    };
    let (io, records) = server.into_parts_for_tests();
    let (mut client_io, mut conn) = client.into_inner();
    std::io::Write::write_all(&mut conn.writer(), b"hello").unwrap();
    let mut wire = Vec::new();
    conn.write_tls(&mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    client_io.write_all(&wire).await.unwrap();
    let mut server = CompactTls::new(io, records, Vec::new(), Vec::new());
    let mut buf = [0u8; 16];
    let err = server.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // The client is told why: a bad_record_mac alert, sealed under our key.
    let mut wire = vec![0u8; 256];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client_io.read(&mut wire),
    )
    .await
    .expect("an alert, not silence")
    .unwrap();
    conn.read_tls(&mut &wire[..n]).unwrap();
    match conn.process_new_packets() {
        Err(rustls::Error::AlertReceived(a)) => {
            assert_eq!(a, rustls::AlertDescription::BadRecordMac)
        }
        other => panic!("expected the bad_record_mac alert, got {other:?}"),
    }
}

#[tokio::test]
async fn tls12_stays_with_rustls_and_works() {
    let config = client_config_insecure_for_tests_with_versions(&[&rustls::version::TLS12]);
    let (mut server, mut client, bindings) = pair(config).await;
    assert!(!server.is_compact());
    assert!(bindings.exporter.is_none());
    let data = pattern(50_000);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
}

#[tokio::test]
async fn aes128_stays_with_rustls_and_works() {
    let config = client_config_with_suites(vec![
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ]);
    let (mut server, mut client, _) = pair(config).await;
    assert!(!server.is_compact());
    let data = pattern(50_000);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
}

#[tokio::test]
async fn a_client_preferring_aes128_gets_aes256_and_goes_compact() {
    let config = client_config_with_suites(vec![
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ]);
    let (mut server, mut client, _) = pair(config).await;
    assert_eq!(
        client.get_ref().1.negotiated_cipher_suite(),
        Some(rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384)
    );
    assert!(server.is_compact());
    let data = pattern(5_000);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
}

#[tokio::test]
async fn chacha20_goes_compact_and_works() {
    let config = client_config_with_suites(vec![
        rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ]);
    let (mut server, mut client, _) = pair(config).await;
    assert!(server.is_compact());
    client.get_mut().1.refresh_traffic_keys().unwrap();
    let data = pattern(50_000);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
}

#[tokio::test]
async fn an_idle_compact_connection_holds_no_buffers() {
    let (mut server, mut client, _) = pair(client_config_insecure_for_tests()).await;
    let data = pattern(40_000);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    // Nothing more to read: the read is pending, and then nothing is held.
    let mut buf = [0u8; 16];
    let mut rb = ReadBuf::new(&mut buf);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        Pin::new(&mut server)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    );
    assert_eq!(compact(&mut server).buffer_capacity_for_tests(), 0);
}

/// Counts the TLS 1.3 tickets a client is given.
#[derive(Debug, Default)]
struct TicketCounter(std::sync::atomic::AtomicUsize);

impl rustls::client::ClientSessionStore for TicketCounter {
    fn set_kx_hint(&self, _: ServerName<'static>, _: rustls::NamedGroup) {}
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        None
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls12ClientSessionValue,
    ) {
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        None
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {}
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        _: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        None
    }
}

/// With nothing to read, the compact connection holds no buffers.
fn idle_holds_nothing(server: &mut ServerTls<DuplexStream>) {
    let mut buf = [0u8; 16];
    let mut rb = ReadBuf::new(&mut buf);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        Pin::new(&mut *server)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    );
    assert_eq!(compact(server).buffer_capacity_for_tests(), 0);
}

/// The tickets a client is given after a round trip on a connection with `ctx`.
async fn tickets_from(ctx: &TlsContext) -> usize {
    let counter = Arc::new(TicketCounter::default());
    let mut config = client_config_insecure_for_tests();
    config.resumption = rustls::client::Resumption::store(counter.clone());
    let (mut server, mut client, _) = pair_on(ctx, config, b"", 64 * 1024).await;
    // A round trip after the handshake: tickets, had there been any, arrived before it.
    let data = pattern(10);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    assert_eq!(transfer(&mut client, &mut server, &data).await, data);
    counter.0.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn one_session_ticket_per_handshake_when_on() {
    let dir = tempfile::tempdir().unwrap();
    // An ECDSA certificate only: off unless asked for (decision 0012).
    let ctx = context(&dir);
    assert!(!ctx.session_tickets());
    assert_eq!(tickets_from(&ctx).await, 0);
    let ctx = ctx.with_session_tickets(true);
    assert!(ctx.session_tickets());
    assert_eq!(tickets_from(&ctx).await, 1);
    let ctx = ctx.with_session_tickets(false);
    assert_eq!(tickets_from(&ctx).await, 0);
}

/// A client that comes back with its ticket resumes (no certificate, no signature), goes
/// compact like a full handshake, and its data, channel bindings and buffers are as after one.
#[tokio::test]
async fn a_resumed_connection_goes_compact_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&dir).with_session_tickets(true);
    let mut config = client_config_insecure_for_tests();
    config.resumption = rustls::client::Resumption::in_memory_sessions(8);
    let config = Arc::new(config);

    let (mut server, mut client, first) = pair_on(&ctx, (*config).clone(), b"", 64 * 1024).await;
    assert_eq!(
        client.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    // The ticket arrives with the first data after the handshake.
    let data = pattern(10);
    assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    assert!(server.is_compact());
    idle_holds_nothing(&mut server);
    drop((server, client));

    // Bytes with the client's Finished too: the resumed hand-over must not lose them either.
    let (mut server, mut client, bindings) =
        pair_on(&ctx, (*config).clone(), b"<stream:stream>", 64 * 1024).await;
    assert_eq!(
        client.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    assert!(server.is_compact());
    let mut early = [0u8; 15];
    server.read_exact(&mut early).await.unwrap();
    assert_eq!(&early, b"<stream:stream>");
    let expected = client
        .get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap();
    assert_eq!(bindings.exporter.as_deref(), Some(&expected[..]));
    assert_ne!(bindings.exporter, first.exporter);
    // No certificate was sent, but the binding names the one the ticket's session was made
    // with (one host, one certificate here).
    assert!(bindings.server_end_point.is_some());
    assert_eq!(bindings.server_end_point, first.server_end_point);
    for len in [1, 16 * 1024 + 1, 100_000] {
        let data = pattern(len);
        assert_eq!(transfer(&mut client, &mut server, &data).await, data);
        assert_eq!(transfer(&mut server, &mut client, &data).await, data);
    }
    idle_holds_nothing(&mut server);

    // Another server process (another ticket key) cannot use the ticket: a full handshake.
    let other_dir = tempfile::tempdir().unwrap();
    let other = context(&other_dir).with_session_tickets(true);
    let (_s, client, _) = pair_on(&other, (*config).clone(), b"", 64 * 1024).await;
    assert_eq!(
        client.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
}
