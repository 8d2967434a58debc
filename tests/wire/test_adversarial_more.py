"""No message reaches the server unjudged (issue 14), the cases
test_adversarial.py does not play: a malformed BDAT pipelined against
Postfix with CHUNKING, an archive bomb with the shipped packs loaded, and a
message body in frames the decoder cannot reach TCP in. Real servers
(Postfix, aiosmtpd) on Linux's TCP stack, the attacker's raw client from
adversary.py or swaks from the outside namespace."""
import binascii
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import struct
import threading
import time
import zlib

import pytest

from harness import BUILD, PY, SINK, SRC, Appliance, delivered, wait_for
from test_adversarial import POSTFIX, POSTFIX_POLICY, attack

RAW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rawframes.py")
SEKISHOCTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
REFUSE_EVIL = """  envelope_policy = (
    { name = "refuse-evil"; mail_from = "*@evil.test"; action = "reject"; }
  );
"""


def neighbour_for_attacker(app, out_if, in_if, addr="192.0.2.9", v6=False):
    """The raw client speaks from |addr|, which no kernel owns: the server's
    kernel sends its replies for it to the outside end's MAC."""
    out_mac = app.run_in(app.env["NS_OUT"], ["cat", "/sys/class/net/%s/address" % out_if]).stdout.strip()
    app.in_mac = app.run_in(app.env["NS_IN"], ["cat", "/sys/class/net/%s/address" % in_if]).stdout.strip()
    r = app.run_in(app.env["NS_IN"], ["ip"] + (["-6"] if v6 else []) + ["neigh", "replace", addr, "lladdr", out_mac,
                                                                        "dev", in_if])
    assert r.returncode == 0, r.stderr


def maillog(pf):
    p = os.path.join(pf, "maillog")
    return open(p).read() if os.path.exists(p) else ""


# ---- 1. A malformed BDAT in a pipelined group, against Postfix ----------

@pytest.fixture(scope="module")
def postfix_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bdat")
    with Appliance(tmp, workers=1, extra=POSTFIX_POLICY) as app:
        # the postfix user must walk into its queue: not under pytest's 0700 tmp dirs
        pf = os.path.join(tempfile.mkdtemp(prefix="sk-adv-pf-"), "postfix")
        r = app.inside(["bash", POSTFIX, "up", pf, app.env["IP_IN"]])
        assert r.returncode == 0, r.stdout + r.stderr
        app.postfix = pf
        try:
            neighbour_for_attacker(app, "sk%so" % app.id, "sk%si" % app.id)
            assert wait_for(lambda: "220 " in attack(app, "clean", sender="alice@good.test")["all"], timeout=30)
            yield app
        finally:
            app.inside(["bash", POSTFIX, "down", pf])
            shutil.rmtree(os.path.dirname(pf), ignore_errors=True)


# What Postfix 3.7 does with each (smtpd.c bdat_cmd) and what the engine
# makes of it (smtp_session.cpp bdat_command). "BDAT" and "BDAT abc" carry
# no size: no server reads a chunk after them; Postfix answers 521 and hangs
# up (it cannot skip a chunk of unknown size), the engine pairs that reply
# with the BDAT (anomaly bdat_bad_size, no desync). "BDAT 10 LAST junk" has
# a size a lenient server would take: whether 10 bytes of chunk follow is
# the server's choice (desync bdat_ambiguous), so the session is cut (451)
# and nothing after it reaches Postfix.
BDAT_FORMS = {"no_size": "BDAT", "size_not_a_number": "BDAT abc", "extra_argument": "BDAT 10 LAST junk"}


