#!/usr/bin/env bash
# Installs the peers measured by bench/compare.sh: Prosody and ejabberd from Debian's packages
# (bookworm: Prosody 0.12, ejabberd 23.01). Idempotent. Uses scripts/s2s-peers.sh when the
# repository has it (it installs the same packages), else apt-get directly.
#
# The packages start system-wide instances (on 5222/5269/5280...); those are stopped here: the
# benchmark runs its own instances with its own configs in temporary directories, on loopback
# and non-standard ports.
set -euo pipefail
cd "$(dirname "$0")/.."

have_peers() { command -v prosodyctl >/dev/null && command -v ejabberdctl >/dev/null; }

if [ -f scripts/s2s-peers.sh ]; then
    bash scripts/s2s-peers.sh || true
fi
if ! have_peers; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends prosody ejabberd
fi

# Stop the system services the packages may have started (no systemd here: init scripts).
for svc in prosody ejabberd; do
    if [ -x "/etc/init.d/$svc" ]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
done
# A Debian-started ejabberd node is called ejabberd@localhost; our own is bench-ejabberd@localhost.
if pgrep -f 'beam.*-sname ejabberd@localhost' >/dev/null; then
    ejabberdctl stop >/dev/null 2>&1 || true
fi
if [ -f /run/prosody/prosody.pid ] && kill -0 "$(cat /run/prosody/prosody.pid)" 2>/dev/null; then
    kill "$(cat /run/prosody/prosody.pid)" || true
fi

prosodyctl about 2>/dev/null | grep -m1 '^Prosody' || true
dpkg-query -W -f='ejabberd ${Version}\n' ejabberd
