"""A raw XMPP client on asyncio streams, for sending what no client library would send.

It parses what the server sends incrementally (ElementTree's pull parser) and returns complete
top-level elements; it can do STARTTLS, SASL SCRAM-SHA-256 and resource binding by hand, so
tests can misbehave at any point of the stream. Every read has a deadline that is a failure
deadline only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_LIMITS = "urn:xmpp:stream-limits:0"

READ_TIMEOUT = 10.0


def header(
    to: str | None = "localhost",
    *,
    version: str | None = "1.0",
    stream_ns: str = NS_STREAM,
    content_ns: str = NS_CLIENT,
    xml_decl: bool = True,
) -> str:
    attrs = []
    if to is not None:
        attrs.append(f"to='{to}'")
    if version is not None:
        attrs.append(f"version='{version}'")
    decl = "<?xml version='1.0'?>" if xml_decl else ""
    return (
        f"{decl}<stream:stream xmlns='{content_ns}' xmlns:stream='{stream_ns}' "
        + " ".join(attrs)
        + " xml:lang='en'>"
    )


class StreamClosed(Exception):
    """The server closed the stream (</stream:stream>) or the connection (EOF)."""

    def __init__(self, how: str, received: list[ET.Element]):
        super().__init__(how)
        self.how = how
        self.received = received


@dataclass
class StreamErrorInfo:
    conditions: list[str]  # local names of children in the xmpp-streams namespace, minus <text/>
    text: str | None
    xml: str
    closed_by_server: str  # 'stream-end' (</stream:stream>) or 'eof'

    @property
    def condition(self) -> str | None:
        return self.conditions[0] if len(self.conditions) == 1 else None


def _tag(el: ET.Element) -> tuple[str, str]:
    if el.tag.startswith("{"):
        ns, name = el.tag[1:].split("}", 1)
        return ns, name
    return "", el.tag


def to_xml(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")


class RawClient:
    def __init__(self, host: str, port: int, *, domain: str = "localhost"):
        self.host = host
        self.port = port
        self.domain = domain
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.received: list[ET.Element] = []  # every complete top-level element, in order
        self.stream_header: ET.Element | None = None
        self.features: ET.Element | None = None
        self.jid: str | None = None
        self._parser: ET.XMLPullParser | None = None
        self._depth = 0
        self._ready: list[ET.Element] = []
        self._closed: str | None = None
        # Source address to connect from (e.g. "127.0.0.2": another client address on loopback).
        self.local_host: str | None = None

    # -- transport -----------------------------------------------------------------------------

    async def connect(self, *, direct_tls: bool = False) -> "RawClient":
        ctx = _insecure_context() if direct_tls else None
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=ctx,
                server_hostname=self.domain if direct_tls else None,
                local_addr=(self.local_host, 0) if self.local_host else None,
            ),
            READ_TIMEOUT,
        )
        self.reset_parser()
        return self

    def reset_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._ready = []
        self._closed = None
        self.stream_header = None

    async def send(self, data: str | bytes) -> None:
        assert self.writer is not None
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2.0)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                pass
            self.writer = None

    # -- reading -------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        assert self._parser is not None
        self._parser.feed(data)
        for event, el in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self.stream_header = el
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._ready.append(el)
                    self.received.append(el)
                    # drop it from the root so memory does not grow with the stream
                    if self.stream_header is not None:
                        try:
                            self.stream_header.remove(el)
                        except ValueError:
                            pass
                elif self._depth == 0:
                    self._closed = "stream-end"

    async def _fill(self, timeout: float) -> None:
        """Reads one chunk; raises StreamClosed on EOF."""
        assert self.reader is not None
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError) as e:
            self._closed = self._closed or f"eof ({type(e).__name__})"
            raise StreamClosed(self._closed, self.received) from None
        if not data:
            self._closed = self._closed or "eof"
            raise StreamClosed(self._closed, self.received)
        self._feed(data)

    async def read_header(self, timeout: float = READ_TIMEOUT) -> ET.Element:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.stream_header is None:
            await self._fill(max(0.0, deadline - asyncio.get_running_loop().time()))
        return self.stream_header

    async def read_element(self, timeout: float = READ_TIMEOUT) -> ET.Element:
        """The next complete top-level element; StreamClosed when the stream ends instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._ready:
            if self._closed:
                raise StreamClosed(self._closed, self.received)
            try:
                await self._fill(max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"no element from the server within {timeout:.0f} s; received so far: "
                    + ", ".join(_tag(e)[1] for e in self.received)
                ) from None
        return self._ready.pop(0)

    async def expect(self, ns: str, name: str, timeout: float = READ_TIMEOUT) -> ET.Element:
        el = await self.read_element(timeout)
        if _tag(el) != (ns, name):
            raise AssertionError(f"expected {{{ns}}}{name}, received {to_xml(el)}")
        return el

    async def open_stream(self, to: str | None = None) -> ET.Element:
        """Sends a normal header and returns the <stream:features/> that follow."""
        await self.send(header(to or self.domain))
        await self.read_header()
        self.features = await self.expect(NS_STREAM, "features")
        return self.features

    async def expect_stream_error(self, timeout: float = READ_TIMEOUT) -> StreamErrorInfo:
        """Reads until a <stream:error/> arrives (elements before it are ignored), then checks
        that the server ends the stream: </stream:stream> or the connection closes. Then closes
        our side."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                el = await self.read_element(max(0.0, deadline - loop.time()))
            except StreamClosed as e:
                raise AssertionError(
                    f"the server closed the stream ({e.how}) without a <stream:error/>; "
                    "received: " + " ".join(to_xml(x) for x in e.received[-5:])
                ) from None
            if _tag(el) == (NS_STREAM, "error"):
                break
        conditions, text = [], None
        for child in el:
            ns, name = _tag(child)
            if ns == NS_STREAMS and name == "text":
                text = child.text
            elif ns == NS_STREAMS:
                conditions.append(name)
        # After a stream error the server must close the stream; it may send nothing else.
        closed = None
        while closed is None:
            try:
                extra = await self.read_element(max(0.5, deadline - loop.time()))
                raise AssertionError(f"server sent {to_xml(extra)} after its stream error")
            except StreamClosed as e:
                closed = e.how
        if closed == "stream-end":
            # Answer the close, then the server must drop the connection.
            try:
                await self.send("</stream:stream>")
            except (ConnectionError, OSError):
                pass
            eof = await self._wait_eof(max(0.5, deadline - loop.time()))
            assert eof, "the server sent </stream:stream> but kept the connection open"
        await self.close()
        return StreamErrorInfo(conditions, text, to_xml(el), closed)

    async def _wait_eof(self, timeout: float) -> bool:
        assert self.reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                return False
            except (ConnectionError, ssl.SSLError, OSError):
                return True
            if not data:
                return True

    # -- negotiation ---------------------------------------------------------------------------

    def feature(self, ns: str, name: str) -> ET.Element | None:
        assert self.features is not None
        return self.features.find(f"{{{ns}}}{name}")

    def preauth_limit(self, default: int = 10000) -> int:
        """XEP-0478 max-bytes if advertised, else `default`."""
        if self.features is None:
            return default
        mb = self.features.find(f"{{{NS_LIMITS}}}limits/{{{NS_LIMITS}}}max-bytes")
        return int(mb.text) if mb is not None and mb.text else default

    async def starttls(self) -> ET.Element:
        assert self.feature(NS_TLS, "starttls") is not None, "STARTTLS not offered"
        await self.send(f"<starttls xmlns='{NS_TLS}'/>")
        await self.expect(NS_TLS, "proceed")
        assert self.writer is not None
        await asyncio.wait_for(
            self.writer.start_tls(_insecure_context(), server_hostname=self.domain), READ_TIMEOUT
        )
        self.reset_parser()
        return await self.open_stream()

    async def auth_scram_sha256(self, user: str, password: str) -> None:
        mechs = [m.text for m in self.features.iter(f"{{{NS_SASL}}}mechanism")] if self.features is not None else []
        assert "SCRAM-SHA-256" in mechs, f"SCRAM-SHA-256 not offered: {mechs}"
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={_saslname(user)},r={cnonce}"
        gs2 = "n,,"
        await self.send(
            f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{_b64(gs2 + first_bare)}</auth>"
        )
        ch = await self.read_element()
        if _tag(ch) != (NS_SASL, "challenge"):
            raise AssertionError(f"expected SASL challenge, received {to_xml(ch)}")
        server_first = base64.b64decode(ch.text or "").decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(cnonce), "server nonce does not extend ours"
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_wo_proof = f"c={_b64(gs2)},r={nonce}"
        auth_message = f"{first_bare},{server_first},{final_wo_proof}".encode()
        sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        await self.send(
            f"<response xmlns='{NS_SASL}'>{_b64(final_wo_proof + ',p=' + base64.b64encode(proof).decode())}</response>"
        )
        res = await self.read_element()
        if _tag(res) != (NS_SASL, "success"):
            raise AssertionError(f"SASL failed: {to_xml(res)}")
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        want = base64.b64encode(hmac.new(server_key, auth_message, hashlib.sha256).digest()).decode()
        got = base64.b64decode(res.text or "").decode()
        assert got == f"v={want}", f"bad server signature {got!r}"
        self.reset_parser()
        await self.open_stream()

    async def bind(self, resource: str = "raw") -> str:
        await self.send(
            f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
        )
        res = await self.expect(NS_CLIENT, "iq")
        assert res.get("type") == "result", f"bind failed: {to_xml(res)}"
        jid_el = res.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        assert jid_el is not None and jid_el.text, f"bind result without jid: {to_xml(res)}"
        self.jid = jid_el.text
        return self.jid

    async def login(self, user: str, password: str, *, resource: str = "raw", direct_tls: bool = False) -> str:
        """Connect, (STARTTLS,) SCRAM-SHA-256, bind. Returns the full JID."""
        await self.connect(direct_tls=direct_tls)
        await self.open_stream()
        if not direct_tls:
            await self.starttls()
        await self.auth_scram_sha256(user, password)
        return await self.bind(resource)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _saslname(s: str) -> str:
    return s.replace("=", "=3D").replace(",", "=2C")


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
