//! rookery-loadgen: c2s load generator for bench/compare.sh (and bench/cm.sh).
//!
//! Connects only to the address given (the scripts pass a loopback address), every scenario is
//! bounded in count and time, and each scenario prints one JSON line on stdout. It raises its own
//! open-file limit to the hard limit, and binds client sockets to 127.0.0.1..=127.0.0.N
//! (`--src-addrs N`) in turn, so that the number of connections is not capped by one source
//! address's ephemeral port range.
//!
//!   rookery-loadgen --server NAME --addr 127.0.0.1:PORT --pid SERVER_PID \
//!       [--domain localhost] [--user-prefix u] [--password P] [--accounts 2000] \
//!       [--tls on|off] [--resume off|on] [--src-addrs 8] \
//!       [--mech scram|scram256|plain] [--threads 2] \
//!       [--scenarios idle,login,messages,messages_sm,latency,openloop,presence,scale,burst] \
//!       [--idle 2000] [--idle-conc 50] [--idle-settle 3] [--idle-time 120] \
//!       [--login-seq 500] [--login-conc 50] [--login-total 3000] [--login-pool 200] \
//!       [--login-time 30] [--pairs 50] [--window 10] [--sm-every 10] [--duration 20] \
//!       [--rate R] [--open-cap 100] \
//!       [--pres-users 500] [--roster 20] [--pres-setup-time 120] \
//!       [--scale-lo 1000] [--scale-hi 15000] [--scale-time 300] \
//!       [--burst-first 0] [--burst-n 10000] [--burst-time 120] [--burst-base 2] \
//!       [--burst-interval 20]
//!
//! Accounts: idle, login, messages (messages_sm too) and latency use u0.. upwards; scale's background users
//! follow the message pairs (u(2P)..); presence uses the last `--pres-users` accounts, so the
//! rosters it sets up never touch the other scenarios' users. burst (bench/burst.sh, in
//! burst.rs) uses four accounts from `--burst-first`.

mod burst;
mod messages;
mod sm;
mod stats;
mod xmpp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsConnector;

use messages::{Pace, Run, messages};
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
    /// messages_sm: the client asks for an acknowledgement after every this many stanzas.
    sm_every: u32,
    duration: u64,
    tls: bool,
    /// Offer TLS 1.3 session tickets from earlier logins (login lines count the resumed ones).
    resume: bool,
    src_addrs: usize,
    idle_time: u64,
    rate: f64,
    open_cap: usize,
    pres_users: usize,
    roster: usize,
    pres_setup_time: u64,
    scale_lo: usize,
    scale_hi: usize,
    scale_time: u64,
    /// burst: first of the four accounts A, B, C, D.
    burst_first: usize,
    /// burst: messages A writes to B.
    burst_n: usize,
    /// burst: time limit for the burst, seconds.
    burst_time: u64,
    /// burst: seconds of C→D latency alone before the burst (the baseline).
    burst_base: u64,
    /// burst: at most one C→D message per this many milliseconds.
    burst_interval: u64,
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
            .map(|x| {
                x.parse()
                    .unwrap_or_else(|_| panic!("--cm-pids: not a pid list"))
            })
            .collect(),
        prefix: s("user-prefix", "u"),
        password: s("password", "bench-pass-1"),
        accounts: n("accounts", 2000),
        mech: match s("mech", "scram").as_str() {
            "plain" => Mech::Plain,
            "scram256" => Mech::ScramSha256,
            _ => Mech::ScramSha1,
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
        sm_every: n("sm-every", 10) as u32,
        duration: n("duration", 20) as u64,
        tls: s("tls", "on") != "off",
        resume: s("resume", "off") == "on",
        // 254 at most: 127.0.0.1 ..= 127.0.0.254.
        src_addrs: n("src-addrs", 8).clamp(1, 254),
        idle_time: n("idle-time", 120) as u64,
        rate: s("rate", "0")
            .parse()
            .unwrap_or_else(|_| panic!("--rate: not a number")),
        open_cap: n("open-cap", 100),
        pres_users: n("pres-users", 500),
        roster: n("roster", 20),
        pres_setup_time: n("pres-setup-time", 120) as u64,
        scale_lo: n("scale-lo", 1000),
        scale_hi: n("scale-hi", 15000),
        scale_time: n("scale-time", 300) as u64,
        burst_first: n("burst-first", 0),
        burst_n: n("burst-n", 10_000),
        burst_time: n("burst-time", 120) as u64,
        burst_base: n("burst-base", 2) as u64,
        burst_interval: n("burst-interval", 20) as u64,
    };
    (opts, n("threads", 2))
}

