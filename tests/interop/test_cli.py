"""`rookery user ...` against a running server (SQLite WAL: the CLI and the server share the
database): accounts added, re-passworded and deleted while the server runs take effect for the
next login."""

from __future__ import annotations

import pytest

from clients import LoginFailed


async def test_user_add_with_password_on_stdin(start_server):
    server = start_server(users=())
    res = server.cli("user", "add", "dave@localhost", input="from stdin pw\n")
    assert res.returncode == 0
    dave = server.client("dave", password="from stdin pw")
    await dave.login()
    dave.assert_secure_scram()


async def test_user_list_passwd_del(server):
    listed = server.cli("user", "list", "localhost").stdout.split()
    for u in ("alice@localhost", "bob@localhost", "carol@localhost"):
        assert u in listed, f"{u} missing from `user list`: {listed}"

    server.cli("user", "passwd", "carol@localhost", "--password", "a brand new one")
    old = server.client("carol")
    with pytest.raises(LoginFailed) as failed:
        await old.login()
    assert failed.value.condition == "not-authorized"
    new = server.client("carol", password="a brand new one")
    await new.login()
    await new.close()

    server.cli("user", "del", "carol@localhost")
    assert "carol@localhost" not in server.cli("user", "list", "localhost").stdout.split()
    gone = server.client("carol", password="a brand new one")
    with pytest.raises(LoginFailed) as failed:
        await gone.login()
    assert failed.value.condition == "not-authorized"


async def test_user_add_existing_fails(server):
    res = server.cli("user", "add", "alice@localhost", "--password", "whatever pw", check=False)
    assert res.returncode != 0, "adding an existing account succeeded"
