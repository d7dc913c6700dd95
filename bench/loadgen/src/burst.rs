//! burst: one user floods another while a third user's messages are timed (issue 10 §1, for
//! bench/burst.sh). One scenario of the load generator, beside the ones in main.rs, using its
//! logins (`login_available`) and server readings (`Span`).
//!
//! Users A, B, C, D (accounts `--burst-first` .. +3) log in with the run's TLS setting and send
//! initial presence. C sends D one timestamped chat message at a time, at most one every
//! `--burst-interval` ms and never two in flight; D's receive time gives the C→D latency. After
//! `--burst-base` seconds of that alone (the baseline), A writes `--burst-n` chat messages to
//! B's full JID back to back, in writes of 100 messages each (as tests/interop/test_burst.py
//! does), with no window: as fast as its socket takes them. B reads continuously. The burst
//! ends when B has every message, when every message is accounted for (received by B or
//! bounced to A), when B's stream ends, when nothing reached B for 10 s after A finished
//! writing, or at `--burst-time` seconds: whatever was not delivered by then is reported, not
//! waited for. One JSON line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, watch};

use crate::stats::{jstr, num, pct_ms, sample};
use crate::xmpp::{Event, Framer, Session, Stream, attr, child_text, find, send, tag_name};
use crate::{Ctx, Errors, Span, login_available};

/// Messages per write from A (one write call, one or more TLS records).
const CHUNK: usize = 100;
/// After A finished writing, the burst is over once B has received nothing for this long.
const QUIET: Duration = Duration::from_secs(10);

/// How one client's stream ended, if it did before the scenario closed it.
#[derive(Default)]
struct StreamEnd {
    closed: AtomicBool,
    /// The stream error condition (RFC 6120 §4.9.3), else what the read failed with.
    why: Mutex<String>,
}