/// Raise our open-file soft limit to the hard limit: the idle and scale scenarios hold one
/// socket per client. Returns the limit in force.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur as u64
    }
}

fn main() {
    let (opts, threads) = parse_args();
    let nofile = raise_nofile();
    eprintln!("loadgen: open-file limit {nofile}");
    let _ = CM_PIDS.set(opts.cm_pids.clone());
    TLS_ON.store(opts.tls, Ordering::Relaxed);
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
    /// Connections opened so far: picks the next source address, round-robin.
    conns: AtomicUsize,
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
            addr: self
                .o
                .addr
                .split(',')
                .nth(i % self.o.addr.split(',').count())
                .unwrap_or(&self.o.addr),
            domain: &self.o.domain,
            user: &user,
            password: &self.o.password,
            resource,
            mech: self.o.mech,
            tls: self.o.tls.then_some(&self.tls),
            src: Some(IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                (1 + self.conns.fetch_add(1, Ordering::Relaxed) % self.o.src_addrs) as u8,
            ))),
            keys: &self.keys,
        };
        xmpp::login(&p).await
    }
}

async fn run(o: Arc<Opts>) {
    let ctx = Arc::new(Ctx {
        o: o.clone(),
        tls: xmpp::tls_connector(o.resume),
        keys: KeyCache::default(),
        conns: AtomicUsize::new(0),
    });
    for sc in &o.scenarios {
        match sc.as_str() {
            "idle" => idle(&ctx, false).await,
            // idle with XEP-0198 stream management and resumption on every connection: what a
            // stream-managed session costs the server at rest.
            "idle_sm" => idle(&ctx, true).await,
            "login" => login(&ctx).await,
            "messages" => {
                let pace = Pace::Closed { window: o.window };
                messages(&ctx, Run::new("messages", o.pairs, pace, o.duration)).await
            }
            // messages with XEP-0198 stream management and resumption on every client.
            "messages_sm" => {
                let pace = Pace::Closed { window: o.window };
                let run = Run {
                    sm_every: Some(o.sm_every),
                    ..Run::new("messages_sm", o.pairs, pace, o.duration)
                };
                messages(&ctx, run).await
            }
            // One pair, one message in flight: latency without load.
            "latency" => {
                let pace = Pace::Closed { window: 1 };
                messages(&ctx, Run::new("latency", 1, pace, o.duration.min(10))).await
            }
            // The same pairs at a fixed offered rate (compare.sh passes half of Rookery's
            // closed-loop maximum, the same rate for every server).
            "openloop" if o.rate > 0.0 => {
                let pace = Pace::Open {
                    rate: o.rate,
                    cap: o.open_cap,
                };
                messages(&ctx, Run::new("openloop", o.pairs, pace, o.duration)).await
            }
            "openloop" => eprintln!("openloop needs --rate"),
            "presence" => presence(&ctx).await,
            "scale" => scale(&ctx).await,
            "burst" => burst::burst(&ctx).await,
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
/// Whether sessions use STARTTLS: stamped on every line, so the report can tell the variants
/// apart.
static TLS_ON: AtomicBool = AtomicBool::new(true);
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
            "\"tls\":{},\"cm_cpu_s\":{},\"cm_rss_kb_before\":{},\"cm_rss_kb_after\":{},\
             \"wall_s\":{},\"server_cpu_s\":{},\"client_cpu_s\":{},\"server_rss_kb_before\":{},\
             \"server_rss_kb_after\":{},\"server_hwm_kb\":{}",
            TLS_ON.load(Ordering::Relaxed),
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

/// Logs in the given accounts (at most `conc` at a time, 30 s each), enables stream management
/// with resumption if `sm` (XEP-0198 §3: after binding, so before the initial presence, as a
/// client does) and sends initial presence; returns the sessions that made it, in account
/// order, and counts the failures in `errs`.
async fn login_available(
    ctx: &Arc<Ctx>,
    accounts: std::ops::Range<usize>,
    resource: &'static str,
    conc: usize,
    sm: bool,
    errs: &Errors,
) -> Vec<Session> {
    let sem = Arc::new(Semaphore::new(conc));
    let mut logins = Vec::new();
    for i in accounts {
        let ctx = ctx.clone();
        let sem = sem.clone();
        logins.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let mut s = tokio::time::timeout(Duration::from_secs(30), ctx.login(i, resource))
                .await
                .map_err(|_| xmpp::Error("login timed out".into()))??;
            sm::available(&mut s, sm).await?;
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
    sessions
}

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
    let (lat, resumed, errs) = run_logins(
        ctx,
        1,
        o.login_seq,
        0,
        Duration::from_secs(o.login_time),
        pool,
    )
    .await;
    print_login(
        ctx,
        "sequential",
        1,
        o.login_seq,
        &span,
        lat,
        resumed,
        &errs,
    );

    // Concurrent.
    let span = Span::start(o.pid);
    let (lat, resumed, errs) = run_logins(
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
        resumed,
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
    resumed: usize,
    errs: &Errors,
) {
    lat.sort_unstable();
    let wall = span.t0.elapsed().as_secs_f64();
    println!(
        "{{\"scenario\":\"login\",\"server\":{},\"mode\":\"{mode}\",\"concurrency\":{conc},\"target\":{target},\
         \"ok\":{},\"resumed\":{resumed},\"logins_per_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},{},{}}}",
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

/// `total` logins (each logged in then closed) by `conc` workers, accounts `i % pool`. Returns
/// the latencies of the logins that succeeded, how many of those resumed a TLS session, and
/// the errors.
async fn run_logins(
    ctx: &Arc<Ctx>,
    conc: usize,
    total: usize,
    offset: usize,
    limit: Duration,
    pool: usize,
) -> (Vec<u64>, usize, Errors) {
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
            let mut resumed = 0;
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
                        resumed += usize::from(s.resumed);
                        xmpp::quit(&mut s).await;
                    }
                    Ok(Err(e)) => errs.add(e),
                    Err(_) => errs.add("timed out (scenario time limit)"),
                }
            }
            (lat, resumed)
        }));
    }
    let mut all = Vec::new();
    let mut resumed = 0;
    for t in tasks {
        if let Ok((l, r)) = t.await {
            all.extend(l);
            resumed += r;
        }
    }
    let errs = Arc::try_unwrap(errs).unwrap_or_default();
    (all, resumed, errs)
}

