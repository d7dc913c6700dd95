#!/usr/bin/env bash
# c2s benchmark: Rookery against Prosody 0.12 and ejabberd 23.01 (Debian packages), one server
# at a time, each with its own config in a temporary directory on 127.0.0.1 and a non-standard
# port. Writes bench/results/YYYY-MM-DD.md (and the raw .jsonl beside it).
#
#   bench/run.sh                      # everything (~10 minutes after the builds)
#   SERVERS="rookery" bench/run.sh    # a subset; see bench/README.md for the other knobs
set -uo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"

# --- parameters (environment overrides) -----------------------------------------------------
SERVERS="${SERVERS:-rookery prosody ejabberd}"
ACCOUNTS="${ACCOUNTS:-2000}"        # accounts created on each server: u0 .. u(ACCOUNTS-1)
IDLE="${IDLE:-2000}"                # idle: K connections
LOGIN_SEQ="${LOGIN_SEQ:-500}"       # login: N sequential logins
LOGIN_CONC="${LOGIN_CONC:-50}"      # login: C concurrent clients ...
LOGIN_TOTAL="${LOGIN_TOTAL:-3000}"  # ... doing this many logins in all
LOGIN_POOL="${LOGIN_POOL:-200}"     # login: accounts used round-robin
LOGIN_TIME="${LOGIN_TIME:-30}"      # login: time limit per phase, seconds
PAIRS="${PAIRS:-50}"                # messages: P pairs ...
WINDOW="${WINDOW:-10}"              # ... with W messages in flight per sender ...
DURATION="${DURATION:-20}"          # ... for T seconds (latency: one pair, W=1, min(T,10) s)
THREADS="${THREADS:-2}"             # load generator worker threads
SCENARIOS="${SCENARIOS:-idle,login,messages,latency}"
PASSWORD="bench-pass-1"
DOMAIN="localhost"
# Ports: overridable because other runs on a shared machine may hold the defaults (a server
# that cannot bind exits, and the load generator then measures whatever holds the port).
PORT_rookery="${PORT_ROOKERY:-25222}"
PORT_prosody="${PORT_PROSODY:-25322}"
PORT_ejabberd="${PORT_EJABBERD:-25422}"

DATE="$(date -u +%F)"
OUT="${OUT:-$BENCH/results/$DATE}"   # results path without extension
[ -e "$OUT.md" ] && OUT="$OUT-$(date -u +%H%M)"
WORK="$(mktemp -d /tmp/rookery-bench.XXXXXX)"
chmod 755 "$WORK"
JSONL="$WORK/results.jsonl"
: >"$JSONL"
SERVER_PID=""
EJ_CTL=()

