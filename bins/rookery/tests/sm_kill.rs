//! XEP-0198 across `kill -9`: the `rookery` binary is killed at seeded points while one
//! stream-managed client sends bursts of messages to another (six rounds of 100 to 350, over
//! a thousand in all), then started again on the same
//! data; both clients resume their sessions (`<resume/>`), the sender sends again what the
//! server had not acknowledged (XEP-0198 §5), and in the end the recipient has every message
//! exactly once, in order. Run with `ROOKERY_TEST_SEED=n` to replay a failing seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rookery_proto::ns;
use rookery_testkit::net::{Ev, RawPeer, c2s};
use rookery_xml::Element;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PASSWORD: &str = "kill-test-password";
const ROUNDS: usize = 6;

/// xorshift64*: the kill points, reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn rookery() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rookery"))
}

/// A server process, killed when dropped (a failing test leaves none behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rookery serve` on `dir`'s config; the process and its c2s address.
async fn serve(dir: &Path) -> (Proc, SocketAddr) {
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let child = Proc(
        rookery()
            .arg("serve")
            .arg("--config")
            .arg(dir.join("rookery.toml"))
            .arg("--ready-file")
            .arg(&ready)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("server.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    );
    // The ready file appears once every listener is bound (no event to await across
    // processes: poll it).
    for _ in 0..1000 {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("c2s "))
                .and_then(|a| a.trim().parse().ok())
        {
            return (child, addr);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "server did not start: {}",
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
}

fn kill(mut p: Proc) {
    // SIGKILL: no shutdown path runs.
    p.0.kill().unwrap();
    p.0.wait().unwrap();
}

/// An authenticated stream, restarted, not bound.
async fn authenticated(addr: SocketAddr, user: &str) -> RawPeer {
    c2s::authenticate_plain(addr, "localhost", user, PASSWORD).await
}

/// A stream-managed client as XEP-0198 asks a client to behave: it counts what it receives
/// (its `h`), keeps what it sent until the server acknowledges it, and after a resumption
/// sends again what the server's `h` does not cover.
struct SmClient {
    peer: RawPeer,
    id: String,
    /// Stanzas received (XEP-0198 `h`, client side).
    received: u32,
    /// Stanzas handled by the server according to its last `<a/>` or `<resumed/>`.
    acked: u32,
    /// Sent and not acknowledged, oldest first.
    unacked: VecDeque<String>,
}

impl SmClient {
    async fn login(addr: SocketAddr, user: &str, resource: &str) -> SmClient {
        let mut peer = authenticated(addr, user).await;
        peer.raw(&format!(
            "<iq type='set' id='bind'><bind xmlns='{}'><resource>{resource}</resource></bind></iq>",
            ns::BIND
        ))
        .await;
        assert_eq!(peer.element(10).await.attr("type"), Some("result"));
        peer.raw(&format!("<enable xmlns='{}' resume='true'/>", ns::SM))
            .await;
        let e = peer.element(10).await;
        assert!(e.is("enabled", ns::SM), "{}", e.to_xml());
        SmClient {
            peer,
            id: e.attr("id").unwrap().to_owned(),
            received: 0,
            acked: 0,
            unacked: VecDeque::new(),
        }
    }

    /// Resumes on a new connection and sends again what the server did not have.
    async fn resume(&mut self, addr: SocketAddr, user: &str) {
        self.peer = authenticated(addr, user).await;
        self.peer
            .raw(&format!(
                "<resume xmlns='{}' previd='{}' h='{}'/>",
                ns::SM,
                self.id,
                self.received
            ))
            .await;
        let r = self.peer.element(10).await;
        assert!(r.is("resumed", ns::SM), "{user}: {}", r.to_xml());
        self.on_ack(r.attr("h").unwrap().parse().unwrap());
        eprintln!(
            "{user} resumed: h {} from the server, {} to send again, {} received",
            self.acked,
            self.unacked.len(),
            self.received
        );
        let again: Vec<String> = self.unacked.iter().cloned().collect();
        for xml in again {
            self.peer.raw(&xml).await;
        }
    }

    fn on_ack(&mut self, h: u32) {
        let newly = h.wrapping_sub(self.acked) as usize;
        assert!(
            newly <= self.unacked.len(),
            "server acked {h}, sent {}",
            self.acked as usize + self.unacked.len()
        );
        self.unacked.drain(..newly);
        self.acked = h;
    }

    async fn send(&mut self, xml: String) {
        self.peer.raw(&xml).await;
        self.unacked.push_back(xml);
    }

    /// The next stanza within `d` (SM elements handled on the way), if any.
    async fn next_stanza(&mut self, d: Duration) -> Option<Element> {
        loop {
            match self.peer.next_within(d).await? {
                Ev::El(e) if e.is("a", ns::SM) => {
                    self.on_ack(e.attr("h").unwrap().parse().unwrap())
                }
                // Answered only when the test says so (`ack`), to keep stanzas unacknowledged.
                Ev::El(e) if e.is("r", ns::SM) => {}
                Ev::El(e) => {
                    self.received += 1;
                    return Some(e);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    async fn ack(&mut self) {
        self.peer
            .raw(&format!("<a xmlns='{}' h='{}'/>", ns::SM, self.received))
            .await;
    }
}

/// Writes the config (`storage`: extra sections, e.g. PostgreSQL's) and creates the accounts.
fn config(dir: &Path, storage: &str) {
    std::fs::write(
        dir.join("rookery.toml"),
        format!(
            "[server]\ndata_dir = \"data\"\n[s2s]\nenabled = false\n\
             [c2s]\nrequire_encryption = false\nallow_plain_unencrypted = true\n\
             sm_max_unacked = 5000\n\
             [[host]]\ndomain = \"localhost\"\n\
             [[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"c2s\"\n{storage}"
        ),
    )
    .unwrap();
    for user in ["romeo", "juliet"] {
        let out = rookery()
            .args([
                "user",
                "add",
                &format!("{user}@localhost"),
                "--password",
                PASSWORD,
            ])
            .arg("--config")
            .arg(dir.join("rookery.toml"))
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_once_in_order_across_kills_on_sqlite() {
    across_kills("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_once_in_order_across_kills_on_postgres() {
    let Some(schema) = rookery_store::testing::PgTestSchema::create().await else {
        return;
    };
    let opts = schema.options();
    across_kills(&format!(
        "[storage]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = 4\n",
        opts.url, opts.schema
    ))
    .await;
}

/// The scenario, on the storage `storage` configures.
async fn across_kills(storage: &str) {
    let seed: u64 = std::env::var("ROOKERY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("seed {seed}");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    // ROOKERY_TEST_KEEP=dir keeps the server's data and log there for a look afterwards.
    let dir = match std::env::var_os("ROOKERY_TEST_KEEP") {
        Some(d) => {
            let d = std::path::PathBuf::from(d);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.path().to_path_buf(),
    };
    let dir = dir.as_path();
    config(dir, storage);
    let (mut child, mut addr) = serve(dir).await;
    let mut juliet = SmClient::login(addr, "juliet", "balcony").await;
    let mut romeo = SmClient::login(addr, "romeo", "r").await;
    let mut next = 1u32;
    let mut got: Vec<u32> = Vec::new();

    for round in 0..ROUNDS {
        // She acknowledges what she has; this round's messages stay unacknowledged until the
        // kill, so they live in her outbox only.
        juliet.ack().await;
        let n = 100 + rng.below(250) as u32;
        let read_before_kill = rng.below(u64::from(n) + 1) as usize;
        for _ in 0..n {
            let xml = format!(
                "<message to='juliet@localhost/balcony' id='m{next}' type='chat'><body>{next}</body></message>"
            );
            romeo.send(xml).await;
            next += 1;
            if next.is_multiple_of(4) {
                romeo.peer.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
            }
        }
        for _ in 0..read_before_kill {
            let Some(e) = juliet.next_stanza(Duration::from_secs(10)).await else {
                panic!("round {round}: message missing before the kill");
            };
            got.push(id_of(&e));
        }
        // Every other round on average, the kill waits until the server acknowledged part of
        // the round to romeo: what it acknowledged must survive.
        if rng.below(2) == 0 {
            let target = romeo.acked + rng.below(u64::from(n) / 2 + 1) as u32;
            romeo.peer.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
            while (romeo.acked.wrapping_sub(target) as i32) < 0 {
                match romeo.peer.next_within(Duration::from_secs(10)).await {
                    Some(Ev::El(e)) if e.is("a", ns::SM) => {
                        romeo.on_ack(e.attr("h").unwrap().parse().unwrap())
                    }
                    Some(_) => {}
                    None => panic!("round {round}: no acknowledgement up to {target}"),
                }
            }
        }
        eprintln!(
            "round {round}: sent {n}, read {read_before_kill}, romeo acked {}, killing",
            romeo.acked
        );
        kill(child);
        (child, addr) = serve(dir).await;
        juliet.resume(addr, "juliet").await;
        romeo.resume(addr, "romeo").await;
    }

    // Everything romeo sent is acknowledged by the server in the end...
    romeo.peer.raw(&format!("<r xmlns='{}'/>", ns::SM)).await;
    while !romeo.unacked.is_empty() {
        match romeo.peer.next_within(Duration::from_secs(10)).await {
            Some(Ev::El(e)) if e.is("a", ns::SM) => {
                romeo.on_ack(e.attr("h").unwrap().parse().unwrap())
            }
            Some(_) => {}
            None => panic!("server never acknowledged {:?}", romeo.unacked),
        }
    }
    // ...and juliet has all of it, once, in order: after the last one comes the answer to a
    // ping sent now, nothing else.
    juliet
        .peer
        .raw("<iq type='get' id='end' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    loop {
        let e = juliet
            .next_stanza(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("seed {seed}: stalled after {got:?}"));
        if e.name() == "iq" {
            assert_eq!(e.attr("id"), Some("end"));
            break;
        }
        got.push(id_of(&e));
    }
    let want: Vec<u32> = (1..next).collect();
    assert_eq!(got, want, "seed {seed}");
    kill(child);
}

fn id_of(e: &Element) -> u32 {
    assert_eq!(e.name(), "message", "{}", e.to_xml());
    e.attr("id").unwrap()[1..].parse().unwrap()
}
