"""RFC 6120 §4.9 stream errors, provoked over raw sockets (asyncio streams, ssl where needed; no
client library). Each case asserts the exact condition element in
urn:ietf:params:xml:ns:xmpp-streams, that the server then ends the stream, and that a normal
client can still log in afterwards (the server keeps serving)."""

from __future__ import annotations

import asyncio

import pytest

from conftest import PASSWORD
from rawxmpp import NS_STREAM, header


async def still_serving(server) -> None:
    alice = server.client("alice", resource="after-error")
    await alice.login(presence=False, roster=False)
    alice.assert_secure_scram()
    await alice.close()


def assert_condition(info, expected: str) -> None:
    assert info.conditions == [expected], (
        f"expected <{expected}/>, received stream error {info.xml}"
    )
    assert info.closed_by_server == "stream-end", (
        f"server closed the connection ({info.closed_by_server}) without </stream:stream>"
    )


# -- not-well-formed ---------------------------------------------------------------------------

async def test_not_well_formed(server):
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    await raw.send("<message to='bob@localhost'><body>unbalanced</message>")
    assert_condition(await raw.expect_stream_error(), "not-well-formed")
    await still_serving(server)


async def test_not_well_formed_in_header(server):
    raw = server.raw()
    await raw.connect()
    await raw.send("<stream:stream xmlns='jabber:client' to='localhost' version='1.0' <<>")
    assert_condition(await raw.expect_stream_error(), "not-well-formed")
    await still_serving(server)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost:5222\r\n\r\n", id="http-request"),
        pytest.param(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", id="tls-client-hello"),
        pytest.param(b"?", id="one-garbage-byte"),
    ],
)
async def test_not_xml_before_the_header_fails_at_once(start_server, payload):
    # With an hour of header timeout, only the first-byte check can answer within the read
    # deadline.
    server = start_server({"limits": {"header_timeout_secs": 3600}})
    raw = server.raw()
    await raw.connect()
    await raw.send(payload)
    assert_condition(await raw.expect_stream_error(timeout=5), "not-well-formed")
    await still_serving(server)


# -- restricted-xml ----------------------------------------------------------------------------

DOCTYPE = "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>" + header(xml_decl=False)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(("before", DOCTYPE), id="doctype"),
        pytest.param(("after", "<!-- a comment -->"), id="comment"),
        pytest.param(("after", "<?evil instruction?>"), id="processing-instruction"),
        pytest.param(("after", "<message to='bob@localhost'><body>&x;</body></message>"), id="entity-reference"),
    ],
)
async def test_restricted_xml(server, payload):
    where, data = payload
    raw = server.raw()
    await raw.connect()
    if where == "after":
        await raw.open_stream()
    await raw.send(data)
    info = await raw.expect_stream_error()
    if data.endswith("&x;</body></message>"):
        # An undeclared entity is also plain ill-formed XML: either condition is right.
        assert info.conditions in (["restricted-xml"], ["not-well-formed"]), info.xml
    else:
        assert_condition(info, "restricted-xml")
    await still_serving(server)


# -- policy-violation --------------------------------------------------------------------------

async def test_policy_violation_preauth_stanza_too_big(server):
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    limit = raw.preauth_limit(10000)  # XEP-0478 max-bytes when advertised, else the default
    # One unfinished stanza just over the limit: the server must stop it while parsing.
    # (Not much over it, so the server has read everything we sent and can close cleanly.)
    stanza = "<message to='bob@localhost'><body>" + "a" * (limit + 100)
    await raw.send(stanza)
    assert_condition(await raw.expect_stream_error(), "policy-violation")
    await still_serving(server)


async def test_policy_violation_stanza_too_big_after_auth(start_server):
    server = start_server({"limits": {"stanza_bytes": 20000}})
    raw = server.raw()
    await raw.login("alice", PASSWORD)
    await raw.send("<message to='bob@localhost'><body>" + "a" * 20100)
    assert_condition(await raw.expect_stream_error(), "policy-violation")
    await still_serving(server)


# -- invalid-namespace -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "hdr",
    [
        pytest.param(header(stream_ns="http://etherx.jabber.org/streams/wrong"), id="stream-namespace"),
        pytest.param(header(content_ns="jabber:evil"), id="content-namespace-jabber-evil"),
    ],
)
async def test_invalid_namespace(server, hdr):
    raw = server.raw()
    await raw.connect()
    await raw.send(hdr)
    assert_condition(await raw.expect_stream_error(), "invalid-namespace")
    await still_serving(server)


# -- host-unknown ------------------------------------------------------------------------------

async def test_host_unknown(server):
    raw = server.raw()
    await raw.connect()
    await raw.send(header(to="nonexistent.example"))
    hdr = await raw.read_header()
    assert hdr.get("from") != "nonexistent.example", "server echoed the unknown host as its own"
    assert_condition(await raw.expect_stream_error(), "host-unknown")
    await still_serving(server)


