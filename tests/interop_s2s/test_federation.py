"""Rookery federating with Debian's Prosody 0.12 and ejabberd 23.01, in both directions, with
Server Dialback and with TLS + SASL EXTERNAL (see conftest.py for the two worlds).

For each peer and mode:
- messages: a Rookery user and a peer user exchange chat messages both ways (bare JID, then
  full JID); `from` is the sender's full JID and the body arrives intact; then Rookery's log
  must name the expected authentication method for its outgoing stream to the peer
  (`what="s2s-out" ... method="dialback"|"sasl-external"`) and for the peer's incoming one
  (`what="s2s-in"`, "(dialback)" | "(SASL EXTERNAL)");
- subscriptions, Rookery user first: the Rookery user subscribes, the peer user approves; the
  subscriber gets its ask="subscribe" roster push, `subscribed`, the roster push with the new
  state and the contact's available presence, and the contact gets its roster push; then the
  same in the other direction, ending with "both" (no pending ask) in a fresh roster get on
  both servers;
- subscriptions, peer user first: the same with the roles swapped, so each server is also
  the first to open a stream in the other direction.

Waits are failure deadlines on events, never sleeps. A stanza that bounces (an error from the
addressee's domain) fails the test at once with the error, rather than at the deadline. The
first stanza to a domain also sets up the s2s stream (DNS, TCP, STARTTLS, authentication, and
for dialback a connection back to the sender's authoritative server), so it gets a longer
deadline.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Callable

import pytest
from slixmpp import JID

from clients import Inbox, TestClient
from s2s_world import PEER_DOMAINS, PEERS

FIRST_S2S_TIMEOUT = 40.0
S2S_TIMEOUT = 20.0

pytestmark = pytest.mark.parametrize("peer", PEERS)

Pred = Callable[[Any], bool]


def presence_of(jid: str, ptype: str) -> Pred:
    """Presence of `ptype` from `jid` (slixmpp reports a presence without a type as
    "available", or as its <show/> value)."""
    bare = JID(jid).bare
    if ptype == "available":
        ok = ("available", "chat", "away", "xa", "dnd")
        return lambda st: st["from"].bare == bare and st["type"] in ok
    return lambda st: st["from"].bare == bare and st["type"] == ptype


def roster_push_for(jid: str, subscription: str | None = None, ask: str | None = None) -> Pred:
    """A roster push carrying `jid` with this subscription and/or ask."""
    bare = JID(jid).bare

    def pred(iq) -> bool:
        for item_jid, item in iq["roster"]["items"].items():
            if JID(item_jid).bare != bare:
                continue
            if subscription is not None and (item.get("subscription") or "none") != subscription:
                continue
            if ask is not None and item.get("ask") != ask:
                continue
            return True
        return False

    return pred


def bounce_from(jid: str) -> Pred:
    """An error stanza (message or presence) about `jid`: what a sender gets back when its
    server (or the remote one) cannot deliver."""
    bare = JID(jid).bare
    return lambda st: st["type"] == "error" and st["from"].bare in (bare, JID(jid).domain)


async def arrives(inbox: Inbox, pred: Pred, what: str, *, bounce: tuple[Inbox, Pred] | None,
                  timeout: float) -> Any:
    """The first stanza in `inbox` matching `pred`; fails at once if the sender's inbox gets a
    bounce first."""
    want = asyncio.ensure_future(inbox.wait(pred, what, timeout))
    if bounce is None:
        return await want
    b_inbox, b_pred = bounce
    err = asyncio.ensure_future(b_inbox.wait(b_pred, f"bounce instead of {what}", timeout + 5))
    try:
        done, _ = await asyncio.wait({want, err}, return_when=asyncio.FIRST_COMPLETED)
        if want in done:
            return want.result()
        raise AssertionError(f"{what}: the sender got an error instead:\n  {err.result()}")
    finally:
        for f in (want, err):
            if not f.done():
                f.cancel()
        await asyncio.gather(want, err, return_exceptions=True)


async def login(*clients: TestClient) -> None:
    for c in clients:
        await c.login(roster=True)
        c.assert_secure_scram()


def check_rookery_auth(world, peer: str) -> None:
    """Rookery's log says how its stream to the peer and the peer's stream to it were
    authenticated."""
    domain = PEER_DOMAINS[peer]
    want_out, want_in = {
        "dialback": ("dialback", "(dialback)"),
        "external": ("sasl-external", "(SASL EXTERNAL)"),
    }[world.mode]
    out = world.rookery_auth_lines("s2s-out", domain)
    assert out, f"Rookery logged no s2s-out line for {domain}"
    assert all(f'method="{want_out}"' in ln or f"method={want_out} " in ln for ln in out), (
        f"Rookery's outgoing stream to {domain} was not authenticated with {want_out}:\n"
        + "\n".join(out)
    )
    inc = world.rookery_auth_lines("s2s-in", domain)
    assert inc, f"Rookery logged no s2s-in line for {domain}"
    assert all(want_in in ln for ln in inc), (
        f"{domain}'s stream to Rookery was not authenticated with {want_in}:\n" + "\n".join(inc)
    )


async def test_messages_both_ways(world, xmpp, peer):
    r_jid, r = xmpp("rookery", "romeo")
    p_jid, p = xmpp(peer, "juliet")
    await login(r, p)
    tag = secrets.token_hex(4)

    text = f"rookery to {peer} {tag} <&> ünïcødé"
    r.send_message(mto=p_jid, mbody=text, mtype="chat")
    got = await arrives(p.messages, lambda m: m["type"] == "chat" and m["body"] == text,
                        f"chat from {r_jid} at {p_jid}", bounce=(r.messages, bounce_from(p_jid)),
                        timeout=FIRST_S2S_TIMEOUT)
    assert got["from"] == r.boundjid, f"from {got['from']}, sent by {r.boundjid}"
    assert got["to"].bare == p_jid

    reply = f"{peer} to rookery {tag} «ok»"
    p.send_message(mto=r_jid, mbody=reply, mtype="chat")
    back = await arrives(r.messages, lambda m: m["type"] == "chat" and m["body"] == reply,
                         f"chat from {p_jid} at {r_jid}", bounce=(p.messages, bounce_from(r_jid)),
                         timeout=FIRST_S2S_TIMEOUT)
    assert back["from"] == p.boundjid, f"from {back['from']}, sent by {p.boundjid}"
    assert back["to"].bare == r_jid

    # Full JIDs both ways over the streams that now exist.
    there, here = f"to full jid {tag}", f"back to full jid {tag}"
    r.send_message(mto=p.boundjid.full, mbody=there, mtype="chat")
    await arrives(p.messages, lambda m: m["body"] == there, "chat to the peer's full JID",
                  bounce=(r.messages, bounce_from(p_jid)), timeout=S2S_TIMEOUT)
    p.send_message(mto=r.boundjid.full, mbody=here, mtype="chat")
    await arrives(r.messages, lambda m: m["body"] == here, "chat to Rookery's full JID",
                  bounce=(p.messages, bounce_from(r_jid)), timeout=S2S_TIMEOUT)

    for c in (r, p):
        errors = c.messages.matching(lambda m: m["type"] == "error")
        assert not errors, f"{c.boundjid} got error messages: {[str(e) for e in errors]}"
    check_rookery_auth(world, peer)


async def subscribe_and_approve(sub: TestClient, sub_jid: str, contact: TestClient,
                                contact_jid: str, *, sub_after: str, contact_after: str) -> None:
    """`sub` subscribes to `contact`, who approves (RFC 6121 §3.1): `sub`'s roster push with
    ask="subscribe" (§3.1.2), the request reaching `contact` from `sub`'s bare JID (§3.1.3),
    `contact`'s roster push after approving (§3.1.5), `subscribed` and the roster push
    reaching `sub` (§3.1.6), then `contact`'s available presence reaching `sub` (§3.1.5)."""
    sub.send_presence(pto=contact_jid, ptype="subscribe")
    await sub.roster_pushes.wait(roster_push_for(contact_jid, ask="subscribe"),
                                 f"roster push with ask=subscribe for {contact_jid}",
                                 timeout=S2S_TIMEOUT)
    req = await arrives(contact.presences, presence_of(sub_jid, "subscribe"),
                        f"subscribe from {sub_jid} at {contact_jid}",
                        bounce=(sub.presences, bounce_from(contact_jid)),
                        timeout=FIRST_S2S_TIMEOUT)
    assert req["to"].bare == contact_jid
    assert not req["from"].resource, f"subscription request from a full JID: {req['from']}"

    contact.send_presence(pto=sub_jid, ptype="subscribed")
    await contact.roster_pushes.wait(roster_push_for(sub_jid, contact_after),
                                     f"roster push subscription={contact_after} for {sub_jid}",
                                     timeout=S2S_TIMEOUT)
    await arrives(sub.presences, presence_of(contact_jid, "subscribed"),
                  f"subscribed from {contact_jid} at {sub_jid}",
                  bounce=(contact.presences, bounce_from(sub_jid)), timeout=FIRST_S2S_TIMEOUT)
    await sub.roster_pushes.wait(roster_push_for(contact_jid, sub_after),
                                 f"roster push subscription={sub_after} for {contact_jid}",
                                 timeout=S2S_TIMEOUT)
    seen = await sub.wait_presence(presence_of(contact_jid, "available"),
                                   f"available presence of {contact_jid}", timeout=S2S_TIMEOUT)
    assert seen["from"] == contact.boundjid, f"presence from {seen['from']}"


