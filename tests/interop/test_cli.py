"""`rookery user ...` against a running server (SQLite WAL: the CLI and the server share the
database): accounts added, re-passworded and deleted while the server runs take effect for the
next login. And the log output of `rookery serve` / `rookery cm`: plain text when stderr is not
a terminal (journald, files), colour on a terminal unless NO_COLOR is set, and
`--log-format json`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from clients import LoginFailed
from cm_harness import CM_SECRET, ConnectionManager
from rookery_harness import HOST, default_config, process_env, render_toml, rookery_bin

ANSI = "\x1b["


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


# -- logs ------------------------------------------------------------------------------------


async def test_log_to_a_file_has_no_colour_codes(start_server):
    # NO_COLOR removed: plain text must come from stderr not being a terminal alone.
    server = start_server(env={"NO_COLOR": None})
    alice = server.client("alice")
    await alice.login()
    await alice.close()
    server.stop()
    log = server.stderr_text()
    assert "Rookery" in log and " INFO " in log, log
    assert ANSI not in log, f"ANSI escape in a log written to a file:\n{log[:2000]!r}"


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed as a JSON object with the level and message fields."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)  # raises (failing the test) on a line that is not JSON
        assert isinstance(rec, dict), line
        assert rec.get("level") in ("ERROR", "WARN", "INFO", "DEBUG", "TRACE"), line
        assert isinstance(rec.get("message"), str), line
        records.append(rec)
    return records


async def test_serve_log_format_json(start_server):
    server = start_server(extra_args=("--log-format", "json"))
    alice = server.client("alice")
    await alice.login()
    await alice.close()
    server.stop()
    records = json_lines(server.stderr_text())
    # The event's own fields sit beside the message.
    assert any(r.get("what") == "ready" and r["message"].startswith("Rookery") for r in records), records
    assert any(r.get("what") == "shutdown" for r in records), records


async def test_cm_log_format_json(start_server, tmp_path):
    server = start_server({
        "cm": {"secret": CM_SECRET},
        "listen": [{"address": HOST, "port": 0, "kind": "cm"}],
    })
    cm = ConnectionManager(tmp_path / "cm", "cmjson", server.ports["cm"],
                           extra_args=("--log-format", "json"))
    cm.start()
    try:
        assert cm.stop() == 0, cm.stderr_tail()
    finally:
        cm.kill()
    records = json_lines(cm.stderr_path.read_text())
    assert any(r.get("what") == "ready" for r in records), records


def serve_on_a_terminal(tmp_path, env: dict) -> str:
    """Runs `rookery serve` with stderr on a pseudo-terminal until it is ready, then stops it
    and returns what it wrote there."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "rookery.toml"
    cfg.write_text(render_toml(default_config()))
    ready = tmp_path / "ready"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(rookery_bin()), "serve", "--config", str(cfg), "--ready-file", str(ready)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=tmp_path,
        env=process_env(env))
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"ready" not in out and time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                try:
                    out += os.read(master, 65536)
                except OSError:  # the terminal's other side closed: the server exited
                    break
        assert proc.poll() is None, f"rookery serve exited:\n{out!r}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        os.close(master)
    assert b"ready" in out, out
    return out.decode(errors="replace")


def test_log_on_a_terminal_is_coloured_unless_no_color(tmp_path):
    assert ANSI in serve_on_a_terminal(tmp_path / "tty", {"NO_COLOR": None})
    assert ANSI not in serve_on_a_terminal(tmp_path / "tty-no-color", {"NO_COLOR": "1"})
