#!/usr/bin/env python3
"""Turns the JSON lines of one bench/compare.sh run into the Markdown results page (stdout).

Every scenario ran once per server per round; a figure is reported as the median over the rounds
(with two rounds, their mean), and the detail tables show each round's value, so the spread is
visible next to the difference between servers.
"""

import json
import statistics
import sys

SERVERS = ["rookery", "prosody", "ejabberd"]


def key_of(d):
    """One key per measurement kind: scenario, its mode, and the plain (no TLS) variant."""
    k = d["scenario"]
    if d.get("mode"):
        k += "/" + d["mode"]
    if d.get("tls") is False:
        k += "/plain"
    return k


def load(path):
    machine, servers, logs, slots, extra = {}, {}, {}, [], {}
    rows = {}  # key -> server -> [row per round]
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            m = d.get("meta")
            if m == "machine":
                machine = d
            elif m == "server":
                servers.setdefault(d["server"], {}).update(d)
            elif m == "log":
                logs[d["server"]] = d
            elif m == "slot":
                slots.append(d)
            elif m in ("rate", "end", "measure"):
                extra[m] = d
            elif "scenario" in d:
                rows.setdefault(key_of(d), {}).setdefault(d["server"], []).append(d)
    return machine, servers, logs, slots, extra, rows


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "–"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:,.1f}"
        if abs(v) >= 1:
            return f"{v:,.2f}"
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def value(fn, r):
    try:
        v = fn(r)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    if isinstance(v, float) and v != v:
        return None
    return v


