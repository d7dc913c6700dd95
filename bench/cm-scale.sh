#!/usr/bin/env bash
# Scale through connection managers: N idle clients (default 100,000) spread over CMS
# `rookery cm` processes (default 6) in front of ONE Rookery server. One process can hold at
# most ~19k sockets on this machine (20,000 open files per process, a hard limit), so this is
# how operators go past that: the server holds only the CMs' links, each CM and each load
# generator a share of the clients. Accounts: N / 10 accounts with up to 10 resources each
# ([c2s] max_resources = 10, the default). Records every process's memory and CPU once all
# clients are connected, and every load generator's errors. Writes
# bench/results/YYYY-MM-DD-cm-scale.md and .jsonl.
#
#   bench/cm-scale.sh                 # 100k clients, 6 CMs, 6 load generators
#   N=12000 CMS=2 bench/cm-scale.sh   # a quick run
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
N="${N:-100000}"
CMS="${CMS:-6}"
LINKS="${LINKS:-5}"
CONC="${CONC:-100}"         # logins in flight per load generator
HOLD="${HOLD:-90}"          # seconds every load generator holds after its last login (longer
                            # than the spread of their connect times, so all hold at once)
PASSWORD="bench-pass-1"
DOMAIN="localhost"
PORT=26222
CM_PORT=26262
CM_SECRET="bench-cm-secret"
ACCOUNTS=$(((N + 9) / 10))
PER=$(((N + CMS - 1) / CMS))

DATE="$(date -u +%F)"
OUT="${OUT:-$BENCH/results/$DATE-cm-scale}"
[ -e "$OUT.md" ] && OUT="$OUT-$(date -u +%H%M)"
WORK="$(mktemp -d /tmp/rookery-cmscale.XXXXXX)"
JSONL="$WORK/results.jsonl"
: >"$JSONL"
PIDS=()
log() { printf '[cm-scale %s] %s\n' "$(date -u +%T)" "$*" >&2; }
# shellcheck source=bench/cm-common.sh
. "$BENCH/cm-common.sh"
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 2
    rm -rf "$WORK"
}
trap cleanup EXIT
proc() { # pid -> "rss_kb cpu_s threads"
    python3 - "$1" <<'PY'
import os, sys
pid = sys.argv[1]
st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
tck = os.sysconf("SC_CLK_TCK")
rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
fds = len(os.listdir(f"/proc/{pid}/fd"))
print(rss, round((int(st[11]) + int(st[12])) / tck, 2), fds)
PY
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$PER" -gt $(($(ulimit -n) - 500)) ]; then
    log "each process would hold $PER sockets, above the open-file limit $(ulimit -n): use more CMS"
    exit 1
fi

cm_build || exit 1
cm_server_config || exit 1

log "creating $ACCOUNTS accounts (10 sessions each)"
cm_accounts "$ACCOUNTS" || exit 1

cm_start_server || exit 1
PIDS+=("$SERVER_PID")
CM_PIDS=()
for ((k = 0; k < CMS; k++)); do
    cm_start_cm "cm$k" $((PORT + 100 + k)) || exit 1
    CM_PIDS+=("$CM_PID")
    PIDS+=("$CM_PID")
done
sleep 2
server0="$(proc "$SERVER_PID")"
cms0=""
for p in "${CM_PIDS[@]}"; do cms0="$cms0 $(proc "$p" | cut -d' ' -f1)"; done
t0=$(date +%s.%N)
log "server pid $SERVER_PID ($server0), CMs ${CM_PIDS[*]}; connecting $N clients, $PER per CM"
LG_PIDS=()
for ((k = 0; k < CMS; k++)); do
    port=$((PORT + 100 + k))
    n=$PER
    [ $((k * PER + n)) -gt "$N" ] && n=$((N - k * PER))
    "$LOADGEN" --server "cm$k" --addr "127.0.0.1:$port" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts "$ACCOUNTS" --threads 1 --scenarios idle \
        --idle "$n" --first $((k * PER)) --idle-multi yes --idle-conc "$CONC" \
        --idle-settle "$HOLD" >"$WORK/lg$k.json" 2>"$WORK/lg$k.err" &
    LG_PIDS+=($!)
    PIDS+=($!)
done
# Wait until every load generator has finished its connect phase.
for ((i = 0; i < 3600; i++)); do
    done_n=$(grep -l '^idle: connected' "$WORK"/lg*.err 2>/dev/null | wc -l)
    [ "$done_n" -ge "$CMS" ] && break
    sleep 0.5
done
connect_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
sleep 5
server1="$(proc "$SERVER_PID")"
cms1=""
cmfds=0
for p in "${CM_PIDS[@]}"; do
    x="$(proc "$p")"
    cms1="$cms1 $(echo "$x" | cut -d' ' -f1)"
    cmfds=$((cmfds + $(echo "$x" | cut -d' ' -f3)))
done
connected=$(grep -h '^idle: connected' "$WORK"/lg*.err | awk '{s += $3} END {print s + 0}')
log "connected $connected of $N in ${connect_s}s; server now: $server1"
for p in "${LG_PIDS[@]}"; do wait "$p"; done
cat "$WORK"/lg*.json >>"$JSONL"
python3 - "$JSONL" "$OUT" <<PY
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s0, s1 = "$server0".split(), "$server1".split()
cm0 = [int(x) for x in "$cms0".split()]
cm1 = [int(x) for x in "$cms1".split()]
n = $connected
errors = sum(r.get("errors", 0) for r in rows)
first = next((r["first_error"] for r in rows if r.get("first_error")), "")
srv_per = (int(s1[0]) - int(s0[0])) / max(n, 1)
cm_per = (sum(cm1) - sum(cm0)) / max(n, 1)
out = open(sys.argv[2] + ".md", "w")
p = lambda *a: print(*a, file=out)
p(f"# {n:,} idle clients through $CMS connection managers into one server, $(date -u '+%F %T UTC')\n")
p("Produced by \`bench/cm-scale.sh\`: one Rookery server (release build, commit $(git -C "$ROOT" rev-parse --short HEAD)), "
  "$CMS \`rookery cm\` processes with $LINKS links each, $CMS load generators (one per CM), all on this "
  f"machine ({open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}, "
  f"$(nproc) cores). Every client: TCP, STARTTLS, SCRAM-SHA-1, bind, initial presence, then idle. "
  f"Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg).\n")
p("| figure | value |\n|---|---:|")
p(f"| clients connected / target | {n:,} / $N |")
p(f"| errors (all load generators) | {errors}{' (first: ' + first + ')' if first else ''} |")
p(f"| time to connect all (s) | $connect_s |")
p(f"| server RSS before / with all connected (MiB) | {int(s0[0])/1024:,.1f} / {int(s1[0])/1024:,.1f} |")
p(f"| server RSS per client session (KiB) | {srv_per:.2f} |")
p(f"| server CPU while they connected (s) | {float(s1[1]) - float(s0[1]):.1f} |")
p(f"| server open files (links, not clients) | {s1[2]} |")
p(f"| CMs' RSS per client (KiB, all CMs) | {cm_per:.2f} |")
p(f"| CMs' open files (all) | $cmfds |")
p("\nPer load generator (each connected its share through its own CM):\n")
p("| CM | connected | connect time (s) | errors |\n|---|---:|---:|---:|")
for r in rows:
    p(f"| {r['server']} | {r['connected']:,} | {r['connect_s']:.1f} | {r['errors']} |")
PY
cp "$JSONL" "$OUT.jsonl"
log "wrote ${OUT#"$ROOT/"}.md"
