# Shared by bench/cm.sh and bench/cm-scale.sh (sourced, not run): the release builds, one
# certificate, the benchmark's Rookery config with a `cm` listener, accounts, and starting the
# server and the connection managers. Callers set BENCH, ROOT, WORK, DOMAIN, PASSWORD, PORT,
# CM_PORT, CM_SECRET and LINKS, and define log().

# shellcheck source=common.sh
. "$BENCH/common.sh"

# Builds rookery and the load generator; sets ROOKERY and LOADGEN.
cm_build() {
    log "building rookery and the load generator (release)"
    (cd "$ROOT" && cargo build --release -p rookery) || return 1
    (cd "$BENCH/loadgen" && cargo build --release) || return 1
    ROOKERY="$ROOT/target/release/rookery"
    LOADGEN="$BENCH/loadgen/target/release/rookery-loadgen"
}

# The certificate, and the benchmark config of bench/compare.sh plus the CM listener, in $d.
cm_server_config() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || return 1
    d="$WORK/rookery"
    mkdir -p "$d"
    cp "$WORK/cert.pem" "$WORK/key.pem" "$d/"
    sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$PORT|g" "$BENCH/configs/rookery.toml" >"$d/rookery.toml"
    cat >>"$d/rookery.toml" <<TOML

[cm]
secret = "$CM_SECRET"

[[listen]]
address = "127.0.0.1"
port = $CM_PORT
kind = "cm"
TOML
}

# Accounts u0 .. u($1-1).
cm_accounts() {
    # The first alone: two `user add` racing on a fresh database can fail to enable WAL.
    "$ROOKERY" user add "u0@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null || return 1
    seq 1 $(($1 - 1)) | xargs -P 2 -I{} \
        "$ROOKERY" user add "u{}@$DOMAIN" --password "$PASSWORD" --config "$d/rookery.toml" >/dev/null
}

# Starts the server; sets SERVER_PID.
cm_start_server() {
    "$ROOKERY" serve --config "$d/rookery.toml" >"$d/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$PORT" 30
}

# Starts connection manager $1 with clients on port $2 (limits relaxed: every client comes from
# one address); sets CM_PID.
cm_start_cm() {
    ROOKERY_CM_SECRET="$CM_SECRET" "$ROOKERY" cm --name "$1" --server "127.0.0.1:$CM_PORT" \
        --links "$LINKS" --listen "127.0.0.1:$2" --data-dir "$WORK/$1" \
        --domain "$DOMAIN:$WORK/cert.pem:$WORK/key.pem" --log-level warn \
        --unauth-per-ip 100000 --connects-per-minute-per-ip 10000000 >"$WORK/$1.log" 2>&1 &
    CM_PID=$!
    wait_port "$2" 30
}