def median(fn, rs):
    vals = [v for v in (value(fn, r) for r in rs) if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def cell(fn, rs):
    """`median (round 1 / round 2 / ...)` for numbers, the rounds' values for the rest."""
    vals = [value(fn, r) for r in rs]
    nums = [v for v in vals if isinstance(v, (int, float))]
    if len(vals) == 1 or not nums:
        return " / ".join(fmt(v) for v in vals) if vals else "–"
    if len(nums) != len(vals):
        return " / ".join(fmt(v) for v in vals)
    return f"**{fmt(statistics.median(nums))}** ({' / '.join(fmt(v) for v in vals)})"


def table(title, by_server, servers, metrics):
    present = [s for s in servers if s in by_server]
    if not present:
        return ""
    out = [f"### {title}", "", "| | " + " | ".join(present) + " |", "|---|" + "---:|" * len(present)]
    for label, fn in metrics:
        out.append(f"| {label} | " + " | ".join(cell(fn, by_server[s]) for s in present) + " |")
    return "\n".join(out) + "\n"


def per(a, b, scale=1.0):
    return None if not b else a / b * scale


def mb(kb):
    return kb / 1024.0


def get(k):
    return lambda r: r[k]


def cpu_per_login_ms(r):
    return per(r["server_cpu_s"], r["ok"], 1000)


def cpu_per_msg_us(r):
    return per(r["server_cpu_s"], r["received"], 1e6)


def headline_items(rate, lo, hi):
    """(label, key, function, higher is better)."""
    return [
        ("1:1 messages/s, closed loop", "messages", get("delivered_per_s"), True),
        ("server CPU per message (µs)", "messages", cpu_per_msg_us, False),
        ("1:1 messages/s, closed loop, stream management on", "messages_sm",
         get("delivered_per_s"), True),
        ("server CPU per message, stream management on (µs)", "messages_sm", cpu_per_msg_us, False),
        ("p50 time to an acknowledgement of the client's `<r/>` (ms)", "messages_sm",
         get("ack_p50_ms"), False),
        (f"p99 latency at a fixed {fmt(rate)} msgs/s, open loop (ms)", "openloop",
         get("p99_ms"), False),
        (f"p50 latency at a fixed {fmt(rate)} msgs/s, open loop (ms)", "openloop",
         get("p50_ms"), False),
        (f"delivered msgs/s at that offered rate", "openloop", get("delivered_per_s"), True),
        ("RSS per idle connection, STARTTLS (KiB)", "idle", get("rss_kb_per_conn"), False),
        ("RSS per idle connection, no TLS (KiB)", "idle/plain", get("rss_kb_per_conn"), False),
        ("RSS per idle stream-managed session, STARTTLS (KiB)", "idle_sm",
         get("rss_kb_per_conn"), False),
        ("server CPU per SCRAM-SHA-1 login, STARTTLS, 50 concurrent (ms)", "login/concurrent",
         cpu_per_login_ms, False),
        ("server CPU per SCRAM-SHA-1 login, no TLS, 50 concurrent (ms)",
         "login/concurrent/plain", cpu_per_login_ms, False),
        ("logins/s, STARTTLS, 50 concurrent", "login/concurrent", get("logins_per_s"), True),
        ("logins/s, no TLS, 50 concurrent", "login/concurrent/plain", get("logins_per_s"), True),
        ("presence broadcasts delivered/s", "presence", get("delivered_per_s"), True),
        ("server CPU per presence delivered (µs)", "presence",
         lambda r: per(r["server_cpu_s"], r["delivered"], 1e6), False),
        (f"messages/s with {fmt(lo)} idle users connected", "scale/lo", get("delivered_per_s"), True),
        (f"messages/s with {fmt(hi)} idle users connected", "scale/hi", get("delivered_per_s"), True),
        (f"server CPU per message with {fmt(lo)} idle users (µs)", "scale/lo", cpu_per_msg_us, False),
        (f"server CPU per message with {fmt(hi)} idle users (µs)", "scale/hi", cpu_per_msg_us, False),
        ("p50 one-way latency, one pair, one in flight (ms)", "latency", get("p50_ms"), False),
    ]


def headline(rows, order, rate):
    def target(k):
        ts = [r.get("background_target") for rs in rows.get(k, {}).values() for r in rs]
        return max((t for t in ts if t is not None), default=None)
    lo, hi = target("scale/lo"), target("scale/hi")
    items = headline_items(rate, lo, hi)
    present = [s for s in order if any(s in rows.get(k, {}) for _, k, _, _ in items)]
    if not present:
        return ""
    peers = [s for s in present if s != "rookery"]
    cols = present + (["best peer", "Rookery ÷ best peer", "better"] if "rookery" in present and peers else [])
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(present)
           + ("---|---:|---|" if len(cols) > len(present) else "")]
    for label, key, fn, higher in items:
        by = rows.get(key, {})
        vals = {s: median(fn, by[s]) if s in by else None for s in present}
        cells = [fmt(vals[s]) for s in present]
        if len(cols) > len(present):
            pv = {s: vals[s] for s in peers if vals[s] is not None}
            a = vals.get("rookery")
            if pv:
                best = (max if higher else min)(pv, key=pv.get)
                b = pv[best]
                cells += [best, f"{a / b:.2f}×" if a is not None and b else "–",
                          "higher" if higher else "lower"]
            else:
                cells += ["–", "–", "higher" if higher else "lower"]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    # The scale criterion: cost must not grow with the number of connected users.
    lines = []
    for s in present:
        rlo, rhi = rows.get("scale/lo", {}).get(s), rows.get("scale/hi", {}).get(s)
        if rlo and rhi:
            t = per(median(get("delivered_per_s"), rhi), median(get("delivered_per_s"), rlo))
            c = per(median(cpu_per_msg_us, rhi), median(cpu_per_msg_us, rlo))
            bg = median(get("background"), rhi)
            lines.append(f"- {s}: with {fmt(bg)} idle users instead of "
                         f"{fmt(median(get('background'), rlo))}, messages/s × {fmt(t)}, "
                         f"server CPU per message × {fmt(c)}")
    # What stream management costs each server: messages_sm against messages, same run.
    sm_lines = []
    for s in present:
        rm, rs = rows.get("messages", {}).get(s), rows.get("messages_sm", {}).get(s)
        if rm and rs:
            t = per(median(get("delivered_per_s"), rs), median(get("delivered_per_s"), rm))
            c = per(median(cpu_per_msg_us, rs), median(cpu_per_msg_us, rm))
            sm_lines.append(f"- {s}: messages/s × {fmt(t)}, server CPU per message × {fmt(c)}")
    text = "\n".join(out) + "\n"
    if sm_lines:
        text += ("\nStream management (`messages_sm` against `messages`; 1.00 = no change):\n\n"
                 + "\n".join(sm_lines) + "\n")
    if lines:
        text += (f"\nScale ({fmt(hi)} against {fmt(lo)} connected users; 1.00 = no change):\n\n"
                 + "\n".join(lines) + "\n")
    return text


