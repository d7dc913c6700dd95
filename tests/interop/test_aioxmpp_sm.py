"""XEP-0198 stream management with aioxmpp's own implementation: aioxmpp enables it with
resumption by itself. Its TCP connection runs through a relay the test owns (cm_harness's
LinkProxy); the relay cuts it abruptly (no closing stream tag, no TLS close_notify) while
another client sends to it. aioxmpp notices, reconnects through the relay and resumes the
session (`<resumed/>`, XEP-0198 §5), and every message arrives exactly once, in order: the ones
the cut lost in flight are sent again by the server, those sent while it was away wait in the
parked session."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher

from clients import EVENT_TIMEOUT
from cm_harness import LinkProxy
from conftest import PASSWORD

# How long aioxmpp waits before its first reconnection attempt (its default is 1 s). The relay
# holds the reconnection until the test releases it, so this only shortens the test.
RECONNECT_BACKOFF = timedelta(seconds=0.1)
# Reconnection, STARTTLS, SASL and <resume/> through the relay.
RESUME_TIMEOUT = 20.0


class Watched:
    """An aioxmpp client whose signals and received chat bodies the test can await."""

    def __init__(self, server, user: str, port: int):
        jid = aioxmpp.JID.fromstr(f"{user}@{server.domain}")
        # no_verify: the test server's certificate is self-signed (test use only).
        self.client = aioxmpp.Client(
            jid, aioxmpp.make_security_layer(PASSWORD, no_verify=True),
            override_peer=[(server.host, port, aioxmpp.connector.STARTTLSConnector())])
        self.client.backoff_start = RECONNECT_BACKOFF
        self.bodies: list[str] = []
        self.events: list[str] = []
        self._changed = asyncio.Event()
        for name in ("on_stream_established", "on_stream_suspended", "on_stream_resumed",
                     "on_stream_destroyed", "on_failure", "on_stopped"):
            getattr(self.client, name).connect(self._recorder(name))
        self.client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
            aioxmpp.MessageType.CHAT, None, self._on_message)

    def _recorder(self, name: str):
        def record(*_args):
            self.events.append(name)
            self._changed.set()
        return record

    def _on_message(self, msg: aioxmpp.Message) -> None:
        if msg.body:
            self.bodies.append(next(iter(msg.body.values())))
            self._changed.set()

    async def until(self, what: str, cond, timeout: float = EVENT_TIMEOUT) -> None:
        """Waits until `cond()` holds; a client failure or the deadline fails the test."""
        async def wait():
            while not cond():
                if "on_failure" in self.events or "on_stopped" in self.events:
                    raise AssertionError(f"aioxmpp client stopped while waiting for {what}: "
                                         f"{self.events}")
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s; events {self.events}, "
                                 f"bodies {self.bodies}") from None

    async def stop(self) -> None:
        if self.client.running:
            self.client.stop()
            await self.until("client stop", lambda: not self.client.running)


async def test_aioxmpp_resumes_after_a_cut_connection_and_misses_nothing(server):
    proxy = LinkProxy((server.host, server.c2s_port))
    port = await proxy.start()
    juliet = Watched(server, "bob", port)
    romeo = server.client("alice")
    try:
        juliet.client.start()
        await juliet.until("stream", lambda: "on_stream_established" in juliet.events)
        stream = juliet.client.stream
        assert stream.sm_enabled, "aioxmpp did not enable stream management"
        assert stream.sm_resumable and stream.sm_id, "resumption not granted"
        full = juliet.client.local_jid
        assert full.resource, "no resource bound"
        await romeo.login()

        # A burst, cut once the first few arrived: what the server wrote after those may be
        # lost in the relay or the sockets' buffers, unacknowledged.
        sent = [f"m{i}" for i in range(1, 31)]
        for body in sent[:20]:
            romeo.send_message(mto=str(full), mbody=body, mtype="chat")
        await juliet.until("m5", lambda: "m5" in juliet.bodies)
        proxy.hold()
        proxy.cut()
        await juliet.until("the suspension", lambda: "on_stream_suspended" in juliet.events)
        await server.wait_log(rf'jid={full} what="sm-parked"', EVENT_TIMEOUT)

        # Sent while aioxmpp is cut off: they wait in the parked session.
        for body in sent[20:]:
            romeo.send_message(mto=str(full), mbody=body, mtype="chat")
        await romeo.barrier()  # the server routed them before answering this ping
        assert "on_stream_resumed" not in juliet.events

        proxy.release()
        await juliet.until("the resumption", lambda: "on_stream_resumed" in juliet.events,
                           RESUME_TIMEOUT)
        resumed = await server.wait_log(rf'jid={full} unacked=(\d+) what="sm-resumed"',
                                        EVENT_TIMEOUT)
        # What was parked (at least the ten sent during the cut) went out again.
        assert int(resumed.group(1)) >= len(sent) - 20, resumed.group(0)
        assert "on_stream_destroyed" not in juliet.events, juliet.events
        assert juliet.client.local_jid == full

        # A marker after everything: in-order delivery puts it behind every resent copy.
        romeo.send_message(mto=str(full), mbody="after", mtype="chat")
        await juliet.until("the marker", lambda: "after" in juliet.bodies)
        assert juliet.bodies == sent + ["after"], juliet.bodies
        # One session all along: bound once, never ended.
        log = server.stderr_text()
        assert log.count(f'jid={full} what="bound"') == 1, log
        assert 'what="closed"' not in "\n".join(
            line for line in log.splitlines() if f"jid={full} " in line), log
        assert proxy.accepted == 2, proxy.accepted
    finally:
        proxy.release()
        await juliet.stop()
        await proxy.close()
