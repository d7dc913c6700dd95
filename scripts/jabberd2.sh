#!/usr/bin/env bash
# Installs jabberd2 (Debian package, 2.7 in bookworm) for tests/interop_jabberd2, where jabberd2's
# own `sm` and `c2s` processes connect to Rookery's router listener instead of jabberd2's router,
# and openssl (the tests' throw-away certificate for jabberd2's c2s).
#
# Idempotent: nothing is fetched when the package is already installed; `apt-get update` runs
# only when apt does not know the package yet or the first install attempt fails. The package's
# service is never started: a temporary /usr/sbin/policy-rc.d denies service starts while
# installing (the tests run private sm/c2s instances with their own configs).
#
# If jabberd2 cannot be installed (no root, no apt, the mirror unreachable), this says so in a
# loud banner and exits 0: the tests then skip with a "JABBERD2 INTEROP NOT TESTED" reason
# instead of failing for a reason outside the project.
#
#   scripts/jabberd2.sh
set -uo pipefail

packages=(jabberd2 openssl)
say() { printf 'jabberd2.sh: %s\n' "$*"; }

banner() {
  printf '\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! jabberd2.sh: %s\n' "$@"
  printf '!!! tests/interop_jabberd2 will SKIP: jabberd2 sm/c2s on the router NOT TESTED\n'
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "installed: jabberd2 $(dpkg-query -W -f='${Version}' jabberd2)"
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

# Keep the package's init script from starting a system-wide jabberd2.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from scripts/jabberd2.sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

need_update=0
for p in "${missing[@]}"; do
  apt-cache show "$p" >/dev/null 2>&1 || need_update=1
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
say "installed: jabberd2 $(dpkg-query -W -f='${Version}' jabberd2)"
