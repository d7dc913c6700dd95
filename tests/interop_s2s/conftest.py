"""Fixtures for the federation interop tests: Rookery against Debian's Prosody and ejabberd.

A *world* is one network namespace (netns.py) holding the test DNS server, Rookery
(rookery.test), Prosody (prosody.test) and ejabberd (ejabberd.test), all on the namespace's
loopback with fixed ports, and a test CA that issued every server's certificate. There is one
world per authentication mode, shared by the tests of that mode (pytest orders the tests so each
world is started once):

  dialback  nobody trusts the CA: the certificates fail verification, so every s2s stream is
            TLS-encrypted and authenticated with Server Dialback (XEP-0220). Rookery keeps its
            defaults (require_valid_certs = false, allow_dialback = true).
  external  everybody trusts the CA and dialback is off on all three servers (Rookery:
            require_valid_certs = true, allow_dialback = false; Prosody: s2s_secure_auth = true,
            no mod_dialback; ejabberd: s2s_cafile, no mod_s2s_dialback), so every stream must
            use SASL EXTERNAL (XEP-0178).

Each test makes fresh accounts (so tests never share roster state) and logs in slixmpp clients
(tests/interop/clients.py) over STARTTLS to the c2s ports; the test process joins the namespace
to reach them.

  ROOKERY_BIN          the server binary (default target/debug/rookery); nothing is built here
  ROOKERY_TESTDNS_BIN  the DNS server binary (default target/debug/rookery-testdns)
  ROOKERY_S2S_LOG      Rookery's log_level (default info; the s2s-out/s2s-in lines the tests
                       check are at info)

The peers must be installed (scripts/s2s-peers.sh); without them every test is skipped with a
loud reason, never silently passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "interop"))

from certs import TestCa  # noqa: E402
from clients import TestClient  # noqa: E402
from netns import NetNs, NetNsUnavailable  # noqa: E402
from peers import Ejabberd, Prosody, SrvHost, TestDnsServer  # noqa: E402
from rookery_harness import Rookery  # noqa: E402
from s2s_world import (  # noqa: E402
    KNOWN_BUGS, MODES, PEER_DOMAINS, PEERS, PORTS, ROOKERY, World, binary,
    peers_missing, rookery_config,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def pytest_collection_modifyitems(items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        reason = KNOWN_BUGS.get((params.get("world"), params.get("peer")))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.fixture(scope="session", params=MODES)
def world(request, tmp_path_factory):
    missing = peers_missing()
    if missing:
        pytest.skip(
            "!!! FEDERATION INTEROP NOT TESTED: missing " + ", ".join(missing)
            + " (scripts/s2s-peers.sh installs Debian's prosody and ejabberd) !!!"
        )
    mode = request.param
    workdir = tmp_path_factory.mktemp(f"s2s-{mode}")
    workdir.chmod(0o755)
    ns = NetNs()
    try:
        ns.create()
    except NetNsUnavailable as e:
        pytest.skip(f"!!! FEDERATION INTEROP NOT TESTED: no network namespace: {e} !!!")
    w: World | None = None
    errors: list[str] = []
    try:
        ns.enter()
        w = World(mode=mode, workdir=workdir, ns=ns, ca=TestCa(workdir / "ca"))
        leaves = {d: w.ca.issue(d) for d in (ROOKERY, *PEER_DOMAINS.values())}
        hosts = [SrvHost(ROOKERY, PORTS["rookery"][1])] + [
            SrvHost(PEER_DOMAINS[p], PORTS[p][1]) for p in PEERS
        ]
        w.dns = TestDnsServer(workdir / "dns", ns.exec_prefix(),
                              binary("ROOKERY_TESTDNS_BIN", "rookery-testdns"), hosts)
        w.dns.start()
        # Started by this process while it is inside the namespace, Rookery runs there too; it
        # resolves through `[s2s] nameserver`, not resolv.conf.
        w.rookery = Rookery(workdir=workdir / "rookery",
                            config=rookery_config(mode, w.ca, leaves[ROOKERY]),
                            binary=binary("ROOKERY_BIN", "rookery"), domain=ROOKERY)
        w.rookery.start()
        secure = mode == "external"
        for name, cls in (("prosody", Prosody), ("ejabberd", Ejabberd)):
            domain = PEER_DOMAINS[name]
            peer = cls(workdir / name, ns.exec_prefix(), domain=domain, leaf=leaves[domain],
                       ca_file=w.ca.cert, secure=secure, c2s_port=PORTS[name][0],
                       s2s_port=PORTS[name][1])
            w.peers[name] = peer
            peer.start()
        yield w
    finally:
        if w is not None:
            for name, p in w.peers.items():
                if p.proc is not None and p.proc.poll() is not None:
                    errors.append(f"{name} exited with {p.proc.returncode} during the run:\n"
                                  + p.logs_tail())
            if w.rookery is not None and w.rookery.proc is not None:
                try:
                    w.rookery.stop_and_check()
                except AssertionError as e:
                    errors.append(str(e))
            for p in (*w.peers.values(), w.dns):
                if p is not None:
                    p.stop()
        ns.destroy()
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
async def xmpp(world, request):
    """Factory: xmpp(server, prefix) -> (jid, TestClient) for a fresh account. Clients are
    closed at teardown; a failing test prints the tails of every server's log."""
    made: list[TestClient] = []

    def make(server: str, prefix: str = "u") -> tuple[str, TestClient]:
        jid = world.new_account(server, prefix)
        c = world.client(server, jid)
        made.append(c)
        return jid, c

    yield make

    for c in made:
        await c.close()
    if any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
           for w in ("setup", "call")):
        peer = request.node.callspec.params.get("peer") if hasattr(request.node, "callspec") else None
        print("\n" + world.report(peer))
