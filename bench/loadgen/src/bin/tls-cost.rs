//! tls-cost: the server side's CPU time of TLS 1.3 handshakes and of the primitives in them,
//! natively (valgrind hides the CPU's ADX/BMI2 from ring, so instruction counts under callgrind
//! over-weight elliptic-curve arithmetic). Client and server run in this process over memory
//! buffers; only the server's calls are timed, with the thread's CPU clock, so other work on a
//! shared machine inflates the figures far less than wall time would. Each figure is the median
//! of `--rounds` batches of `--n` operations, in microseconds per operation.
//!
//!   tls-cost --ecdsa CERT KEY --rsa CERT KEY [--n 200] [--rounds 7]
//!
//! The server is configured as Rookery's client-facing TLS (ring, TLS 1.3, its default suite
//! order, key log on); the client is rustls with ring, X25519 first (rustls' default).

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::ring::{Ticketer, default_provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Median over `rounds` batches of the mean µs per operation; `op` returns the ns it spent on
/// what is measured.
fn measure(n: usize, rounds: usize, mut op: impl FnMut() -> u64) -> f64 {
    let mut per: Vec<f64> = (0..rounds)
        .map(|_| (0..n).map(|_| op()).sum::<u64>() as f64 / n as f64 / 1000.0)
        .collect();
    per.sort_by(f64::total_cmp);
    per[rounds / 2]
}

fn timed(f: impl FnOnce()) -> u64 {
    let t = cpu_ns();
    f();
    cpu_ns() - t
}

struct KeyLog;
impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLog")
    }
}
impl rustls::KeyLog for KeyLog {
    fn log(&self, _label: &str, _client_random: &[u8], secret: &[u8]) {
        std::hint::black_box(secret);
    }
}

fn server_config(cert: &str, key: &str, tickets: usize) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert file")
        .collect::<Result<_, _>>()
        .expect("cert pem");
    let key = PrivateKeyDer::from_pem_file(key).expect("key pem");
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("cert and key");
    cfg.ignore_client_order = true;
    cfg.enable_secret_extraction = true;
    cfg.key_log = Arc::new(KeyLog);
    cfg.send_tls13_tickets = tickets;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    if tickets > 0 {
        cfg.ticketer = Ticketer::new().expect("ticketer");
    }
    Arc::new(cfg)
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(resume: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    if !resume {
        cfg.resumption = Resumption::disabled();
    }
    Arc::new(cfg)
}

/// One handshake (plus the tickets the server sends, read by the client); returns the server's
/// CPU ns and whether it resumed.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> (u64, bool) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let mut buf = Vec::with_capacity(8192);
    let mut spent = 0;
    let mut s = None;
    loop {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client write");
        }
        let server_conn = s.get_or_insert_with(|| {
            let mut conn = None;
            spent += timed(|| conn = Some(ServerConnection::new(server.clone()).expect("server")));
            conn.expect("made above")
        });
        let mut out = Vec::with_capacity(8192);
        spent += timed(|| {
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server_conn.read_tls(&mut rd).expect("server read");
                server_conn.process_new_packets().expect("server process");
            }
            while server_conn.wants_write() {
                server_conn.write_tls(&mut out).expect("server write");
            }
        });
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).expect("client read");
            c.process_new_packets().expect("client process");
        }
        if !c.is_handshaking() && !server_conn.is_handshaking() && !c.wants_write() {
            let resumed = server_conn.handshake_kind() == Some(HandshakeKind::Resumed);
            // What Rookery does next: the secrets leave rustls for its record layer.
            let conn = s.take().expect("present");
            spent += timed(|| {
                std::hint::black_box(conn.dangerous_extract_secrets().expect("secrets"));
            });
            return (spent, resumed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, i: usize| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|p| args.get(p + 1 + i).cloned())
    };
    let n: usize = arg("--n", 0).map_or(200, |v| v.parse().expect("--n"));
    let rounds: usize = arg("--rounds", 0).map_or(7, |v| v.parse().expect("--rounds"));
    let (Some(ec_cert), Some(ec_key), Some(rsa_cert), Some(rsa_key)) = (
        arg("--ecdsa", 0),
        arg("--ecdsa", 1),
        arg("--rsa", 0),
        arg("--rsa", 1),
    ) else {
        eprintln!("usage: tls-cost --ecdsa CERT KEY --rsa CERT KEY [--n 200] [--rounds 7]");
        std::process::exit(2);
    };
    let line = |what: &str, us: f64| println!("{{\"what\":\"{what}\",\"us\":{us:.1}}}");

    // Primitives, through rustls' own signer (what a handshake calls).
    let provider = default_provider();
    for (what, key) in [
        ("sign ecdsa-p256", &ec_key),
        ("sign rsa-2048-pss", &rsa_key),
    ] {
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::from_pem_file(key).expect("key"))
            .expect("key");
        let signer = key
            .choose_scheme(&[
                rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
                rustls::SignatureScheme::RSA_PSS_SHA256,
            ])
            .expect("scheme");
        let msg = [7u8; 130];
        line(
            what,
            measure(n, rounds, || {
                timed(|| drop(signer.sign(&msg).expect("sign")))
            }),
        );
    }
    let x25519 = provider.kx_groups[0];
    let peer = x25519.start().expect("kx");
    line(
        &format!("key exchange {:?} (key pair + agreement)", x25519.name()),
        measure(n, rounds, || {
            timed(|| {
                let kx = x25519.start().expect("kx");
                drop(kx.complete(peer.pub_key()).expect("agree"));
            })
        }),
    );
    let ticketer = Ticketer::new().expect("ticketer");
    let plain = [5u8; 110];
    line(
        "ticket encrypt",
        measure(n, rounds, || {
            timed(|| drop(ticketer.encrypt(&plain).expect("seal")))
        }),
    );

    // Handshakes, server side.
    let full = client_config(false);
    for (cert_kind, cert, key) in [("ecdsa", &ec_cert, &ec_key), ("rsa", &rsa_cert, &rsa_key)] {
        for tickets in [0, 1, 2] {
            let server = server_config(cert, key, tickets);
            let us = measure(n, rounds, || handshake(&server, &full).0);
            line(
                &format!("handshake full {cert_kind}, {tickets} tickets"),
                us,
            );
        }
        let server = server_config(cert, key, 1);
        let resuming = client_config(true);
        let mut resumed = 0;
        let mut total = 0;
        let us = measure(n, rounds, || {
            let (ns, r) = handshake(&server, &resuming);
            total += 1;
            resumed += usize::from(r);
            ns
        });
        line(
            &format!("handshake resumed {cert_kind} cert, 1 ticket ({resumed} of {total} resumed)"),
            us,
        );
    }
}
