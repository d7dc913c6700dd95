"""Turns bench/cm.sh's JSON lines into a Markdown report: direct vs through connection managers,
per round and averaged."""

import json
import sys
from statistics import mean

lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
m = next(l for l in lines if l.get("meta") == "machine")
runs = [l for l in lines if "scenario" in l]


def f(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and x != x:
        return "–"
    return f"{x:,.{nd}f}"


print(f"# Connection managers vs direct connections, {m['date']}\n")
print("Produced by `bench/cm.sh` (see [../README.md](../README.md)). One Rookery server (release "
      "build); clients connect either to it directly or through `rookery cm` processes on the "
      "same machine. Client, CMs and server share the same cores.\n")
print(f"- machine: {m['cpu']}, {m['nproc']} cores, kernel {m['kernel']}")
print(f"- rookery {m['rookery_rev']}; parameters `{m['params']}`; load average at start {m['loadavg']}\n")

idle = [r for r in runs if r["scenario"] == "idle"]
msgs = [r for r in runs if r["scenario"] == "messages"]

print("## Idle sessions (TLS + SCRAM-SHA-1 + bind + presence, then idle)\n")
print("| run | connected | server RSS per session (KiB) | CMs' RSS per session (KiB) | server RSS with all connected (MiB) | connect time (s) | server CPU (s) | CMs' CPU (s) | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in idle:
    print(f"| {r['server']} | {r['connected']} | {f(r['rss_kb_per_conn'])} | {f(r.get('cm_rss_kb_per_conn'))} | "
          f"{f(r['server_rss_kb_idle'] / 1024)} | {f(r['connect_s'])} | {f(r['server_cpu_s'], 2)} | "
          f"{f(r.get('cm_cpu_s'), 2)} | {r['errors']} |")
print()
print("## Messages (pairs exchanging chat messages, closed loop)\n")
print("| run | delivered msgs/s | p50 / p99 latency (ms) | server CPU per message (µs) | CMs' CPU per message (µs) | lost | out of order | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in msgs:
    n = max(r.get("received", 0), 1)
    cm_us = r.get("cm_cpu_s", 0) * 1e6 / n if r.get("cm_cpu_s") else None
    print(f"| {r['server']} | {f(r['delivered_per_s'], 0)} | {f(r['p50_ms'], 2)} / {f(r['p99_ms'], 2)} | "
          f"{f(r['server_cpu_s'] * 1e6 / n, 2)} | {f(cm_us, 2)} | {r.get('lost')} | {r.get('out_of_order')} | {r['errors']} |")
print()
print("## Averages\n")
for label in ("direct", "via-cm"):
    i = [r for r in idle if r["server"] == label]
    g = [r for r in msgs if r["server"] == label]
    if i:
        print(f"- **{label}**: server RSS per idle session {f(mean(r['rss_kb_per_conn'] for r in i))} KiB"
              + (f", CMs {f(mean(r['cm_rss_kb_per_conn'] for r in i))} KiB" if label == "via-cm" else ""))
    if g:
        print(f"  - {f(mean(r['delivered_per_s'] for r in g), 0)} msgs/s, server CPU "
              f"{f(mean(r['server_cpu_s'] * 1e6 / max(r['received'], 1) for r in g), 2)} µs per message")
