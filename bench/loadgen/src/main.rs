//! rookery-loadgen: c2s load generator for bench/run.sh.
//!
//! Connects only to the address given (run.sh passes a loopback address), every scenario is
//! bounded in count and time, and each scenario prints one JSON line on stdout.
//!
//!   rookery-loadgen --server NAME --addr 127.0.0.1:PORT --pid SERVER_PID \
//!       [--domain localhost] [--user-prefix u] [--password P] [--accounts 2000] \
//!       [--mech scram|plain] [--threads 2] [--scenarios idle,login,messages,latency] \
//!       [--idle 2000] [--idle-conc 50] [--idle-settle 3] \
//!       [--login-seq 500] [--login-conc 50] [--login-total 3000] [--login-pool 200] \
//!       [--login-time 30] [--pairs 50] [--window 10] [--duration 20]

mod stats;
mod xmpp;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsConnector;

use stats::{jstr, num, pct_ms, sample};
use xmpp::{Event, KeyCache, LoginParams, Mech, Session, attr, child_text, send, tag_name};

struct Opts {
    server: String,
    addr: String,
    domain: String,
    pid: u32,
    /// Index of this process's first idle connection (several processes share accounts).
    first: usize,
    /// Allow more idle connections than accounts (distinct resources).
    idle_multi: bool,
    /// Connection-manager processes in front of the server (their CPU and memory are reported
    /// next to the server's).
    cm_pids: Vec<u32>,
    prefix: String,
    password: String,
    accounts: usize,
    mech: Mech,
    scenarios: Vec<String>,
    idle: usize,
    idle_conc: usize,
    idle_settle: u64,
    login_seq: usize,
    login_conc: usize,
    login_total: usize,
    login_pool: usize,
    login_time: u64,
    pairs: usize,
    window: usize,
    duration: u64,
}

/// Time allowed for the idle connect phase: 120 s, more for very large runs (20 logins/s
/// at the least, for a machine that is busy with other work).
fn n_connect_limit(k: usize) -> u64 {
    120.max(k as u64 / 20)
}

fn parse_args() -> (Opts, usize) {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(k) = k.strip_prefix("--") else {
            eprintln!("unexpected argument {k}");
            std::process::exit(2);
        };
        let Some(v) = it.next() else {
            eprintln!("--{k} needs a value");
            std::process::exit(2);
        };
        m.insert(k.to_string(), v);
    }
    let s = |k: &str, d: &str| m.get(k).cloned().unwrap_or_else(|| d.to_string());
    let n = |k: &str, d: usize| -> usize {
        m.get(k)
            .map(|v| v.parse().unwrap_or_else(|_| panic!("--{k}: not a number")))
            .unwrap_or(d)
    };
    let Some(addr) = m.get("addr").cloned() else {
        eprintln!("--addr HOST:PORT is required");
        std::process::exit(2);
    };
    let opts = Opts {
        server: s("server", "server"),
        addr,
        domain: s("domain", "localhost"),
        pid: n("pid", 0) as u32,
        first: n("first", 0),
        idle_multi: s("idle-multi", "no") == "yes",
        cm_pids: s("cm-pids", "")
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().unwrap_or_else(|_| panic!("--cm-pids: not a pid list")))
            .collect(),
        prefix: s("user-prefix", "u"),
        password: s("password", "bench-pass-1"),
        accounts: n("accounts", 2000),
        mech: if s("mech", "scram") == "plain" {
            Mech::Plain
        } else {
            Mech::ScramSha1
        },
        scenarios: s("scenarios", "idle,login,messages")
            .split(',')
            .map(str::to_string)
            .collect(),
        idle: n("idle", 2000),
        idle_conc: n("idle-conc", 50),
        idle_settle: n("idle-settle", 3) as u64,
        login_seq: n("login-seq", 500),
        login_conc: n("login-conc", 50),
        login_total: n("login-total", 3000),
        login_pool: n("login-pool", 200),
        login_time: n("login-time", 30) as u64,
        pairs: n("pairs", 50),
        window: n("window", 10),
        duration: n("duration", 20) as u64,
    };
    (opts, n("threads", 2))
}

fn main() {
    let (opts, threads) = parse_args();
    let _ = CM_PIDS.set(opts.cm_pids.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(Arc::new(opts)));
}

struct Ctx {
    o: Arc<Opts>,
    tls: TlsConnector,
    keys: KeyCache,
}

