"""Login: STARTTLS + SCRAM-SHA-256, Direct TLS (XEP-0368), and a wrong password."""

from __future__ import annotations

import pytest

from clients import LoginFailed


async def test_two_users_login_starttls_scram_sha_256(server):
    alice, bob = server.client("alice"), server.client("bob")
    await alice.login()
    await bob.login()
    for c in (alice, bob):
        c.assert_secure_scram()
    assert alice.boundjid.bare == "alice@localhost"
    assert bob.boundjid.bare == "bob@localhost"
    assert alice.boundjid.resource and bob.boundjid.resource, "no resource bound"


async def test_direct_tls_login(server):
    alice = server.client("alice", direct_tls=True)
    await alice.login()
    alice.assert_secure_scram()
    assert alice.boundjid.bare == "alice@localhost"
    # and the session works: the server answers a ping over it
    await alice.barrier()


async def test_wrong_password_is_not_authorized_and_server_keeps_serving(server):
    mallory = server.client("alice", password="not the password")
    with pytest.raises(LoginFailed) as failed:
        await mallory.login()
    assert failed.value.condition == "not-authorized"
    await mallory.close()

    alice = server.client("alice")
    await alice.login()
    alice.assert_secure_scram()


async def test_unknown_user_is_not_authorized(server):
    nobody = server.client("nobody")
    with pytest.raises(LoginFailed) as failed:
        await nobody.login()
    assert failed.value.condition == "not-authorized"
