"""Connection managers (`rookery cm`) in front of the server: clients of two CMs and direct
clients talk to each other as if on one server; a link cut mid-conversation loses and reorders
nothing; a killed CM disconnects only its own clients, and the server notices they left.

The CMs are real processes with real TLS to the clients; one CM's links go through
`LinkProxy`, a loopback TCP relay, so the test can cut a link the way a network would."""

from __future__ import annotations

import asyncio

import pytest

from clients import TestClient, body_is, from_bare
from cm_harness import CM_SECRET, ConnectionManager, LinkProxy
from conftest import PASSWORD
from rookery_harness import HOST

CM_CONFIG = {
    "cm": {"secret": CM_SECRET, "resume_grace_secs": 30},
    "listen": [
        {"address": HOST, "port": 0, "kind": "c2s"},
        {"address": HOST, "port": 0, "kind": "c2s-tls"},
        {"address": HOST, "port": 0, "kind": "cm"},
    ],
}


@pytest.fixture
async def cms(tmp_path):
    """Factory: cms(server, name, via_proxy=False, links=5) -> (ConnectionManager, proxy)."""
    made: list[tuple[ConnectionManager, LinkProxy | None]] = []

    async def make(server, name: str, via_proxy: bool = False, links: int = 5, grace: int = 30):
        port = server.ports["cm"]
        proxy = None
        if via_proxy:
            proxy = LinkProxy((HOST, port))
            port = await proxy.start()
        cm = ConnectionManager(tmp_path / name, name, port, links=links, grace_secs=grace)
        cm.start()
        made.append((cm, proxy))
        return cm, proxy

    yield make
    for cm, proxy in made:
        if proxy:
            await proxy.close()
        if cm.proc and cm.proc.poll() is None:
            rc = cm.stop()
            assert rc == 0, f"rookery cm exited {rc}:\n{cm.stderr_tail()}"


def via(cm: ConnectionManager, user: str, server, *, direct_tls: bool = False, resource=None) -> TestClient:
    jid = f"{user}@localhost" + (f"/{resource}" if resource else "")
    port = cm.ports["c2s-tls" if direct_tls else "c2s"]
    c = TestClient(jid, PASSWORD, address=(HOST, port), direct_tls=direct_tls)
    server._clients.append(c)
    return c


async def wait_links(proxy: LinkProxy, n: int, timeout: float = 20.0) -> None:
    async def poll():
        while proxy.live() < n:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


def is_presence(frm: str, ptype: str):
    match = from_bare(frm)
    return lambda p: match(p) and p["type"] == ptype


async def test_clients_through_two_cms_and_direct_talk_to_each_other(start_server, cms):
    server = start_server(CM_CONFIG)
    cm1, _ = await cms(server, "cm1")
    cm2, _ = await cms(server, "cm2")
    alice = via(cm1, "alice", server)                   # CM 1, STARTTLS
    bob = via(cm2, "bob", server, direct_tls=True)      # CM 2, Direct TLS
    carol = server.client("carol")                      # direct to the server
    for c in (alice, bob, carol):
        await c.login(roster=True)
    alice.assert_secure_scram()
    bob.assert_secure_scram()

    # Messages in every direction.
    alice.send_message(mto=bob.boundjid.full, mbody="a->b", mtype="chat")
    bob.send_message(mto=carol.boundjid.full, mbody="b->c", mtype="chat")
    carol.send_message(mto="alice@localhost", mbody="c->a", mtype="chat")
    await bob.wait_message(body_is("a->b"), "alice's message")
    await carol.wait_message(body_is("b->c"), "bob's message")
    await alice.wait_message(body_is("c->a"), "carol's message")

    # Presence subscription across a CM and a direct client: the full RFC 6121 exchange.
    alice.send_presence(pto="carol@localhost", ptype="subscribe")
    await carol.wait_presence(is_presence("alice@localhost", "subscribe"), "subscription request")
    carol.send_presence(pto="alice@localhost", ptype="subscribed")
    await alice.wait_presence(is_presence("carol@localhost", "subscribed"), "approval")
    await alice.wait_presence(is_presence("carol@localhost", "available"), "carol's presence")
    carol.send_presence(pstatus="busy")
    await alice.wait_presence(lambda p: from_bare("carol@localhost")(p) and p["status"] == "busy",
                              "carol's status change")

    # Offline storage for a CM client: bob leaves, gets a message, comes back through CM 1.
    await bob.close()
    carol.send_message(mto="bob@localhost", mbody="while you were away", mtype="chat")
    await carol.barrier()
    bob2 = via(cm1, "bob", server)
    await bob2.login()
    msg = await bob2.wait_message(body_is("while you were away"), "offline message")
    assert msg["delay"]["stamp"] is not None