impl Ctx {
    fn user(&self, i: usize) -> String {
        format!("{}{}", self.o.prefix, i % self.o.accounts)
    }

    async fn login(&self, i: usize, resource: &str) -> xmpp::Result<Session> {
        let user = self.user(i);
        let p = LoginParams {
            // Several addresses (comma-separated): connection i goes to the (i mod n)-th, so
            // clients spread evenly over several connection managers.
            addr: self.o.addr.split(',').nth(i % self.o.addr.split(',').count()).unwrap_or(&self.o.addr),
            domain: &self.o.domain,
            user: &user,
            password: &self.o.password,
            resource,
            mech: self.o.mech,
            tls: &self.tls,
            keys: &self.keys,
        };
        xmpp::login(&p).await
    }
}

async fn run(o: Arc<Opts>) {
    let ctx = Arc::new(Ctx {
        o: o.clone(),
        tls: xmpp::tls_connector(),
        keys: KeyCache::default(),
    });
    for sc in &o.scenarios {
        match sc.as_str() {
            "idle" => idle(&ctx).await,
            "login" => login(&ctx).await,
            "messages" => messages(&ctx, "messages", o.pairs, o.window, o.duration).await,
            // One pair, one message in flight: latency without load.
            "latency" => messages(&ctx, "latency", 1, 1, o.duration.min(10)).await,
            other => eprintln!("unknown scenario {other}"),
        }
    }
}

/// The fields every line carries: server CPU time and memory over the scenario, our own CPU.
struct Span {
    t0: Instant,
    srv0: stats::ProcSample,
    me0: stats::ProcSample,
    cm0: (u64, f64),
}

/// Summed RSS (KiB) and CPU seconds of the connection managers.
fn cm_sample(pids: &[u32]) -> (u64, f64) {
    pids.iter().fold((0, 0.0), |(r, c), p| {
        let s = sample(*p);
        (r + s.rss_kb, c + s.cpu_s)
    })
}

static CM_PIDS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
fn cm_pids() -> &'static [u32] {
    CM_PIDS.get().map(Vec::as_slice).unwrap_or(&[])
}

impl Span {
    fn start(pid: u32) -> Span {
        Span {
            t0: Instant::now(),
            srv0: sample(pid),
            me0: sample(0),
            cm0: cm_sample(cm_pids()),
        }
    }

    fn fields(&self, pid: u32) -> String {
        let srv = sample(pid);
        let me = sample(0);
        let cm = cm_sample(cm_pids());
        format!(
            "\"cm_cpu_s\":{},\"cm_rss_kb_before\":{},\"cm_rss_kb_after\":{},\
             \"wall_s\":{},\"server_cpu_s\":{},\"client_cpu_s\":{},\"server_rss_kb_before\":{},\
             \"server_rss_kb_after\":{},\"server_hwm_kb\":{}",
            num(cm.1 - self.cm0.1),
            self.cm0.0,
            cm.0,
            num(self.t0.elapsed().as_secs_f64()),
            num(srv.cpu_s - self.srv0.cpu_s),
            num(me.cpu_s - self.me0.cpu_s),
            self.srv0.rss_kb,
            srv.rss_kb,
            srv.hwm_kb
        )
    }
}

#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Errors {
    fn add(&self, e: impl std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().expect("errors");
        if f.is_none() {
            *f = Some(e.to_string());
        }
    }

    fn fields(&self) -> String {
        let f = self
            .first
            .lock()
            .expect("errors")
            .clone()
            .unwrap_or_default();
        format!(
            "\"errors\":{},\"first_error\":{}",
            self.count.load(Ordering::Relaxed),
            jstr(&f)
        )
    }
}

// ---------------------------------------------------------------------------------------------
// login: N sequential, then C concurrent clients doing M logins in all (bounded by time).

async fn login(ctx: &Arc<Ctx>) {
    let o = &ctx.o;
    let pool = o.login_pool.min(o.accounts).max(1);
    // Warm-up (not measured): log every pool account in once, so the client has its SCRAM keys
    // cached and the server has touched each account once.
    run_logins(
        ctx,
        o.login_conc.max(1),
        pool,
        0,
        Duration::from_secs(o.login_time),
        pool,
    )
    .await;

    // Sequential.
    let span = Span::start(o.pid);
    let (lat, errs) = run_logins(
        ctx,
        1,
        o.login_seq,
        0,
        Duration::from_secs(o.login_time),
        pool,
    )
    .await;
    print_login(ctx, "sequential", 1, o.login_seq, &span, lat, &errs);

    // Concurrent.
    let span = Span::start(o.pid);
    let (lat, errs) = run_logins(
        ctx,
        o.login_conc,
        o.login_total,
        0,
        Duration::from_secs(o.login_time),
        pool,
    )
    .await;
    print_login(
        ctx,
        "concurrent",
        o.login_conc,
        o.login_total,
        &span,
        lat,
        &errs,
    );
}

