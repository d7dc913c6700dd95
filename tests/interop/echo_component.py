"""A real third-party XEP-0114 component for the interop tests: slixmpp's ComponentXMPP, as a
gateway or bot author would use it, answering every message with its body echoed back.

`EchoComponent.start()` connects to the server's component listener and waits for the accepted
handshake (slixmpp's `session_start`); failures (stream errors, refused connections) raise with
the reason. Everything the component receives is kept in an `Inbox` tests can wait on.
"""

from __future__ import annotations

import asyncio

from slixmpp.componentxmpp import ComponentXMPP

from clients import EVENT_TIMEOUT, LOGIN_TIMEOUT, Inbox


class ComponentRefused(AssertionError):
    def __init__(self, reason: str):
        super().__init__(f"component not accepted: {reason}")
        self.reason = reason


class EchoComponent(ComponentXMPP):
    """Echoes each non-error message to its sender, from the address it was sent to."""

    def __init__(self, domain: str, secret: str, *, address: tuple[str, int]):
        super().__init__(domain, secret, host=address[0], port=address[1])
        self.register_plugin("xep_0030")
        self.messages = Inbox(f"component {domain} messages")
        self.stream_errors = Inbox(f"component {domain} stream errors")
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("stream_error", self.stream_errors.push)

    def _on_message(self, msg) -> None:
        self.messages.push(msg)
        if msg["type"] == "error":
            return
        reply = msg.reply(f"echo: {msg['body']}")
        # The reply leaves from the exact address the message was sent to, so a message to
        # user@room.echo.example comes back from there (a subdomain of the component).
        reply["from"] = msg["to"]
        reply.send()

    async def start(self, timeout: float = LOGIN_TIMEOUT) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(err: str | None) -> None:
            if not done.done():
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(ComponentRefused(err))

        handlers = {
            "session_start": lambda _e: settle(None),
            "stream_error": lambda e: settle(f"stream error {e['condition']}"),
            "connection_failed": lambda e: settle(f"connection failed: {e}"),
            "disconnected": lambda e: settle(f"disconnected: {e}"),
        }
        for name, fn in handlers.items():
            self.add_event_handler(name, fn)
        try:
            self.connect()
            try:
                await asyncio.wait_for(done, timeout)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"component {self.boundjid}: not accepted within {timeout:.0f} s"
                ) from None
        finally:
            for name, fn in handlers.items():
                self.del_event_handler(name, fn)

    async def wait_message(self, pred, what: str = "message", timeout: float = EVENT_TIMEOUT):
        return await self.messages.wait(pred, what, timeout)

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                await asyncio.wait_for(self.disconnect(wait=2.0), 5.0)
            except (asyncio.TimeoutError, Exception):  # pragma: no cover - best effort
                self.abort()
        self.cancel_connection_attempt()
