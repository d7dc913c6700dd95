"""The slixmpp a Debian user has (python3-slixmpp, 1.8.3 in bookworm, installed by
scripts/test-deps.sh) logging in, run with Debian's /usr/bin/python3 as a subprocess
(debian_slixmpp_logins.py), beside the pinned PyPI slixmpp the other tests use.

That version binds channels only with `tls-unique`, which TLS 1.3 does not have: it tries both
-PLUS mechanisms (refused: type not offered), both SCRAM mechanisms with the `y` flag (refused:
a downgrade, since -PLUS was offered) and then PLAIN. None of those refusals checked a
password, so none may count against the brute-force throttle (docs/decisions/0008): with the
tightest limits, 50 logins in a row all succeed, and the server logs no failed login and no
throttling. Wrong passwords from the same client are still counted, delayed and banned.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import PASSWORD

DEBIAN_PYTHON = "/usr/bin/python3"
DIST_PACKAGES = "/usr/lib/python3/dist-packages/"
SCRIPT = Path(__file__).with_name("debian_slixmpp_logins.py")
# Failure deadline for one login (a debug server on a loaded 2-core machine), not a gate.
LOGIN_DEADLINE_S = 30.0

PLUS = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"}
SCRAM = {"SCRAM-SHA-256", "SCRAM-SHA-1"}


def debian_slixmpp() -> str | None:
    """`version path` of the slixmpp Debian's interpreter imports, or None."""
    if not Path(DEBIAN_PYTHON).is_file():
        return None
    res = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c", "import slixmpp; print(slixmpp.__version__, slixmpp.__file__)"],
        capture_output=True, text=True, timeout=60,
    )
    if res.returncode != 0:
        return None
    version, path = res.stdout.split()[-2:]
    return f"{version} {path}" if path.startswith(DIST_PACKAGES) else None


FOUND = debian_slixmpp()
pytestmark = pytest.mark.skipif(
    FOUND is None,
    reason="DEBIAN SLIXMPP NOT TESTED: python3-slixmpp is not installed for /usr/bin/python3 "
    "(run scripts/test-deps.sh as root)",
)


async def run_logins(server, jid: str, password: str, count: int) -> list[dict]:
    """Runs `count` logins in a row in one Debian-python subprocess; returns one dict each."""
    proc = await asyncio.create_subprocess_exec(
        DEBIAN_PYTHON, "-I", str(SCRIPT),
        "--host", server.host, "--port", str(server.c2s_port),
        "--jid", jid, "--password", password,
        "--count", str(count), "--timeout", str(LOGIN_DEADLINE_S),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), LOGIN_DEADLINE_S * (count + 1))
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{count} Debian slixmpp logins did not finish in time") from None
    assert proc.returncode == 0, f"login script exited {proc.returncode}:\n{err.decode()}"
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    header, results = lines[0], lines[1:]
    assert header["file"].startswith(DIST_PACKAGES), f"not Debian's slixmpp: {header}"
    assert len(results) == count, f"{len(results)} results for {count} logins:\n{err.decode()}"
    return results


def log_events(server, what: str) -> list[str]:
    return [line for line in server.stderr_text().splitlines() if f'what="{what}"' in line]


async def test_fifty_logins_in_a_row_are_never_throttled(start_server):
    # One free failure and a ban at the second: a single counted refusal in the first two
    # logins would already delay or ban this client.
    server = start_server({"limits": {"auth_failures_per_ip": 1, "auth_ban_threshold": 2}})
    results = await run_logins(server, "alice@localhost", PASSWORD, 50)
    for r in results:
        assert r["outcome"] == "ok", f"login {r['login']} failed ({FOUND}): {r}"
        assert r["tls"] is not None, r
        # What a tls-unique-only client can do here (decision 0008): the refusals are the
        # channel-binding ones, each with a reason, then PLAIN.
        tried = [f["mechanism"] for f in r["failures"]]
        assert sorted(tried) == sorted(PLUS | SCRAM), r
        for f in r["failures"]:
            assert f["condition"] == "malformed-request", r
            assert f["text"], f"refusal without a reason: {r}"
        assert r["mechanism"] == "PLAIN", r
    # No login was counted, delayed or banned: the server logged none of it.
    for what in ("auth-failed", "auth-throttle", "auth-ban"):
        assert log_events(server, what) == [], f"{what} logged for correct logins"
    slowest = max(results, key=lambda r: r["seconds"])
    print(f"\n{FOUND}: 50 logins, TLS {results[0]['tls']}, slowest {slowest['seconds']:.3f} s "
          f"(login {slowest['login']}), total {sum(r['seconds'] for r in results):.2f} s")


async def test_wrong_passwords_are_still_throttled_and_banned(start_server):
    server = start_server({"limits": {"auth_failures_per_ip": 2, "auth_ban_threshold": 4}})
    results = await run_logins(server, "alice@localhost", "not the password", 6)
    # Logins 1-4: every mechanism refused; only PLAIN checked the password.
    for r in results[:4]:
        assert r["outcome"] != "ok", r
        assert r["failures"][-1] == {"mechanism": "PLAIN", "condition": "not-authorized",
                                     "text": ""}, r
    # Then the address is banned: refused before any mechanism runs.
    for r in results[4:]:
        assert r["outcome"] != "ok", r
        assert r["failures"][0]["condition"] == "temporary-auth-failure", r
    # Even the right password is refused from this address now.
    right = await run_logins(server, "alice@localhost", PASSWORD, 1)
    assert right[0]["outcome"] != "ok", right
    assert right[0]["failures"][0]["condition"] == "temporary-auth-failure", right
    # Four counted failures (one per login), one "delays start" line and one ban line.
    assert len(log_events(server, "auth-failed")) == 4, server.stderr_tail()
    throttled = log_events(server, "auth-throttle")
    assert len(throttled) == 1 and re.search(r"ip=127\.0\.0\.1", throttled[0]), throttled
    bans = log_events(server, "auth-ban")
    assert len(bans) == 1, bans
    assert re.search(r"ip=127\.0\.0\.1", bans[0]) and "alice@localhost" in bans[0], bans
