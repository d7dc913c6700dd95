# Shell helpers shared by the bench scripts (sourced, not run): compare.sh, and through
# cm-common.sh cm.sh, cm-scale.sh and idle.sh.

# A string as a JSON string literal.
jq_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# Waits until something accepts on 127.0.0.1:$1 (at most $2 seconds).
wait_port() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
