"""A burst from one user never costs another user their connection (issue: ~1,100 messages back
to back closed the *recipient* with policy-violation). The recipient keeps reading and gets
every message live and in order; the sender is slowed (backpressure, rate limits), never
disconnected. Directly and through a connection manager. Raw sockets, so the burst is exactly
what the test writes."""

from __future__ import annotations

import asyncio
import re

from cm_harness import CM_SECRET, ConnectionManager
from conftest import PASSWORD
from rawxmpp import RawClient, _tag
from rookery_harness import HOST

N = 10_000

# Unlimited client rates: this is about the recipient's queue, not the sender's shaping (which
# would stretch 10,000 messages over ~90 s at the defaults; it has its own test below).
UNSHAPED = {"c2s_rate_bytes": 0, "c2s_rate_stanzas": 0}


async def burst(sender: RawClient, to: str, n: int) -> None:
    """Writes n chat messages back to back, in chunks of 100 per write."""
    for start in range(0, n, 100):
        chunk = "".join(
            f"<message to='{to}' type='chat' id='b{i}'><body>burst message number {i}</body></message>"
            for i in range(start, min(n, start + 100))
        )
        await sender.send(chunk)


async def read_messages(raw: RawClient, n: int, timeout: float = 120) -> list[str]:
    """Ids of the first n messages the client reads (fails if the stream ends first)."""
    ids: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(ids) < n:
        el = await raw.read_element(max(0.1, deadline - loop.time()))
        if _tag(el)[1] == "message":
            ids.append(el.get("id"))
    return ids


async def still_connected(raw: RawClient, id_: str) -> None:
    """A ping to the server is answered: the stream is alive and being read."""
    await raw.send(f"<iq type='get' id='{id_}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    while True:
        el = await raw.read_element(30)
        if el.get("id") == id_:
            assert el.get("type") == "result"
            return


async def burst_and_check(alice: RawClient, bob: RawClient, server) -> None:
    _, ids = await asyncio.gather(burst(alice, "bob@localhost/phone", N), read_messages(bob, N))
    assert ids == [f"b{i}" for i in range(N)], "every message live and in order"
    await still_connected(bob, "bob-alive")
    await still_connected(alice, "alice-alive")
    log = server.stderr_text()
    assert not re.search(r'what="slow-reader"|what="mailbox-full"', log), log[-2000:]


async def test_a_burst_of_10000_messages_reaches_a_reading_recipient_live(start_server):
    server = start_server({"limits": UNSHAPED, "c2s": {"ping_interval_secs": 0}})
    bob = server.raw()
    await bob.login("bob", PASSWORD, resource="phone")
    await bob.send("<presence/>")
    alice = server.raw()
    await alice.login("alice", PASSWORD, resource="laptop")
    await burst_and_check(alice, bob, server)


async def test_a_burst_through_a_connection_manager(start_server, tmp_path):
    server = start_server({
        "limits": UNSHAPED,
        "c2s": {"ping_interval_secs": 0},
        "cm": {"secret": CM_SECRET},
        "listen": [
            {"address": HOST, "port": 0, "kind": "c2s"},
            {"address": HOST, "port": 0, "kind": "c2s-tls"},
            {"address": HOST, "port": 0, "kind": "cm"},
        ],
    })
    cm = ConnectionManager(tmp_path / "cm", "cm1", server.ports["cm"], links=2, grace_secs=30)
    cm.start()
    try:
        bob = RawClient(HOST, cm.ports["c2s"])
        server._raws.append(bob)
        await bob.login("bob", PASSWORD, resource="phone")
        await bob.send("<presence/>")
        alice = RawClient(HOST, cm.ports["c2s"])
        server._raws.append(alice)
        await alice.login("alice", PASSWORD, resource="laptop")
        await burst_and_check(alice, bob, server)
    finally:
        await server.close_clients()
        assert cm.stop() == 0, cm.stderr_tail()


async def test_a_sender_over_its_rate_is_paused_not_disconnected(start_server):
    # 100 stanzas at once, then 100 per second: 400 messages need about 3 s more.
    server = start_server({
        "limits": {"c2s_rate_stanzas": 100, "c2s_burst_stanzas": 100},
        "c2s": {"ping_interval_secs": 0},
    })
    bob = server.raw()
    await bob.login("bob", PASSWORD, resource="phone")
    await bob.send("<presence/>")
    alice = server.raw()
    await alice.login("alice", PASSWORD, resource="laptop")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = 400
    _, ids = await asyncio.gather(burst(alice, "bob@localhost/phone", n), read_messages(bob, n))
    elapsed = loop.time() - t0
    assert ids == [f"b{i}" for i in range(n)]
    await still_connected(alice, "alice-alive")
    # The limiter held the sender back: (400 - 100 burst) / 100 per second.
    assert elapsed >= 2.5, f"400 messages passed in {elapsed:.2f} s"
    shaped = re.findall(r'peer=alice@localhost/laptop.*what="shaped"', server.stderr_text())
    assert len(shaped) == 1, "logged once per session when engaged"
