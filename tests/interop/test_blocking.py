"""XEP-0191 blocking command: a blocked contact's message is not delivered; after unblocking it
is."""

from __future__ import annotations

from clients import body_is


async def test_block_and_unblock(server):
    alice, bob = server.client("alice"), server.client("bob")
    await alice.login()
    await bob.login()

    # Before: messages flow.
    bob.send_message(mto="alice@localhost", mbody="before block", mtype="chat")
    await alice.wait_message(body_is("before block"), "message before the block")

    await alice.plugin["xep_0191"].block("bob@localhost", timeout=10)
    blocked = await alice.plugin["xep_0191"].get_blocked_jids(timeout=10)
    assert {j.bare for j in blocked} == {"bob@localhost"}, blocked

    bob.send_message(mto="alice@localhost", mbody="while blocked", mtype="chat")
    bob.send_message(mto=alice.boundjid.full, mbody="while blocked, full jid", mtype="chat")
    # Barriers: bob's messages are handled before bob's ping is answered; anything they put in
    # alice's mailbox arrives before the answer to alice's later ping.
    await bob.barrier()
    await alice.barrier()
    leaked = alice.messages.matching(lambda m: "while blocked" in (m["body"] or ""))
    assert not leaked, f"blocked contact's message delivered: {leaked}"
    # XEP-0191 §3.5: the sender SHOULD get an error (service-unavailable) back.
    errors = bob.messages.matching(lambda m: m["type"] == "error")
    for e in errors:
        assert e["error"]["condition"] == "service-unavailable", e

    await alice.plugin["xep_0191"].unblock("bob@localhost", timeout=10)
    blocked = await alice.plugin["xep_0191"].get_blocked_jids(timeout=10)
    assert not blocked, blocked

    bob.send_message(mto="alice@localhost", mbody="after unblock", mtype="chat")
    got = await alice.wait_message(body_is("after unblock"), "message after unblock")
    assert got["from"].bare == "bob@localhost"


async def test_message_to_blocked_contact_is_refused(server):
    """Blocking also stops messages in the other direction (XEP-0191 §3.4: the user's server
    must not deliver the user's outbound stanzas to the blocked contact)."""
    alice, bob = server.client("alice"), server.client("bob")
    await alice.login()
    await bob.login()
    await alice.plugin["xep_0191"].block("bob@localhost", timeout=10)
    alice.send_message(mto="bob@localhost", mbody="to someone I blocked", mtype="chat")
    await alice.barrier()
    await bob.barrier()
    assert not bob.messages.matching(body_is("to someone I blocked")), "outbound stanza to a blocked contact delivered"
    errs = alice.messages.matching(lambda m: m["type"] == "error")
    assert errs, "no error for a message to a blocked contact (XEP-0191: not-acceptable)"
    assert errs[0]["error"]["condition"] == "not-acceptable", errs[0]