log() { printf '[bench %s] %s\n' "$(date -u +%T)" "$*" >&2; }
meta() { printf '%s\n' "$1" >>"$JSONL"; }
jq_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
    fi
    if [ ${#EJ_CTL[@]} -gt 0 ]; then "${EJ_CTL[@]}" stop >/dev/null 2>&1; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Wait until something accepts on 127.0.0.1:$1 (at most $2 seconds).
wait_port() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Wait (at most $2 seconds) for process $1 to exit.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

render() { # template dir port out
    sed -e "s|@DIR@|$2|g" -e "s|@PORT@|$3|g" "$BENCH/configs/$1" >"$4"
}

# --- file descriptors: K idle connections on each side ---------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 500)) ]; then
    log "open-file limit $(ulimit -n) is below IDLE+500; lowering IDLE"
    IDLE=$(($(ulimit -n) - 500))
fi

# --- set-up and builds ------------------------------------------------------------------------
log "installing peers (bench/setup.sh)"
bash "$BENCH/setup.sh" >"$WORK/setup.log" 2>&1 || log "setup.sh failed (see peers' status in the results)"

log "building rookery (release)"
(cd "$ROOT" && cargo build --release -p rookery) || { log "rookery build failed"; exit 1; }
ROOKERY="$ROOT/target/release/rookery"
log "building the load generator (release)"
(cd "$BENCH/loadgen" && cargo build --release) || { log "loadgen build failed"; exit 1; }
LOADGEN="$BENCH/loadgen/target/release/rookery-loadgen"

# One certificate for all three: ECDSA P-256, self-signed, for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/certkey.pem"
chmod 644 "$WORK"/*.pem

# --- machine facts ------------------------------------------------------------------------------
git_rev="$(git -C "$ROOT" rev-parse --short HEAD)"
if [ -n "$(git -C "$ROOT" status --porcelain -- crates bins Cargo.toml Cargo.lock)" ]; then
    git_rev="$git_rev (with uncommitted changes in crates/bins)"
fi
meta "$(printf '{"meta":"machine","date":%s,"nproc":%s,"cpu":%s,"mem":%s,"kernel":%s,"os":%s,"rustc":%s,"openssl":%s,"rookery_rev":%s,"loadavg":%s,"top":%s,"params":%s}' \
    "$(jq_str "$(date -u '+%F %T UTC')")" "$(nproc)" \
    "$(jq_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')")" \
    "$(jq_str "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)")" \
    "$(jq_str "$(uname -r)")" "$(jq_str "$(. /etc/os-release && echo "$PRETTY_NAME")")" \
    "$(jq_str "$(rustc -V)")" "$(jq_str "$(openssl version)")" "$(jq_str "$git_rev")" \
    "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" \
    "$(jq_str "$(ps -eo pcpu,etime,comm --sort=-pcpu | head -6)")" \
    "$(jq_str "ACCOUNTS=$ACCOUNTS IDLE=$IDLE LOGIN_SEQ=$LOGIN_SEQ LOGIN_CONC=$LOGIN_CONC LOGIN_TOTAL=$LOGIN_TOTAL LOGIN_POOL=$LOGIN_POOL LOGIN_TIME=$LOGIN_TIME PAIRS=$PAIRS WINDOW=$WINDOW DURATION=$DURATION THREADS=$THREADS SCENARIOS=$SCENARIOS")")"

# --- per-server start/stop ----------------------------------------------------------------------
# Each start_X sets SERVER_PID, writes the rendered config to $WORK/X/config, prints the version.

start_rookery() {
    local d="$WORK/rookery" port=$PORT_rookery
    mkdir -p "$d"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    render rookery.toml "$d" $port "$d/rookery.toml"
    cp "$d/rookery.toml" "$d/config"
    # The first account alone: two `user add` racing on a fresh database can fail with
    # "enabling WAL: database is locked".
    "$ROOKERY" user add "u0@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null || return 1
    seq 1 $((ACCOUNTS - 1)) | xargs -P 2 -I{} \
        "$ROOKERY" user add "u{}@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null ||
        return 1
    "$ROOKERY" serve --config "$d/rookery.toml" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port $port 30 || return 1
    echo "rookery $git_rev (release build)" >"$d/version"
}
stop_rookery() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait_gone "$SERVER_PID" 20 || kill -KILL "$SERVER_PID" 2>/dev/null
}

start_prosody() {
    local d="$WORK/prosody" port=$PORT_prosody
    mkdir -p "$d/data"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    render prosody.cfg.lua "$d" $port "$d/prosody.cfg.lua"
    cp "$d/prosody.cfg.lua" "$d/config"
    prosody -F --config "$d/prosody.cfg.lua" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port $port 30 || return 1
    # Accounts through the admin shell of the running server: one prosodyctl process instead of
    # ACCOUNTS `prosodyctl register` runs (~40-80 ms each); same usermanager.create_user.
    for ((i = 0; i < ACCOUNTS; i++)); do echo "user:create(\"u$i@$DOMAIN\", \"$PASSWORD\")"; done |
        prosodyctl --config "$d/prosody.cfg.lua" shell >"$d/shell.log" 2>&1
    [ -f "$d/data/$DOMAIN/accounts/u$((ACCOUNTS - 1)).dat" ] || return 1
    local lua
    lua="$(prosodyctl --config "$d/prosody.cfg.lua" about 2>/dev/null | awk '/^Lua version/ {print $3, $4}')"
    echo "Prosody $(dpkg-query -W -f='${Version}' prosody) ($lua, Debian package)" >"$d/version"
}
stop_prosody() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait_gone "$SERVER_PID" 20 || kill -KILL "$SERVER_PID" 2>/dev/null
}

start_ejabberd() {
    local d="$WORK/ejabberd" port=$PORT_ejabberd
    mkdir -p "$d/db" "$d/log"
    render ejabberd.yml "$d" $port "$d/ejabberd.yml"
    cp "$BENCH/configs/ejabberdctl.cfg" "$d/ejabberdctl.cfg"
    cp "$WORK/certkey.pem" "$d/"
    cp "$d/ejabberd.yml" "$d/config"
    chown -R ejabberd: "$d" || return 1
    # Run as the ejabberd user directly (setpriv, not su: su would reset the open-file limit to
    # 1024, too few for the idle scenario).
    EJ_CTL=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups --reset-env
        /usr/sbin/ejabberdctl --config "$d/ejabberd.yml" --ctl-config "$d/ejabberdctl.cfg"
        --spool "$d/db" --logs "$d/log" --node bench-ejabberd@localhost)
    "${EJ_CTL[@]}" start </dev/null >"$d/ctl.log" 2>&1 || return 1
    "${EJ_CTL[@]}" started </dev/null >>"$d/ctl.log" 2>&1 || return 1
    SERVER_PID="$(pgrep -f 'beam.*-sname bench-ejabberd@localhost' | head -1)"
    [ -n "$SERVER_PID" ] || return 1
    # Accounts: one import (XEP-0227) instead of ACCOUNTS `ejabberdctl register` calls, which
    # start an Erlang node each (~0.6 s); the import registers through the same
    # ejabberd_auth:try_register, so the accounts are stored as SCRAM keys like the others.
    {
        echo "<?xml version='1.0' encoding='UTF-8'?>"
        echo "<server-data xmlns='urn:xmpp:pie:0'><host jid='$DOMAIN'>"
        for ((i = 0; i < ACCOUNTS; i++)); do echo "<user name='u$i' password='$PASSWORD'/>"; done
        echo "</host></server-data>"
    } >"$d/users.xml"
    chown ejabberd: "$d/users.xml"
    "${EJ_CTL[@]}" import_piefxis "$d/users.xml" >/dev/null || return 1
    [ "$("${EJ_CTL[@]}" registered_users $DOMAIN | wc -l)" -ge "$ACCOUNTS" ] || return 1
    wait_port $port 30 || return 1
    local otp
    otp="$(dpkg-query -W -f='${Version}' erlang-base)"
    echo "ejabberd $(dpkg-query -W -f='${Version}' ejabberd) (Erlang/OTP $otp, Debian package)" >"$d/version"
}
stop_ejabberd() {
    "${EJ_CTL[@]}" stop >/dev/null 2>&1
    wait_gone "$SERVER_PID" 30 || kill -KILL "$SERVER_PID" 2>/dev/null
    EJ_CTL=()
}

# --- the runs -------------------------------------------------------------------------------------
for s in $SERVERS; do
    port_var="PORT_$s"
    port="${!port_var}"
    log "$s: creating $ACCOUNTS accounts and starting"
    t0=$(date +%s.%N)
    SERVER_PID=""
    if ! start_$s; then
        [ -n "$SERVER_PID" ] && "stop_$s"
        if [ ${#EJ_CTL[@]} -gt 0 ]; then "${EJ_CTL[@]}" stop >/dev/null 2>&1; EJ_CTL=(); fi
        meta "$(printf '{"meta":"server","server":"%s","status":%s}' "$s" "$(jq_str "could not be set up or started")")"
        log "$s: could not be set up or started; skipped"
        for f in "$WORK/$s"/*.log "$WORK/$s"/log/*.log; do [ -f "$f" ] && tail -5 "$f" >&2; done
        SERVER_PID=""
        continue
    fi
    version="$(cat "$WORK/$s/version")"
    setup_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
    nofile="$(awk '/Max open files/ {print $4}' "/proc/$SERVER_PID/limits")"
    meta "$(printf '{"meta":"server","server":"%s","status":"ok","version":%s,"pid":%s,"setup_s":%s,"nofile":"%s","loadavg":%s,"config":%s}' \
        "$s" "$(jq_str "$version")" "$SERVER_PID" "$setup_s" "$nofile" \
        "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" \
        "$(jq_str "$(sed "s|$WORK|\$WORK|g" "$WORK/$s/config")")")"
    log "$s: $version, pid $SERVER_PID, set up in ${setup_s}s; running $SCENARIOS"
    "$LOADGEN" --server "$s" --addr "127.0.0.1:$port" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts "$ACCOUNTS" --threads "$THREADS" --scenarios "$SCENARIOS" \
        --idle "$IDLE" --login-seq "$LOGIN_SEQ" --login-conc "$LOGIN_CONC" \
        --login-total "$LOGIN_TOTAL" --login-pool "$LOGIN_POOL" --login-time "$LOGIN_TIME" \
        --pairs "$PAIRS" --window "$WINDOW" --duration "$DURATION" \
        2>"$WORK/loadgen-$s.err" | tee -a "$JSONL"
    # Warnings the server logged during the run (counted, first lines kept).
    case $s in
        rookery) wlog="$WORK/rookery/server.log" ;;
        prosody) wlog="$WORK/prosody/prosody.log" ;;
        ejabberd) wlog="$WORK/ejabberd/log/ejabberd.log" ;;
    esac
    if [ -f "$wlog" ]; then
        meta "$(printf '{"meta":"log","server":"%s","lines":%s,"head":%s}' "$s" "$(wc -l <"$wlog")" \
            "$(jq_str "$(grep -v 'self-signed certificate' "$wlog" | head -5 | cut -c1-300)")")"
    fi
    log "$s: stopping"
    stop_$s
    SERVER_PID=""
    sleep 2
done

mkdir -p "$BENCH/results"
cp "$JSONL" "$OUT.jsonl"
python3 "$BENCH/report.py" "$OUT.jsonl" >"$OUT.md"
log "wrote ${OUT#"$ROOT/"}.md and .jsonl"
