"""Fixtures for the interop tests: a real Rookery process per test, accounts made with
`rookery user add`, and slixmpp / raw clients pointed at its port-0 listeners.

  ROOKERY_BIN   the server binary (default: target/debug/rookery); nothing is built here.
  ROOKERY_LOG   passed through to the server (e.g. debug); its stderr is kept in the test's
                tmp dir and its tail is shown when a test fails.
  ROOKERY_TEST_STORAGE  `sqlite` (default) or `postgres`: every server started here then gets
                a fresh PostgreSQL schema of its own, dropped at teardown (rookery_harness.py).
  ROOKERY_TEST_PG_URL   the PostgreSQL database (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import pytest

from clients import TestClient
from echo_component import EchoComponent
from rawxmpp import RawClient
from rookery_harness import (Rookery, default_config, drop_pg_schema, merge_config,
                             storage_backend, storage_config)

PASSWORD = "correct horse battery staple"
USERS = ("alice", "bob", "carol")


class Server(Rookery):
    """A Rookery with helpers that make clients for it."""

    def client(self, user: str, *, password: str = PASSWORD, direct_tls: bool = False,
               resource: str | None = None, mechanism: str = "SCRAM-SHA-256") -> TestClient:
        jid = f"{user}@{self.domain}" + (f"/{resource}" if resource else "")
        port = self.tls_port if direct_tls else self.c2s_port
        c = TestClient(jid, password, address=(self.host, port), direct_tls=direct_tls,
                       mechanism=mechanism)
        self._clients.append(c)
        return c

    def raw(self, *, direct_tls: bool = False) -> RawClient:
        r = RawClient(self.host, self.tls_port if direct_tls else self.c2s_port,
                      domain=self.domain)
        self._raws.append(r)
        return r

    def echo_component(self, domain: str, secret: str) -> EchoComponent:
        """A slixmpp echo component for `domain` (the server needs with_components())."""
        c = EchoComponent(domain, secret, address=(self.host, self.component_port))
        self._clients.append(c)
        return c

    async def close_clients(self) -> None:
        for c in self._clients:
            await c.close()
        for r in self._raws:
            await r.close()
        self._clients.clear()
        self._raws.clear()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
async def start_server(tmp_path, request):
    """Factory: start_server(config_overrides=None, users=USERS, extra_args=(), env={}) ->
    Server. Every server started is stopped at teardown with SIGTERM; exit code 0 and no panic
    on stderr are asserted."""
    started: list[Server] = []
    # Every config given to a server, started or not: a server that failed to start may still
    # have made its PostgreSQL schema.
    configs: list[dict] = []

    def start(config: dict | None = None, users=USERS, name: str | None = None,
              extra_args: tuple[str, ...] = (), env: dict | None = None) -> Server:
        workdir = tmp_path / (name or f"rookery{len(started)}")
        base = merge_config(default_config(), storage_config())
        srv = Server(workdir=workdir, config=merge_config(base, config),
                     extra_args=extra_args, env=env or {})
        srv._clients, srv._raws = [], []
        configs.append(srv.config)
        srv.start()
        started.append(srv)
        for u in users:
            srv.add_user(u, PASSWORD)
        return srv

    yield start

    for srv in started:
        await srv.close_clients()
    failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False)
                 for w in ("setup", "call"))
    errors = []
    for srv in started:
        try:
            srv.stop_and_check()
        except AssertionError as e:
            errors.append(str(e))
        if failed:
            print(f"\n----- {srv.workdir.name} stderr (tail) -----\n{srv.stderr_tail(80)}")
    for config in configs:
        try:
            drop_pg_schema(config)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


def pytest_report_header(config):
    return f"rookery store: {storage_backend()}"


@pytest.fixture
async def server(start_server):
    """A default server (c2s + c2s-tls on port 0, host localhost, users alice/bob/carol)."""
    return start_server()


@pytest.fixture
def password() -> str:
    return PASSWORD
