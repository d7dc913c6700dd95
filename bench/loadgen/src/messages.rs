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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::stats::{jstr, num, pct_ms};
use crate::xmpp::{Event, Session, attr, child_text, send, tag_name};
use crate::{Ctx, Errors, Span, login_available};

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
}

/// Message latencies: from the moment of sending, and (open loop) from the scheduled moment,
/// which also counts any delay on our side (timer granularity, a full cap).
#[derive(Default)]
struct Lat {
    sent: Vec<u64>,
    sched: Vec<u64>,
}

pub async fn messages(
    ctx: &Arc<Ctx>,
    label: &str,
    mode: &str,
    pairs: usize,
    pace: Pace,
    duration: u64,
    extra: &str,
) {
    let o = &ctx.o;
    let p = pairs.min(o.accounts / 2).max(1);
    let errs = Arc::new(Errors::default());
    let mode_field = if mode.is_empty() {
        String::new()
    } else {
        format!("\"mode\":{},", jstr(mode))
    };
    // Log in 2P users (not measured).
    let sessions = login_available(ctx, 0..2 * p, "msg", 50, &errs).await;
    if sessions.len() != 2 * p {
        println!(
            "{{\"scenario\":\"{label}\",{mode_field}\"server\":{},\"pairs\":{p},\"skipped\":\"not every user logged in\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }
    let jids: Vec<String> = sessions.iter().map(|s| s.jid.clone()).collect();
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
    let senders_n = 2 * p;
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
            let mut lat = Lat {
                sent: Vec::with_capacity(1 << 16),
                sched: Vec::new(),
            };
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
            (lat, in_window)
        }));
        // Sender: to the partner's full JID.
        let outbound = dirs[i].clone();
        let to = jids[i ^ 1].clone();
        let errs_s = errs.clone();
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
                let msg = match q {
                    Some(q) => format!(
                        "<message to='{to}' type='chat' id='m{seq}'><body>t{t} q{q} s{seq}</body></message>"
                    ),
                    None => format!(
                        "<message to='{to}' type='chat' id='m{seq}'><body>t{t} s{seq}</body></message>"
                    ),
                };
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
    let sum = |f: fn(&Direction) -> u64| -> u64 { dirs.iter().map(|d| f(d)).sum() };
    let sent = sum(|d| d.sent.load(Ordering::Relaxed));
    let received = sum(|d| d.received.load(Ordering::Relaxed));
    let ooo = sum(|d| d.out_of_order.load(Ordering::Relaxed));
    let capped = sum(|d| d.capped.load(Ordering::Relaxed));
    for mut w in writers {
        let _ = send(&mut w, b"</stream:stream>").await;
    }
    let mut lat = Lat::default();
    let mut in_window = 0u64;
    let readers_until = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = readers_until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r).await {
            Ok(Ok((l, n))) => {
                lat.sent.extend(l.sent);
                lat.sched.extend(l.sched);
                in_window += n;
            }
            _ => errs.add("reader did not finish"),
        }
    }
    lat.sent.sort_unstable();
    lat.sched.sort_unstable();
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
        "{{\"scenario\":\"{label}\",{mode_field}\"server\":{},\"pairs\":{p},{pace_fields},\"duration_s\":{duration},{extra}\
         \"sent\":{sent},\"received\":{received},\"lost\":{},\"out_of_order\":{ooo},\
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
