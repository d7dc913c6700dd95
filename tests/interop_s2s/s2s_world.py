"""Constants and the World object of the federation interop tests (see conftest.py)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from certs import TestCa
from clients import TestClient
from netns import NetNs
from peers import EJABBERD_LIBS, TestDnsServer
from rookery_harness import Rookery

REPO_ROOT = Path(__file__).resolve().parents[2]

PASSWORD = "correct horse battery staple"
ROOKERY = "rookery.test"
PEER_DOMAINS = {"prosody": "prosody.test", "ejabberd": "ejabberd.test"}
# (c2s, s2s) ports on the namespace's loopback; the namespace is private, so fixed ports are free.
PORTS = {"rookery": (5222, 5269), "prosody": (5232, 5279), "ejabberd": (5242, 5289)}
MODES = ("dialback", "external")
PEERS = ("prosody", "ejabberd")
# SASL mechanism the slixmpp clients use on each server (all over TLS).
MECHANISM = {"rookery": "SCRAM-SHA-256", "prosody": "SCRAM-SHA-1", "ejabberd": "SCRAM-SHA-1"}


# Interop bugs found by these tests that are not fixed yet: (mode, peer) -> reason. The tests of
# that combination are marked xfail(strict=True), so they fail loudly once the bug is fixed and
# the entry must go. Every entry names the exact exchange; see README.md.
KNOWN_BUGS: dict[tuple[str, str], str] = {
}


def binary(env: str, name: str) -> Path:
    value = os.environ.get(env)
    path = Path(value) if value else REPO_ROOT / "target" / "debug" / name
    return path if path.is_absolute() else REPO_ROOT / path


def peers_missing() -> list[str]:
    missing = []
    for tool in ("prosody", "prosodyctl", "erl"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not list(Path(EJABBERD_LIBS).glob("ejabberd-*/ebin/ejabberd.beam")):
        missing.append(f"ejabberd ({EJABBERD_LIBS}/ejabberd-*)")
    return missing


@dataclass
class World:
    mode: str
    workdir: Path
    ns: NetNs
    ca: TestCa
    dns: TestDnsServer | None = None
    rookery: Rookery | None = None
    peers: dict = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def domain(self, server: str) -> str:
        return ROOKERY if server == "rookery" else PEER_DOMAINS[server]

    def new_account(self, server: str, prefix: str) -> str:
        """A fresh account on `server` ("rookery", "prosody", "ejabberd"); returns its JID."""
        user = f"{prefix}{next(self._ids)}"
        if server == "rookery":
            return self.rookery.add_user(user, PASSWORD)
        return self.peers[server].register(user, PASSWORD)

    def client(self, server: str, jid: str) -> TestClient:
        return TestClient(jid, PASSWORD, address=("127.0.0.1", PORTS[server][0]),
                          mechanism=MECHANISM[server])

    def rookery_log(self) -> str:
        return self.rookery.stderr_text() if self.rookery else ""

    def rookery_auth_lines(self, what: str, peer_domain: str) -> list[str]:
        """Rookery's info lines `what="s2s-out"` / `what="s2s-in"` naming `peer_domain`."""
        pat = re.compile(rf'what="?{re.escape(what)}"?(\s|$)')
        return [ln for ln in self.rookery_log().splitlines()
                if pat.search(ln) and peer_domain in ln]

    def report(self, peer: str | None = None, n: int = 80) -> str:
        parts = [f"===== world {self.mode}: files in {self.workdir} ====="]
        if self.rookery:
            parts.append(f"----- rookery stderr (tail) -----\n{self.rookery.stderr_tail(n)}")
        for name, p in self.peers.items():
            if peer is None or name == peer:
                parts.append(f"----- {name} -----\n{p.logs_tail(n)}")
        return "\n".join(parts)


def rookery_config(mode: str, ca: TestCa, leaf) -> dict:
    s2s = {"nameserver": "127.0.0.1:53", "use_webpki_roots": False}
    if mode == "external":
        s2s.update({"ca_files": [str(ca.cert)], "require_valid_certs": True,
                    "allow_dialback": False})
    c2s, s2s_port = PORTS["rookery"]
    return {
        "server": {"data_dir": "data",
                   "log_level": os.environ.get("ROOKERY_S2S_LOG", "info")},
        "s2s": s2s,
        "host": [{"domain": ROOKERY, "cert": str(leaf.cert), "key": str(leaf.key)}],
        "listen": [
            {"address": "127.0.0.1", "port": c2s, "kind": "c2s"},
            {"address": "127.0.0.1", "port": s2s_port, "kind": "s2s"},
        ],
    }


