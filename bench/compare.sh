#!/usr/bin/env bash
# c2s benchmark: Rookery against Prosody 0.12 and ejabberd 23.01 (Debian packages) in one run.
# Rounds alternate the servers (for round in 1..ROUNDS: for server in SERVERS), at least two, so
# that a disturbance on the shared machine does not land on one server only. Each server has its
# own config and data in a temporary directory on 127.0.0.1 and a non-standard port; accounts are
# created once per run and kept across rounds. Writes bench/results/YYYY-MM-DD.md (and the raw
# .jsonl beside it).
#
#   bench/compare.sh                          # everything (~25 minutes after the builds)
#   SERVERS="rookery" ROUNDS=1 bench/compare.sh   # a subset; see bench/README.md for the knobs
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"

# --- parameters (environment overrides) -----------------------------------------------------
SERVERS="${SERVERS:-rookery prosody ejabberd}"
ROUNDS="${ROUNDS:-2}"               # each server is measured this many times, alternating
IDLE="${IDLE:-2000}"                # idle: K connections (TLS, then plain, a fresh server each)
LOGIN_SEQ="${LOGIN_SEQ:-500}"       # login: N sequential logins
LOGIN_CONC="${LOGIN_CONC:-50}"      # login: C concurrent clients ...
LOGIN_TOTAL="${LOGIN_TOTAL:-2000}"  # ... doing this many logins in all
LOGIN_POOL="${LOGIN_POOL:-200}"     # login: accounts used round-robin
LOGIN_TIME="${LOGIN_TIME:-30}"      # login: time limit per phase, seconds
PAIRS="${PAIRS:-50}"                # messages: P pairs ...
WINDOW="${WINDOW:-10}"              # ... with W messages in flight per sender (closed loop) ...
SM_EVERY="${SM_EVERY:-10}"          # messages_sm: each client sends <r/> after every N stanzas
DURATION="${DURATION:-10}"          # ... for T seconds; also openloop, presence, scale, latency
RATE="${RATE:-}"                    # openloop msgs/s; empty: half of Rookery's closed-loop
                                    # msgs/s in round 1 (the first server's if Rookery is absent)
OPEN_CAP="${OPEN_CAP:-100}"         # openloop: at most this many in flight per sender
PRES_USERS="${PRES_USERS:-500}"     # presence: users ...
ROSTER="${ROSTER:-20}"              # ... each with this many mutual contacts
SCALE_LO="${SCALE_LO:-1000}"        # scale: idle users in the background, first run ...
SCALE_HI="${SCALE_HI:-15000}"       # ... and second run
SRC_ADDRS="${SRC_ADDRS:-8}"         # client source addresses 127.0.0.1 .. 127.0.0.N
THREADS="${THREADS:-2}"             # load generator worker threads
MEASURE_AT="${MEASURE_AT:-}"        # HH:MM (UTC): after the set-up, wait until then to measure
SCENARIOS="${SCENARIOS:-idle,idle_sm,login,messages,messages_sm,latency,openloop,presence,scale}"
CERT="${CERT:-ecdsa}"               # ecdsa | rsa (all three) | rsa+ecdsa (Rookery both side by
                                    # side, the peers the RSA one)
RESUME="${RESUME:-off}"             # on: the load generator resumes TLS sessions with tickets
STORAGE="${STORAGE:-sqlite}"        # Rookery's store: sqlite (the default, under its data dir) |
                                    # postgres (ROOKERY_BENCH_PG, a schema of its own, dropped after)
PASSWORD="bench-pass-1"
DOMAIN="localhost"

has() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

DATE="$(date -u +%F)"
OUT="${OUT:-$BENCH/results/$DATE}"   # results path without extension
[ -e "$OUT.md" ] && OUT="$OUT-$(date -u +%H%M)"
WORK="$(mktemp -d /tmp/rookery-bench.XXXXXX)"
chmod 755 "$WORK"
JSONL="$WORK/results.jsonl"
: >"$JSONL"
T_START=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date -u +%T)" "$*" >&2; }
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

# --- file descriptors: SCALE_HI idle connections on each side ---------------------------------
# The server and the load generator each hold one socket per client: both need a limit above
# SCALE_HI. The servers inherit this shell's limit (ejabberd too, through setpriv).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE="$(ulimit -n)"
if [ "$NOFILE" != unlimited ]; then
    for v in IDLE SCALE_HI; do
        if [ "${!v}" -gt $((NOFILE - 2 * PAIRS - 500)) ]; then
            log "open-file limit $NOFILE is too low for $v=${!v}; lowering it"
            printf -v "$v" '%s' $((NOFILE - 2 * PAIRS - 500))
        fi
    done
fi
[ "$SCALE_LO" -gt "$SCALE_HI" ] && SCALE_LO=$SCALE_HI
# Accounts: u0.. for idle, login and the message pairs, the scale background users after the
# pairs, the presence users last (their rosters touch nobody else).
base_accounts=$((2 * PAIRS + SCALE_HI))
for v in IDLE LOGIN_POOL; do [ "${!v}" -gt "$base_accounts" ] && base_accounts=${!v}; done
ACCOUNTS=$((base_accounts + PRES_USERS))

# --- set-up and builds ------------------------------------------------------------------------
bench_setup

