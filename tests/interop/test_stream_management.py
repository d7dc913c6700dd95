"""XEP-0198 stream management with slixmpp's own implementation (plugin xep_0198): it enables
stream management with resumption, acknowledges what the server requests, and after its TCP
connection is cut it resumes the session and gets what it missed, each stanza exactly once."""

from __future__ import annotations

import asyncio

from clients import EVENT_TIMEOUT, body_is


def event(client, name: str) -> asyncio.Future:
    """A future resolved by the next `name` event of `client`."""
    fut = asyncio.get_running_loop().create_future()

    def fire(e):
        if not fut.done():
            fut.set_result(e)

    client.add_event_handler(name, fire, disposable=True)
    return fut


async def test_slixmpp_resumes_after_a_cut_connection_and_misses_nothing(server):
    romeo, juliet = server.client("alice"), server.client("bob")
    juliet.register_plugin("xep_0198")
    enabled = event(juliet, "sm_enabled")
    await romeo.login()
    await juliet.login()
    sm = await asyncio.wait_for(enabled, EVENT_TIMEOUT)
    assert sm["resume"], f"resumption not granted: {sm}"
    assert juliet.plugin["xep_0198"].sm_id, "no resumption id"

    for i in range(1, 6):
        romeo.send_message(mto=juliet.boundjid.full, mbody=f"m{i}", mtype="chat")
    await juliet.wait_message(body_is("m5"), "m5")

    # The connection dies without a goodbye (the stream is never closed).
    gone = event(juliet, "disconnected")
    juliet.transport.abort()
    await asyncio.wait_for(gone, EVENT_TIMEOUT)
    for i in range(6, 9):
        romeo.send_message(mto=juliet.boundjid.full, mbody=f"m{i}", mtype="chat")
    # The server routed them (to the session waiting to be resumed) before this answer.
    await romeo.barrier()

    resumed = event(juliet, "session_resumed")
    juliet.connect(*juliet.address)
    await asyncio.wait_for(resumed, 20)
    await juliet.wait_message(body_is("m8"), "m8 after the resumption")
    await juliet.barrier()
    for i in range(1, 9):
        got = juliet.messages.matching(body_is(f"m{i}"))
        assert len(got) == 1, f"m{i} received {len(got)} times"
    # Still one session: a new message reaches the resumed one.
    romeo.send_message(mto=juliet.boundjid.full, mbody="after", mtype="chat")
    await juliet.wait_message(body_is("after"), "a message after the resumption")
