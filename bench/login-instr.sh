#!/usr/bin/env bash
# Rookery alone: what a STARTTLS + SCRAM-SHA-1 login costs the server, per certificate kind,
# with and without TLS session tickets and resumption. Two modes:
#
# - MODE=instr (default): instructions, under valgrind's callgrind, which a shared machine does
#   not disturb the way it disturbs timings. The server is started under callgrind, warmed up
#   with a few logins, its counters are zeroed, the load generator makes WARM + N sequential
#   logins, and the counters are dumped. Prints instructions per login, in all and split into
#   the parts that matter (signature, key exchange, SCRAM, tickets, the rest). User space
#   only (the kernel's share of a login, sockets and wake-ups, is not in it), and valgrind
#   hides ADX/BMI2 from ring, so its elliptic-curve code takes its slower generic path here
#   (bench/loadgen's tls-cost measures the primitives natively).
# - MODE=cpu: the server runs natively; WARM pool logins, then N sequential and TOTAL logins
#   by CONC concurrent clients; prints the load generator's login lines (server CPU time
#   utime+stime, so kernel included) with the load average before each reading. For a
#   timing figure: on a shared machine, alternate the variants (ROUNDS) and compare medians.
#
#   bench/login-instr.sh                          # ecdsa and rsa, full handshakes
#   VARIANTS="rsa:on:on both:on:off" bench/login-instr.sh
#   MODE=cpu ROUNDS=3 N=500 VARIANTS="ecdsa:off:off ecdsa:on:off" bench/login-instr.sh
#
# VARIANTS: CERTS:TICKETS:RESUME, each
#   CERTS   ecdsa (P-256), rsa (2048-bit), both (the two side by side in `certs`);
#   TICKETS on|off|default: `[c2s] tls_session_tickets` (default: the key is left out);
#   RESUME  on: the client offers the TLS 1.3 tickets of its earlier logins (the first login
#           of a load generator run is a full handshake; the lines say how many resumed).
# KEEP=1 keeps the callgrind files (printed at the end).
set -uo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
MODE="${MODE:-instr}"
VARIANTS="${VARIANTS:-ecdsa:off:off rsa:off:off}"
N="${N:-200}"
WARM="${WARM:-20}"
CONC="${CONC:-50}"
TOTAL="${TOTAL:-0}"
ROUNDS="${ROUNDS:-1}"
PORT="${PORT:-27266}"
DOMAIN="localhost"
PASSWORD="bench-pass-1"
WORK="$(mktemp -d /tmp/rookery-instr.XXXXXX)"
log() { echo "[instr $(date -u +%H:%M:%S)] $*" >&2; }
# shellcheck source=common.sh
. "$BENCH/common.sh"

SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${ROOKERY_BIN:-}" ]; then
    ROOKERY="$ROOKERY_BIN"
else
    log "building rookery (release)"
    (cd "$ROOT" && cargo build --release -p rookery) >&2 || exit 1
    ROOKERY="$ROOT/target/release/rookery"
fi
(cd "$BENCH/loadgen" && cargo build --release) >&2 || exit 1
LOADGEN="$BENCH/loadgen/target/release/rookery-loadgen"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/ecdsa.key" -out "$WORK/ecdsa.pem" >/dev/null 2>&1 || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/rsa.key" -out "$WORK/rsa.pem" >/dev/null 2>&1 || exit 1

# The benchmark's config (bench/configs/rookery.toml) with the host's certificates replaced.
config() { # certs dir tickets
    local d=$2
    sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$PORT|g" -e '/^cert = /d' -e '/^key = /d' \
        "$BENCH/configs/rookery.toml" >"$d/rookery.toml"
    local hostcerts
    case $1 in
    ecdsa | rsa) hostcerts="cert = \"$WORK/$1.pem\"
key = \"$WORK/$1.key\"" ;;
    both) hostcerts="certs = [
    { cert = \"$WORK/rsa.pem\", key = \"$WORK/rsa.key\" },
    { cert = \"$WORK/ecdsa.pem\", key = \"$WORK/ecdsa.key\" },
]" ;;
    *) log "unknown certificate kind $1"; return 1 ;;
    esac
    # After `domain = "localhost"` in [[host]].
    python3 - "$d/rookery.toml" "$hostcerts" <<'PY'
import sys
p, extra = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace('domain = "localhost"\n', 'domain = "localhost"\n' + extra + '\n', 1)
open(p, 'w').write(s)
PY
    if [ "$3" != default ]; then
        local v=false
        [ "$3" = on ] && v=true
        sed -i "s|^\[c2s\]$|[c2s]\ntls_session_tickets = $v|" "$d/rookery.toml"
    fi
}

loadgen() { # pool seq resume [conc total]
    "$LOADGEN" --server rookery --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts "$1" --threads 1 --src-addrs 1 --resume "$3" \
        --scenarios login --login-pool "$1" --login-seq "$2" --login-conc "${4:-1}" \
        --login-total "${5:-0}" --login-time 3600 2>>"$WORK/loadgen.err"
}