def machine_section(machine, servers, slots, extra, order, rate):
    """Machine, versions, load average at each server start: the lines of that section."""
    p = []
    p.append("## Machine and versions\n")
    p.append("| | |\n|---|---|")
    p.append(f"| CPU | {machine.get('cpu')} (`nproc` = {machine.get('nproc')}) |")
    p.append(f"| memory | {machine.get('mem')} |")
    p.append(f"| kernel / OS | {machine.get('kernel')} / {machine.get('os')} |")
    p.append(f"| Rust | {machine.get('rustc')} |")
    p.append(f"| OpenSSL (Prosody, ejabberd) | {machine.get('openssl')} |")
    p.append(f"| Rookery commit | {machine.get('rookery_rev')} |")
    for s in order:
        d = servers[s]
        if d.get("status") == "ok":
            p.append(
                f"| {s} | {d.get('version')}; accounts created in {d.get('provision_s')} s (the three "
                f"servers side by side, before measuring); start {d.get('setup_s')} s; "
                f"open-file limit {d.get('nofile')} |"
            )
        else:
            p.append(f"| {s} | **not measured**: {d.get('status')} |")
    p.append(f"| load average before the run (builds, accounts) | {machine.get('loadavg')} |")
    if "measure" in extra:
        p.append(f"| measuring started | {extra['measure'].get('at')}, load average "
                 f"{extra['measure'].get('loadavg')} |")
    if "end" in extra:
        p.append(f"| load average after the run | {extra['end'].get('loadavg')} "
                 f"(run took {extra['end'].get('wall_s')} s) |")
    if rate is not None:
        p.append(f"| open-loop rate | {fmt(rate)} msgs/s ({extra.get('rate', {}).get('from', 'given')}) |")
    p.append(f"| parameters | `{machine.get('params')}` |")
    p.append("")
    p.append("Busiest processes when the run started (other work on the machine competes for the "
             "same cores):\n")
    p.append("```\n" + machine.get("top", "") + "\n```\n")
    if extra.get("measure", {}).get("top"):
        p.append("Busiest processes when measuring started:\n")
        p.append("```\n" + extra["measure"]["top"] + "\n```\n")
    if slots:
        p.append("Load average (1, 5, 15 min) as each server started, and the two busiest other "
                 "processes over the half second before (not the load generator):\n")
        p.append("| round | server | phase | at (UTC) | load average | busiest others (%CPU command) |")
        p.append("|---:|---|---|---|---|---|")
        for sl in slots:
            busy = [ln.split() for ln in sl.get("busy", "").splitlines()[1:] if ln.strip()]
            other = [b for b in busy if len(b) >= 12 and b[0] != str(sl.get("pid"))
                     and b[-1] not in ("top", "rookery-loadgen")]
            top = ", ".join(f"{b[8]} {b[-1]}" for b in other[:2]) or "–"
            p.append(f"| {sl['round']} | {sl['server']} | {sl['phase']} | {sl.get('at')} | "
                     f"{sl.get('loadavg')} | {top} |")
        p.append("")
    return p


