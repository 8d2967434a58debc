#!/usr/bin/python3
"""An attacker's SMTP client on a raw socket (scapy frames): each scenario
tries to get a message to the server past the inline inspector by making
the inspector's view of the session differ from the server's (issue 14).

    adversary.py IFACE SRC_IP DST_IP DST_MAC SCENARIO [--sender ADDR] [--bdat CMD]

SRC_IP and DST_IP may be IPv6 addresses (the session then runs over IPv6).

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
from functools import reduce

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tcp_craft import RawClient  # noqa: E402
from scapy.all import IP, TCP, Dot1Q, Ether, IPv6, IPv6ExtHdrDestOpt, fragment, sendp  # noqa: E402

RCPT = b"bob@inside.test"
RCPT2 = b"carol@inside.test"
# Frames the appliance's decoder cannot reach TCP in (dataplane/net/packet.cpp
# takes 2 VLAN tags and 8 IPv6 extension headers) but Linux reads: nested
# VLAN devices peel any number of tags, and IPv6 input walks any number of
# destination options headers.
VLAN_TAGS = (101, 102, 103)
IPV6_EXT_HEADERS = 10


def message(sender, scenario):
    return (b"From: " + sender + b"\r\nTo: " + RCPT + b"\r\nSubject: adversary " + scenario.encode() +
            b"\r\n\r\nThis message must never reach the server unjudged.\r\n")


class Attacker(RawClient):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.resets = 0
        self.fins = 0

    def _on_frame(self, p):
        if TCP in p and "R" in p[TCP].flags:
            self.resets += 1
        if TCP in p and "F" in p[TCP].flags:
            self.fins += 1
        super()._on_frame(p)

    def _l3(self):
        if ":" in self.dst:
            return IPv6(src=self.src, dst=self.dst)
        return IP(src=self.src, dst=self.dst, flags="DF")

    def _frame(self, seq, flags, data=b"", ack=True):
        return (Ether(src=self.mac, dst=self.dst_mac) / self._l3() /
                TCP(sport=self.sport, dport=self.dport, seq=seq & 0xffffffff,
                    ack=(self.rcv_nxt or 0) if ack else 0, flags=flags, window=64240) / data)

    def undecodable_frame(self, data, how):
        """|data| at snd_nxt behind 3 VLAN tags (IPv4) or a chain of
        IPV6_EXT_HEADERS destination options headers (IPv6)."""
        tcp = TCP(sport=self.sport, dport=self.dport, seq=self.snd_nxt, ack=self.rcv_nxt, flags="PA",
                  window=64240) / data
        eth = Ether(src=self.mac, dst=self.dst_mac)
        if how == "vlan":
            tags = reduce(lambda a, b: a / b, [Dot1Q(vlan=v) for v in VLAN_TAGS])
            return eth / tags / IP(src=self.src, dst=self.dst, flags="DF") / tcp
        chain = reduce(lambda a, b: a / b, [IPv6ExtHdrDestOpt() for _ in range(IPV6_EXT_HEADERS)])
        return eth / IPv6(src=self.src, dst=self.dst) / chain / tcp

    def wait_outcome(self, timeout, replies=None):
        """Waits until the message's fate is known: a final reply to it
        (queued, held, refused, tempfailed), a hang-up or a reset; or, with
        |replies|, until that many replies came."""
        finals = (b"550 ", b"554 ", b"451 ", b"421 ", b"521 ")

        def done():
            if self.resets or self.fins:
                return True
            lines = self.server_bytes[self.consumed:].split(b"\r\n")[:-1]
            if replies is not None and sum(1 for l in lines if l[3:4] == b" ") >= replies:
                return True
            for line in lines:
                if line.startswith(finals) or (line.startswith(b"250 ") and (b"queued" in line or b"held" in line)):
                    return True
            return False
        self.wait(done, timeout)
        time.sleep(0.3)  # replies after the first final one
        with self.lock:
            got = self.server_bytes[self.consumed:]
            self.consumed = len(self.server_bytes)
        return got

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


def run(c, scenario, sender, out, bdat=b"BDAT"):
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
        out["after_first"] = got.decode("latin-1")
        if not ok:
            c.send(data)
            finish(c, out)
        else:
            c.advance(len(data))
    elif scenario in ("vlan_body", "ipv6_ext_body"):
        # The body in one frame the inspector cannot decode to TCP (three
        # VLAN tags; ten IPv6 extension headers) while the server's kernel
        # reads it; then, if nothing answered, the same bytes again in a
        # plain frame (TCP retransmits).
        envelope(c, out, sender)
        c.step(out, b"DATA\r\n", "354")
        data = body + b".\r\n"
        sendp(c.undecodable_frame(data, scenario.split("_")[0]), iface=c.iface)
        ok, got = c.wait_reply("250", 2.0)
        out["after_first"] = got.decode("latin-1")
        out["undecodable_answered"] = ok
        if not ok:
            c.send(data)
            finish(c, out)
        else:
            c.advance(len(data))
    elif scenario in ("bdat_malformed", "bdat_malformed_whole"):
        # A BDAT the server refuses (or hangs up on), pipelined between the
        # envelope and a real BDAT message (RFC 3030 with PIPELINING): its
        # first chunk in the group and the last one after the group's
        # replies, or (_whole) the whole message in the group. The
        # inspector must pair every reply with its command, or the message
        # is judged with a shifted envelope (the sender lost).
        c.step(out, None, "220")
        c.step(out, b"EHLO adversary.outside.test\r\n", "250")
        out["chunking"] = "CHUNKING" in out["replies"][-1]
        group = b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<" + RCPT + b">\r\n" + bdat + b"\r\nRCPT TO:<" + RCPT2 + b">\r\n"
        if scenario == "bdat_malformed_whole":
            c.send(group + b"BDAT %d LAST\r\n" % len(body) + body)
            out["replies"].append(c.wait_outcome(8.0).decode("latin-1"))
        else:
            half = len(body) // 2
            c.send(group + b"BDAT %d\r\n" % half + body[:half])
            out["replies"].append(c.wait_outcome(5.0, replies=5).decode("latin-1"))
            if not (c.resets or c.fins):
                c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
                out["replies"].append(c.wait_outcome(8.0).decode("latin-1"))
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
    ap.add_argument("--bdat", default="BDAT", help="the malformed BDAT command of bdat_malformed")
    a = ap.parse_args()
    c = Attacker(a.iface, a.src, a.dst, a.dst_mac, random.getrandbits(32))
    out = {"scenario": a.scenario, "replies": []}
    try:
        c.connect()
        run(c, a.scenario, a.sender.encode(), out, a.bdat.encode())
        c.send(b"QUIT\r\n")
        c.wait_reply("221", 1)
        c.send_at(0, b"", flags="FA")
    except Exception as e:  # the appliance may reset us: that is an outcome, not a failure
        out["error"] = repr(e)
    finally:
        c.sniffer.stop()
    out["resets"] = c.resets
    out["all"] = "".join(out["replies"]) + out.get("after_first", "")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
