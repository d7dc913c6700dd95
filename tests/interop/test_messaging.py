"""Message routing between two online users, and offline storage with XEP-0203 delay."""

from __future__ import annotations

from slixmpp import JID

from clients import NS_DELAY, body_is, from_bare


async def test_messages_both_ways(server):
    alice, bob = server.client("alice"), server.client("bob")
    await alice.login()
    await bob.login()

    alice.send_message(mto=bob.boundjid.full, mbody="hello bob", mtype="chat")
    got = await bob.wait_message(body_is("hello bob"), "alice's message")
    assert got["from"] == alice.boundjid, f"from={got['from']}"
    assert got["type"] == "chat"

    bob.send_message(mto=alice.boundjid.bare, mbody="hi alice", mtype="chat")
    got = await alice.wait_message(body_is("hi alice"), "bob's reply (to the bare JID)")
    assert got["from"] == bob.boundjid, f"from={got['from']}"


async def test_offline_message_delivered_with_delay(server):
    alice = server.client("alice")
    await alice.login()

    alice.send_message(mto="bob@localhost", mbody="while you were out", mtype="chat")
    # The server has handled the message once it answered a later ping from the same session.
    await alice.barrier()
    assert not alice.messages.matching(lambda m: m["type"] == "error"), (
        "offline message bounced: " + str(alice.messages.items)
    )

    bob = server.client("bob")
    await bob.login()  # initial presence triggers offline delivery
    got = await bob.wait_message(body_is("while you were out"), "the offline message")
    assert got["from"].bare == "alice@localhost"
    delay = got.xml.find(f"{{{NS_DELAY}}}delay")
    assert delay is not None, f"no XEP-0203 <delay/> on the offline message: {got}"
    assert delay.get("stamp"), f"<delay/> without stamp: {got}"
    assert got["delay"]["stamp"] is not None, f"unparseable stamp {delay.get('stamp')!r}"
    # XEP-0203: 'from' is the entity that delayed it (the server); optional, checked if present.
    if delay.get("from"):
        assert JID(delay.get("from")).bare in ("localhost", "alice@localhost"), delay.get("from")
    # delivered exactly once
    await bob.barrier()
    assert len(bob.messages.matching(body_is("while you were out"))) == 1


async def test_message_to_full_jid_of_other_resource_not_duplicated(server):
    """A chat message to a full JID reaches that resource only."""
    bob1 = server.client("bob", resource="one")
    bob2 = server.client("bob", resource="two")
    alice = server.client("alice")
    for c in (bob1, bob2, alice):
        await c.login()
    alice.send_message(mto=bob1.boundjid.full, mbody="only for one", mtype="chat")
    await bob1.wait_message(body_is("only for one"), "message to bob/one")
    await alice.barrier()
    await bob2.barrier()
    assert not bob2.messages.matching(body_is("only for one")), "delivered to bob/two as well"
    assert from_bare("alice@localhost")(bob1.messages.matching(body_is("only for one"))[0])
