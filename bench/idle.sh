#!/usr/bin/env bash
# Rookery alone: resident memory per idle connection, with and without STARTTLS, on a freshly
# started server each time (the `idle` scenario of bench/compare.sh without the peers, for
# quick before/after figures while working on memory). Prints one JSON line per reading and
# the median per mode.
#
#   bench/idle.sh                      # K=2000 clients, 3 rounds, TLS on and off
#   K=1000 ROUNDS=2 MODES=on bench/idle.sh
#   TICKETS=on MODES=on bench/idle.sh   # [c2s] tls_session_tickets = true (or off; default:
#                                      # the server's, off with this ECDSA certificate)
#   HEAPTRACK=1 K=1000 MODES=off bench/idle.sh   # one reading under heaptrack, the server
#                                      # killed while the clients are still connected, so
#                                      # heaptrack's "leaked" figure is the live heap then
set -uo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
K="${K:-2000}"
ROUNDS="${ROUNDS:-3}"
MODES="${MODES:-on off}"
PORT="${PORT:-27255}"
CM_PORT="${CM_PORT:-27256}" # unused here; the shared config has a cm listener
CM_SECRET="unused-$$"
LINKS=1
DOMAIN="localhost"
PASSWORD="bench-pass-1"
WORK="$(mktemp -d /tmp/rookery-idle.XXXXXX)"
log() { echo "[idle $(date -u +%H:%M:%S)] $*" >&2; }
# shellcheck source=cm-common.sh
. "$BENCH/cm-common.sh"

cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

cm_build >&2 || exit 1
cm_server_config || exit 1
case "${TICKETS:-}" in
on) sed -i 's|^\[c2s\]$|[c2s]\ntls_session_tickets = true|' "$d/rookery.toml" ;;
off) sed -i 's|^\[c2s\]$|[c2s]\ntls_session_tickets = false|' "$d/rookery.toml" ;;
esac
log "creating $((K + 100)) accounts"
cm_accounts $((K + 100)) || exit 1

reading() { # tls
    local wrap=() err="$WORK/loadgen.err"
    [ -n "${HEAPTRACK:-}" ] && wrap=(heaptrack -o "$WORK/heap")
    : >"$err"
    "${wrap[@]}" "$ROOKERY" serve --config "$d/rookery.toml" >"$d/server.log" 2>&1 &
    wait_port "$PORT" 30 || return 1
    local p settle=3
    # The rookery process itself (under heaptrack it is a child of heaptrack's script).
    for p in $(pgrep -f "serve --config $d/rookery.toml"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = rookery ] && SERVER_PID=$p
    done
    [ -n "${HEAPTRACK:-}" ] && settle=30
    "$LOADGEN" --server rookery --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts $((K + 100)) --threads 2 --src-addrs 4 \
        --idle "$K" --idle-settle "$settle" --tls "$1" --scenarios idle 2>"$err" &
    local lg=$!
    if [ -n "${HEAPTRACK:-}" ]; then
        until grep -q "idle: connected" "$err"; do sleep 0.5; done
        sleep 3
        kill -KILL "$SERVER_PID"
        wait "$lg"
        heaptrack_print "$WORK"/heap*.zst | grep -E "total memory leaked|calls to allocation"
        cp "$WORK"/heap*.zst /tmp/ && log "heaptrack data copied to /tmp"
        return 0
    fi
    wait "$lg"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

out="$WORK/readings.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
    for tls in $MODES; do
        log "round $r, TLS $tls"
        reading "$tls" | tee -a "$out"
        [ -n "${HEAPTRACK:-}" ] && exit 0
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for tls in (True, False):
    v = [r["rss_kb_per_conn"] for r in rows if r.get("tls") == tls]
    if v:
        print(f"TLS {'on ' if tls else 'off'}: median {statistics.median(v):.2f} KiB per idle connection "
              f"over {len(v)} readings ({', '.join(f'{x:.2f}' for x in v)})")
PY
