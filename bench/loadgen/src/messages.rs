//! messages: the 1:1 message scenarios (`messages`, `latency`, `openloop`, and each step of
//! `scale`), beside the other scenarios in main.rs, using its logins (`login_available`) and
//! server readings (`Span`).
//!
//! P pairs; each user sends to its partner's full JID, for T seconds; latency from the
//! timestamp in the body; then every message sent must have arrived, in order.
//!
//! Closed loop: at most W messages in flight per sender (a message leaves the window when the
//! partner's connection receives it): the maximum rate. Open loop: R messages/s in all, spread
//! evenly over the 2P senders on a fixed schedule that does not wait for the server; the window
//! is then only a safety cap (`--open-cap`) so that a server slower than R cannot make us queue
//! without bound; every send that had to wait for it is counted.
//!
//! With stream management (`messages_sm`: `sm_every` set) every client enables XEP-0198 with
//! resumption before its initial presence, its reader answers the server's `<r/>` with
//! `<a h/>` and takes the server's `<a/>`, and its sender adds an `<r/>` after every
//! `sm_every`-th stanza it sends (0: never). The time from each of those `<r/>` to the `<a/>`
//! that covers it is the acknowledgement latency. At the end, after the messages have drained,
//! every client asks once more and waits (≤ 10 s) until the server has acknowledged all it
//! sent; it closes with a last `<a h/>` so that the server holds nothing unacknowledged.
//! Reader and sender share the write half behind a lock (also without stream management, so
//! that `messages` and `messages_sm` differ only in what stream management does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::WriteHalf;
use tokio::sync::{Mutex, Semaphore};

use crate::sm::{self, SmTotals};
use crate::stats::{jstr, num, pct_ms};
use crate::xmpp::{self, Event, Session, Stream, attr, child_text, send, tag_name};
use crate::{Ctx, Errors, Span, login_available};

/// A session's write half, shared by its sender and (for `<a/>`) its reader.
type Writer = Arc<Mutex<WriteHalf<Stream>>>;

#[derive(Clone, Copy)]
pub enum Pace {
    Closed { window: usize },
    Open { rate: f64, cap: usize },
}

struct Direction {
    /// Free slots in the window (the receiver returns one per message that arrives).
    window: Semaphore,
    sent: AtomicU64,
    received: AtomicU64,
    out_of_order: AtomicU64,
    /// Open loop: sends that found the cap full and waited.
    capped: AtomicU64,
    /// iq requests the receiving client answered (pings).
    iq_answered: AtomicU64,
}

/// Message latencies: from the moment of sending, and (open loop) from the scheduled moment,
/// which also counts any delay on our side (timer granularity, a full cap).
#[derive(Default)]
struct Lat {
    sent: Vec<u64>,
    sched: Vec<u64>,
}

/// One run of the message scenario.
pub struct Run<'a> {
    /// The scenario name on the JSON line.
    pub label: &'a str,
    /// The line's `mode` (scale: `lo` or `hi`); empty for none.
    pub mode: &'a str,
    pub pairs: usize,
    pub pace: Pace,
    /// T, seconds.
    pub duration: u64,
    /// More JSON fields for the line, each followed by a comma.
    pub extra: &'a str,
    /// Stream management on, with the client's `<r/>` after every this many stanzas.
    pub sm_every: Option<u32>,
}

