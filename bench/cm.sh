#!/usr/bin/env bash
# Connection managers against direct connections, on one Rookery server: N idle clients connect
# either straight to the server or through CMS `rookery cm` processes (5 links each); then P pairs
# exchange messages, direct and through the CMs. Reports the server's memory per client session
# (and the CMs' own), messages/s and CPU per message for each path. Writes
# bench/results/YYYY-MM-DD-cm.md and the raw .jsonl beside it.
#
#   bench/cm.sh                       # N=10000 idle clients, 2 CMs, 2 rounds
#   N=2000 ROUNDS=1 bench/cm.sh       # a quick run
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
N="${N:-10000}"                # idle clients per run
CMS="${CMS:-2}"                # connection managers
LINKS="${LINKS:-5}"            # links per CM
PAIRS="${PAIRS:-50}"           # messages: pairs, window, seconds
WINDOW="${WINDOW:-10}"
DURATION="${DURATION:-20}"
ROUNDS="${ROUNDS:-2}"          # direct and CM runs alternate, this many times each
THREADS="${THREADS:-2}"
PASSWORD="bench-pass-1"
DOMAIN="localhost"
PORT=25222
CM_PORT=25262
CM_SECRET="bench-cm-secret"

DATE="$(date -u +%F)"
OUT="${OUT:-$BENCH/results/$DATE-cm}"
[ -e "$OUT.md" ] && OUT="$OUT-$(date -u +%H%M)"
WORK="$(mktemp -d /tmp/rookery-cmbench.XXXXXX)"
JSONL="$WORK/results.jsonl"
: >"$JSONL"
PIDS=()

log() { printf '[cm-bench %s] %s\n' "$(date -u +%T)" "$*" >&2; }
meta() { printf '%s\n' "$1" >>"$JSONL"; }
# shellcheck source=bench/cm-common.sh
. "$BENCH/cm-common.sh"
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 1
    rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N + 500)) ]; then
    log "open-file limit $(ulimit -n) is below N+500; lowering N"
    N=$(($(ulimit -n) - 500))
fi

cm_build || exit 1
cm_server_config || exit 1

git_rev="$(git -C "$ROOT" rev-parse --short HEAD)"
[ -n "$(git -C "$ROOT" status --porcelain -- crates bins)" ] && git_rev="$git_rev (with uncommitted changes)"
meta "$(printf '{"meta":"machine","date":%s,"nproc":%s,"cpu":%s,"kernel":%s,"rookery_rev":%s,"loadavg":%s,"params":%s,"config":%s}' \
    "$(jq_str "$(date -u '+%F %T UTC')")" "$(nproc)" \
    "$(jq_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')")" \
    "$(jq_str "$(uname -r)")" "$(jq_str "$git_rev")" "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" \
    "$(jq_str "N=$N CMS=$CMS LINKS=$LINKS PAIRS=$PAIRS WINDOW=$WINDOW DURATION=$DURATION ROUNDS=$ROUNDS THREADS=$THREADS")" \
    "$(jq_str "$(sed "s|$WORK|\$WORK|g" "$d/rookery.toml")")")"

log "creating $N accounts"
cm_accounts "$N" || exit 1

# A fresh server (and fresh CMs) for every run, so each measures from the same baseline.
start_all() {
    cm_start_server || return 1
    PIDS=("$SERVER_PID")
    CM_ADDRS=""
    CM_PIDS=""
    for ((k = 1; k <= CMS; k++)); do
        local port=$((PORT + 100 + k))
        cm_start_cm "cm$k" "$port" || return 1
        PIDS+=("$CM_PID")
        CM_PIDS="${CM_PIDS:+$CM_PIDS,}$CM_PID"
        CM_ADDRS="${CM_ADDRS:+$CM_ADDRS,}127.0.0.1:$port"
    done
    sleep 1 # links up
}
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for ((i = 0; i < 200; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    PIDS=()
}
run() { # label addr scenario extra-args...
    local label=$1 addr=$2 scen=$3
    shift 3
    "$LOADGEN" --server "$label" --addr "$addr" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts "$N" --threads "$THREADS" --scenarios "$scen" \
        --idle "$N" --pairs "$PAIRS" --window "$WINDOW" --duration "$DURATION" "$@" \
        2>>"$WORK/loadgen.err" | tee -a "$JSONL"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for path in direct cm; do
        for scen in idle messages; do
            start_all || { log "start failed"; tail -5 "$d/server.log" "$WORK"/cm*.log; exit 1; }
            log "round $r: $path $scen (server pid $SERVER_PID, CMs $CM_PIDS)"
            if [ $path = direct ]; then
                run direct "127.0.0.1:$PORT" $scen
            else
                run via-cm "$CM_ADDRS" $scen --cm-pids "$CM_PIDS"
            fi
            stop_all
        done
    done
done

mkdir -p "$BENCH/results"
cp "$JSONL" "$OUT.jsonl"
python3 "$BENCH/cm_report.py" "$OUT.jsonl" >"$OUT.md"
log "wrote ${OUT#"$ROOT/"}.md and .jsonl"