// ---------------------------------------------------------------------------------------------
// Holding idle sessions: logged in, initial presence sent, answering pings until told to stop.
// Used by idle (memory per connection) and scale (background users).

struct Holders {
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    connected: Arc<AtomicU64>,
    errs: Arc<Errors>,
}

impl Holders {
    fn new() -> Holders {
        let (stop_tx, stop_rx) = watch::channel(false);
        Holders {
            stop_tx,
            stop_rx,
            tasks: Vec::new(),
            connected: Arc::new(AtomicU64::new(0)),
            errs: Arc::new(Errors::default()),
        }
    }

    fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// Log in accounts `range` with at most `conc` logins in progress; returns when they are
    /// all connected or failed, or when `limit` has passed (then the rest is not attempted).
    /// With `sm` each enables stream management with resumption before its initial presence
    /// and answers the server's `<r/>` while it idles.
    async fn add(
        &mut self,
        ctx: &Arc<Ctx>,
        range: std::ops::Range<usize>,
        conc: usize,
        limit: Duration,
        sm: bool,
    ) {
        let totals = Arc::new(sm::SmTotals::default());
        let sem = Arc::new(Semaphore::new(conc.max(1)));
        let deadline = Instant::now() + limit;
        for i in range {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            if Instant::now() >= deadline {
                self.errs.add(format!(
                    "connect phase time limit ({} s) reached",
                    limit.as_secs()
                ));
                break;
            }
            let ctx = ctx.clone();
            let errs = self.errs.clone();
            let connected = self.connected.clone();
            let mut stop = self.stop_rx.clone();
            let totals = totals.clone();
            self.tasks.push(tokio::spawn(async move {
                // A resource per connection: with more connections than accounts (scale runs,
                // several processes) sessions of one account don't replace each other.
                let resource = format!("idle{i}");
                let res =
                    tokio::time::timeout(Duration::from_secs(30), ctx.login(i, &resource)).await;
                let mut s = match res {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return errs.add(e),
                    Err(_) => return errs.add("login timed out"),
                };
                if let Err(e) = sm::available(&mut s, sm).await {
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
                                let answer = s.sm.as_ref().and_then(|st| {
                                    st.on_element(tag_name(&el), &el, &totals, &mut Vec::new(), Instant::now())
                                });
                                if let Some(a) = answer
                                    && send(&mut s.stream, a.as_bytes()).await.is_err()
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
        let _ = sem.acquire_many(conc.max(1) as u32).await;
    }

    async fn close(self) {
        let _ = self.stop_tx.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// idle: K authenticated, available (initial presence sent) connections doing nothing; server
// RSS before and after gives the memory per connection.

async fn idle(ctx: &Arc<Ctx>, sm: bool) {
    let o = &ctx.o;
    // With several resources per account (--first, scale runs) K may exceed the accounts.
    let k = if o.first > 0 || o.idle_multi {
        o.idle
    } else {
        o.idle.min(o.accounts)
    };
    // A few logins first, so one-time lazy initialisation is not charged to the connections.
    run_logins(ctx, 1, 20, 0, Duration::from_secs(30), 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let span = Span::start(o.pid);
    let mut h = Holders::new();
    // --first: several processes share the accounts, each its own range of connections.
    let limit = o.idle_time.max(n_connect_limit(k));
    h.add(
        ctx,
        o.first..o.first + k,
        o.idle_conc,
        Duration::from_secs(limit),
        sm,
    )
    .await;
    let connect_s = span.t0.elapsed().as_secs_f64();
    // For scripts that run several load generators and sample the server while all hold.
    eprintln!("idle: connected {}", h.connected());
    tokio::time::sleep(Duration::from_secs(o.idle_settle)).await;
    let during = sample(o.pid);
    let cm_during = cm_sample(cm_pids());
    let n = h.connected();
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
    let errs = h.errs.clone();
    // Close them all, then see how much the server gives back.
    h.close().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = sample(o.pid);
    println!(
        "{{\"scenario\":\"{}\",\"server\":{},\"target\":{k},\"connected\":{n},\"connect_s\":{},\
         \"server_rss_kb_idle\":{},\"rss_kb_per_conn\":{},\"cm_rss_kb_per_conn\":{},\"server_rss_kb_after_close\":{},{},{}}}",
        if sm { "idle_sm" } else { "idle" },
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
// scale: the closed-loop message run with `--scale-lo` idle users connected in the background,
// then again with `--scale-hi`: the cost per message must not grow with the number of users.

async fn scale(ctx: &Arc<Ctx>) {
    let o = &ctx.o;
    let p = o.pairs.min(o.accounts / 2).max(1);
    let first = 2 * p;
    let hi = o.scale_hi.min(o.accounts.saturating_sub(first));
    let lo = o.scale_lo.min(hi);
    let mut h = Holders::new();
    let limit = Duration::from_secs(o.scale_time);
    for (mode, upto) in [("lo", lo), ("hi", hi)] {
        let from = first + h.connected() as usize + h.errs.count.load(Ordering::Relaxed) as usize;
        let t0 = Instant::now();
        h.add(ctx, from..first + upto, o.idle_conc, limit, false)
            .await;
        let connect_s = t0.elapsed().as_secs_f64();
        // Let the logins' after-effects (presence, storage writes) settle.
        tokio::time::sleep(Duration::from_secs(o.idle_settle)).await;
        let extra = format!(
            "\"background\":{},\"background_target\":{upto},\"background_connect_s\":{},\"background_errors\":{},\"background_first_error\":{},\"server_rss_kb_background\":{},",
            h.connected(),
            num(connect_s),
            h.errs.count.load(Ordering::Relaxed),
            jstr(
                &h.errs
                    .first
                    .lock()
                    .expect("errors")
                    .clone()
                    .unwrap_or_default()
            ),
            sample(o.pid).rss_kb
        );
        let pace = Pace::Closed { window: o.window };
        let run = Run {
            mode,
            extra: &extra,
            ..Run::new("scale", p, pace, o.duration)
        };
        messages(ctx, run).await;
    }
    h.close().await;
}

// ---------------------------------------------------------------------------------------------
// presence: N users on a ring, each with the R nearest others (R/2 on each side) as mutual
// contacts. Set-up (not measured): all log in and make the subscriptions with the ordinary
// subscribe / subscribed handshake (see below) until every roster shows R items with
// subscription='both' (on a second run against the same data they already do). Measured: for T
// seconds the even-numbered users ("togglers") go offline and online again (unavailable
// presence, then available presence, which servers treat as a new initial presence: broadcast
// plus probes), each as fast as the server delivers: the next toggle leaves when its ring
// neighbour i+1 (odd, always online) has received the previous one. Odd users stay online and
// receive. Counted: broadcasts received by anyone (a toggler's presence with a sequence number
// the receiver has not seen before), and every presence stanza received (probe answers too).

struct Toggler {
    window: Semaphore,
    sent: AtomicU64,
}

async fn presence(ctx: &Arc<Ctx>) {
    let o = &ctx.o;
    let n = o.pres_users.min(o.accounts);
    // Even, at least 2, and fewer than N.
    let r = (o.roster.min(n.saturating_sub(1)) / 2 * 2).max(2);
    let off = o.accounts - n;
    let errs = Arc::new(Errors::default());
    let contacts = move |i: usize| -> Vec<usize> {
        (1..=r / 2)
            .flat_map(|d| [(i + d) % n, (i + n - d) % n])
            .collect()
    };
    let bare = |i: usize| format!("{}{}@{}", o.prefix, off + i, o.domain);

    // Log in N users.
    let t_setup = Instant::now();
    let sessions =
        login_available(ctx, off..off + n, "pres", o.idle_conc.max(1), false, &errs).await;
    if sessions.len() != n {
        println!(
            "{{\"scenario\":\"presence\",\"server\":{},\"users\":{n},\"skipped\":\"not every user logged in\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }

    // Set-up: subscriptions both ways with every contact, as two people would do it: for each
    // pair the user who has the other as a forward neighbour asks (`subscribe`); the other
    // approves (`subscribed`) and asks back, which the first approves. Requests never cross,
    // so no server has to resolve two simultaneous requests. Every 500 ms each user reads its
    // roster; a contact still without a subscription from us after 10 s (a lost request; a
    // busy server is still working through its queue long before that) is asked again, and
    // those repeats are counted.
    let complete = Arc::new(AtomicUsize::new(0));
    let resubscribes = Arc::new(AtomicU64::new(0));
    let (over_tx, over_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let mine: Vec<String> = contacts(i).into_iter().map(|j| bare(j)).collect();
        let forward: Vec<String> = (1..=r / 2).map(|d| bare((i + d) % n)).collect();
        let complete = complete.clone();
        let resubscribes = resubscribes.clone();
        let errs = errs.clone();
        let mut over = over_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut asked: std::collections::HashSet<String> = std::collections::HashSet::new();
            for c in &forward {
                let m = format!("<presence to='{c}' type='subscribe'/>");
                if let Err(e) = send(&mut s.stream, m.as_bytes()).await {
                    errs.add(e);
                    return s;
                }
                asked.insert(c.clone());
            }
            let mut done = false;
            let mut polls = 0u32;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = over.changed() => break,
                    _ = tick.tick(), if !done => {
                        let _ = send(&mut s.stream, b"<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>").await;
                    }
                    ev = s.framer.next(&mut s.stream) => {
                        let el = match ev {
                            Ok(Event::Element(el)) => el,
                            Ok(_) => { errs.add("stream closed during presence set-up"); break; }
                            Err(e) => { errs.add(format!("presence set-up: {e}")); break; }
                        };
                        let name = tag_name(&el);
                        if name == b"presence" && attr(&el, "type") == Some(b"subscribe") {
                            let from = String::from_utf8_lossy(attr(&el, "from").unwrap_or(b""));
                            let from = from.split('/').next().unwrap_or("").to_string();
                            let mut m = format!("<presence to='{from}' type='subscribed'/>");
                            if mine.contains(&from) && asked.insert(from.clone()) {
                                m.push_str(&format!("<presence to='{from}' type='subscribe'/>"));
                            }
                            let _ = send(&mut s.stream, m.as_bytes()).await;
                        } else if name == b"iq" && attr(&el, "id") == Some(b"rg") {
                            polls += 1;
                            let mut both = 0;
                            let mut retry = Vec::new();
                            let text = String::from_utf8_lossy(&el).into_owned();
                            let mut seen = std::collections::HashSet::new();
                            for chunk in text.split("<item ").skip(1) {
                                let item = format!("<item {chunk}");
                                let jid = String::from_utf8_lossy(attr(item.as_bytes(), "jid").unwrap_or(b"")).into_owned();
                                let sub = attr(item.as_bytes(), "subscription").unwrap_or(b"none");
                                if sub == b"both" {
                                    both += 1;
                                } else if sub != b"to" && mine.contains(&jid) {
                                    retry.push(jid.clone());
                                }
                                seen.insert(jid);
                            }
                            retry.extend(mine.iter().filter(|c| !seen.contains(*c) && asked.contains(*c)).cloned());
                            // Several polls can be in flight: count a roster once.
                            if !done && both >= r {
                                done = true;
                                complete.fetch_add(1, Ordering::Relaxed);
                            } else if !done && polls % 20 == 0 {
                                for c in retry {
                                    let m = format!("<presence to='{c}' type='subscribe'/>");
                                    let _ = send(&mut s.stream, m.as_bytes()).await;
                                    resubscribes.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        } else if let Some(reply) = xmpp::iq_reply(&el) {
                            let _ = send(&mut s.stream, reply.as_bytes()).await;
                        }
                    }
                }
            }
            s
        }));
    }
    let setup_until = Instant::now() + Duration::from_secs(o.pres_setup_time);
    while complete.load(Ordering::Relaxed) < n && Instant::now() < setup_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rosters_complete = complete.load(Ordering::Relaxed);
    if rosters_complete < n {
        errs.add(format!(
            "presence set-up: {rosters_complete} of {n} rosters complete after {} s",
            o.pres_setup_time
        ));
    }
    // Let the last approvals and their presence deliveries settle before stopping the tasks.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = over_tx.send(true);
    let mut sessions = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => sessions.push(s),
            Err(e) => errs.add(e),
        }
    }
    let setup_s = t_setup.elapsed().as_secs_f64();
    if sessions.len() != n {
        println!(
            "{{\"scenario\":\"presence\",\"server\":{},\"users\":{n},\"skipped\":\"a session ended during set-up\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }

    // Measured phase.
    let togglers: Vec<Arc<Toggler>> = (0..n)
        .map(|_| {
            Arc::new(Toggler {
                window: Semaphore::new(1),
                sent: AtomicU64::new(0),
            })
        })
        .collect();
    let base = Instant::now();
    let dur = Duration::from_secs(o.duration);
    let stop_at = base + dur;
    let done = Arc::new(AtomicBool::new(false));
    let span = Span::start(o.pid);
    let prefix = format!("{}", o.prefix);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, s) in sessions.into_iter().enumerate() {
        let Session {
            stream, mut framer, ..
        } = s;
        let (mut rd, mut wr) = tokio::io::split(stream);
        let tog = togglers.clone();
        let errs_r = errs.clone();
        let done_r = done.clone();
        let prefix = prefix.clone();
        readers.push(tokio::spawn(async move {
            let mut last: HashMap<usize, u64> = HashMap::new();
            let mut lat = Vec::new();
            let (mut fresh, mut all) = (0u64, 0u64);
            loop {
                let el = match framer.next(&mut rd).await {
                    Ok(Event::Element(el)) => el,
                    Ok(_) | Err(_) => {
                        if !done_r.load(Ordering::Relaxed) {
                            errs_r.add("stream closed during presence");
                        }
                        break;
                    }
                };
                if tag_name(&el) != b"presence" {
                    continue;
                }
                let now = base.elapsed().as_nanos() as u64;
                let in_window = now <= dur.as_nanos() as u64;
                // The sender's index from its JID (prefix + account number).
                let from = String::from_utf8_lossy(attr(&el, "from").unwrap_or(b""));
                let Some(j) = from
                    .split('@')
                    .next()
                    .and_then(|u| u.strip_prefix(prefix.as_str()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .and_then(|a| a.checked_sub(off))
                else {
                    continue;
                };
                if j == i || j >= n {
                    continue;
                }
                if in_window {
                    all += 1;
                }
                let status = child_text(&el, "status").unwrap_or(b"");
                let status = std::str::from_utf8(status).unwrap_or("");
                let mut t = None;
                let mut seq = None;
                for part in status.split(' ') {
                    if let Some(v) = part.strip_prefix('t') {
                        t = v.parse::<u64>().ok();
                    } else if let Some(v) = part.strip_prefix('s') {
                        seq = v.parse::<u64>().ok();
                    }
                }
                let (Some(t), Some(seq)) = (t, seq) else {
                    continue;
                };
                let prev = last.entry(j).or_insert(0);
                if seq <= *prev {
                    continue;
                }
                *prev = seq;
                if in_window {
                    fresh += 1;
                    lat.push(now.saturating_sub(t));
                }
                // The watcher releases its toggler's next toggle.
                if j % 2 == 0 && (j + 1) % n == i {
                    tog[j].window.add_permits(1);
                }
            }
            (lat, fresh, all)
        }));
        if i % 2 == 1 || i + 1 >= n {
            // Odd users (and an even last user without an odd neighbour) only receive.
            writers.push(tokio::spawn(async move { wr }));
            continue;
        }
        let me = togglers[i].clone();
        let errs_s = errs.clone();
        writers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            loop {
                let left = stop_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match tokio::time::timeout(left, me.window.acquire()).await {
                    Ok(Ok(p)) => p.forget(),
                    _ => break,
                }
                seq += 1;
                let t = base.elapsed().as_nanos() as u64;
                let m = if seq % 2 == 1 {
                    format!("<presence type='unavailable'><status>t{t} s{seq}</status></presence>")
                } else {
                    format!("<presence><status>t{t} s{seq}</status></presence>")
                };
                if let Err(e) = send(&mut wr, m.as_bytes()).await {
                    errs_s.add(e);
                    break;
                }
                me.sent.fetch_add(1, Ordering::Relaxed);
            }
            wr
        }));
    }
    let mut wrs = Vec::new();
    for w in writers {
        if let Ok(w) = w.await {
            wrs.push(w);
        }
    }
    let fields = span.fields(o.pid);
    // Deliveries in flight at the stop are not counted (only those received within T), but
    // give them a moment so that the streams close cleanly.
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.store(true, Ordering::Relaxed);
    for mut w in wrs {
        let _ = send(&mut w, b"</stream:stream>").await;
    }
    let mut lat = Vec::new();
    let (mut fresh, mut all) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r).await {
            Ok(Ok((l, f, a))) => {
                lat.extend(l);
                fresh += f;
                all += a;
            }
            _ => errs.add("reader did not finish"),
        }
    }
    lat.sort_unstable();
    let toggles: u64 = togglers
        .iter()
        .map(|t| t.sent.load(Ordering::Relaxed))
        .sum();
    let secs = dur.as_secs_f64();
    println!(
        "{{\"scenario\":\"presence\",\"server\":{},\"users\":{n},\"roster\":{r},\"togglers\":{},\
         \"setup_s\":{},\"rosters_complete\":{rosters_complete},\"resubscribes\":{},\"duration_s\":{},\"toggles\":{toggles},\
         \"toggles_per_s\":{},\"delivered\":{fresh},\"delivered_per_s\":{},\"all_presence\":{all},\
         \"all_presence_per_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},{},{}}}",
        jstr(&o.server),
        n / 2,
        num(setup_s),
        resubscribes.load(Ordering::Relaxed),
        o.duration,
        num(toggles as f64 / secs),
        num(fresh as f64 / secs),
        num(all as f64 / secs),
        num(pct_ms(&lat, 50.0)),
        num(pct_ms(&lat, 99.0)),
        num(pct_ms(&lat, 100.0)),
        errs.fields(),
        fields
    );
}