async def test_a_cut_link_loses_and_reorders_nothing(start_server, cms):
    server = start_server(CM_CONFIG)
    cm, proxy = await cms(server, "cmx", via_proxy=True, links=3)
    await wait_links(proxy, 3)
    senders = [via(cm, "alice", server, resource=f"s{i}") for i in range(3)]
    receiver = via(cm, "bob", server)
    direct = server.client("carol")
    for c in (*senders, receiver, direct):
        await c.login()
    n = 300
    # Each CM sender and the direct client stream numbered messages at bob (a CM client);
    # meanwhile links are cut, one after another.
    async def stream(c: TestClient, tag: str):
        for i in range(n):
            c.send_message(mto=receiver.boundjid.full, mbody=f"{tag}:{i}", mtype="chat")
            if i % 25 == 0:
                await asyncio.sleep(0)  # let slixmpp flush between bursts
    tasks = [asyncio.create_task(stream(c, f"s{k}")) for k, c in enumerate(senders)]
    tasks.append(asyncio.create_task(stream(direct, "d")))
    await asyncio.sleep(0.05)
    proxy.cut(0)
    await asyncio.sleep(0.05)
    proxy.cut(0)
    await asyncio.gather(*tasks)
    tags = [f"s{k}" for k in range(3)] + ["d"]

    def complete(_m) -> bool:
        return sum(1 for m in receiver.messages.items) >= n * len(tags)
    try:
        await receiver.messages.wait(lambda m: complete(m), f"all {n * len(tags)} messages",
                                     timeout=15)
    except AssertionError:
        counts = {t: sum(1 for m in receiver.messages.items if m["body"].startswith(t + ":"))
                  for t in tags}
        direct.send_message(mto=receiver.boundjid.full, mbody="probe", mtype="chat")
        try:
            await receiver.messages.wait(body_is("probe"), "probe", timeout=5)
            probe = "a later message arrived: the missing ones were lost"
        except AssertionError:
            probe = "a later message did not arrive either: the path is stuck"
        missing = {}
        for t in tags:
            got = {int(m["body"].split(":")[1]) for m in receiver.messages.items
                   if m["body"].startswith(t + ":")}
            miss = [i for i in range(n) if i not in got]
            ranges, start = [], None
            for i in miss:
                if start is None:
                    start = prev = i
                elif i == prev + 1:
                    prev = i
                else:
                    ranges.append((start, prev)); start = prev = i
            if start is not None:
                ranges.append((start, prev))
            missing[t] = ranges
        raise AssertionError(f"received per sender: {counts}; {probe}; missing {missing}")
    by_tag: dict[str, list[int]] = {t: [] for t in tags}
    for m in receiver.messages.items:
        tag, num = m["body"].split(":")
        by_tag[tag].append(int(num))
    for t in tags:
        got = by_tag[t]
        if got != list(range(n)):
            bad = next(i for i, (x, y) in enumerate(zip(got + [None], range(n))) if x != y)
            raise AssertionError(f"{t}: {len(got)} messages, first difference at {bad}: "
                                 f"{got[max(0, bad - 3):bad + 6]}")
    # Nobody was disconnected: every client still answers.
    for c in (*senders, receiver, direct):
        await c.barrier()
    assert all(not c.stream_errors.items for c in (*senders, receiver))
    # The pool reconnected the cut links.
    await wait_links(proxy, 3)