impl StreamEnd {
    fn end(&self, why: String) {
        let mut w = self.why.lock().expect("stream end");
        if w.is_empty() {
            *w = why;
        }
        self.closed.store(true, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn json(&self) -> String {
        jstr(&self.why.lock().expect("stream end"))
    }
}

/// The name of the first error condition element (stream or stanza namespace) in `el`.
fn condition(el: &[u8]) -> String {
    for q in ["'", "\""] {
        let ns = format!("xmlns={q}urn:ietf:params:xml:ns:xmpp-st");
        let mut from = 0;
        while let Some(p) = find(&el[from..], ns.as_bytes()) {
            let at = from + p;
            if let Some(lt) = el[..at].iter().rposition(|&c| c == b'<') {
                let name = tag_name(&el[lt..]);
                if name != b"text" {
                    return String::from_utf8_lossy(name).into_owned();
                }
            }
            from = at + 1;
        }
    }
    "undefined-condition".into()
}

/// A numbered field (`s12`, `t345`) of a message body written by this scenario.
fn field(body: &[u8], key: char) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .split(' ')
        .find_map(|p| p.strip_prefix(key).and_then(|v| v.parse().ok()))
}

/// Reads one client's stream until it ends, handing every message to `on_msg`; a stream error
/// or a close before `over` is set is recorded in `end`.
async fn read_all<R: AsyncRead + Unpin>(
    mut rd: R,
    mut framer: Framer,
    end: Arc<StreamEnd>,
    over: Arc<AtomicBool>,
    mut on_msg: impl FnMut(&[u8]),
) {
    loop {
        let why = match framer.next(&mut rd).await {
            Ok(Event::Element(el)) if tag_name(&el) == b"stream:error" => {
                format!("stream error: {}", condition(&el))
            }
            Ok(Event::Element(el)) => {
                if tag_name(&el) == b"message" {
                    on_msg(&el);
                }
                continue;
            }
            Ok(Event::Open) => continue,
            Ok(Event::Close) => "closed by the server".into(),
            Err(e) => e.to_string(),
        };
        let stream_error = why.starts_with("stream error");
        if !over.load(Ordering::Relaxed) {
            end.end(why);
        }
        // After a stream error the server closes the stream: read on to see it go.
        if !stream_error {
            break;
        }
    }
}

/// B's side: live deliveries of A's burst.
#[derive(Default)]
struct Inbox {
    received: AtomicU64,
    out_of_order: AtomicU64,
    /// Nanoseconds since the scenario's base at the last message received.
    last_ns: AtomicU64,
}

/// A's side: error replies (bounces) to its burst.
#[derive(Default)]
struct Bounces {
    count: AtomicU64,
    first: Mutex<String>,
}

pub(crate) async fn burst(ctx: &Arc<Ctx>) {
    let o = &ctx.o;
    let errs = Arc::new(Errors::default());
    let first = o.burst_first;
    let sessions = login_available(ctx, first..first + 4, "burst", 4, false, &errs).await;
    if sessions.len() != 4 {
        println!(
            "{{\"scenario\":\"burst\",\"server\":{},\"skipped\":\"not every user logged in\",{}}}",
            jstr(&o.server),
            errs.fields()
        );
        return;
    }
    let jid_b = sessions[1].jid.clone();
    let jid_d = sessions[3].jid.clone();
    // Let presence broadcasts and the logins' storage writes settle.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let over = Arc::new(AtomicBool::new(false));
    let ends: Vec<Arc<StreamEnd>> = (0..4).map(|_| Arc::new(StreamEnd::default())).collect();
    let mut writers: Vec<WriteHalf<Stream>> = Vec::new();
    let mut halves: Vec<ReadHalf<Stream>> = Vec::new();
    let mut framers = Vec::new();
    for s in sessions {
        let Session { stream, framer, .. } = s;
        let (rd, wr) = tokio::io::split(stream);
        halves.push(rd);
        writers.push(wr);
        framers.push(framer);
    }
    let base = Instant::now();
    let now_ns = move || base.elapsed().as_nanos() as u64;
    let mut readers = Vec::new();
    let mut halves = halves.into_iter().zip(framers);

    // A: bounces of its burst.
    let bounces = Arc::new(Bounces::default());
    let (rd, fr) = halves.next().expect("four sessions");
    let b2 = bounces.clone();
    readers.push(tokio::spawn(read_all(
        rd,
        fr,
        ends[0].clone(),
        over.clone(),
        move |el| {
            if attr(el, "type") == Some(b"error") && b2.count.fetch_add(1, Ordering::Relaxed) == 0 {
                *b2.first.lock().expect("bounces") = condition(el);
            }
        },
    )));
    // B: the burst, in order.
    let inbox = Arc::new(Inbox::default());
    let (rd, fr) = halves.next().expect("four sessions");
    let ib = inbox.clone();
    let mut expect = 0u64;
    readers.push(tokio::spawn(read_all(
        rd,
        fr,
        ends[1].clone(),
        over.clone(),
        move |el| {
            if attr(el, "type") == Some(b"error") {
                return;
            }
            let Some(seq) = child_text(el, "body").and_then(|b| field(b, 's')) else {
                return;
            };
            if seq != expect {
                ib.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            expect = seq + 1;
            ib.last_ns.store(now_ns(), Ordering::Relaxed);
            ib.received.fetch_add(1, Ordering::Relaxed);
        },
    )));
    // C: only its stream's fate (it sends; D receives).
    let (rd, fr) = halves.next().expect("four sessions");
    readers.push(tokio::spawn(read_all(
        rd,
        fr,
        ends[2].clone(),
        over.clone(),
        |_| {},
    )));
    // D: C's timed messages; each one frees C's next send.
    let in_flight = Arc::new(Semaphore::new(1));
    let cd_lat: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let cd_received = Arc::new(AtomicU64::new(0));
    let (rd, fr) = halves.next().expect("four sessions");
    let (fl, lat, rcv) = (in_flight.clone(), cd_lat.clone(), cd_received.clone());
    readers.push(tokio::spawn(read_all(
        rd,
        fr,
        ends[3].clone(),
        over.clone(),
        move |el| {
            if attr(el, "type") == Some(b"error") {
                return;
            }
            let Some(t) = child_text(el, "body").and_then(|b| field(b, 't')) else {
                return;
            };
            lat.lock()
                .expect("latencies")
                .push((t, now_ns().saturating_sub(t)));
            rcv.fetch_add(1, Ordering::Relaxed);
            fl.add_permits(1);
        },
    )));

    let mut wr_iter = writers.into_iter();
    let mut wr_a = wr_iter.next().expect("four sessions");
    let wr_b = wr_iter.next().expect("four sessions");
    let mut wr_c = wr_iter.next().expect("four sessions");
    let wr_d = wr_iter.next().expect("four sessions");

    // C → D from the start: the baseline, then on through the burst until told to stop.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let interval = Duration::from_millis(o.burst_interval);
    let cd_sent = Arc::new(AtomicU64::new(0));
    let sent_c = cd_sent.clone();
    let errs_c = errs.clone();
    // Server CPU over the baseline: what C→D alone costs, to set against the burst's figure.
    let base_cpu0 = sample(o.pid).cpu_s;
    let c_task = tokio::spawn(async move {
        let mut next = Instant::now();
        loop {
            // The previous message must have arrived (one in flight).
            tokio::select! {
                _ = stop_rx.changed() => break,
                p = in_flight.acquire() => match p {
                    Ok(p) => p.forget(),
                    Err(_) => break,
                },
            }
            tokio::select! {
                _ = stop_rx.changed() => break,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            let seq = sent_c.load(Ordering::Relaxed);
            let msg = format!(
                "<message to='{jid_d}' type='chat' id='c{seq}'><body>t{} s{seq}</body></message>",
                now_ns()
            );
            next = Instant::now() + interval;
            if let Err(e) = send(&mut wr_c, msg.as_bytes()).await {
                errs_c.add(format!("C: {e}"));
                break;
            }
            sent_c.fetch_add(1, Ordering::Relaxed);
        }
        wr_c
    });
    tokio::time::sleep(Duration::from_secs(o.burst_base)).await;
    let base_cpu = sample(o.pid).cpu_s - base_cpu0;

    // The burst.
    let n = o.burst_n;
    let limit = Duration::from_secs(o.burst_time);
    let span = Span::start(o.pid);
    let burst_start = now_ns();
    let deadline = Instant::now() + limit;
    let a_sent = Arc::new(AtomicU64::new(0));
    // Nanoseconds (since base) when A's last write was accepted; 0 while writing.
    let a_done = Arc::new(AtomicU64::new(0));
    let a_write_err: Arc<Mutex<String>> = Arc::default();
    let (sent_a, done_a, werr) = (a_sent.clone(), a_done.clone(), a_write_err.clone());
    let a_task = tokio::spawn(async move {
        let mut i = 0;
        while i < n {
            let upto = (i + CHUNK).min(n);
            let chunk: String = (i..upto)
                .map(|k| {
                    format!(
                        "<message to='{jid_b}' type='chat' id='b{k}'><body>burst message s{k}</body></message>"
                    )
                })
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, send(&mut wr_a, chunk.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    *werr.lock().expect("write error") = e.to_string();
                    break;
                }
                Err(_) => {
                    *werr.lock().expect("write error") = "still writing at the time limit".into();
                    break;
                }
            }
            i = upto;
            sent_a.store(i as u64, Ordering::Relaxed);
        }
        done_a.store(now_ns().max(1), Ordering::Relaxed);
        wr_a
    });

    let end_reason = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let got = inbox.received.load(Ordering::Relaxed);
        let done = a_done.load(Ordering::Relaxed);
        if got >= n as u64 {
            break "B received every message";
        }
        if ends[1].is_closed() {
            break "B's stream ended";
        }
        if done > 0 {
            let sent = a_sent.load(Ordering::Relaxed);
            if got + bounces.count.load(Ordering::Relaxed) >= sent {
                break "every message sent was received by B or bounced to A";
            }
            let last = inbox.last_ns.load(Ordering::Relaxed).max(done);
            if now_ns().saturating_sub(last) >= QUIET.as_nanos() as u64 {
                break "nothing reached B for 10 s after A finished writing";
            }
        }
        if Instant::now() >= deadline {
            break "time limit";
        }
    };
    let burst_end = now_ns();
    let fields = span.fields(o.pid);

    // C stops; its last message may still be on the way (10 s at most).
    let _ = stop_tx.send(true);
    let c_wr = c_task.await.ok();
    let until = Instant::now() + Duration::from_secs(10);
    while cd_received.load(Ordering::Relaxed) < cd_sent.load(Ordering::Relaxed)
        && Instant::now() < until
        && !ends[3].is_closed()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cd_undelivered = cd_sent
        .load(Ordering::Relaxed)
        .saturating_sub(cd_received.load(Ordering::Relaxed));

    // A may still be blocked in a write (time limit): give up on it.
    let a_wr = if a_done.load(Ordering::Relaxed) > 0 {
        a_task.await.ok()
    } else {
        a_task.abort();
        None
    };
    over.store(true, Ordering::Relaxed);
    for mut w in [a_wr, Some(wr_b), c_wr, Some(wr_d)].into_iter().flatten() {
        let _ =
            tokio::time::timeout(Duration::from_secs(5), send(&mut w, b"</stream:stream>")).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    for r in readers {
        let left = until.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, r).await.is_err() {
            errs.add("a reader did not finish after the streams were closed");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = sample(o.pid);

    let (mut base_lat, mut burst_lat) = (Vec::new(), Vec::new());
    for &(t, l) in cd_lat.lock().expect("latencies").iter() {
        if t < burst_start {
            base_lat.push(l);
        } else if t <= burst_end {
            burst_lat.push(l);
        }
    }
    base_lat.sort_unstable();
    burst_lat.sort_unstable();
    let got = inbox.received.load(Ordering::Relaxed);
    let last = inbox.last_ns.load(Ordering::Relaxed);
    let secs = |ns: u64| ns as f64 / 1e9;
    let burst_s = if got > 0 {
        secs(last.saturating_sub(burst_start))
    } else {
        f64::NAN
    };
    let a_send_s = match a_done.load(Ordering::Relaxed) {
        0 => f64::NAN,
        d => secs(d - burst_start),
    };
    println!(
        "{{\"scenario\":\"burst\",\"server\":{},\"n\":{n},\"a_sent\":{},\"a_send_s\":{},\
         \"a_write_error\":{},\"b_received\":{got},\"b_missing\":{},\"b_out_of_order\":{},\
         \"burst_s\":{},\"b_msgs_per_s\":{},\"a_bounced\":{},\"a_bounce_condition\":{},\
         \"a_closed\":{},\"a_end\":{},\"b_closed\":{},\"b_end\":{},\"c_closed\":{},\"c_end\":{},\
         \"d_closed\":{},\"d_end\":{},\"end_reason\":{},\"time_limit_s\":{},\
         \"cd_interval_ms\":{},\"base_n\":{},{},\"cd_n\":{},{},\"cd_undelivered\":{cd_undelivered},\"base_s\":{},\"base_server_cpu_s\":{},\
         \"server_rss_kb_settled\":{},{},{}}}",
        jstr(&o.server),
        a_sent.load(Ordering::Relaxed),
        num(a_send_s),
        jstr(&a_write_err.lock().expect("write error")),
        (n as u64).saturating_sub(got),
        inbox.out_of_order.load(Ordering::Relaxed),
        num(burst_s),
        num(got as f64 / burst_s),
        bounces.count.load(Ordering::Relaxed),
        jstr(&bounces.first.lock().expect("bounces")),
        ends[0].is_closed(),
        ends[0].json(),
        ends[1].is_closed(),
        ends[1].json(),
        ends[2].is_closed(),
        ends[2].json(),
        ends[3].is_closed(),
        ends[3].json(),
        jstr(end_reason),
        o.burst_time,
        o.burst_interval,
        base_lat.len(),
        lat_fields("base", &base_lat),
        burst_lat.len(),
        lat_fields("cd", &burst_lat),
        o.burst_base,
        num(base_cpu),
        settled.rss_kb,
        errs.fields(),
        fields
    );
}

/// `"<p>_p50_ms":…,"<p>_p99_ms":…,"<p>_max_ms":…` of sorted nanosecond latencies.
fn lat_fields(p: &str, v: &[u64]) -> String {
    format!(
        "\"{p}_p50_ms\":{},\"{p}_p99_ms\":{},\"{p}_max_ms\":{}",
        num(pct_ms(v, 50.0)),
        num(pct_ms(v, 99.0)),
        num(pct_ms(v, 100.0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_condition_not_the_text() {
        let el = b"<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>slow</text>\
            <policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        assert_eq!(condition(el), "policy-violation");
        let el = b"<message type=\"error\"><error type=\"wait\"><resource-constraint \
            xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/></error></message>";
        assert_eq!(condition(el), "resource-constraint");
    }

    #[test]
    fn reads_numbered_fields() {
        assert_eq!(field(b"t123 s4", 's'), Some(4));
        assert_eq!(field(b"burst message s17", 's'), Some(17));
        assert_eq!(field(b"burst message", 's'), None);
    }
}