@pytest.mark.parametrize("whole", [False, True], ids=["last_chunk_after_replies", "whole_message_in_group"])
@pytest.mark.parametrize("form", sorted(BDAT_FORMS))
def test_malformed_bdat_pipelined_against_postfix(postfix_app, form, whole):
    """MAIL, RCPT bob, the malformed BDAT, RCPT carol and a BDAT message from
    the refused sender, pipelined. Postfix never stores the message, and
    the journal holds the envelope Postfix accepted."""
    app = postfix_app
    sessions0, messages0 = len(app.events("session")), len(app.events())
    out = attack(app, "bdat_malformed_whole" if whole else "bdat_malformed", args=["--bdat", BDAT_FORMS[form]])
    assert out.get("chunking"), out  # Postfix offers CHUNKING: the BDAT path is the server's
    time.sleep(1.0)  # a message Postfix took would be queued (and logged) by now
    log = maillog(app.postfix)
    assert not re.search(r"\b[0-9A-F]{6,}: from=<mallory@evil\.test>", log), log[-3000:]
    assert "queued as" not in out["all"], out
    sessions = wait_for(lambda: len(app.events("session")) > sessions0 and app.events("session"), timeout=10)
    session = sessions[-1]
    messages = app.events()[messages0:]
    if form == "extra_argument":
        assert "451 4.7.0 sekisho: session cannot be inspected" in out["all"], out
        assert not any(m["complete"] for m in messages), messages
        assert session.get("desync") == "bdat_ambiguous", session
        return
    assert len(messages) == 1, messages
    m = messages[0]
    assert m["mail_from"] == "mallory@evil.test" and m["body_via"] == "BDAT", m
    if whole:
        # The group ends the message: held before Postfix sees any of it,
        # judged as the clean send is
        assert "550 5.7.1" in out["all"] and "521 " not in out["all"], out
        assert m["verdict"] == {"action": "reject", "rule": "refuse-evil"}, m["verdict"]
    else:
        # Postfix took MAIL and RCPT bob, hung up at the BDAT: carol was
        # never accepted, the last chunk never sent; the event says so
        assert "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n521 5.5.4 Syntax: BDAT count [LAST]" in out["all"], out
        assert m["rcpt_to"] == ["bob@inside.test"] and not m["complete"] and m["server_reply"] is None, m
    assert session.get("desync") is None and session["anomalies"].get("bdat_bad_size") == 1, session


# ---- 2. The archive bomb -------------------------------------------------

