"""Rookery as jabberd2's router: Debian's jabberd2 sm and c2s serve jd2.localhost through
Rookery's router listener, and their users talk with Rookery's users (see conftest.py)."""

from __future__ import annotations

import asyncio
import ssl

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

import pytest

from clients import EVENT_TIMEOUT, LOGIN_TIMEOUT, LoginFailed, insecure_context
from jabberd2 import poll
from conftest import JD2_DOMAIN, PASSWORD


class Registrar(slixmpp.ClientXMPP):
    """Creates an account on jabberd2's c2s with in-band registration (XEP-0077) over
    STARTTLS: c2s stores it in its authreg DB and asks sm (through Rookery's router) to create
    the user — the session protocol's `create`/`created`, which needs the router to keep
    namespaced attributes intact."""

    def __init__(self, jid: str, password: str, port: int):
        super().__init__(jid, password)
        self.port = port
        self.ssl_context: ssl.SSLContext = insecure_context()
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        self.register_plugin("xep_0077")
        self.plugin["xep_0077"].force_registration = True
        self.result: asyncio.Future = asyncio.get_running_loop().create_future()
        self.add_event_handler("register", self._register)

    async def _register(self, _form) -> None:
        iq = self.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = self.boundjid.user
        iq["register"]["password"] = self.password
        try:
            await iq.send(timeout=EVENT_TIMEOUT)
            outcome = "registered"
        except IqError as e:
            outcome = f"refused: {e.iq['error']['condition']}"
        except IqTimeout:
            outcome = "no answer"
        if not self.result.done():
            self.result.set_result(outcome)
        self.disconnect()

    async def run(self) -> str:
        self.connect(host="127.0.0.1", port=self.port)
        try:
            return await asyncio.wait_for(self.result, LOGIN_TIMEOUT)
        finally:
            self.disconnect()


async def register(world, user: str) -> None:
    r = Registrar(f"{user}@{JD2_DOMAIN}", PASSWORD, world.jd2.c2s_port)
    assert await r.run() == "registered"


async def test_jabberd2_components_bind_through_rookery(world):
    """sm took its domain and c2s its name on Rookery's router (sm over STARTTLS, c2s in
    plaintext, both with DIGEST-MD5); both logged that they are up."""
    err = world.rookery.stderr_text()
    assert 'name="jd2.localhost"' in err and 'name="c2s"' in err, world.rookery.stderr_tail()
    assert "tls=true" in err and "tls=false" in err, world.rookery.stderr_tail()


async def test_messages_flow_both_ways(world):
    await register(world, "bob")
    bob = world.jd2_client("bob")
    alice = world.rookery_client("alice")
    await bob.login()
    await alice.login()

    alice.send_message(mto=f"bob@{JD2_DOMAIN}", mbody="hello from rookery", mtype="chat")
    got = await bob.messages.wait(lambda m: m["body"] == "hello from rookery", "alice's message")
    assert got["from"].bare == "alice@localhost"
    assert got["type"] == "chat"

    bob.send_message(mto="alice@localhost", mbody="hello from jabberd2", mtype="chat")
    got = await alice.messages.wait(lambda m: m["body"] == "hello from jabberd2", "bob's message")
    assert got["from"].bare == f"bob@{JD2_DOMAIN}"
    assert got["from"].resource, "the full JID of bob's jabberd2 session"

    # Neither jabberd2 process saw a route error or a stream error from its router.
    for proc in world.jd2.procs:
        log = proc.text()
        assert "error from router" not in log and "router refused" not in log, log[-3000:]


def is_presence(frm: str, ptype: str):
    bare = frm
    return lambda p: p["from"].bare == bare and p["type"] == ptype


