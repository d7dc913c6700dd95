#!/usr/bin/env bash
# Installs what the integration tests (tests/interop) need: a virtualenv at .venv (repository
# root) with the exact PyPI versions pinned in tests/interop/requirements.txt, and the npm
# packages pinned in tests/interop_js/package-lock.json (xmpp.js), and Debian's own slixmpp
# (python3-slixmpp, 1.8.3 in bookworm) beside the pinned PyPI one, because that is the client a
# Debian user has (tests/interop/test_debian_slixmpp.py runs it with /usr/bin/python3).
# It also makes the PostgreSQL test database usable (scripts/postgres.sh: the psql client, the
# server on 127.0.0.1:5432 started or installed when it is not there, database `test`), which
# the PostgreSQL store tests in `cargo test` need.
# Idempotent: what is already installed at the pinned versions is left alone. Needs CPython
# >= 3.11 with the venv module, pip, Node.js and npm; the Debian packages need root and apt-get.
#
#   scripts/test-deps.sh                        # create/update .venv
#   PYTHON=python3.12 scripts/test-deps.sh      # another interpreter
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
reqs="$root/tests/interop/requirements.txt"
python=${PYTHON:-python3}

say() { printf 'test-deps: %s\n' "$*"; }

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  say "need Python >= 3.11, found $("$python" --version 2>&1)"
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv with $("$python" --version 2>&1)"
  "$python" -m venv "$venv"
else
  say "virtualenv $venv exists ($("$venv/bin/python" --version 2>&1))"
fi

# name==version lines of the lock file, normalised like `pip freeze` output (PEP 503 names).
norm() { awk -F'==' 'NF == 2 { n = tolower($1); gsub(/[_.]/, "-", n); print n "==" $2 }'; }
wanted=$(grep -E '^[A-Za-z0-9_.-]+==' "$reqs" | norm | sort)
have=$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | norm | sort)
missing=$(comm -23 <(printf '%s\n' "$wanted") <(printf '%s\n' "$have"))

if [ -z "$missing" ]; then
  say "all pinned packages already installed ($(printf '%s\n' "$wanted" | wc -l) from ${reqs#"$root"/})"
else
  say "installing from ${reqs#"$root"/}: $(printf '%s ' $missing)"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$reqs"
fi

"$venv/bin/python" - <<'PY'
import importlib.metadata as md
for name in ("slixmpp", "aioxmpp", "pytest", "pytest-asyncio", "pytest-timeout"):
    print(f"test-deps: {name} {md.version(name)}")
import slixmpp  # noqa: F401  (fails loudly if the installed wheel does not import)
import aioxmpp  # noqa: F401
PY

# xmpp.js for tests/interop/test_xmppjs.py: the npm packages pinned in
# tests/interop_js/package-lock.json, with the machine's Node.js. `npm ci` installs exactly the
# lock file; skipped when node_modules already matches it.
js="$root/tests/interop_js"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "need Node.js and npm for tests/interop_js (xmpp.js)"
  exit 1
fi
if [ -f "$js/node_modules/.package-lock.json" ] &&
   cmp -s <(grep -v '"name": "rookery-interop-js"' "$js/package-lock.json" | grep '"resolved"' | sort) \
          <(grep '"resolved"' "$js/node_modules/.package-lock.json" | sort); then
  say "xmpp.js packages already installed ($(node --version))"
else
  say "installing xmpp.js packages from ${js#"$root"/}/package-lock.json"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
say "@xmpp/client $(node -p "require('$js/node_modules/@xmpp/client/package.json').version")"

# Debian's slixmpp, installed with apt-get into /usr/lib/python3/dist-packages (used with
# /usr/bin/python3, never from the venv). Not fatal when it cannot be installed (no root, no
# apt, mirror unreachable): the tests that need it then skip with a loud reason.
debian_slixmpp() {
  local pkg=python3-slixmpp
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "!!! cannot apt-get install $pkg (not root or no apt-get): Debian slixmpp NOT TESTED"
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    say "apt-get update (apt does not know $pkg)"
    apt-get update -q || say "apt-get update failed"
  fi
  say "installing $pkg"
  if ! apt-get install -y -q --no-install-recommends "$pkg"; then
    say "install failed; retrying after apt-get update"
    apt-get update -q || true
    apt-get install -y -q --no-install-recommends "$pkg" ||
      say "!!! apt-get install $pkg failed: Debian slixmpp NOT TESTED"
  fi
}
debian_slixmpp
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import slixmpp' 2>/dev/null; then
  say "Debian slixmpp $(/usr/bin/python3 -c 'import slixmpp; print(slixmpp.__version__)' 2>/dev/null) ($(dpkg-query -W -f='${Version}' python3-slixmpp))"
fi

# PostgreSQL for the PostgreSQL store tests (crates/rookery-store, crates/rookery-server): with
# CI set, this fails when the database cannot be made usable; otherwise those tests skip.
"$root/scripts/postgres.sh"
