# The three servers for the bench scripts that compare them (sourced, not run): compare.sh and
# burst.sh. Set-up (peers, builds, certificate), machine facts, starting and stopping each
# server with its config from configs/, accounts, the load generator call, the servers' logs.
# Callers set BENCH, ROOT, WORK, JSONL, SERVERS, DOMAIN, PASSWORD, ACCOUNTS, THREADS and
# SRC_ADDRS, define log() and meta(), source common.sh first, and `trap cleanup EXIT`.
#
# Servers: rookery, prosody, ejabberd, and rookery_shaped (Rookery with its default sender
# shaping: the bench config without its two `c2s_rate_* = 0` lines).

# Below the ephemeral range (32768+), so no client socket can hold them; not 252xx, which the
# project's tests and cm.sh use on the same machine. A port another process holds is skipped
# (move_port).
PORT_rookery="${PORT_ROOKERY:-27222}"
PORT_rookery_shaped="${PORT_ROOKERY_SHAPED:-27223}"
PORT_prosody="${PORT_PROSODY:-27322}"
PORT_ejabberd="${PORT_EJABBERD:-27422}"
SERVER_PID=""
EJ_CTL=()

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
    fi
    if [ ${#EJ_CTL[@]} -gt 0 ]; then "${EJ_CTL[@]}" stop >/dev/null 2>&1; fi
    if [ -n "$PG_SCHEMA" ]; then
        wait_gone "$SERVER_PID" 20
        psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
}

# STORAGE=postgres: Rookery's store in a schema of its own on this PostgreSQL, kept for the
# whole run (accounts are made once) and dropped by `cleanup`.
PG_URL="${ROOKERY_BENCH_PG:-postgresql://postgres@127.0.0.1:5432/test}"
PG_SCHEMA=""
if [ "${STORAGE:-sqlite}" = postgres ]; then PG_SCHEMA="rookery_bench_$$"; fi

# Wait until nothing accepts on 127.0.0.1:$1 any more (at most $2 seconds): a server still
# shutting down must not answer for the next one.
wait_port_free() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Server $1's port is taken by another process: move it to the next free one below the
# ephemeral range (the config is rendered with it at every start).
move_port() {
    local port_var="PORT_$1" p
    p=$((${!port_var} + 1))
    while [ $p -lt 32768 ] && { [ -n "$(ss -ltnH "sport = :$p")" ] ||
        [[ " $PORT_rookery $PORT_rookery_shaped $PORT_prosody $PORT_ejabberd " == *" $p "* ]]; }; do
        p=$((p + 1))
    done
    log "$1: port ${!port_var} is taken by another process; using $p"
    printf -v "$port_var" '%s' "$p"
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

# What else is using the cores right now: the busiest processes over half a second (top's
# second frame; its first shows averages since each process started).
busy() {
    top -b -n 2 -d 0.5 -o %CPU -w 120 2>/dev/null |
        awk '/^top -/ {f++} f == 2 && /^ *PID/ {p = 1; print; next} p && n < 6 {print; n++}'
}

# Peers installed, Rookery (unless ROOKERY_BIN) and the load generator built, one certificate
# for all: sets ROOKERY and LOADGEN.
bench_setup() {
    log "installing peers (bench/setup.sh)"
    bash "$BENCH/setup.sh" >"$WORK/setup.log" 2>&1 || log "setup.sh failed (see peers' status in the results)"

    if [ -n "${ROOKERY_BIN:-}" ]; then
        # For work on the harness itself: a binary built elsewhere (the results say which).
        ROOKERY="$ROOKERY_BIN"
    else
        log "building rookery (release)"
        (cd "$ROOT" && cargo build --release -p rookery) || { log "rookery build failed"; exit 1; }
        ROOKERY="$ROOT/target/release/rookery"
    fi
    log "building the load generator (release)"
    (cd "$BENCH/loadgen" && cargo build --release) || { log "loadgen build failed"; exit 1; }
    LOADGEN="$BENCH/loadgen/target/release/rookery-loadgen"

    # One certificate for all three, self-signed, for localhost: ECDSA P-256 by default, or
    # RSA-2048 (CERT=rsa, and CERT=rsa+ecdsa, where Rookery also gets an ECDSA one beside it).
    local keyopts
    case ${CERT:-ecdsa} in
    ecdsa) keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa | rsa+ecdsa) keyopts=(-newkey rsa:2048) ;;
    *) log "CERT=$CERT: expected ecdsa, rsa or rsa+ecdsa"; exit 2 ;;
    esac
    openssl req -x509 "${keyopts[@]}" -nodes -days 30 \
        -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
    if [ "${CERT:-ecdsa}" = rsa+ecdsa ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
            -keyout "$WORK/ec-key.pem" -out "$WORK/ec-cert.pem" >/dev/null 2>&1
    fi
    cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/certkey.pem"
    chmod 644 "$WORK"/*.pem
}

# The machine, versions and load average as the first line of the results; $1: the parameters.
machine_meta() {
    git_rev="$(git -C "$ROOT" rev-parse --short HEAD)"
    if [ -n "$(git -C "$ROOT" status --porcelain -- crates bins Cargo.toml Cargo.lock)" ]; then
        git_rev="$git_rev (with uncommitted changes in crates/bins)"
    fi
    [ -n "${ROOKERY_BIN:-}" ] && git_rev="$git_rev (but the binary measured is ROOKERY_BIN=$ROOKERY_BIN)"
    meta "$(printf '{"meta":"machine","date":%s,"nproc":%s,"cpu":%s,"mem":%s,"kernel":%s,"os":%s,"rustc":%s,"openssl":%s,"rookery_rev":%s,"loadavg":%s,"top":%s,"params":%s,"rounds":%s}' \
        "$(jq_str "$(date -u '+%F %T UTC')")" "$(nproc)" \
        "$(jq_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')")" \
        "$(jq_str "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)")" \
        "$(jq_str "$(uname -r)")" "$(jq_str "$(. /etc/os-release && echo "$PRETTY_NAME")")" \
        "$(jq_str "$(rustc -V)")" "$(jq_str "$(openssl version)")" "$(jq_str "$git_rev")" \
        "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" \
        "$(jq_str "$(busy)")" \
        "$(jq_str "$1")" "$ROUNDS")"
}

# --- per-server start/stop ----------------------------------------------------------------------
# Each start_X sets SERVER_PID, writes the rendered config to $WORK/X/config and the version to
# $WORK/X/version. The data directory stays for the whole run: accounts are created on the first
# start only (marker file `accounts`), later starts (rounds, and the separate idle runs) reuse
# them, rosters included.

start_rookery() { start_rookery_as rookery; }
start_rookery_shaped() { start_rookery_as rookery_shaped; }
start_rookery_as() {
    local s=$1 d="$WORK/$1" port_var="PORT_$1"
    local port=${!port_var}
    mkdir -p "$d"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    render rookery.toml "$d" "$port" "$d/rookery.toml"
    if [ "$s" = rookery_shaped ]; then
        # Rookery as shipped shapes senders: drop the bench config's two lines that turn it off.
        sed -i -e 's/^c2s_rate_bytes = 0$/# rookery_shaped: c2s_rate_bytes and c2s_rate_stanzas removed, the defaults apply/' \
            -e '/^c2s_rate_stanzas = 0$/d' "$d/rookery.toml"
        if grep -q '^c2s_rate_' "$d/rookery.toml"; then return 1; fi
    fi
    if [ "${CERT:-ecdsa}" = rsa+ecdsa ]; then
        cp "$WORK/ec-cert.pem" "$WORK/ec-key.pem" "$d/"
        sed -i -e "s|^cert = \"$d/cert.pem\"\$|certs = [\n    { cert = \"$d/cert.pem\", key = \"$d/key.pem\" },\n    { cert = \"$d/ec-cert.pem\", key = \"$d/ec-key.pem\" },\n]|" \
            -e "\|^key = \"$d/key.pem\"\$|d" "$d/rookery.toml"
    fi
    if [ -n "$PG_SCHEMA" ]; then
        printf '\n[storage]\nbackend = "postgres"\nurl = "%s"\nschema = "%s"\n' "$PG_URL" "$PG_SCHEMA" >>"$d/rookery.toml"
    fi
    cp "$d/rookery.toml" "$d/config"
    if [ ! -f "$d/accounts" ]; then
        # The first account alone: two `user add` racing on a fresh database can fail with
        # "enabling WAL: database is locked".
        "$ROOKERY" user add "u0@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null || return 1
        seq 1 $((ACCOUNTS - 1)) | xargs -P 2 -I{} \
            "$ROOKERY" user add "u{}@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null ||
            return 1
        touch "$d/accounts"
    fi
    "$ROOKERY" serve --config "$d/rookery.toml" >>"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port $port 30 || return 1
    local what="release build"
    [ "$s" = rookery_shaped ] && what="$what; default sender shaping"
    echo "rookery $git_rev ($what)" >"$d/version"
}
stop_rookery() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait_gone "$SERVER_PID" 20 || kill -KILL "$SERVER_PID" 2>/dev/null
}
stop_rookery_shaped() { stop_rookery; }

start_prosody() {
    local d="$WORK/prosody" port=$PORT_prosody
    mkdir -p "$d/data"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    render prosody.cfg.lua "$d" $port "$d/prosody.cfg.lua"
    cp "$d/prosody.cfg.lua" "$d/config"
    prosody -F --config "$d/prosody.cfg.lua" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port $port 30 || return 1
    if [ ! -f "$d/accounts" ]; then
        # Accounts through the admin shell of the running server: one prosodyctl process instead
        # of ACCOUNTS `prosodyctl register` runs (~40-80 ms each); same usermanager.create_user.
        # The shell's socket can appear after the c2s port does (seen on a busy machine).
        for ((i = 0; i < 300; i++)); do [ -S "$d/data/prosody.sock" ] && break; sleep 0.1; done
        for ((i = 0; i < ACCOUNTS; i++)); do echo "user:create(\"u$i@$DOMAIN\", \"$PASSWORD\")"; done |
            prosodyctl --config "$d/prosody.cfg.lua" shell >"$d/shell.log" 2>&1
        [ -f "$d/data/$DOMAIN/accounts/u$((ACCOUNTS - 1)).dat" ] || return 1
        touch "$d/accounts"
    fi
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
    if [ -f "$d/accounts" ]; then
        wait_port $port 30 || return 1
        return 0
    fi
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
    # --no-timeout: ejabberdctl gives up on a command after 60 s, and importing ~15k accounts
    # (each hashed for SCRAM) takes longer on a busy machine.
    "${EJ_CTL[@]}" --no-timeout import_piefxis "$d/users.xml" >/dev/null || return 1
    [ "$("${EJ_CTL[@]}" registered_users $DOMAIN | wc -l)" -ge "$ACCOUNTS" ] || return 1
    touch "$d/accounts"
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

# Start server $1 (phase $2, round $3) and record the start; returns non-zero if it failed.
start() {
    local s=$1 t0 version setup_s nofile first=0 port_var="PORT_$1"
    [ -f "$WORK/$s/recorded" ] || first=1
    # Ours are stopped and waited for, so a listener still there after 10 s is another
    # process on this shared machine.
    wait_port_free "${!port_var}" 10 || move_port "$s"
    t0=$(date +%s.%N)
    SERVER_PID=""
    # The listener must be this server's: on a shared machine another process could hold the
    # port, and the load would then go to it.
    if ! "start_$s" || ! kill -0 "$SERVER_PID" 2>/dev/null ||
        ! ss -ltnpH "sport = :${!port_var}" | grep -q "pid=$SERVER_PID,"; then
        log "$s: did not start, or port ${!port_var} is not its own"
        [ -n "$SERVER_PID" ] && "stop_$s"
        if [ ${#EJ_CTL[@]} -gt 0 ]; then "${EJ_CTL[@]}" stop >/dev/null 2>&1; EJ_CTL=(); fi
        SERVER_PID=""
        return 1
    fi
    setup_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
    nofile="$(awk '/Max open files/ {print $4}' "/proc/$SERVER_PID/limits")"
    version="$(cat "$WORK/$s/version")"
    if [ $first = 1 ]; then
        meta "$(printf '{"meta":"server","server":"%s","status":"ok","version":%s,"setup_s":%s,"provision_s":%s,"nofile":"%s","config":%s}' \
            "$s" "$(jq_str "$version")" "$setup_s" "$(cat "$WORK/$s/provision_s" 2>/dev/null || echo null)" \
            "$nofile" "$(jq_str "$(sed "s|$WORK|\$WORK|g" "$WORK/$s/config")")")"
        touch "$WORK/$s/recorded"
    fi
    meta "$(printf '{"meta":"slot","server":"%s","round":%s,"phase":"%s","pid":%s,"start_s":%s,"at":%s,"loadavg":%s,"busy":%s}' \
        "$s" "$3" "$2" "$SERVER_PID" "$setup_s" "$(jq_str "$(date -u +%T)")" \
        "$(jq_str "$(cut -d' ' -f1-3 /proc/loadavg)")" "$(jq_str "$(busy)")")"
    log "$s (round $3, $2): $version, pid $SERVER_PID, up in ${setup_s}s"
}

stop() {
    "stop_$1"
    SERVER_PID=""
    sleep 1
}

# Accounts for all servers at once, before anything is measured: each server's first start
# creates them (start_X), and the three creations are largely single-threaded (Prosody's shell,
# ejabberd's import) or process-bound (`rookery user add` per account), so running them side by
# side saves minutes. Each in a subshell with its own SERVER_PID; the data stays for the rounds.
provision() {
    local s=$1 t0
    t0=$(date +%s.%N)
    SERVER_PID=""
    EJ_CTL=()
    if "start_$s" >"$WORK/provision-$s.log" 2>&1; then
        "stop_$s"
        local port_var="PORT_$s"
        wait_port_free "${!port_var}" 30
        python3 -c "print(round($(date +%s.%N) - $t0, 1))" >"$WORK/$s/provision_s"
    else
        [ -n "$SERVER_PID" ] && "stop_$s"
        if [ ${#EJ_CTL[@]} -gt 0 ]; then "${EJ_CTL[@]}" stop >/dev/null 2>&1; fi
        touch "$WORK/provision-$s.failed"
    fi
}

# Accounts on every server in SERVERS at once (see provision); the ones that failed are listed
# in `failed`.
provision_all() {
    local s port_var
    for s in $SERVERS; do
        port_var="PORT_$s"
        [ -z "$(ss -ltnH "sport = :${!port_var}")" ] || move_port "$s"
    done
    log "creating $ACCOUNTS accounts on each of: $SERVERS (in parallel)"
    for s in $SERVERS; do
        mkdir -p "$WORK/$s"
        (provision "$s") &
    done
    wait
    failed=""
    for s in $SERVERS; do
        if [ -f "$WORK/provision-$s.failed" ]; then
            failed="$failed $s"
            log "$s: creating the accounts failed (see the end of the run)"
        else
            log "$s: accounts created in $(cat "$WORK/$s/provision_s") s"
        fi
    done
}

# Run the load generator against the running server $1 in round $2; the rest are its options.
# Every line it prints gets the round number and goes into the results.
loadgen() {
    local s=$1 r=$2 port_var="PORT_$1"
    shift 2
    "$LOADGEN" --server "$s" --addr "127.0.0.1:${!port_var}" --pid "$SERVER_PID" --domain "$DOMAIN" \
        --password "$PASSWORD" --accounts "$ACCOUNTS" --threads "$THREADS" --src-addrs "$SRC_ADDRS" \
        "$@" 2>>"$WORK/loadgen-$s.err" | sed -u "s/^{/{\"round\":$r,/" | tee -a "$JSONL" |
        cut -c1-200 >&2
}

# The servers that failed (`failed`) and the warnings each server logged in the whole run
# (counted, first lines kept), into the results.
servers_meta() {
    local s wlog f
    for s in $failed; do
        meta "$(printf '{"meta":"server","server":"%s","status":%s}' "$s" "$(jq_str "could not be set up or started")")"
        log "$s: could not be set up or started"
        for f in "$WORK/$s"/*.log "$WORK/$s"/log/*.log; do [ -f "$f" ] && tail -5 "$f" >&2; done
    done
    for s in $SERVERS; do
        case $s in
            rookery*) wlog="$WORK/$s/server.log" ;;
            prosody) wlog="$WORK/prosody/prosody.log" ;;
            ejabberd) wlog="$WORK/ejabberd/log/ejabberd.log" ;;
        esac
        if [ -f "$wlog" ]; then
            meta "$(printf '{"meta":"log","server":"%s","lines":%s,"head":%s}' "$s" "$(wc -l <"$wlog")" \
                "$(jq_str "$(grep -v 'self-signed certificate' "$wlog" | head -5 | cut -c1-300)")")"
        fi
    done
}
