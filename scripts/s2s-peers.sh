#!/usr/bin/env bash
# Installs the third-party XMPP servers that tests/interop_s2s federates Rookery with, from
# Debian's packages: prosody (0.12 in bookworm) with lua-unbound (lua5.4-unbound, the resolver
# Prosody recommends), ejabberd (23.01), plus openssl (the tests' throwaway CA) and iproute2
# (`ip netns`).
#
# Idempotent: nothing is fetched when every package is already installed. `apt-get update`
# runs only when a package is missing and apt does not know it yet (or the first install
# attempt fails). The packages' services are never started: while installing, a temporary
# /usr/sbin/policy-rc.d denies service starts if the machine has none (the tests run private
# instances inside a network namespace; a system-wide Prosody/ejabberd would only be in the way).
#
# If the packages cannot be installed (no root, no apt, the mirror unreachable), this says so
# in a loud banner and exits 0: the federation tests then skip, each with a
# "FEDERATION INTEROP NOT TESTED" reason, instead of failing for a reason outside the project.
#
#   scripts/s2s-peers.sh
set -uo pipefail

packages=(prosody lua-unbound ejabberd openssl iproute2)
say() { printf 's2s-peers: %s\n' "$*"; }

banner() {
  printf '\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! s2s-peers: %s\n' "$@"
  printf '!!! tests/interop_s2s will SKIP: federation with Prosody/ejabberd NOT TESTED\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

report_versions() {
  for p in prosody ejabberd; do
    say "$p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)"
  done
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "all installed (${packages[*]})"
  report_versions
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  banner "not root: cannot apt-get install ${missing[*]}"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  banner "no apt-get on this machine: cannot install ${missing[*]}"
  exit 0
fi

# Keep the packages' init scripts from starting system-wide servers.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from scripts/s2s-peers.sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}
known() { apt-cache show "$1" >/dev/null 2>&1; }

need_update=0
for p in "${missing[@]}"; do
  known "$p" || need_update=1
done
if [ "$need_update" -eq 1 ]; then
  say "apt-get update (apt does not know all of: ${missing[*]})"
  apt-get update -q || say "apt-get update failed"
fi

say "installing: ${missing[*]}"
if ! apt_install; then
  say "install failed; retrying after apt-get update"
  apt-get update -q || true
  if ! apt_install; then
    banner "apt-get install ${missing[*]} failed"
    exit 0
  fi
fi

for p in "${packages[@]}"; do
  if ! installed "$p"; then
    banner "$p is still not installed after apt-get install"
    exit 0
  fi
done
report_versions