impl<'a> Run<'a> {
    /// A run without a mode, extra fields or stream management.
    pub fn new(label: &'a str, pairs: usize, pace: Pace, duration: u64) -> Run<'a> {
        Run {
            label,
            mode: "",
            pairs,
            pace,
            duration,
            extra: "",
            sm_every: None,
        }
    }
}

pub async fn messages(ctx: &Arc<Ctx>, run: Run<'_>) {
    let Run {
        label,
        mode,
        pairs,
        pace,
        duration,
        extra,
        sm_every,
    } = run;
    let o = &ctx.o;
    let p = pairs.min(o.accounts / 2).max(1);
    let errs = Arc::new(Errors::default());
    let mode_field = if mode.is_empty() {
        String::new()
    } else {
        format!("\"mode\":{},", jstr(mode))
    };
    // Log in 2P users (not measured). A resource of their own with stream management, so that
    // no earlier scenario's session of the same full JID can be in the way.
    let resource = if sm_every.is_some() { "msgsm" } else { "msg" };
    let sessions = login_available(ctx, 0..2 * p, resource, 50, sm_every.is_some(), &errs).await;
    if sessions.len() != 2 * p {
        println!(
            "{{\"scenario\":\"{label}\",{mode_field}\"server\":{},\"pairs\":{p},\"skipped\":\"not every user logged in\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }
    let jids: Vec<String> = sessions.iter().map(|s| s.jid.clone()).collect();
    let sms: Vec<Option<Arc<sm::SmState>>> = sessions.iter().map(|s| s.sm.clone()).collect();
    let totals = Arc::new(SmTotals::default());
    let window = match pace {
        Pace::Closed { window } => window,
        Pace::Open { cap, .. } => cap,
    };
    // dirs[i] carries messages from user i to its partner i ^ 1.
    let dirs: Vec<Arc<Direction>> = (0..2 * p)
        .map(|_| {
            Arc::new(Direction {
                window: Semaphore::new(window.max(1)),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                out_of_order: AtomicU64::new(0),
                capped: AtomicU64::new(0),
                iq_answered: AtomicU64::new(0),
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
    let mut writers: Vec<Writer> = Vec::new();
    let senders_n = 2 * p;
    for (i, s) in sessions.into_iter().enumerate() {
        let Session {
            stream,
            mut framer,
            sm,
            ..
        } = s;
        let (mut rd, wr) = tokio::io::split(stream);
        let wr: Writer = Arc::new(Mutex::new(wr));
        writers.push(wr.clone());
        // Reader: messages from the partner (direction i ^ 1), and stream management.
        let inbound = dirs[i ^ 1].clone();
        let errs_r = errs.clone();
        let done_r = done.clone();
        let (sm_r, wr_r, totals_r) = (sm.clone(), wr.clone(), totals.clone());
        readers.push(tokio::spawn(async move {
            let mut lat = Lat {
                sent: Vec::with_capacity(1 << 16),
                sched: Vec::new(),
            };
            let mut ack_lat = Vec::new();
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
                let name = tag_name(&el);
                if let Some(st) = &sm_r
                    && let Some(a) = st.on_element(name, &el, &totals_r, &mut ack_lat, stop_at)
                    && let Err(e) = send(&mut *wr_r.lock().await, a.as_bytes()).await
                {
                    if !done_r.load(Ordering::Relaxed) {
                        errs_r.add(format!("answering <r/>: {e}"));
                    }
                    break;
                }
                // Pings (a server may use them to learn what a client without stream
                // management has read) and any other request get their answer, as from a real
                // client; with stream management the answer is a stanza, counted as sent.
                if let Some(reply) = xmpp::iq_reply(&el) {
                    let mut w = wr_r.lock().await;
                    if let Some(st) = &sm_r {
                        st.sent();
                    }
                    if let Err(e) = send(&mut *w, reply.as_bytes()).await {
                        if !done_r.load(Ordering::Relaxed) {
                            errs_r.add(format!("answering an iq: {e}"));
                        }
                        break;
                    }
                    inbound.iq_answered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if name != b"message" {
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
                let mut q = None;
                let mut seq = None;
                for part in body.split(' ') {
                    if let Some(v) = part.strip_prefix('t') {
                        t = v.parse::<u64>().ok();
                    } else if let Some(v) = part.strip_prefix('q') {
                        q = v.parse::<u64>().ok();
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
                lat.sent.push(now.saturating_sub(t));
                if let Some(q) = q {
                    lat.sched.push(now.saturating_sub(q));
                }
                if now <= dur.as_nanos() as u64 {
                    in_window += 1;
                }
                inbound.received.fetch_add(1, Ordering::Relaxed);
                inbound.window.add_permits(1);
            }
            (lat, in_window, ack_lat)
        }));
        // Sender: to the partner's full JID.
        let outbound = dirs[i].clone();
        let to = jids[i ^ 1].clone();
        let errs_s = errs.clone();
        let every = sm_every.unwrap_or(0);
        let totals_s = totals.clone();
        senders.push(tokio::spawn(async move {
            let mut seq = 0u64;
            // Open loop: this sender's share of the rate, the senders' schedules staggered
            // evenly over one interval so that they do not all fire on the same tick.
            let interval = match pace {
                Pace::Open { rate, .. } if rate > 0.0 => {
                    Some(Duration::from_secs_f64(senders_n as f64 / rate))
                }
                _ => None,
            };
            let mut next = base + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(i as f64 / senders_n as f64));
            loop {
                let q = if let Some(iv) = interval {
                    if next >= stop_at {
                        break;
                    }
                    // Late wake-ups (1 ms timer resolution, a busy core) send at once: the
                    // schedule is kept, not shifted.
                    tokio::time::sleep_until(next.into()).await;
                    let q = (next - base).as_nanos() as u64;
                    next += iv;
                    Some(q)
                } else {
                    None
                };
                let left = stop_at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match outbound.window.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => {
                        if interval.is_some() {
                            outbound.capped.fetch_add(1, Ordering::Relaxed);
                        }
                        match tokio::time::timeout(left, outbound.window.acquire()).await {
                            Ok(Ok(permit)) => permit.forget(),
                            _ => break,
                        }
                    }
                }
                let t = base.elapsed().as_nanos() as u64;
                let mut msg = match q {
                    Some(q) => format!(
                        "<message to='{to}' type='chat' id='m{seq}'><body>t{t} q{q} s{seq}</body></message>"
                    ),
                    None => format!(
                        "<message to='{to}' type='chat' id='m{seq}'><body>t{t} s{seq}</body></message>"
                    ),
                };
                // Counted under the lock, so that the counts follow the order on the wire.
                let mut w = wr.lock().await;
                if let Some(st) = &sm {
                    let n = st.sent();
                    if every > 0 && n % every == 0 {
                        st.requested(n, &totals_s);
                        msg.push_str(sm::R);
                    }
                }
                let res = send(&mut *w, msg.as_bytes()).await;
                drop(w);
                if let Err(e) = res {
                    errs_s.add(e);
                    break;
                }
                seq += 1;
                outbound.sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for s in senders {
        let _ = s.await;
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
    // Stream management: one last request from every client, then wait (10 s at most) until
    // the server has acknowledged everything each one sent.
    let mut sm_fields = String::new();
    if let Some(every) = sm_every {
        for (w, st) in writers.iter().zip(&sms) {
            if let Some(st) = st
                && let Err(e) = send(&mut *w.lock().await, st.request_all(&totals).as_bytes()).await
            {
                errs.add(format!("final <r/>: {e}"));
            }
        }
        let settle_until = Instant::now() + Duration::from_secs(10);
        let open = || {
            sms.iter()
                .flatten()
                .any(|st| st.unacked() != 0 || st.unanswered() != 0)
        };
        while open() && Instant::now() < settle_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let each =
            |f: &dyn Fn(&sm::SmState) -> u64| -> u64 { sms.iter().flatten().map(|st| f(st)).sum() };
        let max = sms
            .iter()
            .flatten()
            .find_map(|st| st.max.clone())
            .unwrap_or_default();
        let t = &totals;
        sm_fields = format!(
            "\"sm_every\":{every},\"sm_enabled\":{},\"sm_resume\":{},\"sm_max\":{},\"r_sent\":{},\
             \"acks\":{},\"r_answered\":{},\"bad_acks\":{},\"unacked_end\":{},\"r_unanswered_end\":{},",
            sms.iter().flatten().count(),
            each(&|st| u64::from(st.resume)),
            jstr(&max),
            t.r_sent.load(Ordering::Relaxed),
            t.acks.load(Ordering::Relaxed),
            t.r_answered.load(Ordering::Relaxed),
            t.bad_acks.load(Ordering::Relaxed),
            each(&|st| u64::from(st.unacked())),
            each(&|st| st.unanswered() as u64),
        );
    }
    done.store(true, Ordering::Relaxed);
    let sum = |f: fn(&Direction) -> u64| -> u64 { dirs.iter().map(|d| f(d)).sum() };
    let sent = sum(|d| d.sent.load(Ordering::Relaxed));
    let received = sum(|d| d.received.load(Ordering::Relaxed));
    let ooo = sum(|d| d.out_of_order.load(Ordering::Relaxed));
    let capped = sum(|d| d.capped.load(Ordering::Relaxed));
    let iq_answered = sum(|d| d.iq_answered.load(Ordering::Relaxed));
    for (w, st) in writers.iter().zip(&sms) {
        // With stream management, a last <a h/> first: nothing the server sent stays
        // unacknowledged for it to bounce or store when the stream closes.
        let close = match st {
            Some(st) => format!("{}</stream:stream>", st.answer()),
            None => "</stream:stream>".to_string(),
        };
        let _ = send(&mut *w.lock().await, close.as_bytes()).await;
    }
    let mut lat = Lat::default();
    let mut ack_lat = Vec::new();
    let mut in_window = 0u64;
    let readers_until = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = readers_until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r).await {
            Ok(Ok((l, n, a))) => {
                lat.sent.extend(l.sent);
                lat.sched.extend(l.sched);
                ack_lat.extend(a);
                in_window += n;
            }
            _ => errs.add("reader did not finish"),
        }
    }
    lat.sent.sort_unstable();
    lat.sched.sort_unstable();
    ack_lat.sort_unstable();
    if sm_every.is_some() {
        // Acknowledgement latency of the clients' own requests sent within T.
        sm_fields.push_str(&format!(
            "\"ack_n\":{},\"ack_p50_ms\":{},\"ack_p99_ms\":{},\"ack_max_ms\":{},",
            ack_lat.len(),
            num(pct_ms(&ack_lat, 50.0)),
            num(pct_ms(&ack_lat, 99.0)),
            num(pct_ms(&ack_lat, 100.0)),
        ));
    }
    let pace_fields = match pace {
        Pace::Closed { window } => format!("\"window\":{window}"),
        Pace::Open { rate, cap } => format!(
            "\"rate\":{},\"open_cap\":{cap},\"capped\":{capped},\"sched_p50_ms\":{},\"sched_p99_ms\":{},\"sched_max_ms\":{}",
            num(rate),
            num(pct_ms(&lat.sched, 50.0)),
            num(pct_ms(&lat.sched, 99.0)),
            num(pct_ms(&lat.sched, 100.0)),
        ),
    };
    println!(
        "{{\"scenario\":\"{label}\",{mode_field}\"server\":{},\"pairs\":{p},{pace_fields},\"duration_s\":{duration},{extra}{sm_fields}\
         \"sent\":{sent},\"received\":{received},\"iq_answered\":{iq_answered},\"lost\":{},\"out_of_order\":{ooo},\
         \"delivered_per_s\":{},\"send_wall_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},{},{}}}",
        jstr(&o.server),
        sent.saturating_sub(received),
        num(in_window as f64 / dur.as_secs_f64()),
        num(send_wall),
        num(pct_ms(&lat.sent, 50.0)),
        num(pct_ms(&lat.sent, 99.0)),
        num(pct_ms(&lat.sent, 100.0)),
        errs.fields(),
        fields_at_stop
    );
}
