#!/usr/bin/python3
"""An attacker's SMTP client on a raw socket (scapy frames): each scenario
tries to get a message to the server past the inline inspector by making
the inspector's view of the session differ from the server's (issue 14).

    adversary.py IFACE SRC_IP DST_IP DST_MAC SCENARIO [--sender ADDR]

Prints one JSON line: every byte the server (or the appliance speaking for
it) sent back, split per step, and whether the connection was reset.
The test decides from the server's mail dir and the journal whether the
message got through unjudged; this script only plays the attacker.
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_craft import RawClient  # noqa: E402
from scapy.all import IP, TCP, Ether, fragment, sendp  # noqa: E402

RCPT = b"bob@inside.test"


def message(sender, scenario):
    return (b"From: " + sender + b"\r\nTo: " + RCPT + b"\r\nSubject: adversary " + scenario.encode() +
            b"\r\n\r\nThis message must never reach the server unjudged.\r\n")


class Attacker(RawClient):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.resets = 0

    def _on_frame(self, p):
        if TCP in p and "R" in p[TCP].flags:
            self.resets += 1
        super()._on_frame(p)

    def step(self, out, data, code, timeout=5.0):
        if data:
            self.send(data)
        ok, got = self.wait_reply(code, timeout)
        out["replies"].append(got.decode("latin-1"))
        return ok

    def frame_with_ack(self, data, ack):
        return (Ether(src=self.mac, dst=self.dst_mac) / IP(src=self.src, dst=self.dst, flags="DF") /
                TCP(sport=self.sport, dport=self.dport, seq=self.snd_nxt, ack=ack & 0xffffffff, flags="PA",
                    window=64240) / data)


def envelope(c, out, sender, ehlo=True):
    ok = c.step(out, None, "220")
    if ehlo:
        ok = ok and c.step(out, b"EHLO adversary.outside.test\r\n", "250")
    ok = ok and c.step(out, b"MAIL FROM:<" + sender + b">\r\n", "250")
    ok = ok and c.step(out, b"RCPT TO:<" + RCPT + b">\r\n", "250")
    return ok


def finish(c, out, timeout=5.0):
    """Waits for whatever answer comes to the end of data."""
    ok, got = c.wait_reply("250", timeout)
    out["replies"].append(got.decode("latin-1"))


def run(c, scenario, sender, out):
    body = message(sender, scenario)
    if scenario == "clean":
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        c.send(body + b".\r\n")
        finish(c, out)
    elif scenario == "rst_in_window":
        # An RST inside the window but not at rcv_nxt: Linux answers with a
        # challenge ACK and keeps the connection (RFC 5961).
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        half = len(body) // 2
        c.send(body[:half])
        time.sleep(0.2)
        c.send_at(7, b"", flags="R")
        time.sleep(0.2)
        c.send(body[half:] + b".\r\n")
        finish(c, out)
    elif scenario == "auth_pipelined":
        # AUTH with an initial response pipelined with a whole transaction.
        c.step(out, None, "220")
        c.step(out, b"EHLO adversary.outside.test\r\n", "250")
        c.send(b"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\nMAIL FROM:<" + sender + b">\r\nRCPT TO:<" + RCPT + b">\r\nDATA\r\n" +
               body + b".\r\n")
        time.sleep(0.5)
        finish(c, out)
    elif scenario == "ack_beyond":
        # DATA with an ACK far beyond anything the server sent: the server
        # discards it (RFC 5961 5.2); then DATA again, properly.
        envelope(c, out, sender)
        sendp(c.frame_with_ack(b"DATA\r\n", (c.rcv_nxt or 0) + 100000), iface=c.iface)
        time.sleep(0.3)
        c.step(out, b"DATA\r\n", "354")
        c.send(body + b".\r\n")
        finish(c, out)
    elif scenario == "fragments":
        # The body in IP fragments; then, if nothing answered, the same bytes
        # again unfragmented (TCP retransmits).
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        data = body + b".\r\n"
        pkt = IP(src=c.src, dst=c.dst) / TCP(sport=c.sport, dport=c.dport, seq=c.snd_nxt, ack=c.rcv_nxt,
                                             flags="PA", window=64240) / data
        for fr in fragment(pkt, fragsize=64):
            sendp(Ether(src=c.mac, dst=c.dst_mac) / fr, iface=c.iface)
        ok, got = c.wait_reply("250", 2.0)
        out["after_fragments"] = got.decode("latin-1")
        if not ok:
            c.send(data)
            finish(c, out)
        else:
            c.advance(len(data))
    elif scenario == "starttls_masked":
        c.step(out, None, "220")
        c.step(out, b"EHLO adversary.outside.test\r\n", "250")
        c.step(out, b"STARTTLS\r\n", "220", timeout=3)
    elif scenario == "idle_after_354":
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        time.sleep(float(os.environ.get("ADVERSARY_IDLE", "4")))
        c.send(body + b".\r\n")
        finish(c, out)
    elif scenario == "bare_lf_end":
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        c.send(body.replace(b"\r\n", b"\n") + b".\n")
        finish(c, out)
    elif scenario == "ehlo_before_banner":
        # EHLO before the banner: a server that greets late (Postfix with a
        # client restriction that sleeps) answers banner and EHLO in one
        # segment.
        c.send(b"EHLO adversary.outside.test\r\n")
        ok, got = c.wait_reply("250", 10)
        out["replies"].append(got.decode("latin-1"))
        c.step(out, b"MAIL FROM:<" + sender + b">\r\n", "250")
        c.step(out, b"RCPT TO:<" + RCPT + b">\r\n", "250")
        c.step(out, b"DATA\r\n", "354")
        c.send(body + b".\r\n")
        finish(c, out)
    elif scenario == "nested_mail":
        # The server keeps the first sender (503 nested MAIL); the inspector
        # must not take the refused one.
        envelope(c, out, sender)
        c.step(out, b"MAIL FROM:<nice@good.test>\r\n", "503")
        c.step(out, b"DATA\r\n", "354")
        c.send(body + b".\r\n")
        finish(c, out)
    elif scenario == "ehlo_refused":
        # EHLO without a name is refused (501) and resets nothing.
        envelope(c, out, sender)
        c.step(out, b"EHLO\r\n", "501")
        c.step(out, b"DATA\r\n", "354")
        c.send(body + b".\r\n")
        finish(c, out)
    else:
        raise SystemExit("unknown scenario " + scenario)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("dst_mac")
    ap.add_argument("scenario")
    ap.add_argument("--sender", default="mallory@evil.test")
    a = ap.parse_args()
    c = Attacker(a.iface, a.src, a.dst, a.dst_mac, random.getrandbits(32))
    out = {"scenario": a.scenario, "replies": []}
    try:
        c.connect()
        run(c, a.scenario, a.sender.encode(), out)
        c.send(b"QUIT\r\n")
        c.wait_reply("221", 1)
        c.send_at(0, b"", flags="FA")
    except Exception as e:  # the appliance may reset us: that is an outcome, not a failure
        out["error"] = repr(e)
    finally:
        c.sniffer.stop()
    out["resets"] = c.resets
    out["all"] = "".join(out["replies"]) + out.get("after_fragments", "")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
