"""The processes of a federation world, each started inside the world's network namespace
(`ip netns exec`, so each sees the namespace's resolv.conf): the test DNS server, Prosody,
ejabberd. Rookery itself is started through tests/interop's harness (see conftest.py).

Every process writes its output (and the peers their debug logs, which include the XML of every
s2s stream) into its own work directory; `tail()` is printed when a test fails. All waits are
failure deadlines on an event (a port accepting connections, a line on stdout), never sleeps of
a fixed length.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from certs import Leaf

HOST = "127.0.0.1"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 15.0
CTL_DEADLINE_S = 60.0


class PeerError(AssertionError):
    pass


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, n: int = 80) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(lines[-n:])


class Process:
    """A child process in the namespace with its output in `workdir/NAME.out`."""

    name = "process"

    def __init__(self, workdir: Path, netns_prefix: list[str]):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.prefix = netns_prefix
        self.proc: subprocess.Popen | None = None

    @property
    def out_path(self) -> Path:
        return self.workdir / f"{self.name}.out"

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, stdout=None) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else out,
                stderr=out,
                cwd=self.workdir,
                env=full_env,
                start_new_session=True,
            )

    def check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise PeerError(
                f"{self.name} exited with {self.proc.returncode} {what}:\n{self.logs_tail()}"
            )

    def wait_ports(self, ports: list[int], deadline_s: float = START_DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        for port in ports:
            while not port_open(port):
                self.check_alive(f"before port {port} accepted connections")
                if time.monotonic() > deadline:
                    raise PeerError(
                        f"{self.name}: port {port} not accepting connections within "
                        f"{deadline_s:.0f} s:\n{self.logs_tail()}"
                    )
                time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_files(self) -> list[Path]:
        return [self.out_path]

    def logs_tail(self, n: int = 60) -> str:
        return "\n".join(f"--- {p} ---\n{tail(p, n)}" for p in self.log_files())


# -- DNS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SrvHost:
    domain: str
    s2s_port: int
    address: str = HOST


class TestDnsServer(Process):
    """`rookery-testdns 127.0.0.1:53 zone.txt`: SRV _xmpp-server._tcp.DOMAIN → xmpp.DOMAIN:port,
    A xmpp.DOMAIN → 127.0.0.1, for every domain of the world."""

    __test__ = False
    name = "testdns"

    def __init__(self, workdir: Path, netns_prefix: list[str], binary: Path, hosts: list[SrvHost]):
        super().__init__(workdir, netns_prefix)
        self.binary = binary
        self.zone = self.workdir / "zone.txt"
        lines = ["# written by tests/interop_s2s/peers.py"]
        for h in hosts:
            lines.append(f"_xmpp-server._tcp.{h.domain} SRV 0 5 {h.s2s_port} xmpp.{h.domain}")
            lines.append(f"xmpp.{h.domain} A {h.address}")
        self.zone.write_text("\n".join(lines) + "\n")
        self.addr: str | None = None

    def start(self) -> None:
        if not self.binary.is_file():
            raise PeerError(
                f"rookery-testdns not found at {self.binary}; build it with "
                "`cargo build -p rookery-testdns` or point ROOKERY_TESTDNS_BIN at it"
            )
        self.spawn([str(self.binary), f"{HOST}:53", str(self.zone)], stdout=subprocess.PIPE)
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()  # the bound address, or EOF
        if not line:
            self.proc.wait(timeout=5)
            raise PeerError(f"rookery-testdns printed no address:\n{self.logs_tail()}")
        self.addr = line


# -- Prosody -----------------------------------------------------------------------------------


def _lua(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (str, Path)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(v, (list, tuple)):
        return "{ " + ", ".join(_lua(x) for x in v) + " }"
    if isinstance(v, dict):
        def key(k: str) -> str:
            return k if k.isidentifier() else f"[{_lua(k)}]"
        return "{ " + ", ".join(f"{key(k)} = {_lua(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


class Prosody(Process):
    """Debian's Prosody 0.12, foreground, everything in its work directory.

    `secure`: s2s_secure_auth = true and the test CA as trust anchor, without mod_dialback, so
    only SASL EXTERNAL (XEP-0178) can authenticate s2s streams. Otherwise the CA is not
    trusted (certificates fail verification) and mod_dialback is the only way (XEP-0220)."""

    name = "prosody"

    def __init__(self, workdir: Path, netns_prefix: list[str], *, domain: str, leaf: Leaf,
                 ca_file: Path, secure: bool, c2s_port: int, s2s_port: int):
        super().__init__(workdir, netns_prefix)
        self.domain = domain
        self.c2s_port = c2s_port
        self.s2s_port = s2s_port
        self.config_path = self.workdir / "prosody.cfg.lua"
        self.log_path = self.workdir / "prosody.log"
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)  # unused; Prosody indexes it at start
        ssl = {"certificate": leaf.cert, "key": leaf.key}
        if secure:
            ssl["cafile"] = ca_file
        modules = ["roster", "saslauth", "tls", "disco", "ping"]
        if not secure:
            modules.append("dialback")
        settings = {
            "run_as_root": True,  # the test runs as root; nothing here needs privileges
            "pidfile": self.workdir / "prosody.pid",
            "data_path": self.workdir / "data",
            "certificates": self.workdir / "certs",
            "interfaces": [HOST],
            "local_interfaces": [HOST],
            "c2s_ports": [c2s_port],
            "s2s_ports": [s2s_port],
            "c2s_direct_tls_ports": [],
            "s2s_direct_tls_ports": [],
            "modules_enabled": modules,
            "authentication": "internal_hashed",
            "storage": "internal",
            "c2s_require_encryption": True,
            "s2s_require_encryption": True,
            "s2s_secure_auth": secure,
            "use_ipv6": False,
            # With lua-unbound (Debian's prosody Recommends lua5.4-unbound) DNS goes through
            # libunbound, which by default never queries a nameserver on localhost and answers
            # NXDOMAIN itself for the RFC 6761 `test.` zone: both are turned off here. Without
            # lua-unbound, Prosody's own net.adns reads resolv.conf and ignores this option.
            "unbound": {"options": {"do-not-query-localhost": "no",
                                    "local-zone": "test. transparent"}},
            "ssl": ssl,
            "log": [{"levels": {"min": "debug"}, "to": "file", "filename": self.log_path}],
        }
        text = "-- written by tests/interop_s2s/peers.py\n"
        text += "".join(f"{k} = {_lua(v)}\n" for k, v in settings.items())
        text += f'\nVirtualHost "{domain}"\n    ssl = {_lua(ssl)}\n'
        self.config_path.write_text(text)

    def log_files(self) -> list[Path]:
        return [self.out_path, self.log_path]

    def start(self) -> None:
        self.spawn(["prosody", "--config", str(self.config_path), "-F"])
        self.wait_ports([self.c2s_port, self.s2s_port])

    def register(self, user: str, password: str) -> str:
        res = subprocess.run(
            [*self.prefix, "prosodyctl", "--config", str(self.config_path), "register", user,
             self.domain, password],
            capture_output=True, text=True, timeout=CTL_DEADLINE_S, cwd=self.workdir,
        )
        if res.returncode != 0:
            raise PeerError(f"prosodyctl register {user} failed ({res.returncode}):\n"
                            f"{res.stdout}\n{res.stderr}")
        return f"{user}@{self.domain}"


# -- ejabberd ----------------------------------------------------------------------------------

EJABBERD_LIBS = "/usr/lib/x86_64-linux-gnu"


def _yaml(v, indent: int = 0) -> str:
    """Just enough YAML for the ejabberd config below (dicts, lists, scalars)."""
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            return "{}"
        out = []
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{k}:\n{_yaml(x, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {_yaml(x)}")
        return "\n".join(out)
    if isinstance(v, list):
        if not v:
            return "[]"
        out = []
        for x in v:
            if isinstance(x, dict) and x:
                body = _yaml(x, indent + 1).lstrip()
                out.append(f"{pad}- {body}")
            else:
                out.append(f"{pad}- {_yaml(x)}")
        return "\n".join(out)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


class Ejabberd(Process):
    """Debian's ejabberd 23.01 as a plain `erl` node (what `ejabberdctl foreground` runs, but as
    root with HOME, Mnesia, logs and the Erlang cookie in its work directory and a node name of
    its own). Commands (`register`) run like `ejabberdctl` does: a hidden node calling
    ejabberd_ctl over Erlang distribution inside the namespace (its own epmd).

    `secure`: the test CA as s2s_cafile and no mod_s2s_dialback (SASL EXTERNAL only);
    otherwise no CA (the certificates fail verification) and mod_s2s_dialback."""

    name = "ejabberd"

    def __init__(self, workdir: Path, netns_prefix: list[str], *, domain: str, leaf: Leaf,
                 ca_file: Path, secure: bool, c2s_port: int, s2s_port: int):
        super().__init__(workdir, netns_prefix)
        self.domain = domain
        self.c2s_port = c2s_port
        self.s2s_port = s2s_port
        self.node = f"ejabberd-s2s-{secrets.token_hex(3)}@localhost"
        self.config_path = self.workdir / "ejabberd.yml"
        self.log_path = self.workdir / "ejabberd.log"
        self.spool = self.workdir / "spool"
        self.spool.mkdir(exist_ok=True)
        (self.workdir / ".erlang.cookie").write_text(secrets.token_hex(16))
        (self.workdir / ".erlang.cookie").chmod(0o400)
        modules: dict = {
            "mod_roster": {},
            "mod_disco": {},
            "mod_ping": {},
            "mod_admin_extra": {},
        }
        if not secure:
            modules["mod_s2s_dialback"] = {}
        cfg: dict = {
            "loglevel": "debug",
            "log_rotate_count": 0,
            "hosts": [domain],
            "certfiles": [str(leaf.combined)],
            "listen": [
                {"port": c2s_port, "ip": HOST, "module": "ejabberd_c2s",
                 "starttls_required": True},
                {"port": s2s_port, "ip": HOST, "module": "ejabberd_s2s_in"},
            ],
            "s2s_use_starttls": "required",
            "outgoing_s2s_families": ["ipv4"],
            "s2s_dns_timeout": 5,
            "acl": {"local": {"user_regexp": ""}},
            "access_rules": {"local": {"allow": "local"}, "c2s": {"allow": "all"}},
            "api_permissions": {
                "console commands": {"from": ["ejabberd_ctl"], "who": "all", "what": "*"},
            },
            "modules": modules,
        }
        if secure:
            cfg["s2s_cafile"] = str(ca_file)
        self.config_path.write_text("# written by tests/interop_s2s/peers.py\n" + _yaml(cfg) + "\n")

    def log_files(self) -> list[Path]:
        return [self.out_path, self.log_path]

    def _env(self) -> dict[str, str]:
        return {
            "HOME": str(self.workdir),
            "ERL_LIBS": EJABBERD_LIBS,
            "EJABBERD_CONFIG_PATH": str(self.config_path),
            "EJABBERD_LOG_PATH": str(self.log_path),
            "ERL_CRASH_DUMP": str(self.workdir / "erl_crash.dump"),
            "ERL_INETRC": "/etc/ejabberd/inetrc",
            "ERL_MAX_PORTS": "32000",
            "ERL_MAX_ETS_TABLES": "1400",
        }

    def start(self) -> None:
        self.spawn(
            ["erl", "-sname", self.node, "+K", "true", "+P", "250000", "-noinput",
             "-mnesia", "dir", f'"{self.spool}"', "-s", "ejabberd"],
            env=self._env(),
        )
        self.wait_ports([self.c2s_port, self.s2s_port])
        # Listeners are up before every module is; `status` answers 0 once ejabberd is started.
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            res = self.ctl("status", check=False)
            if res.returncode == 0:
                return
            self.check_alive("while starting")
            if time.monotonic() > deadline:
                raise PeerError(f"ejabberd not started within {START_DEADLINE_S:.0f} s: "
                                f"{res.stdout}{res.stderr}\n{self.logs_tail()}")
            time.sleep(0.2)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(self._env())
        res = subprocess.run(
            [*self.prefix, "erl", "-sname", f"ctl-{secrets.token_hex(3)}@localhost", "-hidden",
             "-noinput", "-s", "ejabberd_ctl", "-extra", self.node, *args],
            capture_output=True, text=True, timeout=CTL_DEADLINE_S, cwd=self.workdir, env=env,
        )
        if check and res.returncode != 0:
            raise PeerError(f"ejabberdctl {' '.join(args)} failed ({res.returncode}):\n"
                            f"{res.stdout}\n{res.stderr}")
        return res

    def register(self, user: str, password: str) -> str:
        self.ctl("register", user, self.domain, password)
        return f"{user}@{self.domain}"