def tgz_gz_of_zeros(n, name="logs.bin"):
    """A .tar.gz.gz holding |n| zero bytes (a multiple of 1 MiB) in about
    2.6 KB for 1 GiB, built in a fraction of the time deflating them takes:
    after a full flush deflate starts afresh, so every MiB of zeros
    compresses to the same bytes."""
    mib = 1 << 20
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime = n, 0
    head = ti.tobuf(format=tarfile.USTAR_FORMAT)
    tail = b"\0" * 1024
    tail += b"\0" * (-(len(head) + n + len(tail)) % tarfile.RECORDSIZE)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = [z.compress(head) + z.flush(zlib.Z_FULL_FLUSH)]
    zeros = bytes(mib)
    body.append((z.compress(zeros) + z.flush(zlib.Z_FULL_FLUSH)) * (n // mib))
    body.append(z.compress(tail) + z.flush(zlib.Z_FINISH))
    crc = zlib.crc32(head)
    for _ in range(n // mib):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(tail, crc)
    inner = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"".join(body) +
             struct.pack("<II", crc & 0xffffffff, (len(head) + n + len(tail)) & 0xffffffff))
    return gzip.compress(inner, 9, mtime=0)


def swaks_argv(app, sender, subject, attach=None):
    argv = ["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", sender,
            "--to", "bob@inside.test", "--h-Subject", subject, "--timeout", "30"]
    if attach:
        argv += ["--attach-type", "application/gzip", "--attach-name", os.path.basename(attach), "--attach", "@" + attach]
    return argv


def last_reply(out):
    codes = [l[4:] for l in out.splitlines() if l[:3] in ("<- ", "<**") and l[4:7].isdigit()
             and l[4:7] not in ("221", "354", "421")]
    return codes[-1] if codes else ""


def test_archive_bomb_judged_in_time_while_the_worker_serves_others(tmp_path):
    """A 2.6 KB .tar.gz.gz of 1 GiB of zeros (the issue's 3.5 KB gz-in-gz
    took 5 s of a worker before the unpacking budgets) with the shipped
    packs loaded: the sender hears the verdict (SK_ATT_BOMB quarantines:
    250 held), not the hold deadline's 451; the journal's attachment facts
    say budget_exceeded ratio; and clean mail sent meanwhile on other
    connections to the same (single) worker is delivered promptly."""
    srs = str(tmp_path / "packs.srs")
    r = subprocess.run([SEKISHOCTL, "rules", "compile", "-o", srs, os.path.join(SRC, "rules", "packs")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bomb = str(tmp_path / "logs.tgz.gz")
    with open(bomb, "wb") as f:
        f.write(tgz_gz_of_zeros(1 << 30))
    assert os.path.getsize(bomb) < 3500
    with Appliance(tmp_path, workers=1, extra='  ruleset = "%s";\n' % srs) as app:
        maildir = app.start_sink()
        warm = app.outside(swaks_argv(app, "alice@outside.test", "warm-up"), timeout=60)
        assert last_reply(warm.stdout).startswith("250 "), warm.stdout
        bombs, cleans = {}, []

        def send_bombs():
            for i in range(3):
                t0 = time.time()
                r = app.outside(swaks_argv(app, "mallory@outside.test", "bomb %d" % i, attach=bomb), timeout=60)
                bombs[i] = (time.time() - t0, r.stdout + r.stderr)

        t = threading.Thread(target=send_bombs)
        t.start()
        n = 0
        while t.is_alive() or n < 3:
            t0 = time.time()
            r = app.outside(swaks_argv(app, "alice@outside.test", "clean %d" % n), timeout=60)
            cleans.append((time.time() - t0, last_reply(r.stdout)))
            n += 1
        t.join()
        for i, (took, out) in sorted(bombs.items()):
            reply = last_reply(out)
            assert reply.startswith("250 2.0.0 Ok: held as "), (i, took, out[-2000:])
            assert took < 5, (i, took)
        for took, reply in cleans:
            assert reply.startswith("250 ") and "held" not in reply, cleans
            assert took < 2.0, cleans  # ~0.3 s here; behind an unbudgeted bomb (fc70b4e) 3.1 s
        subjects = {m.get("subject") for m, _ in delivered(maildir)}
        assert len(delivered(maildir)) == 1 + len(cleans), subjects
        events = wait_for(lambda: len([e for e in app.events() if e["subject"].startswith("bomb")]) == 3
                          and app.events(), timeout=10)
        for e in [e for e in events if e["subject"].startswith("bomb")]:
            assert e["verdict"]["action"] == "quarantine", e["verdict"]
            assert "SK_ATT_BOMB" in {h["rule"] for h in e["verdict"]["rules"]}, e["verdict"]
            atts = [a for a in e["attachments"] if a["name"] == "logs.tgz.gz"]
            assert atts and "ratio" in atts[0].get("budget_exceeded", []), e["attachments"]
            assert atts[0]["unpacked_bytes"] < 64 << 20, atts[0]
        stream = app.stats()["workers"]["0"]["stream"]
        assert stream["hold_timeouts"] == 0, stream


# ---- 3. The body in frames the decoder cannot reach TCP in ---------------

def tagged_body_frames(path, tags=3):
    """Frames captured in `inside` (rawframes.py hex lines) with |tags|
    VLAN tags carrying the adversary's body."""
    out = []
    for line in open(path):
        f = binascii.unhexlify(line.strip())
        if all(f[12 + 4 * i:14 + 4 * i] == b"\x81\x00" for i in range(tags)) and b"never reach the server" in f:
            out.append(f)
    return out


@pytest.mark.parametrize("policy", ["drop", "forward"])
def test_body_in_undecodable_frames(tmp_path, policy):
    """The message's body (with its end of data) sent once in a frame the
    decoder cannot reach TCP in, then, if unanswered, in a plain frame.
    Ten destination options headers over IPv6: Linux reads them, so the
    server itself shows what got through. Three VLAN tags over IPv4: Linux
    peels any number with nested VLAN devices, which the test VM's kernel
    cannot make (no 8021q module), so a raw capture on the server's interface shows what
    arrived there. With undecodable = "drop" (the default) neither frame
    reaches the server's side, the retransmission is judged like the clean
    send (550) and nothing is stored. With "forward" (the operator's
    fail-open choice) both arrive and the server stores the refused
    message sent over IPv6: what the drop prevents is real. Both policies
    count the frames."""
    extra = REFUSE_EVIL + ('  undecodable = "forward";\n' if policy == "forward" else "")
    with Appliance(tmp_path, workers=1, extra=extra) as app:
        ins, outs = "sk%si" % app.id, "sk%so" % app.id
        maildirs = []
        for ip in (app.env["IP_IN"], app.env["IP6_IN"]):  # a sink per address family
            maildirs.append(os.path.join(str(tmp_path), "mail-" + ip.replace(":", "_")))
            log = maildirs[-1] + ".log"
            app.spawn_in(app.env["NS_IN"], [PY, SINK, "--listen", ip, "--dir", maildirs[-1]], log)
            assert wait_for(lambda: os.path.exists(log) and "listening" in open(log).read(), timeout=15)

        def evil_stored():
            return sum(1 for d in maildirs for m, _ in delivered(d) if m["mail_from"].endswith("@evil.test"))
        neighbour_for_attacker(app, outs, ins)
        neighbour_for_attacker(app, outs, ins, addr="2001:db8:5e::9", v6=True)
        results = {}
        for scenario, src, dst in (("vlan_body", "192.0.2.9", app.env["IP_IN"]),
                                   ("ipv6_ext_body", "2001:db8:5e::9", app.env["IP6_IN"])):
            w0 = app.stats()["workers"]["0"]
            stored0 = evil_stored()
            cap = str(tmp_path / (scenario + ".hex"))
            rx = app.spawn_in(app.env["NS_IN"], [PY, RAW, "recv", ins, cap, "30"], cap + ".log")
            assert wait_for(lambda: "ready" in open(cap + ".log").read(), timeout=10)
            r = app.outside([PY, os.path.join(os.path.dirname(__file__), "adversary.py"), outs, src, dst, app.in_mac,
                             scenario], timeout=120)
            assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
            out = json.loads(r.stdout.strip().splitlines()[-1])
            assert "354 " in out["all"], out  # the envelope went through the inspector
            wait_for(lambda: evil_stored() > stored0, timeout=3)
            rx.terminate()
            rx.wait(5)
            w = app.stats()["workers"]["0"]
            d = {k: w.get(k, 0) - w0.get(k, 0) for k in ("undecodable", "undecodable_dropped")}
            status = "vlan_too_deep" if scenario == "vlan_body" else "ipv6_ext_chain"
            d[status] = w["decode"][status] - w0["decode"][status]
            results[scenario] = (out, d, evil_stored() - stored0, len(tagged_body_frames(cap)))
        for scenario, (out, d, stored, tagged) in results.items():
            if policy == "drop":
                assert stored == 0 and tagged == 0, (scenario, out)
                assert d["undecodable_dropped"] == d["undecodable"], (scenario, d)
                assert not out["undecodable_answered"], out
                assert "550 5.7.1" in out["all"] and "queued as" not in out["all"], (scenario, out)
            else:
                assert d["undecodable_dropped"] == 0, (scenario, d)
                if scenario == "vlan_body":  # the frame the inspector could not read reached the server's side
                    assert tagged == 1, (scenario, out, d)
                else:  # the server read (and stored) what the inspector could not
                    assert stored == 1, (scenario, out, d)
            assert d["undecodable"] >= 1, (scenario, d)
            assert d["vlan_too_deep" if scenario == "vlan_body" else "ipv6_ext_chain"] >= 1, (scenario, d)
        if policy == "drop":
            ev = [e for e in app.events() if e["mail_from"] == "mallory@evil.test"]
            assert len(ev) == 2 and all(e["verdict"] == {"action": "reject", "rule": "refuse-evil"} for e in ev), ev

