"""slixmpp clients for the interop tests.

`TestClient` is a ClientXMPP that
- connects to 127.0.0.1:PORT (no DNS), either STARTTLS on the c2s port or Direct TLS on the
  c2s-tls port, with certificate verification off (the server's certificate is self-signed);
- offers only the SASL mechanism it was told to use (SCRAM-SHA-256 by default) and records which
  one succeeded, so tests can assert it;
- records every inbound message / presence / roster push in an `Inbox` that tests wait on with
  asyncio futures. Timeouts are failure deadlines only; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Callable

import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

log = logging.getLogger("interop")

# Failure deadlines (seconds). Generous for slow debug builds on a 2-core CI machine.
LOGIN_TIMEOUT = 20.0
EVENT_TIMEOUT = 10.0

NS_DELAY = "urn:xmpp:delay"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


class LoginFailed(AssertionError):
    def __init__(self, condition: str, detail: str = ""):
        super().__init__(f"login failed: {condition} {detail}".strip())
        self.condition = condition


class Inbox:
    """Everything of one kind a client received, plus waiters for what has not arrived yet."""

    def __init__(self, name: str):
        self.name = name
        self.items: list[Any] = []
        self._waiters: list[tuple[Callable[[Any], bool], asyncio.Future]] = []

    def push(self, item: Any) -> None:
        self.items.append(item)
        for waiter in list(self._waiters):
            pred, fut = waiter
            if fut.done():
                self._waiters.remove(waiter)
            elif pred(item):
                fut.set_result(item)
                self._waiters.remove(waiter)

    def matching(self, pred: Callable[[Any], bool]) -> list[Any]:
        return [x for x in self.items if pred(x)]

    async def wait(
        self, pred: Callable[[Any], bool], what: str, timeout: float = EVENT_TIMEOUT
    ) -> Any:
        """The first item (already received or arriving within `timeout`) matching `pred`."""
        for item in self.items:
            if pred(item):
                return item
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            seen = "\n  ".join(str(x) for x in self.items[-10:]) or "(nothing)"
            raise AssertionError(
                f"{self.name}: no {what} within {timeout:.0f} s; last received:\n  {seen}"
            ) from None


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TestClient(slixmpp.ClientXMPP):
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        address: tuple[str, int],
        direct_tls: bool = False,
        mechanism: str = "SCRAM-SHA-256",
    ):
        super().__init__(jid, password, sasl_mech=mechanism)
        self.address = address
        self.direct_tls = direct_tls
        self.wanted_mechanism = mechanism
        self.ssl_context = insecure_context()
        # One way in only: no SRV lookups (custom address), no plaintext, and exactly the TLS
        # mode under test (slixmpp would otherwise try Direct TLS on the STARTTLS port first).
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        # Subscriptions are answered by the tests themselves.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        for plugin in ("xep_0030", "xep_0054", "xep_0191", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)

        self.messages = Inbox(f"{jid} messages")
        self.presences = Inbox(f"{jid} presences")
        self.roster_pushes = Inbox(f"{jid} roster pushes")
        self.stream_errors = Inbox(f"{jid} stream errors")
        self.add_event_handler("message", self.messages.push)
        self.add_event_handler("presence", self.presences.push)
        self.add_event_handler("roster_update", self.roster_pushes.push)
        self.add_event_handler("stream_error", self.stream_errors.push)

    # -- login ---------------------------------------------------------------------------------

    async def login(
        self, *, presence: bool = True, roster: bool = False, timeout: float = LOGIN_TIMEOUT
    ) -> None:
        """Connects and waits for session_start (raises LoginFailed on a SASL failure)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(ok: bool, cond: str = "", detail: str = "") -> None:
            if not done.done():
                if ok:
                    done.set_result(None)
                else:
                    done.set_exception(LoginFailed(cond, detail))

        handlers = {
            "session_start": lambda _e: settle(True),
            "failed_auth": lambda f: settle(False, f["condition"] or "failed_auth", str(f)),
            "failed_all_auth": lambda _e: settle(False, "failed_all_auth"),
            "no_auth": lambda _e: settle(False, "no_auth", "no acceptable SASL mechanism offered"),
            "connection_failed": lambda e: settle(False, "connection_failed", str(e)),
            "disconnected": lambda e: settle(False, "disconnected", str(e)),
            "stream_error": lambda e: settle(False, "stream_error", str(e)),
            "ssl_invalid_chain": lambda e: settle(False, "ssl_invalid_chain", str(e)),
        }
        for name, fn in handlers.items():
            self.add_event_handler(name, fn)
        try:
            self.connect(*self.address)
            try:
                await asyncio.wait_for(done, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{self.requested_jid}: no session within {timeout:.0f} s"
                ) from None
        finally:
            for name, fn in handlers.items():
                self.del_event_handler(name, fn)
        if roster:
            await self.get_roster(timeout=EVENT_TIMEOUT)
        if presence:
            self.send_presence()

    @property
    def mechanism_used(self) -> str | None:
        mech = self.plugin["feature_mechanisms"].mech
        return mech.name if mech is not None else None

    @property
    def tls_version(self) -> str | None:
        if self.transport is None:
            return None
        ssl_obj = self.transport.get_extra_info("ssl_object")
        return ssl_obj.version() if ssl_obj is not None else None

    def assert_secure_scram(self) -> None:
        """The session ran over TLS (STARTTLS or Direct TLS as configured) with the forced SASL
        mechanism."""
        assert self.authenticated, "not authenticated"
        assert self.mechanism_used == self.wanted_mechanism, (
            f"SASL mechanism used: {self.mechanism_used}, wanted {self.wanted_mechanism}"
        )
        assert self.tls_version is not None, "session is not encrypted"
        if self.direct_tls:
            assert "starttls" not in self.features, "STARTTLS negotiated inside Direct TLS"
        else:
            assert "starttls" in self.features, "STARTTLS was not negotiated"

    # -- helpers -------------------------------------------------------------------------------

    async def barrier(self) -> None:
        """XEP-0199 ping to our own server and wait for the answer. The server handles one
        session's stanzas in order and delivers into per-session FIFO mailboxes, so once the
        pong is here, every stanza the server routed to us before it has arrived too."""
        iq = self.make_iq_get(ito=self.boundjid.domain)
        iq.enable("ping")
        await iq.send(timeout=EVENT_TIMEOUT)

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                await asyncio.wait_for(self.disconnect(wait=2.0), 5.0)
            except (asyncio.TimeoutError, Exception):  # pragma: no cover - best effort
                self.abort()
        self.cancel_connection_attempt()

    async def wait_message(
        self, pred: Callable[[Any], bool], what: str = "message", timeout: float = EVENT_TIMEOUT
    ) -> Any:
        return await self.messages.wait(pred, what, timeout)

    async def wait_presence(
        self, pred: Callable[[Any], bool], what: str = "presence", timeout: float = EVENT_TIMEOUT
    ) -> Any:
        return await self.presences.wait(pred, what, timeout)


def from_bare(jid: str | JID) -> Callable[[Any], bool]:
    bare = JID(jid).bare
    return lambda st: st["from"].bare == bare


def body_is(text: str) -> Callable[[Any], bool]:
    return lambda m: m["type"] != "error" and m["body"] == text


__all__ = [
    "EVENT_TIMEOUT",
    "Inbox",
    "IqError",
    "IqTimeout",
    "LoginFailed",
    "NS_DELAY",
    "NS_STREAMS",
    "TestClient",
    "body_is",
    "from_bare",
    "insecure_context",
]
