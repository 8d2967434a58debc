#!/usr/bin/python3
"""A real SMTP server (Debian's python3-aiosmtpd) that keeps every message it
accepts: DIR/N.eml holds the bytes as received (after dot-unstuffing, as the
server saw them) and DIR/N.json the envelope, size and SHA-256.

    smtp-sink.py --listen 192.0.2.2 --port 25 --dir /tmp/mail [--refuse ADDR ...]
                 [--tls CERT KEY] [--auth USER:PASSWORD]

--tls offers STARTTLS with that certificate; --auth offers AUTH PLAIN/LOGIN
(also without TLS, so captures show it) and accepts only that pair.
"""
import argparse
import asyncio
import hashlib
import json
import os
import signal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
import ssl


class Keeper:
    def __init__(self, directory, refuse):
        self.dir = directory
        self.refuse = {a.lower() for a in refuse}
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return "550 5.1.1 <%s>: recipient refused by the test server" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        data = envelope.original_content or b""
        base = os.path.join(self.dir, "%06d" % self.n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.replace(base + ".eml.tmp", base + ".eml")
        meta = {
            "mail_from": "" if envelope.mail_from in (None, "<>") else envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "peer": str(session.peer[0]),
            "tls": session.ssl is not None,
            "auth": session.authenticated or False,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as %06d" % self.n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--refuse", nargs="*", default=[])
    ap.add_argument("--max-size", type=int, default=64 << 20)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--auth", metavar="USER:PASSWORD")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    handler = Keeper(a.dir, a.refuse)
    extra = {}
    if a.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        extra["tls_context"] = ctx
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = getattr(auth_data, "login", None) == user.encode() and \
                getattr(auth_data, "password", None) == password.encode()
            return AuthResult(success=ok)
        extra.update(authenticator=authenticator, auth_require_tls=False)
    ctl = Controller(handler, hostname=a.listen, port=a.port,
                     data_size_limit=a.max_size, server_hostname="inside.sekisho.test",
                     decode_data=False, **extra)
    ctl.start()
    print("smtp-sink: listening on %s:%d" % (a.listen, a.port), flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    ctl.stop()


if __name__ == "__main__":
    main()