async def test_a_killed_cm_disconnects_only_its_clients(start_server, cms):
    # A short resume grace: the server gives up on the dead CM's sessions after 2 s.
    server = start_server({**CM_CONFIG, "cm": {"secret": CM_SECRET, "resume_grace_secs": 2}})
    cm1, _ = await cms(server, "cm1")
    cm2, _ = await cms(server, "cm2")
    alice = via(cm1, "alice", server)
    bob = via(cm2, "bob", server)
    carol = server.client("carol")
    for c in (alice, bob, carol):
        await c.login(roster=True)
    # carol and alice are subscribed to each other, so carol sees alice leave.
    alice.send_presence(pto="carol@localhost", ptype="subscribe")
    await carol.wait_presence(is_presence("alice@localhost", "subscribe"), "request")
    carol.send_presence(pto="alice@localhost", ptype="subscribed")
    await alice.wait_presence(is_presence("carol@localhost", "subscribed"), "approval")
    carol.send_presence(pto="alice@localhost", ptype="subscribe")
    await alice.wait_presence(is_presence("carol@localhost", "subscribe"), "request")
    alice.send_presence(pto="carol@localhost", ptype="subscribed")
    await carol.wait_presence(is_presence("alice@localhost", "available"), "alice online")
    alice_full = alice.boundjid.full
    seen = len(carol.presences.items)

    cm1.kill()  # SIGKILL: its links and client sockets just close
    disconnected = asyncio.get_running_loop().create_future()
    alice.add_event_handler("disconnected", lambda _e: disconnected.done() or disconnected.set_result(True))
    await asyncio.wait_for(disconnected, 10)
    # Sent while the server still waits for cm1 to come back: queued, then stored offline.
    carol.send_message(mto=alice_full, mbody="are you there?", mtype="chat")
    # The others carry on meanwhile.
    carol.send_message(mto=bob.boundjid.full, mbody="still here", mtype="chat")
    await bob.wait_message(body_is("still here"), "message after cm1 died")
    bob.send_message(mto=carol.boundjid.full, mbody="me too", mtype="chat")
    await carol.wait_message(body_is("me too"), "reply after cm1 died")
    # After the grace the server ends alice's session like any other: carol sees her leave.
    went = is_presence("alice@localhost", "unavailable")
    await carol.wait_presence(
        lambda p: went(p) and any(p is x for x in carol.presences.items[seen:]),
        "alice offline", timeout=15)
    # Nothing was lost: the message waits in offline storage for alice's next login.
    alice2 = server.client("alice")
    await alice2.login()
    await alice2.wait_message(body_is("are you there?"), "message stored while cm1 was dead")


async def test_every_link_down_past_the_grace_gives_clients_system_shutdown(start_server, cms):
    server = start_server(CM_CONFIG)
    cm, proxy = await cms(server, "cmg", via_proxy=True, links=2, grace=2)
    await wait_links(proxy, 2)
    alice = via(cm, "alice", server)
    await alice.login()
    # The server becomes unreachable: no new link can be made, the open ones are cut.
    proxy.server.close()
    await proxy.server.wait_closed()
    while proxy.live():
        proxy.cut(0)
    err = await alice.stream_errors.wait(lambda e: True, "a stream error", timeout=15)
    assert err.get_condition() == "system-shutdown", err


async def test_cm_limits_unauthenticated_connections_per_ip(start_server, cms):
    server = start_server(CM_CONFIG)
    cm, _ = await cms(server, "cml", links=1)
    port = cm.ports["c2s"]
    held = [await asyncio.open_connection(HOST, port) for _ in range(16)]
    # The 17th connection from the same address is closed at once, before any byte is read
    # (EOF, or a reset if the close raced with anything in flight).
    r, w = await asyncio.open_connection(HOST, port)
    try:
        assert await asyncio.wait_for(r.read(100), 5) == b""
    except ConnectionResetError:
        pass
    w.close()
    # Closing one frees its slot.
    held.pop()[1].close()
    async def accepted() -> bool:
        r, w = await asyncio.open_connection(HOST, port)
        w.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
        try:
            data = await asyncio.wait_for(r.read(200), 5)
        except ConnectionResetError:
            # Refused while the slot was not free yet: closed with our header unread.
            data = b""
        w.close()
        return b"stream:stream" in data
    for _ in range(50):
        if await accepted():
            break
        await asyncio.sleep(0.05)  # the CM notices the close asynchronously
    else:
        raise AssertionError("a freed slot was never reused")
    for _, w in held:
        w.close()


