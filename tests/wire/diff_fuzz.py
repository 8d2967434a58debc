#!/usr/bin/python3
"""Differential fuzzer for issue 14: random SMTP sessions, mutated the way
attackers desynchronise inline filters (segmentation, reordering,
conflicting duplicates, RSTs in and out of the window, ACKs beyond the
data, URG, pipelining, command variants, refused commands, line endings,
end-of-data variants), sent by a raw client through the real
sekisho-dataplane to a real server (aiosmtpd on Linux's TCP stack).

The invariant, checked after every session: every message the server
stored was journaled by the dataplane with a pass verdict, the same
SHA-256, the same envelope sender and the same recipients; and no message
from the sender the policy rejects (@evil.test) was stored at all.

    diff_fuzz.py [--seconds N] [--seed S] [--log FILE] [--findings DIR]

Exit status 0 when no finding. Needs root (namespaces) and a built tree
(SEKISHO_BUILD_ROOT or ./build). A finding is written as JSON (the
session's script) to --findings; replay one with --replay FILE.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import PY, SINK, Appliance, delivered, wait_for  # noqa: E402

POLICY = """  envelope_policy = (
    { name = "refuse-evil"; mail_from = "*@evil.test"; action = "reject"; }
  );
"""

CLIENT = r'''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tcp_craft import RawClient
from scapy.all import Ether, IP, TCP, sendp
script = json.load(open(sys.argv[2]))
c = RawClient(sys.argv[3], "192.0.2.9", sys.argv[4], sys.argv[5], script["isn"])
out = {"ok": True}


def wait_any(t):
    """Until a complete final reply line (any code) arrives after the last one consumed."""
    def done():
        for line in c.server_bytes[c.consumed:].split(b"\r\n")[:-1]:
            if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
                return True
        return False
    c.wait(done, t)
    with c.lock:
        c.consumed = len(c.server_bytes)


try:
    c.connect()
    c.wait_reply("220", 3)
    for op in script["ops"]:
        kind = op[0]
        if kind == "wait":
            wait_any(op[2])
        elif kind == "sleep":
            time.sleep(op[1])
        elif kind == "seg":      # offset from the step base, hex bytes, flags
            c.send_at(op[1], bytes.fromhex(op[2]), flags=op[3])
        elif kind == "ackbeyond":
            f = (Ether(src=c.mac, dst=c.dst_mac) / IP(src=c.src, dst=c.dst, flags="DF") /
                 TCP(sport=c.sport, dport=c.dport, seq=(c.snd_nxt + op[1]) & 0xffffffff,
                     ack=((c.rcv_nxt or 0) + op[3]) & 0xffffffff, flags="PA", window=64240) / bytes.fromhex(op[2]))
            sendp(f, iface=c.iface)
        elif kind == "urg":
            f = (Ether(src=c.mac, dst=c.dst_mac) / IP(src=c.src, dst=c.dst, flags="DF") /
                 TCP(sport=c.sport, dport=c.dport, seq=(c.snd_nxt + op[1]) & 0xffffffff, ack=c.rcv_nxt or 0,
                     flags="PAU", urgptr=op[3], window=64240) / bytes.fromhex(op[2]))
            sendp(f, iface=c.iface)
        elif kind == "advance":
            c.advance(op[1])
    c.wait_reply("221", 1.5)
    c.send_at(0, b"", flags="FA")
except Exception as e:
    out["ok"] = False
    out["error"] = repr(e)
finally:
    c.sniffer.stop()
with c.lock:
    out["server"] = c.server_bytes.decode("latin-1")
print(json.dumps(out))
'''

SENDERS = [b"alice@good.test", b"mallory@evil.test"]


def body(rng, scenario_eol):
    lines = [b"From: someone@outside.test", b"To: bob@inside.test", b"Subject: fuzz %d" % rng.randrange(1 << 30), b""]
    for _ in range(rng.randrange(1, 12)):
        kind = rng.random()
        if kind < 0.1:
            lines.append(b"..leading dot stuffed")
        elif kind < 0.15:
            lines.append(b"MAIL FROM:<smuggled@evil.test>")
        else:
            lines.append(b"line %d " % rng.randrange(1000) + b"x" * rng.randrange(0, 120))
    out = b""
    for l in lines:
        r = rng.random()
        eol = b"\r\n" if r > scenario_eol else rng.choice([b"\n", b"\r", b"\r\r\n"])
        out += l + eol
    return out


def end_of_data(rng):
    return rng.choice([b".\r\n"] * 6 + [b".\n", b"\n.\n", b"\r\n.\n", b"\n.\r\n"])


def dialogue(rng, sender, other):
    """A list of steps: (client bytes, expected reply code or None)."""
    steps = []
    steps.append((rng.choice([b"EHLO fuzz.outside.test\r\n", b"ehlo fuzz.outside.test\r\n", b"HELO fuzz\r\n"]), "250"))
    if rng.random() < 0.15:
        steps.append((b"AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n", "535"))
    if rng.random() < 0.1:
        steps.append((b"RSET\r\n", "250"))
    steps.append((rng.choice([b"MAIL FROM:<%s>\r\n", b"MAIL FROM: <%s>\r\n", b"mail from:<%s> SIZE=100\r\n"]) % sender,
                   "250"))
    if rng.random() < 0.15:
        steps.append((b"MAIL FROM:<%s>\r\n" % other, "503"))
    for _ in range(rng.randrange(1, 3)):
        steps.append((b"RCPT TO:<bob@inside.test>\r\n", "250"))
    if rng.random() < 0.1:
        steps.append((b"EHLO\r\n", "501"))
    if rng.random() < 0.05:
        steps.append((b"STARTTLS\r\n", None))
    steps.append((b"DATA\r\n", "354"))
    steps.append((body(rng, 0.9 if rng.random() < 0.3 else 1.0) + end_of_data(rng), "250"))
    steps.append((b"QUIT\r\n", None))
    return steps


def mutate(rng, data):
    """Ops that deliver |data| at offset 0 of the step, mutated."""
    ops = []
    n = len(data)
    cuts = sorted(set([0, n] + [rng.randrange(n) for _ in range(rng.choice([0, 1, 2, 5, 20]))])) if n else [0]
    segs = [(a, data[a:b]) for a, b in zip(cuts, cuts[1:]) if b > a]
    if rng.random() < 0.3 and len(segs) > 1:  # reorder
        i = rng.randrange(len(segs) - 1)
        segs[i], segs[i + 1] = segs[i + 1], segs[i]
    for off, chunk in segs:
        r = rng.random()
        if r < 0.08:  # a conflicting duplicate first
            fake = bytes(b ^ 0x20 if 97 <= b <= 122 else b for b in chunk)
            ops.append(["seg", off, fake.hex(), "PA"])
        elif r < 0.12:
            ops.append(["seg", off + rng.choice([-1, 1, 5, 1000, 10_000_000]), "", "R"])
        elif r < 0.15:
            ops.append(["ackbeyond", off, chunk.hex(), rng.choice([1, 100, 100000])])
        elif r < 0.17:
            ops.append(["urg", off, chunk.hex(), rng.randrange(1, len(chunk) + 1)])
            continue
        ops.append(["seg", off, chunk.hex(), "PA"])
        if r > 0.95:  # an identical retransmission
            ops.append(["seg", off, chunk.hex(), "PA"])
    ops.append(["advance", n])
    return ops


def session_script(rng):
    sender, other = (SENDERS[0], SENDERS[1]) if rng.random() < 0.5 else (SENDERS[1], SENDERS[0])
    ops = []
    pipelined = rng.random() < 0.25
    pending = b""
    for data, code in dialogue(rng, sender, other):
        if pipelined and code not in ("354",):
            pending += data
            continue
        data = pending + data
        pending = b""
        ops += mutate(rng, data)
        if code:
            ops.append(["wait", code, 2.0])
    if pending:
        ops += mutate(rng, pending)
        ops.append(["wait", "250", 2.0])
    return {"isn": rng.getrandbits(32), "sender": sender.decode(), "ops": ops}


def check(app, before_mail, before_events):
    """Findings for the messages stored since |before_mail|."""
    findings = []
    stored = delivered(app.maildir)[before_mail:]
    events = app.events()[before_events:]
    for meta, data in stored:
        if meta["mail_from"].endswith("@evil.test"):
            findings.append("refused sender stored: %s" % meta)
            continue
        ok = [e for e in events if e.get("sha256") == meta["sha256"] and e["verdict"]["action"] == "pass" and
              e["mail_from"] == meta["mail_from"] and sorted(e["rcpt_to"]) == sorted(meta["rcpt_to"])]
        if not ok:
            findings.append("stored without a matching pass event: %s; events %s" %
                            (meta, [(e.get("sha256"), e["mail_from"], e["rcpt_to"], e["verdict"]) for e in events]))
    return findings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--log", default=None)
    ap.add_argument("--findings", default=None)
    ap.add_argument("--replay", default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.getrandbits(32)
    rng = random.Random(seed)
    log = open(a.log, "a") if a.log else sys.stdout
    tmp = tempfile.mkdtemp(prefix="sk-dfuzz-")
    findings_dir = a.findings or os.path.join(tmp, "findings")
    os.makedirs(findings_dir, exist_ok=True)
    client = os.path.join(tmp, "client.py")
    open(client, "w").write(CLIENT)
    start = time.time()
    sessions = found = 0
    print("diff_fuzz: seed %d, budget %.0f s, started %s" % (seed, a.seconds, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime())), file=log,
          flush=True)
    with Appliance(tmp, workers=1, extra=POLICY) as app:
        app.maildir = app.start_sink()
        out_mac = app.run_in(app.env["NS_OUT"], ["cat", "/sys/class/net/sk%so/address" % app.id]).stdout.strip()
        in_mac = app.run_in(app.env["NS_IN"], ["cat", "/sys/class/net/sk%si/address" % app.id]).stdout.strip()
        app.run_in(app.env["NS_IN"], ["ip", "neigh", "replace", "192.0.2.9", "lladdr", out_mac, "dev", "sk%si" % app.id])
        while time.time() - start < a.seconds:
            script = json.load(open(a.replay)).get("script") if a.replay else session_script(rng)
            if a.replay and script is None:
                script = json.load(open(a.replay))
            path = os.path.join(tmp, "script.json")
            json.dump(script, open(path, "w"))
            before_mail, before_events = len(delivered(app.maildir)), len(app.events())
            r = app.outside([PY, client, HERE, path, "sk%so" % app.id, app.env["IP_IN"], in_mac], timeout=120)
            sessions += 1
            time.sleep(0.3)  # the journal flushes every 20 ms; the sink writes at once
            wait_for(lambda: len(delivered(app.maildir)) >= before_mail, timeout=1)
            problems = check(app, before_mail, before_events)
            if problems:
                found += 1
                name = os.path.join(findings_dir, "finding-%d-%d.json" % (seed, sessions))
                json.dump({"script": script, "problems": problems, "client": r.stdout[-4000:]}, open(name, "w"))
                print("FINDING %s: %s" % (name, problems), file=log, flush=True)
            if a.replay:
                break
        stats = app.stats()["workers"]["0"]
    stream = stats["stream"]
    print("diff_fuzz: %d sessions in %.0f s, %d findings; stored %d, journaled %d; desyncs %d, "
          "midstream_reset %d, rst_challenged %d, ack_beyond_data %d, conflicts_rewritten %d, smuggling_refused %d, "
          "rejected %d" % (sessions, time.time() - start, found, len(delivered(app.maildir)), len(app.events()),
                           stream.get("desyncs", 0), stats.get("midstream_reset", 0), stream.get("rst_challenged", 0),
                           stream.get("ack_beyond_data", 0), stream.get("conflicts_rewritten", 0),
                           stream.get("smuggling_refused", 0), stream.get("rejected", 0)), file=log, flush=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
