#!/usr/bin/env bash
# Runs the shared scansion conformance suite (Prosody's spec/scansion scripts, interpreted by
# shared/conformance/scansion/run.sh) against a freshly started Rookery.
#
#   tests/conformance/run-scansion.sh [--record] [-v] [SCRIPT ...]
#
#   --record   write tests/conformance/RESULTS.md (date, commit, every PASS/FAIL/SKIP line)
#   -v         passed on to the runner (lists skipped idle stanzas, shows exchanges)
#   SCRIPT     run only these scripts (basename without .scs); default: all of them
#
# Environment:
#   ROOKERY_BIN   server binary (default target/debug/rookery); this script builds nothing
#   SHARED_DIR    the shared/ directory (default: beside the checkout, "$top/../shared")
#   SCANSION_*    passed through to the runner (SCANSION_SCOPE, SCANSION_TIMEOUT, ...)
#   ROOKERY_TEST_STORAGE=postgres   run the server on PostgreSQL ($ROOKERY_TEST_PG_URL, default
#                 postgresql://postgres@127.0.0.1:5432/test), in a schema of its own that is
#                 emptied before every script and dropped at the end
#
# The server gets in-band registration (the runner creates each script's accounts via XEP-0077),
# admin@localhost as admin, and is restarted with empty storage before every script (the
# runner's SCANSION_BEFORE_EACH hook) because the scripts reuse account names, just as Prosody
# resets its state between them. After each run of the server, its exit code after SIGTERM must
# be 0 and its log must not mention a panic; problems are reported at the end.
#
# Exit status: non-zero only if a script listed in tests/conformance/expected-pass.txt did not
# PASS (or the harness itself could not run). Other failures are reported, not fatal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))

