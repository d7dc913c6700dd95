"""A private network namespace for one federation test world.

Prosody and ejabberd find each other (and Rookery) through SRV records, and they read the
system resolver configuration. Rather than touching the machine's /etc/resolv.conf, each world
lives in its own namespace `rookery-s2s-<random>`:

- `ip netns add NAME`, `lo` brought up: the namespace has only a loopback interface, so every
  connection made in it stays on this machine and ports are free (fixed ports are safe);
- `/etc/netns/NAME/resolv.conf` says `nameserver 127.0.0.1`: `ip netns exec NAME CMD` bind-mounts
  it over /etc/resolv.conf for CMD only, so the peers' resolvers ask the test DNS server;
- the test process itself joins the namespace with setns(2) (`NetNs.enter()` / `leave()`, or
  the `entered()` context manager) so its slixmpp clients can reach the servers' c2s ports on the namespace's loopback;
  only the network namespace is switched, the file system view stays the same.

`NetNs.destroy()` kills every process still in the namespace (all of them were started by the
test: the namespace is new and private), deletes it and removes /etc/netns/NAME.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNsUnavailable(RuntimeError):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


class NetNs:
    def __init__(self, name: str | None = None):
        self.name = name or f"rookery-s2s-{secrets.token_hex(4)}"
        self.etc_dir = Path("/etc/netns") / self.name
        self._created = False
        self._host_fd: int | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def create(self) -> None:
        if os.geteuid() != 0:
            raise NetNsUnavailable("network namespaces need root (ip netns add)")
        if shutil.which("ip") is None:
            raise NetNsUnavailable("the `ip` command (iproute2) is not installed")
        res = _run("ip", "netns", "add", self.name)
        if res.returncode != 0:
            raise NetNsUnavailable(f"ip netns add {self.name}: {res.stderr.strip()}")
        self._created = True
        res = _run("ip", "-n", self.name, "link", "set", "lo", "up")
        if res.returncode != 0:
            self.destroy()
            raise NetNsUnavailable(f"ip -n {self.name} link set lo up: {res.stderr.strip()}")
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        (self.etc_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")

    def exec_prefix(self) -> list[str]:
        """Prefix for a command to run inside the namespace with its resolv.conf."""
        return ["ip", "netns", "exec", self.name]

    def pids(self) -> list[int]:
        res = _run("ip", "netns", "pids", self.name)
        return [int(p) for p in res.stdout.split() if p.strip().isdigit()]

    def destroy(self) -> None:
        """Idempotent: leave the namespace, kill what runs in it, delete it and its /etc dir."""
        self.leave()
        if self._created:
            me = os.getpid()
            victims = [p for p in self.pids() if p != me]
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                for pid in victims:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while victims and time.monotonic() < deadline:
                    victims = [p for p in victims if Path(f"/proc/{p}").exists() and not _zombie(p)]
                    if victims:
                        time.sleep(0.05)
                if not victims:
                    break
            _run("ip", "netns", "del", self.name)
            self._created = False
        shutil.rmtree(self.etc_dir, ignore_errors=True)

    # -- joining it from this process ----------------------------------------------------------

    def enter(self) -> None:
        """Moves this thread (the test process's main thread, which runs the asyncio loop) into
        the namespace. Threads and processes it creates later start there too."""
        if self._host_fd is not None:
            return
        self._host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(fd)
        except OSError:
            os.close(self._host_fd)
            self._host_fd = None
            raise
        finally:
            os.close(fd)

    def leave(self) -> None:
        if self._host_fd is None:
            return
        try:
            _setns(self._host_fd)
        finally:
            os.close(self._host_fd)
            self._host_fd = None

    @contextlib.contextmanager
    def entered(self):
        self.enter()
        try:
            yield self
        finally:
            self.leave()


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
