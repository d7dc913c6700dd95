"""RFC 6121 roster and presence subscription: alice and bob add each other, both subscribe and
both approve; both rosters end with subscription='both' and each sees the other's presence."""

from __future__ import annotations

from clients import from_bare


def is_presence(frm: str, ptype: str):
    match = from_bare(frm)
    return lambda p: match(p) and p["type"] == ptype


def push_for(jid: str, subscription: str | None = None, ask: str | None = None):
    def pred(iq):
        item = iq["roster"]["items"].get(jid)
        if item is None:
            return False
        if subscription is not None and item["subscription"] != subscription:
            return False
        if ask is not None and item.get("ask") != ask:
            return False
        return True

    return pred


async def roster_item(client, jid: str) -> dict:
    iq = client.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    res = await iq.send(timeout=10)
    items = res["roster"]["items"]
    assert jid in items, f"{jid} missing from {client.boundjid.bare}'s roster: {res}"
    return items[jid]


async def test_mutual_subscription_ends_in_both(server):
    alice, bob = server.client("alice"), server.client("bob")
    # roster=True: fetch the roster first, which makes the resource "interested" in roster
    # pushes (RFC 6121 2.1.6); only interested resources get them.
    await alice.login(roster=True)
    await bob.login(roster=True)
    A, B = "alice@localhost", "bob@localhost"

    # Both add each other to their rosters (roster set -> a push to the user).
    await alice.update_roster(B, name="Bob", groups=["Friends"])
    await alice.roster_pushes.wait(push_for(B, subscription="none"), "roster push for bob")
    await bob.update_roster(A, name="Alice", groups=["Friends"])
    await bob.roster_pushes.wait(push_for(A, subscription="none"), "roster push for alice")

    # alice subscribes to bob; bob sees the request and approves.
    alice.send_presence(pto=B, ptype="subscribe")
    await bob.wait_presence(is_presence(A, "subscribe"), "alice's subscription request")
    bob.send_presence(pto=A, ptype="subscribed")
    await alice.wait_presence(is_presence(B, "subscribed"), "bob's approval")
    await alice.roster_pushes.wait(push_for(B, subscription="to"), "push: alice->bob 'to'")
    await bob.roster_pushes.wait(push_for(A, subscription="from"), "push: bob->alice 'from'")
    # the contact's current presence follows the approval (RFC 6121 3.1.6)
    await alice.wait_presence(is_presence(B, "available"), "bob's presence")

    # bob subscribes to alice; alice approves.
    bob.send_presence(pto=A, ptype="subscribe")
    await alice.wait_presence(is_presence(B, "subscribe"), "bob's subscription request")
    alice.send_presence(pto=B, ptype="subscribed")
    await bob.wait_presence(is_presence(A, "subscribed"), "alice's approval")
    await alice.roster_pushes.wait(push_for(B, subscription="both"), "push: alice->bob 'both'")
    await bob.roster_pushes.wait(push_for(A, subscription="both"), "push: bob->alice 'both'")
    await bob.wait_presence(is_presence(A, "available"), "alice's presence")

    # The stored rosters agree.
    a_item = await roster_item(alice, B)
    b_item = await roster_item(bob, A)
    assert a_item["subscription"] == "both", a_item
    assert b_item["subscription"] == "both", b_item
    assert a_item["name"] == "Bob" and "Friends" in a_item["groups"], a_item
    assert b_item["name"] == "Alice" and "Friends" in b_item["groups"], b_item

    # Presence now flows both ways: a status change reaches the contact...
    alice.send_presence(pshow="away", pstatus="lunch")
    p = await bob.wait_presence(
        lambda p: from_bare(A)(p) and p["show"] == "away" and p["status"] == "lunch",
        "alice's away presence",
    )
    assert p["from"] == alice.boundjid
    # ...and going offline is seen as unavailable.
    await bob.close()
    await alice.wait_presence(is_presence(B, "unavailable"), "bob's unavailable presence")


async def test_roster_survives_relogin(server):
    alice = server.client("alice", resource="first")
    await alice.login(roster=True)
    await alice.update_roster("carol@localhost", name="Carol", groups=["Work"])
    await alice.close()

    again = server.client("alice", resource="second")
    await again.login(roster=True)
    item = await roster_item(again, "carol@localhost")
    assert item["name"] == "Carol" and item["subscription"] == "none", item
