"""Connection managers for the interop tests: `rookery cm` processes pointed at a test server's
`cm` listener, optionally through `LinkProxy`, a loopback TCP relay the test can cut one
connection of (a link dying mid-conversation, as a network failure would: the relay closes
both sides at once, whatever is in flight is gone). Client tests put it between a client and
the server's c2s port the same way (test_aioxmpp_sm.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from rookery_harness import HOST, kill_process, rookery_bin, stop_process, wait_ready

CM_SECRET = "cm-shared-secret-for-tests"


class LinkProxy:
    """Relays every accepted connection to `target`. `cut(i)` aborts the i-th live one."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.AbstractServer | None = None
        self.accepted = 0
        # While clear, accepted connections wait before being relayed (hold()/release()).
        self._open = asyncio.Event()
        self._open.set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self._open.wait()
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            w.close()
            return
        pair = (w, uw)
        self.pairs.append(pair)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(r, uw), pump(ur, w), return_exceptions=True)
        if pair in self.pairs:
            self.pairs.remove(pair)

    def live(self) -> int:
        return len(self.pairs)

    def hold(self) -> None:
        """New connections are accepted but not relayed until release(): a peer that
        reconnects stays cut off for as long as the test needs."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def cut(self, i: int = 0) -> None:
        """Drops one relayed connection abruptly (RST on both sides)."""
        w, uw = self.pairs.pop(i)
        for x in (w, uw):
            x.transport.abort()

    async def close(self) -> None:
        for w, uw in self.pairs:
            w.transport.abort()
            uw.transport.abort()
        self.pairs.clear()
        if self.server:
            self.server.close()


@dataclass
class ConnectionManager:
    """One `rookery cm` process."""

    workdir: Path
    name: str
    server_port: int
    links: int = 5
    grace_secs: int = 30
    binary: Path = field(default_factory=rookery_bin)
    proc: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)
    # More `rookery cm` arguments (e.g. --log-format json).
    extra_args: tuple[str, ...] = ()

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "cm.stderr"

    def stderr_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "ready"
        env = dict(os.environ, ROOKERY_CM_SECRET=CM_SECRET)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(self.binary), "cm", "--name", self.name,
                 "--server", f"{HOST}:{self.server_port}",
                 "--links", str(self.links), "--grace-secs", str(self.grace_secs),
                 "--listen", f"{HOST}:0", "--listen-tls", f"{HOST}:0",
                 "--domain", "localhost", "--data-dir", str(self.workdir / "data"),
                 "--ready-file", str(ready), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.workdir, env=env)
        self.ports.update(wait_ready(self.proc, ready, "rookery cm", self.stderr_tail))

    def kill(self) -> None:
        kill_process(self.proc)

    def stop(self) -> int:
        assert self.proc is not None
        return stop_process(self.proc, "rookery cm", self.stderr_tail)
