"""XEP-0114 external components: slixmpp's ComponentXMPP (a real third-party implementation of
the component side) connects to Rookery's component listener, and slixmpp clients talk to it
through the server."""

from __future__ import annotations

import pytest

from clients import body_is
from echo_component import ComponentRefused
from rookery_harness import with_components

DOMAIN = "echo.localhost"
SECRET = "echo-component-secret"


async def test_echo_component_answers_clients(start_server):
    server = start_server(with_components({DOMAIN: SECRET}))
    echo = server.echo_component(DOMAIN, SECRET)
    await echo.start()
    alice = server.client("alice")
    await alice.login()

    for i in range(3):
        alice.send_message(mto=DOMAIN, mbody=f"hello {i}", mtype="chat")
        got = await alice.wait_message(body_is(f"echo: hello {i}"), f"echo {i}")
        assert got["from"] == DOMAIN, f"from={got['from']}"
    seen = await echo.wait_message(body_is("hello 0"), "alice's first message")
    assert seen["from"] == alice.boundjid, f"the server stamps the sender: {seen['from']}"

    # A user at the component's domain and one at its subdomain are the component's too.
    for to in (f"bot@{DOMAIN}", f"bot@room.{DOMAIN}"):
        alice.send_message(mto=to, mbody=f"to {to}", mtype="chat")
        got = await alice.wait_message(body_is(f"echo: to {to}"), f"echo from {to}")
        assert got["from"] == to, f"from={got['from']}"


async def test_disco_items_list_the_component(start_server):
    server = start_server(with_components({DOMAIN: SECRET}))
    echo = server.echo_component(DOMAIN, SECRET)
    await echo.start()
    alice = server.client("alice")
    await alice.login()
    items = await alice.plugin["xep_0030"].get_items(jid=server.domain, timeout=10)
    jids = [item[0] for item in items["disco_items"]["items"]]
    assert jids == [DOMAIN], jids


async def test_wrong_secret_is_refused_and_messages_bounce(start_server):
    server = start_server(with_components({DOMAIN: SECRET}))
    intruder = server.echo_component(DOMAIN, "guessed")
    with pytest.raises(ComponentRefused, match="not-authorized"):
        await intruder.start()

    alice = server.client("alice")
    await alice.login()
    alice.send_message(mto=DOMAIN, mbody="anyone?", mtype="chat")
    err = await alice.wait_message(
        lambda m: m["type"] == "error" and m["from"] == DOMAIN, "the bounce"
    )
    assert err["error"]["condition"] == "service-unavailable", err


async def test_second_component_for_a_domain_conflicts(start_server):
    server = start_server(with_components({DOMAIN: SECRET}))
    first = server.echo_component(DOMAIN, SECRET)
    await first.start()
    second = server.echo_component(DOMAIN, SECRET)
    with pytest.raises(ComponentRefused, match="conflict"):
        await second.start()

    alice = server.client("alice")
    await alice.login()
    alice.send_message(mto=DOMAIN, mbody="still you?", mtype="chat")
    await alice.wait_message(body_is("echo: still you?"), "the first component's echo")


async def test_check_config_counts_components(start_server):
    server = start_server(with_components({DOMAIN: SECRET, "other.localhost": "x"}))
    res = server.cli("check-config")
    assert "3 listener(s), 2 component(s)" in res.stdout, res.stdout
    assert SECRET not in res.stdout + res.stderr
