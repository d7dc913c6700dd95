"""aioxmpp (PyPI, pinned in requirements.txt): its STARTTLS runs on pyOpenSSL and its SASL on
aiosasl, a client stack of its own. Two users log in over STARTTLS and exchange chat
messages."""

from __future__ import annotations

import asyncio

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher

from conftest import PASSWORD


def client(server, user: str) -> aioxmpp.PresenceManagedClient:
    jid = aioxmpp.JID.fromstr(f"{user}@{server.domain}")
    # no_verify: the test server's certificate is self-signed (test use only).
    return aioxmpp.PresenceManagedClient(
        jid, aioxmpp.make_security_layer(PASSWORD, no_verify=True),
        override_peer=[(server.host, server.c2s_port, aioxmpp.connector.STARTTLSConnector())])


def body(msg: aioxmpp.Message) -> str:
    return next(iter(msg.body.values()))


async def test_aioxmpp_users_log_in_and_exchange_messages(server):
    alice, bob = client(server, "alice"), client(server, "bob")
    loop = asyncio.get_running_loop()
    to_bob, to_alice = loop.create_future(), loop.create_future()

    def catch(fut):
        def on_message(msg):
            if msg.body and not fut.done():
                fut.set_result(msg)
        return on_message

    async with alice.connected(), bob.connected():
        assert str(alice.local_jid.bare()) == "alice@localhost"
        assert alice.local_jid.resource, "no resource bound"
        for c, fut in ((bob, to_bob), (alice, to_alice)):
            c.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
                aioxmpp.MessageType.CHAT, None, catch(fut))

        m = aioxmpp.Message(to=bob.local_jid, type_=aioxmpp.MessageType.CHAT)
        m.body[None] = "hello from aioxmpp"
        await alice.send(m)
        got = await asyncio.wait_for(to_bob, 10)
        assert body(got) == "hello from aioxmpp"
        assert got.from_ == alice.local_jid

        r = aioxmpp.Message(to=got.from_, type_=aioxmpp.MessageType.CHAT)
        r.body[None] = "hello back"
        await bob.send(r)
        back = await asyncio.wait_for(to_alice, 10)
        assert body(back) == "hello back"
        assert back.from_ == bob.local_jid