async def test_a_stopped_cm_tells_its_clients_and_the_server(start_server, cms):
    # The resume grace is long: the sessions must end because the CM said so, not by timeout.
    server = start_server({**CM_CONFIG, "cm": {"secret": CM_SECRET, "resume_grace_secs": 60}})
    cm1, _ = await cms(server, "cm1")
    alice = via(cm1, "alice", server)
    carol = server.client("carol")
    for c in (alice, carol):
        await c.login(roster=True)
    alice.send_presence(pto="carol@localhost", ptype="subscribe")
    await carol.wait_presence(is_presence("alice@localhost", "subscribe"), "request")
    carol.send_presence(pto="alice@localhost", ptype="subscribed")
    await alice.wait_presence(is_presence("carol@localhost", "subscribed"), "approval")
    carol.send_presence(pto="alice@localhost", ptype="subscribe")
    await alice.wait_presence(is_presence("carol@localhost", "subscribe"), "request")
    alice.send_presence(pto="carol@localhost", ptype="subscribed")
    await carol.wait_presence(is_presence("alice@localhost", "available"), "alice online")
    seen = len(carol.presences.items)

    assert cm1.stop() == 0  # SIGTERM: a clean stop
    err = await alice.stream_errors.wait(lambda e: True, "a stream error")
    assert err.get_condition() == "system-shutdown", err
    went = is_presence("alice@localhost", "unavailable")
    await carol.wait_presence(
        lambda p: went(p) and any(p is x for x in carol.presences.items[seen:]),
        "alice offline well before the 60 s resume grace", timeout=10)


async def test_a_client_behind_a_cm_resumes_its_stream_managed_session(start_server, cms):
    """XEP-0198 through `rookery cm`: slixmpp's xep_0198 plugin enables resumption, its
    connection to the CM dies, it reconnects to the CM and resumes: every message once."""
    server = start_server(CM_CONFIG)
    cm, _ = await cms(server, "cmx")
    romeo = server.client("alice")
    juliet = via(cm, "bob", server)
    juliet.register_plugin("xep_0198")
    loop = asyncio.get_running_loop()
    enabled, gone, resumed = (loop.create_future() for _ in range(3))

    def settle(fut):
        return lambda e: fut.done() or fut.set_result(e)

    juliet.add_event_handler("sm_enabled", settle(enabled))
    await romeo.login()
    await juliet.login()
    sm = await asyncio.wait_for(enabled, 10)
    assert sm["resume"], f"resumption not granted through the CM: {sm}"
    for i in range(1, 4):
        romeo.send_message(mto=juliet.boundjid.full, mbody=f"m{i}", mtype="chat")
    await juliet.wait_message(body_is("m3"), "m3")
    juliet.add_event_handler("disconnected", settle(gone))
    juliet.transport.abort()
    await asyncio.wait_for(gone, 10)
    for i in range(4, 6):
        romeo.send_message(mto=juliet.boundjid.full, mbody=f"m{i}", mtype="chat")
    await romeo.barrier()
    juliet.add_event_handler("session_resumed", settle(resumed))
    juliet.connect(*juliet.address)
    await asyncio.wait_for(resumed, 20)
    await juliet.wait_message(body_is("m5"), "m5 after the resumption")
    await juliet.barrier()
    for i in range(1, 6):
        n = len(juliet.messages.matching(body_is(f"m{i}")))
        assert n == 1, f"m{i} received {n} times"