def errors_section(rows, logs, order):
    """The load generator's errors and the servers' warnings."""
    p = []
    errs = []
    for key, by_server in rows.items():
        for s, rs in by_server.items():
            for r in rs:
                first_err = r.get("first_error") or r.get("skipped") or r.get("background_first_error")
                if r.get("errors") or r.get("skipped") or r.get("background_errors"):
                    errs.append(f"- {key} / {s} / round {r.get('round')}: {r.get('errors')} errors; "
                                f"first: `{(first_err or '')[:300]}`")
    if errs:
        p.append("### Errors reported by the load generator\n")
        p.extend(errs)
        p.append("")
    if logs:
        p.append("### Server logs (warning level and above, whole run)\n")
        for s in order:
            if s in logs:
                head_ = logs[s]["head"].strip()
                p.append(f"- {s}: {logs[s]['lines']} lines" + (":" if head_ else ""))
                if head_:
                    p.append("\n```\n" + head_ + "\n```\n")
        p.append("")

    return p


def configs_section(servers, ok):
    """Every config as used."""
    p = []
    p.append("## Configurations used\n")
    p.append("`$WORK` is the run's temporary directory. One ECDSA P-256 self-signed certificate "
             "for `localhost` serves all three.\n")
    for s in ok:
        lang = {"rookery": "toml", "prosody": "lua", "ejabberd": "yaml"}.get(s.split("_")[0], "")
        p.append(f"### {s}\n")
        p.append(f"```{lang}\n{servers[s].get('config', '').rstrip()}\n```\n")
    return p


