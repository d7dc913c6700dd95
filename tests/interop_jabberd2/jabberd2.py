"""Run Debian's jabberd2 `sm` and `c2s` against Rookery's router listener.

Configs are derived from the package's own /etc/jabberd2/{sm,c2s}.xml (so the module chains and
defaults are jabberd2's), with only what the test needs changed: the router address, port, user
and secret (Rookery's `[[router.user]]`), the served domain, Berkeley DB storage and authreg in
separate per-process directories under the test's temp dir, c2s on a free loopback port with
STARTTLS from a throw-away certificate, in-band registration on, log and pid files in the temp
dir. Nothing is installed or started system-wide; scripts/jabberd2.sh installs the package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

SM_BIN = "/usr/sbin/jabberd2-sm"
C2S_BIN = "/usr/sbin/jabberd2-c2s"
ETC = Path("/etc/jabberd2")
READY_DEADLINE_S = 30.0
STOP_DEADLINE_S = 10.0


def installed() -> bool:
    return (all(os.access(p, os.X_OK) for p in (SM_BIN, C2S_BIN))
            and (ETC / "sm.xml").is_file() and shutil.which("openssl") is not None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set(root: ET.Element, path: str, text: str | None) -> ET.Element:
    """Sets the text of `path` (created if missing, parents included)."""
    node = root
    for part in path.split("/"):
        child = node.find(part)
        if child is None:
            child = ET.SubElement(node, part)
        node = child
    node.text = text
    return node


def _drop(root: ET.Element, path: str) -> None:
    parent_path, _, name = path.rpartition("/")
    parent = root.find(parent_path) if parent_path else root
    if parent is None:
        return
    for child in parent.findall(name):
        parent.remove(child)


def _router(root: ET.Element, port: int, user: str, secret: str) -> None:
    _set(root, "router/ip", "127.0.0.1")
    _set(root, "router/port", str(port))
    _set(root, "router/user", user)
    _set(root, "router/pass", secret)
    _drop(root, "router/pemfile")
    # A few quick attempts: a test fails fast instead of retrying for minutes, and a router
    # restart (test_router_restart_*) is survived.
    _set(root, "router/retry/init", "3")
    _set(root, "router/retry/lost", "10")
    _set(root, "router/retry/sleep", "1")


def _log(root: ET.Element, path: Path) -> None:
    log = root.find("log")
    if log is None:
        log = ET.SubElement(root, "log")
    log.set("type", "file")
    _set(root, "log/file", str(path))


def write_sm_config(dir: Path, domain: str, router_port: int, user: str, secret: str,
                    pemfile: Path) -> Path:
    tree = ET.parse(ETC / "sm.xml")
    root = tree.getroot()
    _set(root, "id", "sm")
    _set(root, "pidfile", str(dir / "sm.pid"))
    _router(root, router_port, user, secret)
    # With a pemfile jabberd2 takes the router's STARTTLS offer: sm's link to Rookery is TLS,
    # c2s's stays plaintext, so both paths of the router listener run.
    _set(root, "router/pemfile", str(pemfile))
    _log(root, dir / "sm.log")
    local = root.find("local")
    if local is not None:
        root.remove(local)
    _set(root, "local/id", domain)
    db = dir / "sm-db"
    db.mkdir(exist_ok=True)
    _set(root, "storage/driver", "db")
    _set(root, "storage/db/path", str(db))
    # The ACL names an admin on the shipped domain; keep it on ours.
    for jid in root.iterfind("aci/acl/jid"):
        jid.text = f"admin@{domain}"
    path = dir / "sm.xml"
    tree.write(path)
    return path


def write_c2s_config(dir: Path, domain: str, router_port: int, user: str, secret: str,
                     c2s_port: int, pemfile: Path) -> Path:
    tree = ET.parse(ETC / "c2s.xml")
    root = tree.getroot()
    _set(root, "id", "c2s")
    _set(root, "pidfile", str(dir / "c2s.pid"))
    _router(root, router_port, user, secret)
    _log(root, dir / "c2s.log")
    local = root.find("local")
    if local is not None:
        root.remove(local)
    ident = _set(root, "local/id", domain)
    ident.set("register-enable", "mu")
    # STARTTLS for clients needs the certificate on the <id/> (local/pemfile is only for the
    # legacy port 5223).
    ident.set("pemfile", str(pemfile))
    _set(root, "local/ip", "127.0.0.1")
    _set(root, "local/port", str(c2s_port))
    db = dir / "c2s-db"
    db.mkdir(exist_ok=True)
    _set(root, "authreg/module", "db")
    _set(root, "authreg/db/path", str(db))
    path = dir / "c2s.xml"
    tree.write(path)
    return path


def make_pemfile(dir: Path, domain: str) -> Path:
    """A self-signed certificate and its key in one PEM file (what jabberd2's pemfile wants)."""
    key, crt = dir / "c2s.key", dir / "c2s.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={domain}", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    pem = dir / "c2s.pem"
    pem.write_text(crt.read_text() + key.read_text())
    return pem


def poll(cond, what: str, deadline_s: float = READY_DEADLINE_S) -> None:
    """Polls `cond` (for log-file conditions, which announce themselves no other way)."""
    deadline = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {deadline_s:.0f} s")
        time.sleep(0.05)


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    out: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.out, "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out)
        finally:
            out.close()

    def text(self) -> str:
        parts = []
        for p in (self.log, self.out):
            try:
                parts.append(p.read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def wait_for(self, needle: str, deadline_s: float = READY_DEADLINE_S) -> None:
        """Polls the log (the only signal jabberd2 gives) until `needle` shows up."""
        self.wait_for_count(needle, 1, deadline_s)

    def wait_for_count(self, needle: str, count: int,
                       deadline_s: float = READY_DEADLINE_S) -> None:
        """Polls the log until `needle` shows up `count` times."""
        deadline = time.monotonic() + deadline_s
        while self.text().count(needle) < count:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"jabberd2 {self.name} exited with {self.proc.returncode} before logging "
                    f"{needle!r}:\n{self.text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"jabberd2 {self.name} did not log {needle!r} within {deadline_s:.0f} s:\n"
                    f"{self.text()[-4000:]}")
            time.sleep(0.05)

    def wait_exit(self, deadline_s: float = READY_DEADLINE_S) -> int:
        """Waits for the process to exit on its own; returns its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"jabberd2 {self.name} still running after {deadline_s:.0f} s:\n"
                f"{self.text()[-4000:]}") from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Jabberd2:
    """jabberd2's sm and c2s for `domain`, attached to a router on `router_port`."""

    dir: Path
    domain: str
    router_port: int
    user: str
    secret: str
    c2s_port: int = 0
    procs: list[Proc] = field(default_factory=list)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.c2s_port = free_port()
        pem = make_pemfile(self.dir, self.domain)
        sm_cfg = write_sm_config(self.dir, self.domain, self.router_port, self.user, self.secret,
                                 pem)
        c2s_cfg = write_c2s_config(self.dir, self.domain, self.router_port, self.user,
                                   self.secret, self.c2s_port, pem)
        sm = Proc("sm", [SM_BIN, "-c", str(sm_cfg)], self.dir / "sm.log", self.dir / "sm.out")
        c2s = Proc("c2s", [C2S_BIN, "-c", str(c2s_cfg)], self.dir / "c2s.log",
                   self.dir / "c2s.out")
        self.procs = [sm, c2s]
        sm.start()
        # sm logs "ready for sessions" once its domains are bound on the router.
        sm.wait_for("ready for sessions")
        c2s.start()
        # c2s opens its client port only after its bind on the router succeeded.
        c2s.wait_for("ready for connections")

    def logs(self) -> str:
        return "\n".join(f"==== jabberd2 {p.name} ====\n{p.text()[-6000:]}" for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def start_extra_c2s(self) -> Proc:
        """Starts a second c2s with the same id (`c2s`) on another port; returns it."""
        extra = self.dir / "c2s-2"
        extra.mkdir(exist_ok=True)
        cfg = write_c2s_config(extra, self.domain, self.router_port, self.user, self.secret,
                               free_port(), self.dir / "c2s.pem")
        p = Proc("c2s-2", [C2S_BIN, "-c", str(cfg)], extra / "c2s.log", extra / "c2s.out")
        self.procs.append(p)
        p.start()
        return p

    def stop_sm(self) -> None:
        """Stops sm only. jabberd2's c2s shuts itself down when its domain's sm goes (it gets
        the router's unavailable announcement)."""
        self.procs[0].stop()