# -- unsupported-version -----------------------------------------------------------------------

@pytest.mark.parametrize("version", [pytest.param("2.0", id="2.0"), pytest.param(None, id="missing")])
async def test_unsupported_version(server, version):
    raw = server.raw()
    await raw.connect()
    await raw.send(header(version=version))
    assert_condition(await raw.expect_stream_error(), "unsupported-version")
    await still_serving(server)


# -- improper-addressing: a server-to-server condition, tested in
# crates/rookery-server/tests/federation_spoof.rs (stanza_without_to_is_improper_addressing).


# -- invalid-from ------------------------------------------------------------------------------

async def test_invalid_from_after_login(server):
    raw = server.raw()
    jid = await raw.login("bob", PASSWORD)
    assert jid.startswith("bob@localhost/")
    await raw.send(
        "<message from='someoneelse@localhost' to='alice@localhost' type='chat'>"
        "<body>spoofed</body></message>"
    )
    assert_condition(await raw.expect_stream_error(), "invalid-from")
    await still_serving(server)


# -- connection-timeout ------------------------------------------------------------------------

async def test_connection_timeout_header_never_completes(start_server):
    server = start_server({"limits": {"header_timeout_secs": 2}})
    raw = server.raw()
    await raw.connect()
    await raw.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='localhost'")
    # The server's own 2 s timer closes the stream; the read deadline is only a failure limit.
    assert_condition(await raw.expect_stream_error(timeout=15), "connection-timeout")
    await still_serving(server)


# -- not-authorized ----------------------------------------------------------------------------

async def test_not_authorized_stanza_before_auth(server):
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    await raw.send("<message to='bob@localhost' type='chat'><body>let me in</body></message>")
    assert_condition(await raw.expect_stream_error(), "not-authorized")
    await still_serving(server)


async def test_not_authorized_stanza_after_tls_before_auth(server):
    raw = server.raw()
    await raw.connect()
    await raw.open_stream()
    await raw.starttls()
    await raw.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
    assert_condition(await raw.expect_stream_error(), "not-authorized")
    await still_serving(server)


# -- unsupported-stanza-type -------------------------------------------------------------------

async def test_unsupported_stanza_type_after_login(server):
    raw = server.raw()
    await raw.login("bob", PASSWORD)
    await raw.send("<nonsense type='get' id='x1'/>")
    assert_condition(await raw.expect_stream_error(), "unsupported-stanza-type")
    await still_serving(server)


# -- sanity: the raw client itself works -------------------------------------------------------

async def test_raw_client_logs_in_and_gets_features(server):
    raw = server.raw()
    await raw.connect()
    feats = await raw.open_stream()
    assert raw.stream_header is not None and raw.stream_header.tag == f"{{{NS_STREAM}}}stream"
    assert raw.stream_header.get("from") == "localhost"
    assert raw.stream_header.get("id"), "stream header without id"
    assert raw.feature("urn:ietf:params:xml:ns:xmpp-tls", "starttls") is not None, (
        "STARTTLS not offered"
    )
    # [c2s] require_encryption = true (the default): no SASL before TLS.
    assert raw.feature("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms") is None, (
        "SASL offered on an unencrypted stream although encryption is required"
    )
    feats = await raw.starttls()
    mechs = [m.text for m in feats.iter("{urn:ietf:params:xml:ns:xmpp-sasl}mechanism")]
    assert "SCRAM-SHA-256" in mechs, mechs
    await raw.close()
    raw2 = server.raw(direct_tls=True)
    jid = await raw2.login("alice", PASSWORD, direct_tls=True)
    assert jid.startswith("alice@localhost/")


# -- system-shutdown ---------------------------------------------------------------------------

async def test_system_shutdown_on_sigterm_bound_session(server):
    raw = server.raw()
    await raw.login("bob", PASSWORD)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    assert_condition(await raw.expect_stream_error(timeout=15), "system-shutdown")
    rc = await stopping
    assert rc == 0, f"exit code {rc} after SIGTERM"
    assert loop.time() - t0 < 5, f"shutdown took {loop.time() - t0:.1f} s"


async def test_system_shutdown_on_sigterm_unauthenticated_stream(server):
    """RFC 6120 4.9.3.20: 'all active streams are being closed' -- also ones that have not
    authenticated yet."""
    pre = server.raw()
    await pre.connect()
    await pre.open_stream()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    try:
        assert_condition(await pre.expect_stream_error(timeout=15), "system-shutdown")
    finally:
        rc = await stopping
    assert rc == 0, f"exit code {rc} after SIGTERM"
    assert loop.time() - t0 < 5, f"shutdown took {loop.time() - t0:.1f} s"
