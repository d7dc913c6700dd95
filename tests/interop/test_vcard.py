"""XEP-0054 vcard-temp: set your own vCard, read it back, and read someone else's."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import IqError

from slixmpp.plugins.xep_0054 import VCardTemp


def field(card, name: str) -> str | None:
    """Text of a top-level vCard field, read from the XML (slixmpp turns some into lists)."""
    el = card.xml.find(f"{{vcard-temp}}{name}")
    return el.text if el is not None else None


async def get_vcard(client, to: str | None):
    iq = client.make_iq_get(ito=to)
    iq.enable("vcard_temp")
    return (await iq.send(timeout=10))["vcard_temp"]


async def test_set_and_get_vcard(server):
    alice, bob = server.client("alice"), server.client("bob")
    await alice.login()
    await bob.login()

    vcard = VCardTemp()
    vcard["FN"] = "Alice Liddell"
    vcard["NICKNAME"] = "alice"
    vcard["URL"] = "https://example.org/alice"
    iq = alice.make_iq_set()
    iq.append(vcard)
    await iq.send(timeout=10)

    own = await get_vcard(alice, None)  # no 'to': one's own vCard
    assert field(own, "FN") == "Alice Liddell", own
    assert field(own, "NICKNAME") == "alice", own
    assert field(own, "URL") == "https://example.org/alice", own

    theirs = await get_vcard(bob, "alice@localhost")
    assert field(theirs, "FN") == "Alice Liddell", theirs

    # Replace it: a vCard set replaces the whole card.
    vcard2 = VCardTemp()
    vcard2["FN"] = "Alice L."
    iq = alice.make_iq_set()
    iq.append(vcard2)
    await iq.send(timeout=10)
    own = await get_vcard(alice, "alice@localhost")
    assert field(own, "FN") == "Alice L.", own
    assert not field(own, "NICKNAME"), f"old NICKNAME kept after replacing the vCard: {own}"


async def test_empty_vcard(server):
    """A user without a vCard: an empty <vCard/> result (XEP-0054 §3.1) or item-not-found."""
    bob = server.client("bob")
    await bob.login()
    try:
        card = await get_vcard(bob, "carol@localhost")
    except IqError as e:
        assert e.iq["error"]["condition"] == "item-not-found", e.iq
    else:
        assert not field(card, "FN"), card


async def test_cannot_set_someone_elses_vcard(server):
    bob = server.client("bob")
    await bob.login()
    vcard = VCardTemp()
    vcard["FN"] = "Not Alice"
    iq = bob.make_iq_set(ito="alice@localhost")
    iq.append(vcard)
    with pytest.raises(IqError) as err:
        await iq.send(timeout=10)
    assert err.value.iq["error"]["condition"] in ("forbidden", "not-allowed", "service-unavailable", "bad-request"), err.value.iq