def main():
    machine, servers, logs, slots, extra, rows = load(sys.argv[1])
    order = [s for s in SERVERS if s in servers] + [s for s in servers if s not in SERVERS]
    ok = [s for s in order if servers[s].get("status") == "ok"]
    rate = extra.get("rate", {}).get("rate")
    if rate is None:
        rs = [r for by in rows.get("openloop", {}).values() for r in by]
        rate = rs[0].get("rate") if rs else None
    p = []
    p.append(f"# c2s benchmark, {machine.get('date', '?')}\n")
    p.append(
        "Produced by `bench/compare.sh` (see [../README.md](../README.md) for what each scenario "
        "does). Raw lines: the `.jsonl` file beside this one. Client and servers share the same "
        f"{machine.get('nproc', '?')} cores; read the figures as a comparison on one machine in "
        "one run, not as capacity. The servers ran one at a time, alternating: "
        f"{machine.get('rounds', '?')} rounds of " + ", ".join(order) + ".\n"
    )
    p.extend(machine_section(machine, servers, slots, extra, order, rate))

    head = headline(rows, order, rate)
    if head:
        p.append("## Headline\n")
        p.append("Median over the rounds. *best peer* is the better of Prosody and ejabberd for "
                 "that figure; the ratio is Rookery's figure divided by it, and *better* says "
                 "which way is better (for a *lower* figure, a ratio below 1 means Rookery is "
                 "ahead).\n")
        p.append(head)

    p.append("## Results\n")
    p.append(
        "Each cell: **median** (round 1 / round 2 / …). Server CPU is utime+stime of the server "
        "process (all threads) from `/proc/PID/stat` over the measured phase; client CPU is the "
        "load generator's own. Memory is VmRSS from `/proc/PID/status`.\n"
    )

    cpu = [
        ("server CPU (s)", get("server_cpu_s")),
        ("client CPU (s)", get("client_cpu_s")),
        ("wall time (s)", get("wall_s")),
    ]
    login_metrics = [
        ("logins/s", get("logins_per_s")),
        ("p50 latency (ms)", get("p50_ms")),
        ("p99 latency (ms)", get("p99_ms")),
        ("max latency (ms)", get("max_ms")),
        ("completed / target", lambda r: f"{r['ok']} / {r['target']}"),
        ("errors", get("errors")),
        ("server CPU per login (ms)", cpu_per_login_ms),
    ] + cpu + [("server RSS after (MiB)", lambda r: mb(r["server_rss_kb_after"]))]
    for variant, suffix, what in [("STARTTLS", "", "TCP + STARTTLS + SCRAM-SHA-1 + bind"),
                                  ("no TLS", "/plain", "TCP + SCRAM-SHA-1 + bind, no TLS")]:
        p.append(table(f"login, sequential, {variant} (one client; {what}, then close)",
                       rows.get("login/sequential" + suffix, {}), order, login_metrics))
        p.append(table(f"login, concurrent, {variant}", rows.get("login/concurrent" + suffix, {}),
                       order, [("concurrent clients", get("concurrency"))] + login_metrics))
    msg_metrics = [
        ("delivered msgs/s", get("delivered_per_s")),
        ("p50 one-way latency (ms)", get("p50_ms")),
        ("p99 one-way latency (ms)", get("p99_ms")),
        ("max one-way latency (ms)", get("max_ms")),
        ("sent", get("sent")),
        ("received", get("received")),
        ("lost", get("lost")),
        ("out of order", get("out_of_order")),
        ("iq requests answered (pings)", get("iq_answered")),
        ("errors", get("errors")),
        ("server CPU per message (µs)", cpu_per_msg_us),
    ] + cpu + [
        ("server RSS at end (MiB)", lambda r: mb(r["server_rss_kb_after"])),
    ]

    def first(key):
        by = rows.get(key, {})
        return next((rs[0] for rs in by.values() if rs), {})

    m = rows.get("messages", {})
    if m:
        r0 = first("messages")
        p.append(table(
            f"messages, closed loop ({r0.get('pairs')} pairs, window {r0.get('window')}, "
            f"{r0.get('duration_s')} s, STARTTLS)", m, order, msg_metrics))
    ms = rows.get("messages_sm", {})
    if ms:
        r0 = first("messages_sm")
        p.append(table(
            f"messages with stream management, closed loop ({r0.get('pairs')} pairs, window "
            f"{r0.get('window')}, {r0.get('duration_s')} s, STARTTLS; XEP-0198 with resumption, "
            f"the client's `<r/>` after every {r0.get('sm_every')} stanzas)", ms, order,
            msg_metrics[:1] + [
                ("sessions enabled / with resumption", lambda r: f"{r['sm_enabled']} / {r['sm_resume']}"),
                ("resumption window offered, `<enabled max/>` (s)", get("sm_max")),
                ("client `<r/>` sent", get("r_sent")),
                ("server `<a/>` received", get("acks")),
                ("server `<r/>` answered", get("r_answered")),
                ("p50 time to an `<a/>` covering the client's `<r/>` (ms)", get("ack_p50_ms")),
                ("p99 time to an `<a/>` covering the client's `<r/>` (ms)", get("ack_p99_ms")),
                ("max time to an `<a/>` covering the client's `<r/>` (ms)", get("ack_max_ms")),
                ("bad `<a/>` (h backwards, or above what was sent)", get("bad_acks")),
                ("stanzas unacknowledged at the end", get("unacked_end")),
            ] + msg_metrics[1:]))
        p.append("Where each server keeps a stream-managed session's unacknowledged stanzas, with "
                 "the configs below: **Rookery** appends every stanza written to a resumable "
                 "session to that session's outbox in its store, SQLite here (its default), in "
                 "group commits, and a sender's `<a h/>` counts a stanza only once it is durable; "
                 "**Prosody** (mod_smacks) and **ejabberd** (mod_stream_mgmt, `queue_type: "
                 "ram`) keep the queue in the session's memory, not in their stores (Prosody: its "
                 "internal file store; ejabberd: Mnesia), and acknowledge a stanza as soon as "
                 "they have handled it. A server restart loses their queues, not Rookery's. "
                 "Acknowledgement latency is measured from the client's `<r/>` (sent after every "
                 "Nth stanza, with it) to the first `<a/>` whose `h` covers every stanza sent "
                 "before it; each server also asks the client in its own way (`server <r/> "
                 "answered`).\n")
    ol = rows.get("openloop", {})
    if ol:
        r0 = first("openloop")
        p.append(table(
            f"messages, open loop at a fixed {fmt(r0.get('rate'))} msgs/s ({r0.get('pairs')} "
            f"pairs, {r0.get('duration_s')} s, at most {r0.get('open_cap')} in flight per sender)",
            ol, order,
            msg_metrics[:4] + [
                ("p50 from the scheduled send time (ms)", get("sched_p50_ms")),
                ("p99 from the scheduled send time (ms)", get("sched_p99_ms")),
                ("max from the scheduled send time (ms)", get("sched_max_ms")),
                ("sends that waited for the in-flight cap", get("capped")),
            ] + msg_metrics[4:]))
        p.append("Latency in the first rows is from the moment the client wrote the message; "
                 "*from the scheduled send time* adds any delay on the client's side (tokio's "
                 "1 ms timer resolution, a busy core, the in-flight cap), so a server that falls "
                 "behind the offered rate cannot hide it.\n")
    lt = rows.get("latency", {})
    if lt:
        r0 = first("latency")
        p.append(table(f"latency (1 pair, 1 message in flight, {r0.get('duration_s')} s)",
                       lt, order, msg_metrics))
    pr = rows.get("presence", {})
    if pr:
        r0 = first("presence")
        p.append(table(
            f"presence ({r0.get('users')} users, {r0.get('roster')} mutual contacts each; "
            f"{r0.get('togglers')} of them go offline and online, {r0.get('duration_s')} s)",
            pr, order, [
                ("broadcasts delivered/s", get("delivered_per_s")),
                ("all presence stanzas received/s (probe answers too)", get("all_presence_per_s")),
                ("offline/online toggles/s", get("toggles_per_s")),
                ("broadcasts per toggle", lambda r: per(r["delivered"], r["toggles"])),
                ("p50 broadcast latency (ms)", get("p50_ms")),
                ("p99 broadcast latency (ms)", get("p99_ms")),
                ("max broadcast latency (ms)", get("max_ms")),
                ("server CPU per broadcast delivered (µs)",
                 lambda r: per(r["server_cpu_s"], r["delivered"], 1e6)),
                ("rosters complete after set-up", lambda r: f"{r['rosters_complete']} / {r['users']}"),
                ("set-up: logins + subscriptions (s)", get("setup_s")),
                ("subscription requests repeated in set-up", get("resubscribes")),
                ("errors", get("errors")),
            ] + cpu))
    for mode, what in [("lo", "fewer"), ("hi", "more")]:
        sc = rows.get("scale/" + mode, {})
        if sc:
            r0 = first("scale/" + mode)
            p.append(table(
                f"scale: messages with {fmt(r0.get('background_target'))} idle users connected "
                f"({r0.get('pairs')} pairs, window {r0.get('window')}, {r0.get('duration_s')} s)",
                sc, order, [
                    ("idle users connected", get("background")),
                    ("time to connect them (s)", get("background_connect_s")),
                    ("server RSS with them (MiB)", lambda r: mb(r["server_rss_kb_background"])),
                    ("errors connecting them", get("background_errors")),
                ] + msg_metrics))
    idle_metrics = [
        ("connected / target", lambda r: f"{r['connected']} / {r['target']}"),
        ("RSS per idle connection (KiB)", get("rss_kb_per_conn")),
        ("server RSS before (MiB)", lambda r: mb(r["server_rss_kb_before"])),
        ("server RSS with all connected (MiB)", lambda r: mb(r["server_rss_kb_idle"])),
        ("server RSS after they closed (MiB)", lambda r: mb(r["server_rss_kb_after_close"])),
        ("server peak RSS so far, VmHWM (MiB)", lambda r: mb(r["server_hwm_kb"])),
        ("time to connect all (s)", get("connect_s")),
        ("server CPU while connecting + settling (s)", get("server_cpu_s")),
        ("errors", get("errors")),
    ]
    for key, what in [("idle", "STARTTLS"), ("idle/plain", "no TLS"),
                      ("idle_sm", "STARTTLS, stream management with resumption on each")]:
        idle = rows.get(key, {})
        if idle:
            r0 = first(key)
            p.append(table(f"idle, {what} ({r0.get('target')} authenticated, available "
                           "connections; a freshly started server)", idle, order, idle_metrics))

    p.extend(errors_section(rows, logs, order))
    p.extend(configs_section(servers, ok))
    print("\n".join(p))


if __name__ == "__main__":
    main()