# Inclusive instructions of the functions whose names match $2 in annotate output $1 (each
# counted once: the outermost matching frame is what callgrind_annotate --inclusive lists
# first, so nested matches are skipped by taking the maximum per pattern).
incl() {
    awk -v pat="$2" '$0 ~ pat { gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0 } END { print m + 0 }' "$1"
}

# A data directory with the accounts, and the config for variant $1 (CERTS:TICKETS:RESUME).
prepare() {
    local certs tickets
    IFS=: read -r certs tickets _ <<<"$1"
    d="$WORK/${1//:/-}"
    if [ ! -d "$d" ]; then
        mkdir -p "$d"
        config "$certs" "$d" "$tickets" || return 1
        "$ROOKERY" user add "u0@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null || return 1
        for ((i = 1; i < WARM; i++)); do
            "$ROOKERY" user add "u$i@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null || return 1
        done
    fi
}

cpu_reading() { # variant
    local resume
    IFS=: read -r _ _ resume <<<"$1"
    prepare "$1" || return 1
    local load
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    "$ROOKERY" serve --config "$d/rookery.toml" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" 30 || { log "server did not start"; cat "$d/server.log" >&2; return 1; }
    loadgen "$WARM" "$N" "$resume" "$CONC" "$TOTAL" | grep '"mode"' |
        sed -u "s/^{/{\"variant\":\"$1\",\"loadavg\":\"$load\",/"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}

reading() { # variant
    local resume
    IFS=: read -r _ _ resume <<<"$1"
    prepare "$1" || return 1
    local out="$d/callgrind.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$ROOKERY" serve --config "$d/rookery.toml" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" 120 || { log "server did not start"; cat "$d/server.log" >&2; return 1; }
    # Warm-up (thread-local buffers, the database's pages, the allocator): not counted.
    loadgen "$WARM" 0 "$resume" >/dev/null
    callgrind_control -z "$SERVER_PID" >/dev/null
    local line
    line="$(loadgen "$WARM" "$N" "$resume" | grep '"mode":"sequential"')"
    callgrind_control -d "$SERVER_PID" >/dev/null
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
    # The dump made by callgrind_control -d is the one with the highest number.
    local dump
    dump="$(ls -v "$out".* 2>/dev/null | tail -1)"
    [ -n "$dump" ] || { log "no callgrind dump"; return 1; }
    local ann="$d/annotate.txt"
    callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$ann" 2>/dev/null
    local logins total rsa ecdsa kx scram ticket
    logins=$((WARM + N))
    total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$ann")"
    rsa="$(incl "$ann" 'ring::rsa::keypair::KeyPair::sign')"
    ecdsa="$(incl "$ann" 'ring::ec::suite_b::ecdsa::signing::EcdsaKeyPair::sign')"
    kx="$(( $(incl "$ann" 'rustls::crypto::ring::kx::KxGroup as rustls::crypto::SupportedKxGroup>::start') + \
        $(incl "$ann" 'rustls::crypto::ring::kx::KeyExchange as rustls::crypto::ActiveKeyExchange>::complete') ))"
    scram="$(incl "$ann" 'rookery_proto::sasl::scram::')"
    ticket="$(incl "$ann" 'rustls::server::tls13::ExpectFinished::emit_ticket')"
    python3 - "$1" "$logins" "$total" "$rsa" "$ecdsa" "$kx" "$scram" "$ticket" "$line" <<'PY'
import json, sys
certs, n = sys.argv[1], int(sys.argv[2])
total, rsa, ecdsa, kx, scram, ticket = (int(x) for x in sys.argv[3:9])
lg = json.loads(sys.argv[9]) if sys.argv[9] else {}
per = lambda x: round(x / n)
sig = rsa + ecdsa
print(json.dumps({
    "certs": certs, "logins": n, "resumed": lg.get("resumed"), "errors": lg.get("errors"),
    "instr_per_login": per(total), "signature": per(sig), "rsa_sign": per(rsa),
    "ecdsa_sign": per(ecdsa), "key_exchange": per(kx), "scram": per(scram),
    "tickets": per(ticket), "rest": per(total - sig - kx - scram - ticket),
}))
PY
    [ -n "${KEEP:-}" ] && log "callgrind data: $dump (annotated: $ann)"
    return 0
}

for ((r = 1; r <= ROUNDS; r++)); do
    for v in $VARIANTS; do
        if [ "$MODE" = cpu ]; then
            log "round $r, $v (certs:tickets:resume): natively"
            cpu_reading "$v" || log "$v: reading failed"
        else
            log "round $r, $v (certs:tickets:resume): $((WARM + N)) logins under callgrind"
            reading "$v" || log "$v: reading failed"
        fi
    done
done