async def test_mutual_subscription_across_the_router(world):
    """RFC 6121 subscriptions between a Rookery user and a jabberd2 user: both rosters (one in
    Rookery's store, one in jabberd2 sm's Berkeley DB) end in 'both', and presence flows both
    ways, including unavailable when bob leaves."""
    await register(world, "bob")
    bob = world.jd2_client("bob")
    alice = world.rookery_client("alice")
    await bob.login(roster=True)
    await alice.login(roster=True)
    A, B = "alice@localhost", f"bob@{JD2_DOMAIN}"

    alice.send_presence(pto=B, ptype="subscribe")
    await bob.wait_presence(is_presence(A, "subscribe"), "alice's subscription request")
    bob.send_presence(pto=A, ptype="subscribed")
    await alice.wait_presence(is_presence(B, "subscribed"), "bob's approval")
    await alice.wait_presence(is_presence(B, "available"), "bob's presence")

    bob.send_presence(pto=A, ptype="subscribe")
    await alice.wait_presence(is_presence(B, "subscribe"), "bob's subscription request")
    alice.send_presence(pto=B, ptype="subscribed")
    await bob.wait_presence(is_presence(A, "subscribed"), "alice's approval")
    await bob.wait_presence(is_presence(A, "available"), "alice's presence")

    for client, contact in ((alice, B), (bob, A)):
        iq = client.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        res = await iq.send(timeout=EVENT_TIMEOUT)
        item = res["roster"]["items"].get(contact)
        assert item is not None and item["subscription"] == "both", res

    alice.send_presence(pshow="away", pstatus="lunch")
    await bob.wait_presence(
        lambda p: p["from"].bare == A and p["show"] == "away" and p["status"] == "lunch",
        "alice's away presence")
    await bob.close()
    await alice.wait_presence(is_presence(B, "unavailable"), "bob's unavailable presence")


async def test_sm_going_away_unbinds_its_domain(world):
    """When jabberd2's sm disconnects, Rookery releases jd2.localhost and tells c2s (the
    unavailable domain presence): c2s ends bob's session and answers new streams for the
    domain with `host-gone`, and a message from Rookery to the domain bounces instead of
    vanishing into a dead link."""
    await register(world, "bob")
    bob = world.jd2_client("bob")
    await bob.login()
    alice = world.rookery_client("alice")
    await alice.login()
    ended: asyncio.Future = asyncio.get_running_loop().create_future()
    bob.add_event_handler("disconnected", lambda e: ended.done() or ended.set_result(e))
    world.jd2.stop_sm()
    await asyncio.wait_for(ended, EVENT_TIMEOUT)
    # c2s now refuses streams for the domain: its sm is not available.
    again = world.jd2_client("bob")
    with pytest.raises(LoginFailed) as refused:
        await again.login()
    assert "host-gone" in str(refused.value), refused.value
    alice.send_message(mto=f"bob@{JD2_DOMAIN}", mbody="anyone there?", mtype="chat")
    err = await alice.messages.wait(lambda m: m["type"] == "error", "a bounce")
    # Federation is off in this world, so the now unknown domain is unreachable.
    assert err["error"]["condition"] == "remote-server-not-found", err


async def test_second_c2s_is_refused_its_name_and_exits(world):
    """A second jabberd2 c2s binding the name `c2s` gets jabberd2's 409 from Rookery and exits
    (jabberd2 c2s gives up on a bind error); the first keeps serving."""
    extra = world.jd2.start_extra_c2s()
    await asyncio.to_thread(extra.wait_exit)
    log = extra.text()
    assert "router refused bind request (409)" in log, log[-2000:]
    assert "ready for connections" not in log, log[-2000:]
    # The first c2s still has its name: registration through it reaches sm and back.
    await register(world, "carol")


async def test_router_restart_is_survived(world):
    """Rookery restarts (SIGTERM: system-shutdown to every router link); jabberd2's sm and c2s
    reconnect within their retry budget, authenticate and bind again, and messages flow."""
    await register(world, "bob")
    world.rookery.stop()
    world.rookery.start()
    # jabberd2 retries once a second. c2s logs "ready for connections" once its bind is back;
    # sm's binds show in Rookery's log (the only signals either side gives).
    c2s = world.jd2.procs[1]
    await asyncio.to_thread(c2s.wait_for_count, "ready for connections", 2)
    await asyncio.to_thread(
        poll, lambda: world.rookery.stderr_text().count('name="jd2.localhost"') >= 1,
        "sm's bind on the restarted Rookery")
    bob = world.jd2_client("bob")
    alice = world.rookery_client("alice")
    await bob.login()
    await alice.login()
    alice.send_message(mto=f"bob@{JD2_DOMAIN}", mbody="after the restart", mtype="chat")
    await bob.messages.wait(lambda m: m["body"] == "after the restart", "alice's message")
    bob.send_message(mto="alice@localhost", mbody="still here", mtype="chat")
    await alice.messages.wait(lambda m: m["body"] == "still here", "bob's message")
