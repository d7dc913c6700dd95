"""Limits that keep one peer from hurting others (XEP-0205): a client
that stops reading is disconnected without losing the messages meant for it; a flood of
unauthenticated connections from one address does not stop other users; repeated wrong
passwords lead to a ban of the address, never of the account; resource conflicts follow the
configured policy. Raw sockets throughout, so each step is explicit."""

from __future__ import annotations

import asyncio
import re

import pytest

from conftest import PASSWORD
from rawxmpp import NS_SASL, NS_STREAM, RawClient, StreamClosed, _tag, to_xml

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


async def read_ids_until_closed(raw: RawClient, deadline: float) -> list[str]:
    """Every message id the client can still read, until the server closes the stream."""
    ids = []
    while True:
        try:
            el = await raw.read_element(deadline)
        except StreamClosed:
            return ids
        except AssertionError:
            # A message cut off by the close: not counted as received.
            return ids
        if _tag(el)[1] == "message" and el.get("id"):
            ids.append(el.get("id"))


N_FLOOD = 800


async def flood_a_client_that_reads_nothing(start_server, **limits):
    """Bob logs in and reads nothing; Alice (unshaped: at the default 32 KiB/s her 13 MB would
    take minutes) sends him ~13 MB, far more than socket buffers hold, and is still served
    afterwards. Returns the server and Bob."""
    server = start_server({
        "limits": {"session_mailbox": 16, "c2s_rate_bytes": 0, "c2s_rate_stanzas": 0, **limits},
        "c2s": {"ping_interval_secs": 0},
    })
    bob = server.raw()
    await bob.login("bob", PASSWORD, resource="slow")
    await bob.send("<presence/>")
    alice = server.raw()
    await alice.login("alice", PASSWORD, resource="fast")
    body = "x" * 16000
    for i in range(N_FLOOD):
        await alice.send(f"<message to='bob@localhost' type='chat' id='m{i}'><body>{body}</body></message>")
    await alice.send("<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    while True:
        el = await alice.read_element(30)
        if el.get("id") == "still":
            assert el.get("type") == "result"
            return server, bob


async def the_rest_waits_offline(server, got_live: list[str]) -> None:
    """What Bob did not receive live waits in offline storage for his next login."""
    bob2 = server.raw()
    await bob2.login("bob", PASSWORD, resource="again")
    await bob2.send("<presence/>")
    got_offline = []
    want = {f"m{i}" for i in range(N_FLOOD)}
    while not want <= set(got_live) | set(got_offline):
        el = await bob2.read_element(30)
        if _tag(el)[1] == "message":
            got_offline.append(el.get("id"))
    assert set(got_live) | set(got_offline) == want


async def test_slow_reader_is_disconnected_and_nothing_is_lost(start_server):
    # Bob counts as a slow reader once his socket takes nothing for 2 s.
    server, bob = await flood_a_client_that_reads_nothing(start_server, write_timeout_secs=2)
    # Bob still reads nothing until the server has dropped him.
    await server.wait_log(r'jid=bob@localhost/slow what="slow-reader"', 30)
    got_live = await read_ids_until_closed(bob, 60)
    assert len(got_live) < N_FLOOD, "the slow reader was never disconnected"
    await the_rest_waits_offline(server, got_live)


async def test_shutdown_does_not_wait_for_a_slow_reader_and_loses_nothing(start_server):
    """Regression: a session blocked writing to a client that reads nothing held SIGTERM up for
    the whole write timeout ("sessions did not end within 10 s")."""
    server, bob = await flood_a_client_that_reads_nothing(start_server)
    # Bob's socket is full and his session is blocked writing to it: now stop the server.
    server.stop_and_check()
    assert "did not end within" not in server.stderr_text(), server.stderr_tail(20)
    got_live = await read_ids_until_closed(bob, 30)
    server.start()
    await the_rest_waits_offline(server, got_live)


async def test_unauthenticated_flood_from_one_address_spares_others(start_server):
    server = start_server({"limits": {"unauth_per_ip": 8}})
    alice = server.raw()
    await alice.login("alice", PASSWORD, resource="a")
    # 40 connections from another address (127.0.0.2) that never authenticate.
    flood = [
        await asyncio.open_connection(server.host, server.c2s_port, local_addr=("127.0.0.2", 0))
        for _ in range(40)
    ]
    # Beyond the cap the server closes them at once, before reading anything.
    closed = 0
    for r, _ in flood:
        try:
            data = await asyncio.wait_for(r.read(1), 0.5)
            closed += data == b""
        except asyncio.TimeoutError:
            pass
    assert closed == 40 - 8, f"{closed} of the 32 over-cap connections were closed"
    # The logged-in user keeps working, and a new login from another address works.
    await alice.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert (await alice.expect("jabber:client", "iq", 10)).get("type") == "result"
    bob = server.raw()
    await bob.login("bob", PASSWORD, resource="b")
    for _, w in flood:
        w.close()


async def failed_auth(server) -> RawClient:
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    await raw.starttls()
    return raw


async def test_brute_force_bans_the_address_not_the_account(start_server):
    server = start_server({"limits": {"auth_failures_per_ip": 2, "auth_ban_threshold": 4}})
    raw = await failed_auth(server)
    for _ in range(4):
        with pytest.raises(AssertionError, match="not-authorized"):
            await raw.auth_scram_sha256("alice", "wrong password")
    # Banned: even the right password is refused now, and the stream is closed.
    await raw.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiYw==</auth>")
    el = await raw.read_element(10)
    assert _tag(el) == (NS_SASL, "failure") and el.find(f"{{{NS_SASL}}}temporary-auth-failure") is not None, to_xml(el)
    info = await raw.expect_stream_error(10)
    assert info.conditions == ["policy-violation"]
    # The account is not locked: from another address the right password works at once.
    other = server.raw()
    other.local_host = "127.0.0.2"
    await other.login("alice", PASSWORD, resource="elsewhere")


@pytest.mark.parametrize("policy", ["kick_old", "refuse_new", "random_suffix"])
async def test_resource_conflict_policies(start_server, policy):
    server = start_server({"c2s": {"resource_conflict": policy}})
    first = server.raw()
    await first.login("alice", PASSWORD, resource="desk")
    second = server.raw()
    await second.connect()
    await second.open_stream()
    await second.starttls()
    await second.auth_scram_sha256("alice", PASSWORD)
    await second.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>desk</resource></bind></iq>")
    res = await second.expect("jabber:client", "iq", 10)
    if policy == "refuse_new":
        assert res.get("type") == "error" and res.find(f".//{{{NS_STANZAS}}}conflict") is not None, to_xml(res)
        return
    assert res.get("type") == "result", to_xml(res)
    jid = res.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid").text
    if policy == "random_suffix":
        assert jid.startswith("alice@localhost/desk") and jid != "alice@localhost/desk"
        # The first session is untouched.
        await first.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert (await first.expect("jabber:client", "iq", 10)).get("type") == "result"
    else:
        assert jid == "alice@localhost/desk"
        info = await first.expect_stream_error(10)
        assert info.conditions == ["conflict"]


async def test_resource_cap(start_server):
    server = start_server({"c2s": {"max_resources": 2}})
    for r in ("one", "two"):
        c = server.raw()
        await c.login("alice", PASSWORD, resource=r)
    third = server.raw()
    await third.connect()
    await third.open_stream()
    await third.starttls()
    await third.auth_scram_sha256("alice", PASSWORD)
    await third.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three</resource></bind></iq>")
    res = await third.expect("jabber:client", "iq", 10)
    assert res.get("type") == "error" and res.find(f".//{{{NS_STANZAS}}}resource-constraint") is not None, to_xml(res)


async def test_advertised_stream_limits_match_the_enforced_ones(start_server):
    """XEP-0478: before login the limits are the pre-auth stanza size and the auth deadline."""
    from rawxmpp import NS_LIMITS

    server = start_server({"limits": {"preauth_stanza_bytes": 9000, "auth_timeout_secs": 25}})
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    limits = raw.feature(NS_LIMITS, "limits")
    assert limits is not None
    assert limits.find(f"{{{NS_LIMITS}}}max-bytes").text == "9000"
    assert limits.find(f"{{{NS_LIMITS}}}idle-seconds").text == "25"


async def test_connection_attempts_per_minute_are_limited(start_server):
    """XEP-0205 §3: beyond the per-minute budget an address's connections are closed at once;
    other addresses are unaffected."""
    server = start_server({"limits": {"connects_per_minute_per_ip": 5}})
    conns = [
        await asyncio.open_connection(server.host, server.c2s_port, local_addr=("127.0.0.3", 0))
        for _ in range(8)
    ]
    closed = 0
    for r, _ in conns:
        try:
            closed += await asyncio.wait_for(r.read(1), 0.5) == b""
        except asyncio.TimeoutError:
            pass
    assert closed == 3, f"{closed} of the 3 attempts over the budget were closed"
    assert 'what="connect-rate"' in server.stderr_text()
    alice = server.raw()
    await alice.login("alice", PASSWORD, resource="a")
    for _, w in conns:
        w.close()