fn print_login(
    ctx: &Ctx,
    mode: &str,
    conc: usize,
    target: usize,
    span: &Span,
    mut lat: Vec<u64>,
    errs: &Errors,
) {
    lat.sort_unstable();
    let wall = span.t0.elapsed().as_secs_f64();
    println!(
        "{{\"scenario\":\"login\",\"server\":{},\"mode\":\"{mode}\",\"concurrency\":{conc},\"target\":{target},\
         \"ok\":{},\"logins_per_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},{},{}}}",
        jstr(&ctx.o.server),
        lat.len(),
        num(lat.len() as f64 / wall),
        num(pct_ms(&lat, 50.0)),
        num(pct_ms(&lat, 99.0)),
        num(pct_ms(&lat, 100.0)),
        errs.fields(),
        span.fields(ctx.o.pid)
    );
}

/// `total` logins (each logged in then closed) by `conc` workers, accounts `i % pool`.
async fn run_logins(
    ctx: &Arc<Ctx>,
    conc: usize,
    total: usize,
    offset: usize,
    limit: Duration,
    pool: usize,
) -> (Vec<u64>, Errors) {
    let next = Arc::new(AtomicU64::new(0));
    let errs = Arc::new(Errors::default());
    let deadline = Instant::now() + limit;
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let ctx = ctx.clone();
        let next = next.clone();
        let errs = errs.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let left = deadline.saturating_duration_since(t0);
                let res =
                    tokio::time::timeout(left, ctx.login(offset + i % pool, &format!("l{i}")))
                        .await;
                match res {
                    Ok(Ok(mut s)) => {
                        lat.push(t0.elapsed().as_nanos() as u64);
                        xmpp::quit(&mut s).await;
                    }
                    Ok(Err(e)) => errs.add(e),
                    Err(_) => errs.add("timed out (scenario time limit)"),
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            all.extend(l);
        }
    }
    let errs = Arc::try_unwrap(errs).unwrap_or_default();
    (all, errs)
}

// ---------------------------------------------------------------------------------------------
// idle: K authenticated, available (initial presence sent) connections doing nothing; server
// RSS before and after gives the memory per connection.

async fn idle(ctx: &Arc<Ctx>) {
    let o = &ctx.o;
    // With several resources per account (--first, scale runs) K may exceed the accounts.
    let k = if o.first > 0 || o.idle_multi { o.idle } else { o.idle.min(o.accounts) };
    // A few logins first, so one-time lazy initialisation is not charged to the connections.
    run_logins(ctx, 1, 20, 0, Duration::from_secs(30), 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let span = Span::start(o.pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let errs = Arc::new(Errors::default());
    let sem = Arc::new(Semaphore::new(o.idle_conc.max(1)));
    let deadline = Instant::now() + Duration::from_secs(n_connect_limit(o.idle));
    let mut tasks = Vec::new();
    let connected = Arc::new(AtomicU64::new(0));
    let o_first = o.first;
    for i in 0..k {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        if Instant::now() >= deadline {
            errs.add("idle: connect phase time limit reached");
            break;
        }
        let ctx = ctx.clone();
        let errs = errs.clone();
        let connected = connected.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            // A resource per connection: with --first and more connections than accounts,
            // several processes can hold many sessions of the same accounts without conflicts.
            let resource = format!("idle{}", o_first + i);
            let res = tokio::time::timeout(Duration::from_secs(30), ctx.login(o_first + i, &resource)).await;
            let mut s = match res {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return errs.add(e),
                Err(_) => return errs.add("login timed out"),
            };
            if let Err(e) = send(&mut s.stream, b"<presence/>").await {
                return errs.add(e);
            }
            connected.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    ev = s.framer.next(&mut s.stream) => match ev {
                        Ok(Event::Element(el)) => {
                            if let Some(reply) = xmpp::iq_reply(&el)
                                && send(&mut s.stream, reply.as_bytes()).await.is_err()
                            {
                                return errs.add("write failed while idle");
                            }
                        }
                        Ok(_) => return errs.add("stream closed while idle"),
                        Err(e) => return errs.add(format!("while idle: {e}")),
                    },
                }
            }
            xmpp::close(&mut s, Duration::from_secs(5)).await;
        }));
    }
    // Wait for the last logins to finish.
    let _ = sem.acquire_many(o.idle_conc.max(1) as u32).await;
    let connect_s = span.t0.elapsed().as_secs_f64();
    // For scripts that run several load generators and sample the server while all hold.
    eprintln!("idle: connected {}", connected.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(o.idle_settle)).await;
    let during = sample(o.pid);
    let cm_during = cm_sample(cm_pids());
    let n = connected.load(Ordering::Relaxed);
    let per_conn = if n > 0 {
        (during.rss_kb as f64 - span.srv0.rss_kb as f64) / n as f64
    } else {
        f64::NAN
    };
    let cm_per_conn = if n > 0 && !cm_pids().is_empty() {
        (cm_during.0 as f64 - span.cm0.0 as f64) / n as f64
    } else {
        f64::NAN
    };
    let fields = span.fields(o.pid);
    // Close them all, then see how much the server gives back.
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = sample(o.pid);
    println!(
        "{{\"scenario\":\"idle\",\"server\":{},\"target\":{k},\"connected\":{n},\"connect_s\":{},\
         \"server_rss_kb_idle\":{},\"rss_kb_per_conn\":{},\"cm_rss_kb_per_conn\":{},\"server_rss_kb_after_close\":{},{},{}}}",
        jstr(&o.server),
        num(connect_s),
        during.rss_kb,
        num(per_conn),
        num(cm_per_conn),
        after_close.rss_kb,
        errs.fields(),
        fields
    );
}

