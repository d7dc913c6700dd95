#!/usr/bin/env python3
"""Turns the JSON lines of one bench/run.sh run into the Markdown results page (stdout)."""

import json
import sys

SERVERS = ["rookery", "prosody", "ejabberd"]


def load(path):
    machine, servers, logs, rows = {}, {}, {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            if d.get("meta") == "machine":
                machine = d
            elif d.get("meta") == "server":
                servers[d["server"]] = d
            elif d.get("meta") == "log":
                logs[d["server"]] = d
            elif "scenario" in d:
                key = d["scenario"] + ("/" + d["mode"] if "mode" in d else "")
                rows.setdefault(key, {})[d["server"]] = d
    return machine, servers, logs, rows


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


def table(title, rows, servers, metrics):
    """metrics: (label, function(row) -> value)."""
    present = [s for s in servers if s in rows]
    if not present:
        return ""
    out = [f"### {title}", "", "| | " + " | ".join(present) + " |", "|---|" + "---:|" * len(present)]
    for label, fn in metrics:
        cells = []
        for s in present:
            try:
                cells.append(fmt(fn(rows[s])))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("–")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def per(a, b, scale=1.0):
    return None if not b else a / b * scale


def mb(kb):
    return kb / 1024.0


def headline(rows, order):
    """One row per key figure, servers side by side, and Rookery's ratio to each peer."""
    items = [
        ("sequential logins/s", "login/sequential", "logins_per_s", True),
        ("concurrent logins/s (50 clients)", "login/concurrent", "logins_per_s", True),
        ("server CPU per login, concurrent (ms)", "login/concurrent",
         lambda r: per(r["server_cpu_s"], r["ok"], 1000), False),
        ("delivered msgs/s", "messages", "delivered_per_s", True),
        ("p99 one-way latency under load (ms)", "messages", "p99_ms", False),
        ("server CPU per message (µs)", "messages",
         lambda r: per(r["server_cpu_s"], r["received"], 1e6), False),
        ("p50 one-way latency, idle pair (ms)", "latency", "p50_ms", False),
        ("RSS per idle connection (KiB)", "idle", "rss_kb_per_conn", False),
    ]
    present = [s for s in order if any(s in rows.get(k, {}) for _, k, _, _ in items)]
    if not present:
        return ""
    peers = [s for s in present if s != "rookery"]
    cols = present + ([f"rookery ÷ {s}" for s in peers] if "rookery" in present else [])
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, key, f, higher_better in items:
        by = rows.get(key, {})
        vals = {}
        for s in present:
            try:
                vals[s] = f(by[s]) if callable(f) else by[s][f]
            except (KeyError, TypeError, ZeroDivisionError):
                vals[s] = None
        cells = [fmt(vals[s]) for s in present]
        if "rookery" in present:
            for s in peers:
                a, b = vals.get("rookery"), vals.get(s)
                cells.append(f"{a / b:.2f}×" if a is not None and b else "–")
        arrow = "higher is better" if higher_better else "lower is better"
        out.append(f"| {label} ({arrow}) | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main():
    machine, servers, logs, rows = load(sys.argv[1])
    order = [s for s in SERVERS if s in servers] + [s for s in servers if s not in SERVERS]
    ok = [s for s in order if servers[s].get("status") == "ok"]
    p = []
    p.append(f"# c2s benchmark, {machine.get('date', '?')}\n")
    p.append(
        "Produced by `bench/run.sh` (see [../README.md](../README.md) for what each scenario does). "
        "Raw lines: the `.jsonl` file beside this one. Client and server share the same 2 cores; "
        "read the figures as a comparison on one machine in one run, not as capacity.\n"
    )
    p.append("## Machine and versions\n")
    p.append("| | |\n|---|---|")
    p.append(f"| CPU | {machine.get('cpu')} (`nproc` = {machine.get('nproc')}) |")
    p.append(f"| memory | {machine.get('mem')} |")
    p.append(f"| kernel / OS | {machine.get('kernel')} / {machine.get('os')} |")
    p.append(f"| Rust | {machine.get('rustc')} |")
    p.append(f"| OpenSSL (Prosody, ejabberd) | {machine.get('openssl')} |")
    for s in order:
        d = servers[s]
        if d.get("status") == "ok":
            p.append(
                f"| {s} | {d.get('version')}; set-up (accounts + start) {d.get('setup_s')} s; "
                f"open-file limit {d.get('nofile')} |"
            )
        else:
            p.append(f"| {s} | **not measured**: {d.get('status')} |")
    p.append(f"| load average before the run | {machine.get('loadavg')} |")
    p.append(f"| parameters | `{machine.get('params')}` |")
    p.append("")
    p.append("Busiest processes when the run started (other work on the machine competes for the "
             "same 2 cores):\n")
    p.append("```\n" + machine.get("top", "") + "\n```\n")
    for s in ok:
        p.append(f"- load average when {s} started: {servers[s].get('loadavg')}")
    p.append("")

    head = headline(rows, order)
    if head:
        p.append("## Headline\n")
        p.append(head)

    p.append("## Results\n")
    p.append(
        "Server CPU is utime+stime of the server process (all threads) from `/proc/PID/stat` "
        "over the measured phase; client CPU is the load generator's own. Memory is VmRSS from "
        "`/proc/PID/status`.\n"
    )

    cpu = [
        ("server CPU (s)", lambda r: r["server_cpu_s"]),
        ("client CPU (s)", lambda r: r["client_cpu_s"]),
        ("wall time (s)", lambda r: r["wall_s"]),
    ]
    login_metrics = [
        ("logins/s", lambda r: r["logins_per_s"]),
        ("p50 latency (ms)", lambda r: r["p50_ms"]),
        ("p99 latency (ms)", lambda r: r["p99_ms"]),
        ("max latency (ms)", lambda r: r["max_ms"]),
        ("completed / target", lambda r: f"{r['ok']} / {r['target']}"),
        ("errors", lambda r: r["errors"]),
        ("server CPU per login (ms)", lambda r: per(r["server_cpu_s"], r["ok"], 1000)),
    ] + cpu + [("server RSS after (MiB)", lambda r: mb(r["server_rss_kb_after"]))]
    p.append(table("login, sequential (one client; TCP + STARTTLS + SCRAM-SHA-1 + bind, then close)",
                   rows.get("login/sequential", {}), order, login_metrics))
    p.append(table("login, concurrent", rows.get("login/concurrent", {}), order,
                   [("concurrent clients", lambda r: r["concurrency"])] + login_metrics))
    msg_metrics = [
        ("delivered msgs/s", lambda r: r["delivered_per_s"]),
        ("p50 one-way latency (ms)", lambda r: r["p50_ms"]),
        ("p99 one-way latency (ms)", lambda r: r["p99_ms"]),
        ("max one-way latency (ms)", lambda r: r["max_ms"]),
        ("sent", lambda r: r["sent"]),
        ("received", lambda r: r["received"]),
        ("lost", lambda r: r["lost"]),
        ("out of order", lambda r: r["out_of_order"]),
        ("errors", lambda r: r["errors"]),
        ("server CPU per message (µs)", lambda r: per(r["server_cpu_s"], r["received"], 1e6)),
    ] + cpu + [
        ("server RSS at end (MiB)", lambda r: mb(r["server_rss_kb_after"])),
    ]
    m = rows.get("messages", {})
    if m:
        any_row = next(iter(m.values()))
        p.append(table(
            f"messages ({any_row.get('pairs')} pairs, window {any_row.get('window')}, "
            f"{any_row.get('duration_s')} s)", m, order, msg_metrics))
    lt = rows.get("latency", {})
    if lt:
        any_row = next(iter(lt.values()))
        p.append(table(f"latency (1 pair, 1 message in flight, {any_row.get('duration_s')} s)",
                       lt, order, msg_metrics))
    idle_metrics = [
        ("connected / target", lambda r: f"{r['connected']} / {r['target']}"),
        ("RSS per idle connection (KiB)", lambda r: r["rss_kb_per_conn"]),
        ("server RSS before (MiB)", lambda r: mb(r["server_rss_kb_before"])),
        ("server RSS with all connected (MiB)", lambda r: mb(r["server_rss_kb_idle"])),
        ("server RSS after they closed (MiB)", lambda r: mb(r["server_rss_kb_after_close"])),
        ("server peak RSS so far, VmHWM (MiB)", lambda r: mb(r["server_hwm_kb"])),
        ("time to connect all (s)", lambda r: r["connect_s"]),
        ("server CPU while connecting + settling (s)", lambda r: r["server_cpu_s"]),
        ("errors", lambda r: r["errors"]),
    ]
    idle = rows.get("idle", {})
    if idle:
        any_row = next(iter(idle.values()))
        p.append(table(f"idle ({any_row.get('target')} authenticated, available connections)",
                       idle, order, idle_metrics))

    errs = []
    for key, by_server in rows.items():
        for s, r in by_server.items():
            if r.get("errors") or r.get("skipped"):
                errs.append(f"- {key} / {s}: {r.get('errors')} errors; first: "
                            f"`{(r.get('first_error') or r.get('skipped') or '')[:300]}`")
    if errs:
        p.append("### Errors reported by the load generator\n")
        p.extend(errs)
        p.append("")
    if logs:
        p.append("### Server logs (warning level and above)\n")
        for s in order:
            if s in logs:
                head = logs[s]["head"].strip()
                p.append(f"- {s}: {logs[s]['lines']} lines" + (":" if head else ""))
                if head:
                    p.append("\n```\n" + head + "\n```\n")
        p.append("")

    p.append("## Configurations used\n")
    p.append("`$WORK` is the run's temporary directory. One ECDSA P-256 self-signed certificate "
             "for `localhost` serves all three.\n")
    for s in ok:
        lang = {"rookery": "toml", "prosody": "lua", "ejabberd": "yaml"}.get(s, "")
        p.append(f"### {s}\n")
        p.append(f"```{lang}\n{servers[s].get('config', '').rstrip()}\n```\n")
    print("\n".join(p))


if __name__ == "__main__":
    main()
