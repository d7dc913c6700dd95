#!/usr/bin/env bash
# Makes the PostgreSQL test database of the store tests usable (crates/rookery-store, the
# PostgreSQL backend's contract suite, and crates/rookery-server/tests/postgres_store.rs): a
# server on 127.0.0.1:5432 that lets user `postgres` into database `test` without a password,
# as every machine of this project has it (ROOKERY_TEST_PG_URL names another database).
#
# Idempotent, and cheap when all is there (one connection attempt):
#   - psql/pg_isready missing: apt-get install postgresql-client;
#   - the server not answering: start an installed cluster (pg_ctlcluster), or, with none
#     installed, apt-get install postgresql, start it and trust local TCP connections (a
#     fresh Debian install asks for passwords the tests do not have);
#   - database `test` missing: create it.
# Each test makes (and drops) a schema of its own there, so runs never see each other's data.
#
# If PostgreSQL cannot be made usable this says so in a loud banner; with CI set it then exits
# non-zero (CI must test the PostgreSQL store, and the tests would fail anyway), otherwise 0
# (the tests skip with a notice).
#
#   scripts/postgres.sh
set -uo pipefail

url=${ROOKERY_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}
say() { printf 'postgres.sh: %s\n' "$*"; }

in_ci() { case "${CI:-}" in ''|0|false|FALSE|False) return 1 ;; *) return 0 ;; esac; }

give_up() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! postgres.sh: %s\n' "$@"
  printf '!!! the PostgreSQL store tests need %s\n' "$url"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
  if in_ci; then exit 1; fi
  exit 0
}

usable() { psql "$url" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show "$1" >/dev/null 2>&1; then
    say "apt-get update (apt does not know $1)"
    apt-get update -q || say "apt-get update failed"
  fi
  say "installing $1"
  apt-get install -y -q --no-install-recommends "$1" || {
    apt-get update -q || true
    apt-get install -y -q --no-install-recommends "$1"
  }
}

if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
  can_apt || give_up "no psql and cannot apt-get install postgresql-client (not root or no apt)"
  apt_install postgresql-client || give_up "apt-get install postgresql-client failed"
fi

if usable; then
  say "test database usable: $url ($(psql "$url" -XAtqc 'SHOW server_version'))"
  exit 0
fi

# Host and port of the URL, for pg_isready (the tests' URL is always a plain TCP one).
hostport=${url#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=5432
case "$hostport" in *:*) port=${hostport##*:} ;; esac

start_clusters() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  local started=1
  while read -r ver cluster _; do
    [ -n "$ver" ] || continue
    say "starting PostgreSQL cluster $ver/$cluster"
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start && started=0
  done < <(pg_lsclusters -h 2>/dev/null | awk '$4 != "online" { print $1, $2 }')
  return $started
}

wait_ready() {
  for _ in $(seq 1 30); do
    pg_isready -q -h "$host" -p "$port" && return 0
    sleep 1
  done
  return 1
}

if ! pg_isready -q -h "$host" -p "$port"; then
  if ! start_clusters; then
    if [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
      can_apt || give_up "no PostgreSQL server and cannot apt-get install one"
      apt_install postgresql || give_up "apt-get install postgresql failed"
      # A fresh Debian install wants passwords on TCP; the test user gets in by trust on
      # loopback only.
      for hba in /etc/postgresql/*/main/pg_hba.conf; do
        grep -q '^host all all 127.0.0.1/32 trust # rookery tests' "$hba" ||
          sed -i '1i host all all 127.0.0.1/32 trust # rookery tests' "$hba"
      done
      start_clusters || true
      for cluster in $(pg_lsclusters -h | awk '{ print $1 "/" $2 }'); do
        pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" reload || true
      done
    fi
  fi
  wait_ready || give_up "the server on $host:$port does not answer"
fi

if ! usable; then
  # Reachable but no database `test` (or whatever the URL names): create it.
  db=${url##*/}; db=${db%%\?*}
  admin=${url%/*}/postgres
  say "creating database $db"
  psql "$admin" -XAtqc "CREATE DATABASE \"$db\"" >/dev/null 2>&1 || true
fi
usable || give_up "cannot connect to $url: $(psql "$url" -XAtqc 'SELECT 1' 2>&1 | head -1)"
say "test database usable: $url ($(psql "$url" -XAtqc 'SHOW server_version'))"
