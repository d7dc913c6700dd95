"""Start and stop a real `rookery` binary for the interop tests.

Nothing here builds anything: the binary comes from $ROOKERY_BIN (default target/debug/rookery
relative to the repository root). Each server gets its own temporary directory with a generated
config (port-0 listeners, data_dir inside the tempdir), is started with --ready-file and is
considered up once that file exists (the server writes it atomically after binding every
listener). Teardown sends SIGTERM and checks the exit code and stderr.

The store is SQLite (a file in the tempdir) unless $ROOKERY_TEST_STORAGE is `postgres`: then
each server started by the fixtures gets a fresh schema of its own in the test database
($ROOKERY_TEST_PG_URL, default the one scripts/postgres.sh makes usable), created by the server
at its first start (`[storage] schema`, crates/rookery-config/CONFIG.md) and dropped at teardown.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "localhost"
HOST = "127.0.0.1"

# How long the server may take to bind its listeners / to exit after SIGTERM. These are failure
# deadlines only: the harness returns as soon as the event happens.
READY_DEADLINE_S = 30.0
STOP_DEADLINE_S = 20.0
CLI_DEADLINE_S = 60.0


# The store backend of the servers the fixtures start, and the PostgreSQL database they use.
STORAGE_VAR = "ROOKERY_TEST_STORAGE"
PG_URL_VAR = "ROOKERY_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PSQL_DEADLINE_S = 30.0
_schema_counter = itertools.count()


def storage_backend() -> str:
    """`sqlite` (the default) or `postgres`, from $ROOKERY_TEST_STORAGE."""
    value = os.environ.get(STORAGE_VAR, "") or "sqlite"
    if value not in ("sqlite", "postgres"):
        raise ValueError(f"{STORAGE_VAR}={value!r}: expected sqlite or postgres")
    return value


def pg_url() -> str:
    return os.environ.get(PG_URL_VAR) or DEFAULT_PG_URL


def storage_config() -> dict[str, Any]:
    """Config overrides putting a server on the test storage: nothing for SQLite (the default
    file under data_dir), or `[storage]` with a schema name used by no other server of any run
    (pid, counter and random part) for PostgreSQL. The connections carry the schema's name as
    application_name, so that teardown can end any still open before dropping the schema."""
    if storage_backend() != "postgres":
        return {}
    schema = f"rookery_i_{os.getpid()}_{next(_schema_counter)}_{secrets.token_hex(4)}"
    url = pg_url()
    sep = "&" if "?" in url else "?"
    return {"storage": {"backend": "postgres", "url": f"{url}{sep}application_name={schema}",
                        "schema": schema}}


def drop_pg_schema(config: dict[str, Any]) -> None:
    """Drops the PostgreSQL schema named by a config from storage_config() (nothing for any
    other config). Errors are raised: a schema that cannot be dropped means the database is in
    a state the next run should not silently inherit."""
    storage = config.get("storage", {})
    if storage.get("backend") != "postgres":
        return
    schema = storage["schema"]
    sql = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = '{schema}' AND pid <> pg_backend_pid();"
        f"DROP SCHEMA IF EXISTS {schema} CASCADE;"
    )
    res = subprocess.run(["psql", pg_url(), "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=PSQL_DEADLINE_S,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise ServerError(f"dropping test schema {schema} failed: {res.stderr.strip()}")


def rookery_bin() -> Path:
    env = os.environ.get("ROOKERY_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "rookery"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def default_config() -> dict[str, Any]:
    """The config every test server starts from (tables; arrays of tables as lists)."""
    return {
        "server": {"data_dir": "data", "log_level": "info"},
        # Hermetic: no federation, so nothing a test does can make the server resolve or dial
        # a remote domain.
        "s2s": {"enabled": False},
        "host": [{"domain": DOMAIN}],
        "listen": [
            {"address": HOST, "port": 0, "kind": "c2s"},
            {"address": HOST, "port": 0, "kind": "c2s-tls"},
        ],
    }


def with_components(components: dict[str, str]) -> dict[str, Any]:
    """Config overrides for a server that accepts XEP-0114 components: the default listeners
    plus a `component` listener on port 0, and one `[[component]]` per domain -> secret."""
    listen = list(default_config()["listen"])
    listen.append({"address": HOST, "port": 0, "kind": "component"})
    return {
        "listen": listen,
        "component": [{"domain": d, "secret": s} for d, s in components.items()],
    }


def merge_config(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Tables in `overrides` are merged key by key; arrays of tables replace the base's."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in (overrides or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def render_toml(cfg: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, value in cfg.items():
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
            lines.append("")
        elif isinstance(value, list) and all(isinstance(x, dict) for x in value):
            for table in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
                lines.append("")
        else:
            raise TypeError(f"top-level key {name} must be a table or an array of tables")
    return "\n".join(lines)


class ServerError(AssertionError):
    pass


def wait_ready(proc: subprocess.Popen, ready: Path, what: str, tail) -> dict[str, int]:
    """Waits for a process's ready file (written by rename, so complete once it exists) or its
    death, and returns the listeners it names (`kind address` lines) as kind -> port. Polling
    a file is the only signal the binary gives."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while not ready.exists():
        if proc.poll() is not None:
            raise ServerError(
                f"{what} exited with {proc.returncode} before it was ready:\n" + tail()
            )
        if time.monotonic() > deadline:
            kill_process(proc)
            raise ServerError(
                f"{what} wrote no ready file within {READY_DEADLINE_S:.0f} s:\n" + tail()
            )
        time.sleep(0.02)
    ports: dict[str, int] = {}
    for line in ready.read_text().splitlines():
        if not line.strip():
            continue
        kind, addr = line.split()
        ports[kind] = int(addr.rsplit(":", 1)[1])
    return ports


