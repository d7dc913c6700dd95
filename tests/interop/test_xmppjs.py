"""xmpp.js (npm @xmpp/client, pinned in tests/interop_js/package-lock.json): two users log in
with xmpp.js's defaults (STARTTLS, SCRAM) and exchange chat messages. Its TLS is Node's OpenSSL,
so this also puts Rookery's compact TLS 1.3 record layer (decision 0007) in front of a client
stack other than rustls' and Python's."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from conftest import PASSWORD

JS = Path(__file__).resolve().parent.parent / "interop_js"


async def test_xmppjs_users_log_in_and_exchange_messages(server):
    node = shutil.which("node")
    assert node, "node is not installed (scripts/test-deps.sh installs the npm side)"
    assert (JS / "node_modules" / "@xmpp" / "client").is_dir(), \
        "run scripts/test-deps.sh: tests/interop_js/node_modules is missing"
    env = dict(os.environ, NODE_TLS_REJECT_UNAUTHORIZED="0")  # self-signed test certificate
    proc = await asyncio.create_subprocess_exec(
        node, str(JS / "exchange.mjs"), server.host, str(server.c2s_port), server.domain,
        PASSWORD, "alice", "bob",
        cwd=JS, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    lines = text.splitlines()
    assert any(l.startswith("online: alice@localhost/") for l in lines), text
    assert any(l.startswith("online: bob@localhost/") for l in lines), text
    assert any(l.startswith("received by bob: hello-") and "from alice@localhost/" in l
               for l in lines), text
    assert any(l.startswith("received by alice: re: hello-") and "from bob@localhost/" in l
               for l in lines), text
    assert lines[-1] == "done", text
