"""Logs in N times in a row with whatever slixmpp the running interpreter imports (meant to be
Debian's python3-slixmpp under /usr/bin/python3, started by test_debian_slixmpp.py), each time
with a fresh client and slixmpp's own choice of SASL mechanism, as a Debian user's client
would. Prints one JSON object per line: first the slixmpp version and location, then one per
login with its outcome, the time it took, the mechanism that succeeded and every SASL failure
on the way (mechanism, condition, text).

Runs against 127.0.0.1:PORT with STARTTLS and certificate checks off (the test server's
certificate is self-signed). Standard library and slixmpp only: no venv packages.

  /usr/bin/python3 -I debian_slixmpp_logins.py --port P --jid alice@localhost \
      --password PW --count 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time

import slixmpp


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


async def one_login(args: argparse.Namespace, n: int) -> dict:
    client = slixmpp.ClientXMPP(args.jid, args.password)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    client.ssl_context = ctx
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    failures: list[dict] = []

    def settle(outcome: str, detail: str = "") -> None:
        if not done.done():
            done.set_result((outcome, detail))

    def on_failed_auth(stanza) -> None:
        mech = client.plugin["feature_mechanisms"].mech
        failures.append({
            "mechanism": mech.name if mech is not None else None,
            "condition": stanza["condition"],
            "text": stanza["text"],
        })

    client.add_event_handler("failed_auth", on_failed_auth)
    client.add_event_handler("session_start", lambda _e: settle("ok"))
    client.add_event_handler("failed_all_auth", lambda _e: settle("failed_all_auth"))
    client.add_event_handler("no_auth", lambda _e: settle("no_auth"))
    client.add_event_handler("stream_error", lambda e: settle("stream_error", str(e)))
    client.add_event_handler("connection_failed", lambda e: settle("connection_failed", str(e)))
    client.add_event_handler("disconnected", lambda e: settle("disconnected", str(e)))

    started = time.monotonic()
    client.connect((args.host, args.port))
    try:
        outcome, detail = await asyncio.wait_for(done, args.timeout)
    except asyncio.TimeoutError:
        outcome, detail = "timeout", f"no outcome within {args.timeout} s"
    seconds = time.monotonic() - started
    mech = client.plugin["feature_mechanisms"].mech
    tls = None
    if client.transport is not None:
        ssl_obj = client.transport.get_extra_info("ssl_object")
        tls = ssl_obj.version() if ssl_obj is not None else None
    result = {
        "login": n,
        "outcome": outcome,
        "detail": detail,
        "seconds": round(seconds, 4),
        "mechanism": mech.name if outcome == "ok" and mech is not None else None,
        "failures": failures,
        "tls": tls,
    }
    if client.transport is not None and not client.transport.is_closing():
        try:
            await asyncio.wait_for(client.disconnect(wait=2.0), 5.0)
        except Exception:  # noqa: BLE001 - best effort; the next login uses a new client
            client.abort()
    return result


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    emit({"slixmpp": slixmpp.__version__, "file": slixmpp.__file__, "python": sys.version})
    for n in range(1, args.count + 1):
        emit(await one_login(args, n))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