def process_env(changes: dict[str, str | None]) -> dict[str, str]:
    """This process's environment with `changes` applied (None removes a variable)."""
    env = dict(os.environ)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def kill_process(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def stop_process(proc: subprocess.Popen, what: str, tail) -> int:
    """SIGTERM, wait, and return the exit code (kills and raises after the deadline)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            kill_process(proc)
            raise ServerError(
                f"{what} did not exit within {STOP_DEADLINE_S:.0f} s of SIGTERM:\n" + tail()
            )
    return proc.returncode


@dataclass
class Rookery:
    """One running server. `ports` maps listener kind ('c2s', 'c2s-tls', 'component') to its
    port."""

    workdir: Path
    config: dict[str, Any]
    binary: Path = field(default_factory=rookery_bin)
    proc: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)
    host: str = HOST
    domain: str = DOMAIN
    # More `rookery serve` arguments (e.g. --log-format json), and environment changes for the
    # process (a None value removes the variable).
    extra_args: tuple[str, ...] = ()
    env: dict[str, str | None] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.workdir / "rookery.toml"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "rookery.stderr"

    @property
    def ready_path(self) -> Path:
        return self.workdir / "ready"

    @property
    def c2s_port(self) -> int:
        return self.ports["c2s"]

    @property
    def tls_port(self) -> int:
        return self.ports["c2s-tls"]

    @property
    def component_port(self) -> int:
        return self.ports["component"]

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n: int = 60) -> str:
        return "\n".join(self.stderr_text().splitlines()[-n:])

    async def wait_log(self, pattern: str, timeout: float) -> re.Match:
        """Waits until the server's log matches `pattern`. The log file is the only signal of
        some server decisions (a slow reader dropped), so it is polled, with a failure deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (m := re.search(pattern, self.stderr_text())) is None:
            if loop.time() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n"
                                     + self.stderr_tail(20))
            await asyncio.sleep(0.05)
        return m

    def start(self) -> None:
        if not self.binary.is_file():
            raise ServerError(
                f"rookery binary not found at {self.binary}; build it with `cargo build -p rookery`"
                " or point ROOKERY_BIN at it"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A restart in the same workdir must not mistake the last run's ready file for this one.
        self.ready_path.unlink(missing_ok=True)
        self.ports.clear()
        self.config_path.write_text(render_toml(self.config))
        env = process_env(self.env)
        stderr = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--ready-file",
                    str(self.ready_path),
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self.workdir,
                env=env,
            )
        finally:
            stderr.close()
        self.ports.update(wait_ready(self.proc, self.ready_path, "rookery", self.stderr_tail))
        for kind in ("c2s", "c2s-tls", "component"):
            if kind not in self.ports and any(
                lst.get("kind") == kind for lst in self.config.get("listen", [])
            ):
                raise ServerError(
                    f"ready file has no {kind} listener: {self.ready_path.read_text()!r}"
                )

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Runs `rookery ARGS --config F` (the user management commands)."""
        res = subprocess.run(
            [str(self.binary), *args, "--config", str(self.config_path)],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=CLI_DEADLINE_S,
            cwd=self.workdir,
        )
        if check and res.returncode != 0:
            raise ServerError(
                f"`rookery {' '.join(args)}` exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
            )
        return res

    def add_user(self, user: str, password: str) -> str:
        jid = f"{user}@{self.domain}"
        self.cli("user", "add", jid, "--password", password)
        return jid

    def kill(self) -> None:
        kill_process(self.proc)

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code (kills and raises after the deadline)."""
        assert self.proc is not None
        return stop_process(self.proc, "rookery", self.stderr_tail)

    def stop_and_check(self) -> None:
        """Teardown check: SIGTERM gives exit code 0 and stderr never mentions a panic."""
        rc = self.stop()
        err = self.stderr_text()
        problems = []
        if rc != 0:
            problems.append(f"exit code {rc} after SIGTERM (expected 0)")
        if "panicked" in err:
            problems.append("stderr contains 'panicked'")
        if problems:
            raise ServerError("; ".join(problems) + ":\n" + self.stderr_tail(80))
