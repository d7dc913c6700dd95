"""Fixtures for the jabberd2 interop tests: a real Rookery with a router listener, and Debian's
jabberd2 `sm` and `c2s` (jabberd2.py) attached to it as router components, serving their own
domain `jd2.localhost`. Clients are slixmpp (tests/interop/clients.py): alice on Rookery
(SCRAM-SHA-256 over STARTTLS), bob on jabberd2's c2s (registered in band, then PLAIN over
STARTTLS, the way jabberd2 is usually deployed).

  ROOKERY_BIN   the server binary (default target/debug/rookery); nothing is built here.

jabberd2 must be installed (scripts/jabberd2.sh); without it every test is skipped with a loud
reason, never silently passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from clients import TestClient  # noqa: E402
from jabberd2 import Jabberd2, free_port, installed  # noqa: E402
from rookery_harness import Rookery, default_config  # noqa: E402

ROUTER_USER = "jabberd"
ROUTER_SECRET = "router-secret-for-tests"
JD2_DOMAIN = "jd2.localhost"
PASSWORD = "correct horse battery staple"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


class World:
    def __init__(self, rookery: Rookery, jd2: Jabberd2):
        self.rookery = rookery
        self.jd2 = jd2
        self.clients: list[TestClient] = []

    def rookery_client(self, user: str) -> TestClient:
        c = TestClient(f"{user}@{self.rookery.domain}", PASSWORD,
                       address=(self.rookery.host, self.rookery.c2s_port))
        self.clients.append(c)
        return c

    def jd2_client(self, user: str) -> TestClient:
        c = TestClient(f"{user}@{JD2_DOMAIN}", PASSWORD, address=("127.0.0.1", self.jd2.c2s_port),
                       mechanism="PLAIN")
        self.clients.append(c)
        return c


@pytest.fixture
async def world(tmp_path, request):
    if not installed():
        pytest.skip("JABBERD2 INTEROP NOT TESTED: jabberd2 (or openssl) is not installed "
                    "(run scripts/jabberd2.sh as root)")
    cfg = default_config()
    # A fixed router port (chosen free now) so a restarted Rookery is found again by jabberd2.
    cfg["listen"] = [
        {"address": "127.0.0.1", "port": 0, "kind": "c2s"},
        {"address": "127.0.0.1", "port": free_port(), "kind": "router"},
    ]
    # Rendered as [[router.user]] (the harness writes array-of-table names verbatim).
    cfg["router.user"] = [{"name": ROUTER_USER, "secret": ROUTER_SECRET}]
    rookery = Rookery(workdir=tmp_path / "rookery", config=cfg)
    rookery.start()
    jd2 = Jabberd2(tmp_path / "jabberd2", JD2_DOMAIN, rookery.ports["router"], ROUTER_USER,
                   ROUTER_SECRET)
    w = World(rookery, jd2)
    try:
        rookery.add_user("alice", PASSWORD)
        jd2.start()
        yield w
    finally:
        for c in w.clients:
            await c.close()
        jd2.stop()
        failed = any(getattr(getattr(request.node, f"rep_{x}", None), "failed", False)
                     for x in ("setup", "call"))
        if failed:
            print(f"\n----- rookery stderr (tail) -----\n{rookery.stderr_tail(80)}")
            print(jd2.logs())
        rookery.stop_and_check()