bin=${ROOKERY_BIN:-target/debug/rookery}
case "$bin" in /*) ;; *) bin="$top/$bin" ;; esac

READY_DEADLINE=30   # seconds for the server to bind its listeners (failure deadline)
STOP_DEADLINE=30    # seconds for it to exit after SIGTERM (failure deadline)

log() { printf 'run-scansion: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------- server control
# State lives in $work: rookery.toml, data/, gen (restart counter), pid, rc.N, server.N.log,
# problems (one line per bad server exit).

write_config() { # work c2s_port tls_port
  cat >"$1/rookery.toml" <<EOF
[server]
data_dir = "data"
log_level = "info"
admins = ["admin@localhost"]

[[host]]
domain = "localhost"

[registration]
allow = true

# Hermetic: the scripts address conference./pubsub. hosts Rookery does not serve; with
# federation off those bounce at once instead of the server resolving them in DNS.
[s2s]
enabled = false

[[listen]]
address = "127.0.0.1"
port = $2
kind = "c2s"

[[listen]]
address = "127.0.0.1"
port = $3
kind = "c2s-tls"
EOF
  if [ -f "$1/schema" ]; then
    printf '\n[storage]\nbackend = "postgres"\nurl = "%s"\nschema = "%s"\npool_size = 4\n' \
      "$pg_url" "$(cat "$1/schema")" >>"$1/rookery.toml"
  fi
}

pg_url=${ROOKERY_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
drop_schema() { # work
  if [ -f "$1/schema" ]; then
    PGOPTIONS="-c client_min_messages=warning" psql "$pg_url" -XAtqc \
      "DROP SCHEMA IF EXISTS $(cat "$1/schema") CASCADE" >/dev/null
  fi
}

start_server() { # work
  local work=$1 gen
  gen=$(( $(cat "$work/gen" 2>/dev/null || echo 0) + 1 ))
  echo "$gen" >"$work/gen"
  rm -rf "$work/data" "$work/ready" "$work/pid"
  # Empty storage on PostgreSQL too: the server creates its schema afresh.
  drop_schema "$work"
  # The subshell waits for the server and records its exit status in rc.GEN, so a later,
  # separate process (the restart hook) can stop it and still learn how it exited.
  (
    "$bin" serve --config "$work/rookery.toml" --ready-file "$work/ready" \
      </dev/null >>"$work/server.$gen.log" 2>&1 &
    echo $! >"$work/pid.tmp" && mv "$work/pid.tmp" "$work/pid"
    rc=0; wait $! || rc=$?
    echo "$rc" >"$work/rc.$gen"
  ) </dev/null >/dev/null 2>&1 &
  local deadline=$(( $(date +%s) + READY_DEADLINE ))
  until [ -f "$work/ready" ] && [ -f "$work/pid" ]; do
    if [ -f "$work/rc.$gen" ]; then
      log "rookery exited with $(cat "$work/rc.$gen") before it was ready:"
      tail -n 30 "$work/server.$gen.log" >&2
      echo "server run $gen: exited with $(cat "$work/rc.$gen") before it was ready" >>"$work/problems"
      return 1
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
      log "rookery wrote no ready file within ${READY_DEADLINE}s"
      echo "server run $gen: not ready within ${READY_DEADLINE}s" >>"$work/problems"
      return 1
    fi
    sleep 0.05
  done
}

stop_server() { # work
  local work=$1 gen pid
  gen=$(cat "$work/gen" 2>/dev/null || echo 0)
  [ -f "$work/pid" ] || return 0
  pid=$(cat "$work/pid")
  rm -f "$work/pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + STOP_DEADLINE ))
  until [ -f "$work/rc.$gen" ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "server run $gen: still running ${STOP_DEADLINE}s after SIGTERM (killed)" >>"$work/problems"
      return 0
    fi
    sleep 0.05
  done
  local rc
  rc=$(cat "$work/rc.$gen")
  if [ "$rc" != 0 ]; then
    echo "server run $gen: exit code $rc after SIGTERM (expected 0); see server.$gen.log" >>"$work/problems"
  fi
  if grep -q panicked "$work/server.$gen.log"; then
    echo "server run $gen: panicked: $(grep -m1 panicked "$work/server.$gen.log")" >>"$work/problems"
  fi
}

# The runner's SCANSION_BEFORE_EACH hook: fresh server, same ports, empty storage.
if [ "${1:-}" = "--restart-hook" ]; then
  work=$2
  stop_server "$work"
  start_server "$work"
  exit $?
fi

# ---------------------------------------------------------------------------- main
record=0
args=()
for a in "$@"; do
  case "$a" in
    --record) record=1 ;;
    -h|--help) sed -n '2,23p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

shared=${SHARED_DIR:-"$top/../shared"}
runner="$shared/conformance/scansion/run.sh"
[ -f "$runner" ] || { log "scansion runner not found at $runner (set SHARED_DIR)"; exit 2; }
[ -x "$bin" ] || { log "rookery binary not found at $bin (cargo build -p rookery, or set ROOKERY_BIN)"; exit 2; }
command -v python3 >/dev/null || { log "python3 is needed by the scansion runner"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rookery-scansion.XXXXXX")
cleanup() {
  stop_server "$work" || true
  drop_schema "$work" || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "${ROOKERY_TEST_STORAGE:-sqlite}" = postgres ]; then
  echo "rookery_scs_$$" >"$work/schema"
  log "storage: PostgreSQL, schema $(cat "$work/schema")"
fi

# First start on port 0 to get free ports, then pin them so restarts keep the same address.
write_config "$work" 0 0
start_server "$work" || exit 2
c2s_port=$(awk '$1 == "c2s" { n = split($2, a, ":"); print a[n] }' "$work/ready")
tls_port=$(awk '$1 == "c2s-tls" { n = split($2, a, ":"); print a[n] }' "$work/ready")
[ -n "$c2s_port" ] || { log "no c2s listener in the ready file: $(cat "$work/ready")"; exit 2; }
write_config "$work" "$c2s_port" "${tls_port:-0}"
log "rookery on 127.0.0.1:$c2s_port (restarted with empty storage before each script)"

out="$work/output.txt"
set +e
SCANSION_BEFORE_EACH="$self --restart-hook $work" \
  "$runner" 127.0.0.1 "$c2s_port" localhost ${args[@]+"${args[@]}"} >"$out" 2>&1
runner_rc=$?
set -e
stop_server "$work"

# Show the runner's output, with its own summary line restated (it counts every script, also
# the ones we do not require yet; our closing line below is the one that decides).
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1 || true)
grep -vE '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" || true
if [ -z "$summary" ]; then
  log "the runner printed no summary (exit $runner_rc); its output is above"
  exit 2
fi
read -r n_pass _ n_fail _ n_skip _ <<<"$summary"
echo "scansion, all scripts: passed=$n_pass failed=$n_fail skipped=$n_skip"

if [ -s "$work/problems" ]; then
  echo "server problems during the run:"
  sed 's/^/  /' "$work/problems"
  for f in "$work"/server.*.log; do
    if grep -q panicked "$f"; then echo "--- $(basename "$f")"; grep -A5 panicked "$f" | head -n 20; fi
  done
fi

# Required scripts.
expected="$here/expected-pass.txt"
req_pass=0 req_fail=0
missing=()
if [ -f "$expected" ]; then
  while read -r name _; do
    case "$name" in ''|'#'*) continue ;; esac
    name=${name%.scs}
    if grep -qE "^PASS $name\.scs( |$)" "$out"; then
      req_pass=$((req_pass + 1))
    else
      # only scripts that were selected for this run count (explicit SCRIPT arguments)
      if [ ${#args[@]} -gt 0 ] && ! grep -qE "^(PASS|FAIL|SKIP) $name\.scs( |:|$)" "$out"; then
        continue
      fi
      req_fail=$((req_fail + 1))
      missing+=("$name: $(grep -E "^(FAIL|SKIP) $name\.scs" "$out" | head -n 1 || echo 'not run')")
    fi
  done <"$expected"
fi

if [ "$record" = 1 ]; then
  commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
  {
    echo "# Scansion conformance results"
    echo
    echo "Recorded by \`tests/conformance/run-scansion.sh --record\`; do not edit by hand."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit$dirty"
    echo "- binary: ${bin#"$top"/}"
    echo "- suite: ${SCANSION_SET:-prosody-13.0}, scope ${SCANSION_SCOPE:-agnostic}"
    echo "- totals: $n_pass passed, $n_fail failed, $n_skip skipped"
    echo "- required (expected-pass.txt): $req_pass passed, $req_fail failed"
    echo
    echo '```'
    grep -E '^(PASS|FAIL|SKIP) |^      ' "$out" || true
    echo '```'
    if [ -s "$work/problems" ]; then
      echo
      echo "Server problems during the run:"
      echo
      sed 's/^/- /' "$work/problems"
    fi
  } >"$here/RESULTS.md"
  log "wrote ${here#"$top"/}/RESULTS.md"
fi

for m in ${missing[@]+"${missing[@]}"}; do echo "required script did not pass: $m"; done
echo "conformance: $req_pass passed, $req_fail failed"
[ "$req_fail" -eq 0 ]
