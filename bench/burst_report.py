#!/usr/bin/env python3
"""Turns the JSON lines of one bench/burst.sh run into the Markdown results page (stdout).

The page layout (machine section, errors, configs) is report.py's; the tables are the burst
scenario's figures, each cell the median over the rounds with every round's value beside it.
"""

import sys

from report import (cell, configs_section, errors_section, fmt, load, machine_section, mb, per,
                    value)

SERVERS = ["rookery", "rookery_shaped", "prosody", "ejabberd"]
LABELS = {"rookery_shaped": "rookery, default shaping"}


def g(k):
    return lambda r: r[k]


def stream(who):
    """A client's stream at the end of the burst: open, or how it ended."""
    return lambda r: ("closed: " + (r[f"{who}_end"] or "?")) if r[f"{who}_closed"] else "open"


def text_cell(fn, rs):
    """Non-numeric figures: the value once if every round agrees, else each round's."""
    vals = [value(fn, r) for r in rs]
    if vals and all(v == vals[0] for v in vals):
        return f"{fmt(vals[0])} (all rounds)" if len(vals) > 1 else fmt(vals[0])
    return " / ".join(fmt(v) for v in vals)


def table(title, by, order, metrics):
    present = [s for s in order if s in by]
    if not present:
        return ""
    out = [f"### {title}", "", "| | " + " | ".join(LABELS.get(s, s) for s in present) + " |",
           "|---|" + "---:|" * len(present)]
    for label, fn, numeric in metrics:
        c = cell if numeric else text_cell
        out.append(f"| {label} | " + " | ".join(c(fn, by[s]) for s in present) + " |")
    return "\n".join(out) + "\n"


def main():
    machine, servers, logs, slots, extra, rows = load(sys.argv[1])
    order = [s for s in SERVERS if s in servers] + [s for s in servers if s not in SERVERS]
    ok = [s for s in order if servers[s].get("status") == "ok"]
    by = rows.get("burst", {})
    r0 = next((rs[0] for rs in by.values() if rs), {})
    n = r0.get("n")
    p = [f"# Message burst, {machine.get('date', '?')}\n"]
    p.append(
        "Produced by `bench/burst.sh` (see [../README.md](../README.md), scenario `burst`). Raw "
        "lines: the `.jsonl` file beside this one. User A writes "
        f"{fmt(n)} chat messages to user B's full JID back to back (100 per write, no window: as "
        "fast as A's socket takes them) while B reads continuously; meanwhile user C sends user "
        f"D one timestamped message at a time, at most one per {r0.get('cd_interval_ms')} ms, "
        "and D's receive time gives the C→D latency, measured alone for a baseline first and "
        "then during the burst. All four clients use STARTTLS. Each burst runs on a freshly "
        f"started server, cut off at {r0.get('time_limit_s')} s. The servers ran one at a time, "
        f"alternating: {machine.get('rounds', '?')} rounds of "
        + ", ".join(LABELS.get(s, s) for s in order) + ". Client and servers share the same "
        f"{machine.get('nproc', '?')} cores: compare within this page, not as capacity.\n"
    )
    p.append("*rookery*, *prosody* and *ejabberd* run their bench configs, which turn sender "
             "shaping off on all three (Rookery `c2s_rate_bytes = 0`, `c2s_rate_stanzas = 0`; "
             "Prosody without `mod_limits`; ejabberd's c2s listener without a `shaper`). "
             "*rookery, default shaping* is Rookery's bench config without those two lines: "
             "its defaults, 32768 B/s (burst 262144 B) and 100 stanzas/s (burst 1000) per "
             "client session.\n")
    p.append("## Notes\n\n(written by hand after the run)\n")
    p.extend(machine_section(machine, servers, slots, extra, order, None))
    p.append("## Results\n")
    p.append("Each cell: **median** (round 1 / round 2 / …). Server CPU is utime+stime of the "
             "server process (all threads) from `/proc/PID/stat` from A's first write to the end "
             "of the burst (C→D's messages included: compare the per-second figures with the "
             "baseline's, where C→D ran alone); memory is VmRSS / VmHWM from "
             "`/proc/PID/status`. On loopback the kernel's socket buffers take A's whole burst "
             "(~1 MB) at once, so A's send duration stays near zero even when the server reads "
             "slowly: a slowed sender shows in the burst duration.\n")
    p.append(table(f"A → B: {fmt(n)} messages back to back", by, order, [
        ("messages B received live", g("b_received"), True),
        ("not received by B", g("b_missing"), True),
        ("out of order at B", g("b_out_of_order"), True),
        ("burst duration: A's first write → B's last receive (s)", g("burst_s"), True),
        ("B's receive rate (msgs/s)", g("b_msgs_per_s"), True),
        ("A's send duration: first write → last write accepted (s)", g("a_send_s"), True),
        ("messages A wrote", g("a_sent"), True),
        ("error replies (bounces) to A", g("a_bounced"), True),
        ("first bounce condition", lambda r: r["a_bounce_condition"] or "none", False),
        ("A's stream at the end", stream("a"), False),
        ("B's stream at the end", stream("b"), False),
        ("C's / D's streams", lambda r: f"{stream('c')(r)} / {stream('d')(r)}", False),
        ("A's write failed", lambda r: r["a_write_error"] or "no", False),
        ("the burst ended because", g("end_reason"), False),
    ]))
    p.append(table("C → D latency, one message in flight (ms)", by, order, [
        ("baseline: messages", g("base_n"), True),
        ("baseline p50", g("base_p50_ms"), True),
        ("baseline p99", g("base_p99_ms"), True),
        ("baseline max", g("base_max_ms"), True),
        ("during the burst: messages", g("cd_n"), True),
        ("during the burst p50", g("cd_p50_ms"), True),
        ("during the burst p99", g("cd_p99_ms"), True),
        ("during the burst max", g("cd_max_ms"), True),
        ("C's messages never received by D", g("cd_undelivered"), True),
    ]))
    p.append(table("Server CPU and memory over the burst", by, order, [
        ("server CPU (s)", g("server_cpu_s"), True),
        ("server CPU per message B received (µs)",
         lambda r: per(r["server_cpu_s"], r["b_received"], 1e6), True),
        ("server CPU per second over the burst (ms/s)",
         lambda r: per(r["server_cpu_s"], r["wall_s"], 1e3), True),
        ("server CPU per second in the baseline, C→D alone (ms/s)",
         lambda r: per(r["base_server_cpu_s"], r["base_s"], 1e3), True),
        ("load generator CPU (s)", g("client_cpu_s"), True),
        ("wall time of the burst (s)", g("wall_s"), True),
        ("server RSS before (MiB)", lambda r: mb(r["server_rss_kb_before"]), True),
        ("server RSS at the end of the burst (MiB)", lambda r: mb(r["server_rss_kb_after"]), True),
        ("server peak RSS, VmHWM (MiB)", lambda r: mb(r["server_hwm_kb"]), True),
        ("server RSS 2 s after the clients left (MiB)",
         lambda r: mb(r["server_rss_kb_settled"]), True),
    ]))
    p.extend(errors_section(rows, logs, order))
    p.extend(configs_section(servers, ok))
    print("\n".join(p))


if __name__ == "__main__":
    main()
