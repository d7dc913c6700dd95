#!/usr/bin/env bash
# Message burst (issue 10 §1): user A writes BURST_N chat messages to user B back to back while
# user C's messages to D are timed, against Rookery, Prosody and ejabberd in one run, and Rookery
# once more with its default sender shaping (rookery_shaped). Each server with its bench config
# from configs/ (no sender shaping on any of them: Rookery's c2s_rate_* = 0, no mod_limits for
# Prosody, no shaper for ejabberd), a freshly started server per burst, the servers alternating
# for ROUNDS rounds. Writes bench/results/YYYY-MM-DD-burst.md (and the .jsonl beside it).
#
#   bench/burst.sh                              # 3 rounds of 4 servers (~15 minutes)
#   SERVERS="rookery prosody" ROUNDS=1 BURST_N=2000 bench/burst.sh
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"

# --- parameters (environment overrides) -----------------------------------------------------
SERVERS="${SERVERS:-rookery prosody ejabberd rookery_shaped}"
ROUNDS="${ROUNDS:-3}"
BURST_N="${BURST_N:-10000}"           # messages from A to B
BURST_TIME="${BURST_TIME:-120}"       # seconds: the burst is cut off here, the rest reported
BURST_BASE="${BURST_BASE:-2}"         # seconds of C→D latency alone before the burst
BURST_INTERVAL="${BURST_INTERVAL:-20}" # ms: C sends D at most one message this often
TLS="${TLS:-on}"                      # STARTTLS for the four clients (as compare.sh)
THREADS="${THREADS:-2}"               # load generator worker threads
SRC_ADDRS="${SRC_ADDRS:-4}"           # client source addresses 127.0.0.1 .. 127.0.0.N
# Before measuring, wait (at most WAIT_MAX seconds) for the 1-minute load average to fall
# below WAIT_LOAD, on a machine shared with other work; empty: do not wait.
WAIT_LOAD="${WAIT_LOAD:-}"
WAIT_MAX="${WAIT_MAX:-900}"
PASSWORD="bench-pass-1"
DOMAIN="localhost"
ACCOUNTS=4                            # u0 = A, u1 = B, u2 = C, u3 = D

DATE="$(date -u +%F)"
OUT="${OUT:-$BENCH/results/$DATE-burst}" # results path without extension
[ -e "$OUT.md" ] && OUT="$OUT-$(date -u +%H%M)"
WORK="$(mktemp -d /tmp/rookery-burst.XXXXXX)"
chmod 755 "$WORK"
JSONL="$WORK/results.jsonl"
: >"$JSONL"
T_START=$(date +%s)

log() { printf '[burst %s] %s\n' "$(date -u +%T)" "$*" >&2; }
meta() { printf '%s\n' "$1" >>"$JSONL"; }
# jq_str, wait_port
# shellcheck source=common.sh
. "$BENCH/common.sh"
# The servers: set-up, start/stop, accounts, the load generator call (loadgen), cleanup
# shellcheck source=servers.sh
. "$BENCH/servers.sh"

trap cleanup EXIT
# A signal ends the run through the EXIT trap too (servers stopped, temporary directory removed).
trap 'exit 143' TERM INT

bench_setup
machine_meta "SERVERS=\"$SERVERS\" ROUNDS=$ROUNDS BURST_N=$BURST_N BURST_TIME=$BURST_TIME BURST_BASE=$BURST_BASE BURST_INTERVAL=$BURST_INTERVAL TLS=$TLS THREADS=$THREADS SRC_ADDRS=$SRC_ADDRS WAIT_LOAD=${WAIT_LOAD:-none}"
provision_all

if [ -n "$WAIT_LOAD" ]; then
    for ((waited = 0; waited < WAIT_MAX; waited += 30)); do
        awk -v max="$WAIT_LOAD" '{exit !($1 < max)}' /proc/loadavg && break
        log "load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for it to fall below $WAIT_LOAD"
        sleep 30
    done
fi
meta "$(printf '{"meta":"measure","at":%s,"loadavg":%s,"top":%s}' "$(jq_str "$(date -u '+%F %T UTC')")" \
    "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" "$(jq_str "$(busy)")")"

for ((round = 1; round <= ROUNDS; round++)); do
    for s in $SERVERS; do
        case " $failed " in *" $s "*) continue ;; esac
        # A fresh server per burst: its memory figures (VmHWM above all) are this burst's.
        if ! start "$s" burst "$round"; then failed="$failed $s"; continue; fi
        loadgen "$s" "$round" --tls "$TLS" --scenarios burst --burst-n "$BURST_N" \
            --burst-time "$BURST_TIME" --burst-base "$BURST_BASE" --burst-interval "$BURST_INTERVAL"
        stop "$s"
    done
done
servers_meta
meta "$(printf '{"meta":"end","wall_s":%s,"loadavg":%s}' "$(($(date +%s) - T_START))" \
    "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")")"

mkdir -p "$BENCH/results"
cp "$JSONL" "$OUT.jsonl"
python3 "$BENCH/burst_report.py" "$OUT.jsonl" >"$OUT.md"
log "wrote ${OUT#"$ROOT/"}.md and .jsonl ($(($(date +%s) - T_START)) s)"