async def assert_roster_both(c: TestClient, contact: str) -> None:
    """The server's roster has `contact` with subscription "both" and no pending ask. A plain
    roster get without `ver`: slixmpp's get_roster() sends the last version it saw, which a
    server may answer with an empty result (RFC 6121 §2.6.3)."""
    iq = c.make_iq_get(queryxmlns="jabber:iq:roster")
    result = await iq.send(timeout=S2S_TIMEOUT)
    items = {JID(j).bare: (i.get("subscription") or "none", i.get("ask") or "")
             for j, i in result["roster"]["items"].items()}
    assert items.get(JID(contact).bare) == ("both", ""), f"{c.boundjid.bare}'s roster: {items}"


async def test_subscriptions_rookery_user_first(xmpp, peer):
    r_jid, r = xmpp("rookery", "romeo")
    p_jid, p = xmpp(peer, "juliet")
    await login(r, p)
    await subscribe_and_approve(r, r_jid, p, p_jid, sub_after="to", contact_after="from")
    await subscribe_and_approve(p, p_jid, r, r_jid, sub_after="both", contact_after="both")
    await assert_roster_both(r, p_jid)
    await assert_roster_both(p, r_jid)


async def test_subscriptions_peer_user_first(xmpp, peer):
    r_jid, r = xmpp("rookery", "mercutio")
    p_jid, p = xmpp(peer, "nurse")
    await login(r, p)
    await subscribe_and_approve(p, p_jid, r, r_jid, sub_after="to", contact_after="from")
    await subscribe_and_approve(r, r_jid, p, p_jid, sub_after="both", contact_after="both")
    await assert_roster_both(r, p_jid)
    await assert_roster_both(p, r_jid)