# --- machine facts ------------------------------------------------------------------------------
machine_meta "SERVERS=\"$SERVERS\" ROUNDS=$ROUNDS ACCOUNTS=$ACCOUNTS IDLE=$IDLE LOGIN_SEQ=$LOGIN_SEQ LOGIN_CONC=$LOGIN_CONC LOGIN_TOTAL=$LOGIN_TOTAL LOGIN_POOL=$LOGIN_POOL LOGIN_TIME=$LOGIN_TIME PAIRS=$PAIRS WINDOW=$WINDOW SM_EVERY=$SM_EVERY DURATION=$DURATION RATE=${RATE:-auto} OPEN_CAP=$OPEN_CAP PRES_USERS=$PRES_USERS ROSTER=$ROSTER SCALE_LO=$SCALE_LO SCALE_HI=$SCALE_HI SRC_ADDRS=$SRC_ADDRS THREADS=$THREADS SCENARIOS=$SCENARIOS CERT=$CERT RESUME=$RESUME STORAGE=$STORAGE MEASURE_AT=${MEASURE_AT:-now}"

# --- the runs -------------------------------------------------------------------------------------

# The load generator with the scenarios' options; $1 server, $2 round, the rest more options.
lg() {
    local s=$1 r=$2
    shift 2
    loadgen "$s" "$r" --idle "$IDLE" --login-seq "$LOGIN_SEQ" --login-conc "$LOGIN_CONC" \
        --login-total "$LOGIN_TOTAL" --login-pool "$LOGIN_POOL" --login-time "$LOGIN_TIME" \
        --pairs "$PAIRS" --window "$WINDOW" --sm-every "$SM_EVERY" --duration "$DURATION" --open-cap "$OPEN_CAP" \
        --pres-users "$PRES_USERS" --roster "$ROSTER" --scale-lo "$SCALE_LO" --scale-hi "$SCALE_HI" \
        --resume "$RESUME" "$@"
}

# The open-loop rate: half of Rookery's closed-loop maximum in round 1 (else the first server's).
pick_rate() {
    [ -n "$RATE" ] && return
    RATE="$(python3 - "$JSONL" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
m = [r for r in rows if r.get("scenario") == "messages" and r.get("delivered_per_s")]
best = [r for r in m if r["server"] == "rookery"] or m
print(int(best[0]["delivered_per_s"] / 2) if best else "")
PY
)"
    [ -n "$RATE" ] && meta "$(printf '{"meta":"rate","rate":%s,"from":"round 1 closed-loop messages"}' "$RATE")"
    log "open-loop rate: $RATE msgs/s"
}

provision_all

# On a shared machine the quiet hours are known: the set-up (builds, accounts) may run before
# them, the measurements wait.
if [ -n "$MEASURE_AT" ]; then
    until_s=$(($(date -u -d "$MEASURE_AT" +%s) - $(date +%s)))
    if [ "$until_s" -gt 0 ]; then
        log "waiting ${until_s}s until $MEASURE_AT UTC to measure"
        sleep "$until_s"
    fi
fi
meta "$(printf '{"meta":"measure","at":%s,"loadavg":%s,"top":%s}' "$(jq_str "$(date -u '+%F %T UTC')")" \
    "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" "$(jq_str "$(busy)")")"

for ((round = 1; round <= ROUNDS; round++)); do
    for s in $SERVERS; do
        case " $failed " in *" $s "*) continue ;; esac
        # Memory per idle connection wants a fresh server each time: a server that already had
        # connections keeps (and reuses) their memory, which would flatter the second reading.
        for tls in on off; do
            has idle || break
            if ! start "$s" "idle-tls-$tls" "$round"; then failed="$failed $s"; break; fi
            lg "$s" "$round" --tls "$tls" --scenarios idle
            stop "$s"
        done
        # The same with stream management (resumable) on every connection, STARTTLS only.
        if has idle_sm; then
            if ! start "$s" idle-sm "$round"; then failed="$failed $s"; continue; fi
            lg "$s" "$round" --tls on --scenarios idle_sm
            stop "$s"
        fi
        case " $failed " in *" $s "*) continue ;; esac
        if ! start "$s" main "$round"; then failed="$failed $s"; continue; fi
        sc=""
        for x in login messages messages_sm latency; do has $x && sc="$sc${sc:+,}$x"; done
        [ -n "$sc" ] && lg "$s" "$round" --tls on --scenarios "$sc"
        has login && lg "$s" "$round" --tls off --scenarios login
        if has openloop; then
            pick_rate
            [ -n "$RATE" ] && lg "$s" "$round" --tls on --scenarios openloop --rate "$RATE"
        fi
        has presence && lg "$s" "$round" --tls on --scenarios presence
        # Last: it leaves the server with SCALE_HI sessions' worth of memory.
        has scale && lg "$s" "$round" --tls on --scenarios scale
        stop "$s"
    done
done
servers_meta
meta "$(printf '{"meta":"end","wall_s":%s,"loadavg":%s}' "$(($(date +%s) - T_START))" \
    "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")")"

mkdir -p "$BENCH/results"
cp "$JSONL" "$OUT.jsonl"
python3 "$BENCH/report.py" "$OUT.jsonl" >"$OUT.md"
log "wrote ${OUT#"$ROOT/"}.md and .jsonl ($(($(date +%s) - T_START)) s)"