// ---------------------------------------------------------------------------------------------
// messages: P pairs; each user sends to its partner's full JID with at most W messages in
// flight, for T seconds; latency from the timestamp in the body; then every message sent must
// have arrived, in order.

struct Direction {
    /// Free slots in the window (the receiver returns one per message that arrives).
    window: Semaphore,
    sent: AtomicU64,
    received: AtomicU64,
    out_of_order: AtomicU64,
}

async fn messages(ctx: &Arc<Ctx>, label: &str, pairs: usize, window: usize, duration: u64) {
    let o = &ctx.o;
    let p = pairs.min(o.accounts / 2).max(1);
    let errs = Arc::new(Errors::default());
    // Log in 2P users (not measured).
    let sem = Arc::new(Semaphore::new(50));
    let mut logins = Vec::new();
    for i in 0..2 * p {
        let ctx = ctx.clone();
        let sem = sem.clone();
        logins.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let mut s = tokio::time::timeout(Duration::from_secs(30), ctx.login(i, "msg"))
                .await
                .map_err(|_| xmpp::Error("login timed out".into()))??;
            send(&mut s.stream, b"<presence/>").await?;
            Ok::<Session, xmpp::Error>(s)
        }));
    }
    let mut sessions = Vec::new();
    for l in logins {
        match l.await {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => errs.add(e),
            Err(e) => errs.add(e),
        }
    }
    if sessions.len() != 2 * p {
        println!(
            "{{\"scenario\":\"{label}\",\"server\":{},\"pairs\":{p},\"skipped\":\"not every user logged in\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }
    let jids: Vec<String> = sessions.iter().map(|s| s.jid.clone()).collect();
    // dirs[i] carries messages from user i to its partner i ^ 1.
    let dirs: Vec<Arc<Direction>> = (0..2 * p)
        .map(|_| {
            Arc::new(Direction {
                window: Semaphore::new(window.max(1)),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                out_of_order: AtomicU64::new(0),
            })
        })
        .collect();
    // Let presence broadcasts settle before the clock starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let base = Instant::now();
    let dur = Duration::from_secs(duration);
    let stop_at = base + dur;
    let done = Arc::new(AtomicBool::new(false));
    let span = Span::start(o.pid);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (i, s) in sessions.into_iter().enumerate() {
        let Session {
            stream, mut framer, ..
        } = s;
        let (mut rd, mut wr) = tokio::io::split(stream);
        // Reader: messages from the partner (direction i ^ 1).
        let inbound = dirs[i ^ 1].clone();
        let errs_r = errs.clone();
        let done_r = done.clone();
        readers.push(tokio::spawn(async move {
            let mut lat: Vec<u64> = Vec::with_capacity(1 << 16);
            let mut in_window = 0u64;
            let mut expect = 0u64;
            loop {
                let el = match framer.next(&mut rd).await {
                    Ok(Event::Element(el)) => el,
                    Ok(_) => {
                        if !done_r.load(Ordering::Relaxed) {
                            errs_r.add("stream closed during messages");
                        }
                        break;
                    }
                    Err(e) => {
                        if !done_r.load(Ordering::Relaxed) {
                            errs_r.add(e);
                        }
                        break;
                    }
                };
                if tag_name(&el) != b"message" {
                    continue;
                }
                if attr(&el, "type") == Some(b"error") {
                    errs_r.add(format!("error message: {}", String::from_utf8_lossy(&el)));
                    continue;
                }
                let Some(body) = child_text(&el, "body") else {
                    continue;
                };
                let now = base.elapsed().as_nanos() as u64;
                let body = std::str::from_utf8(body).unwrap_or("");
                let mut t = None;
                let mut seq = None;
                for part in body.split(' ') {
                    if let Some(v) = part.strip_prefix('t') {
                        t = v.parse::<u64>().ok();
                    } else if let Some(v) = part.strip_prefix('s') {
                        seq = v.parse::<u64>().ok();
                    }
                }
                let (Some(t), Some(seq)) = (t, seq) else {
                    continue;
                };
                if seq != expect {
                    inbound.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
                expect = seq + 1;
                lat.push(now.saturating_sub(t));
                if now <= dur.as_nanos() as u64 {
                    in_window += 1;
                }
                inbound.received.fetch_add(1, Ordering::Relaxed);
                inbound.window.add_permits(1);
            }
            (lat, in_window)
        }));
        // Sender: to the partner's full JID.
        let outbound = dirs[i].clone();
        let to = jids[i ^ 1].clone();
        let errs_s = errs.clone();
        senders.push(tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                let left = stop_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, outbound.window.acquire()).await {
                    Ok(Ok(permit)) => permit.forget(),
                    _ => break,
                }
                let t = base.elapsed().as_nanos() as u64;
                let msg = format!(
                    "<message to='{to}' type='chat' id='m{seq}'><body>t{t} s{seq}</body></message>"
                );
                if let Err(e) = send(&mut wr, msg.as_bytes()).await {
                    errs_s.add(e);
                    break;
                }
                seq += 1;
                outbound.sent.fetch_add(1, Ordering::Relaxed);
            }
            wr
        }));
    }
    let mut writers = Vec::new();
    for s in senders {
        if let Ok(w) = s.await {
            writers.push(w);
        }
    }
    let send_wall = base.elapsed().as_secs_f64();
    let fields_at_stop = span.fields(o.pid);
    // Drain: everything sent must arrive (10 s at most).
    let drain_until = Instant::now() + Duration::from_secs(10);
    loop {
        let pending: u64 = dirs
            .iter()
            .map(|d| {
                d.sent
                    .load(Ordering::Relaxed)
                    .saturating_sub(d.received.load(Ordering::Relaxed))
            })
            .sum();
        if pending == 0 || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::Relaxed);
    let sent: u64 = dirs.iter().map(|d| d.sent.load(Ordering::Relaxed)).sum();
    let received: u64 = dirs
        .iter()
        .map(|d| d.received.load(Ordering::Relaxed))
        .sum();
    let ooo: u64 = dirs
        .iter()
        .map(|d| d.out_of_order.load(Ordering::Relaxed))
        .sum();
    for mut w in writers {
        let _ = send(&mut w, b"</stream:stream>").await;
    }
    let mut lat = Vec::new();
    let mut in_window = 0u64;
    let readers_until = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = readers_until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r).await {
            Ok(Ok((l, n))) => {
                lat.extend(l);
                in_window += n;
            }
            _ => errs.add("reader did not finish"),
        }
    }
    lat.sort_unstable();
    println!(
        "{{\"scenario\":\"{label}\",\"server\":{},\"pairs\":{p},\"window\":{window},\"duration_s\":{duration},\
         \"sent\":{sent},\"received\":{received},\"lost\":{},\"out_of_order\":{ooo},\
         \"delivered_per_s\":{},\"send_wall_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},{},{}}}",
        jstr(&o.server),
        sent.saturating_sub(received),
        num(in_window as f64 / dur.as_secs_f64()),
        num(send_wall),
        num(pct_ms(&lat, 50.0)),
        num(pct_ms(&lat, 99.0)),
        num(pct_ms(&lat, 100.0)),
        errs.fields(),
        fields_at_stop
    );
}
