"""Verdicts on the wire (issue 6, reject and tempfail): the segment that
ends a refused message is held back, the client hears 550/451 with a
reference id injected with the right sequence numbers, the server's half
is reset, and the client's QUIT is answered so nothing hangs."""
import hashlib
import json
import os
import time

import pytest

from harness import PY, Appliance, delivered, wait_for

POLICY = """  envelope_policy = (
    { name = "block-spam-test"; mail_from = "*@spam.test"; action = "reject"; },
    { name = "trap-later"; rcpt_to = "later@*"; action = "tempfail"; },
    { name = "hold-finance"; rcpt_to = "finance@*"; action = "quarantine"; }
  );
"""

SMTPLIB_TEMPFAIL = r'''
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], 25, timeout=20)
try:
    s.sendmail("ok@outside.test", ["later@inside.test"], b"Subject: later\r\n\r\nbody\r\n")
    print("ACCEPTED")
except smtplib.SMTPDataError as e:
    print("DATAERROR", e.smtp_code, e.smtp_error.decode())
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with Appliance(tmp_path_factory.mktemp("enforce"), workers=2, extra=POLICY) as a:
        a.maildir = a.start_sink()
        yield a


def swaks(app, sender, rcpt, subject):
    t0 = time.time()
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", sender,
                     "--to", rcpt, "--h-Subject", subject], timeout=60)
    return r, time.time() - t0


def test_reject_injects_550_and_the_server_gets_nothing(app):
    before = len(delivered(app.maildir))
    r, took = swaks(app, "spammer@spam.test", "bob@inside.test", "cheap pills")
    out = r.stdout + r.stderr
    assert "<** 550 5.7.1 Message rejected by policy (ref SK" in out, out[-2000:]
    assert "221 2.0.0 sekisho: closing connection" in out, "QUIT is answered for the reset server"
    assert took < 10, "the client did not hang"
    time.sleep(0.5)
    assert len(delivered(app.maildir)) == before, "the server must not have stored the message"
    ref = out.split("(ref ", 1)[1].split(")", 1)[0]
    ev = wait_for(lambda: [e for e in app.events() if e.get("id") == ref], timeout=10)
    assert ev and ev[0]["verdict"] == {"action": "reject", "rule": "block-spam-test"}
    assert ev[0]["mail_from"] == "spammer@spam.test" and ev[0]["server_reply"] is None


def test_tempfail_reaches_smtplib_as_451(app, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(SMTPLIB_TEMPFAIL)
    before = len(delivered(app.maildir))
    r = app.outside([PY, str(script), app.env["IP_IN"]], timeout=60)
    assert r.stdout.startswith("DATAERROR 451 4.7.1 Message deferred by policy"), r.stdout + r.stderr
    time.sleep(0.5)
    assert len(delivered(app.maildir)) == before


def test_clean_mail_still_passes_in_the_same_run(app):
    before = len(delivered(app.maildir))
    r, _ = swaks(app, "alice@outside.test", "bob@inside.test", "hello")
    assert r.returncode == 0 and "250 2.0.0 Ok: queued" in r.stdout
    got = wait_for(lambda: len(delivered(app.maildir)) > before and delivered(app.maildir))
    server = got[-1][0]
    ev = wait_for(lambda: [e for e in app.events() if e.get("sha256") == server["sha256"]], timeout=10)
    assert ev and ev[-1]["verdict"]["action"] == "pass"


def test_enforced_flows_are_counted_and_end(app):
    stats = app.stats()["workers"]
    assert sum(w["stream"]["rejected"] for w in stats.values()) >= 1
    assert sum(w["stream"]["tempfailed"] for w in stats.values()) >= 1
    # no half-open leftovers: every flow ends (FIN/RST seen) and leaves the tables
    assert wait_for(lambda: sum(w["stream"]["tracked_flows"] for w in app.stats()["workers"].values()) == 0,
                    timeout=10), app.stats()["workers"]


def test_bypass_switch_forwards_uninspected_then_enforces_again(app):
    import telemetry
    assert telemetry.query(app.prefix, "/sekisho/bypass", "on") == {"bypass": "on"}
    try:
        before = len(delivered(app.maildir))
        r, _ = swaks(app, "spammer@spam.test", "bob@inside.test", "during bypass")
        assert "250 2.0.0 Ok: queued" in r.stdout, "bypassed: the server decides"
        assert wait_for(lambda: len(delivered(app.maildir)) > before)
        stats = app.stats()
        assert stats["bypass"] == 1
        assert sum(w["bypassed"] for w in stats["workers"].values()) > 0
    finally:
        assert telemetry.query(app.prefix, "/sekisho/bypass", "off") == {"bypass": "off"}
    r, _ = swaks(app, "spammer@spam.test", "bob@inside.test", "after bypass")
    assert "550 5.7.1 Message rejected by policy" in r.stdout + r.stderr


def test_quarantine_is_durable_before_the_client_hears_250(app, tmp_path):
    msg = tmp_path / "invoice.eml"
    body = b"From: billing@outside.test\r\nTo: finance@inside.test\r\nSubject: invoice\r\n\r\n" + \
        b"please pay\r\n.dot line\r\n" * 200
    msg.write_bytes(body)
    expected = body + b"\r\n"  # swaks ends DATA with CRLF . CRLF after the file
    before = len(delivered(app.maildir))
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--from", "billing@outside.test",
                     "--to", "finance@inside.test", "--data", str(msg)], timeout=60)
    out = r.stdout + r.stderr
    assert "<-  250 2.0.0 Ok: held as SK" in out, out[-2000:]
    held_id = out.split("held as ", 1)[1].split()[0]
    path = os.path.join(app.spool, "new", held_id + ".msg")
    assert os.path.exists(path), os.listdir(os.path.join(app.spool, "new"))
    header, data = open(path, "rb").read().split(b"\n", 1)
    assert data == expected, "the spool holds the message byte for byte"
    h = json.loads(header)
    assert h["id"] == held_id and h["rcpt_to"] == ["finance@inside.test"] and h["verdict"]["action"] == "quarantine"
    assert h["sha256"] == hashlib.sha256(expected).hexdigest() and h["size"] == len(expected)
    time.sleep(0.5)
    assert len(delivered(app.maildir)) == before, "the server never got it"
    ev = wait_for(lambda: [e for e in app.events() if e.get("id") == held_id], timeout=10)
    assert ev[0]["verdict"]["action"] == "quarantine" and ev[0]["spool"] == path


def test_spool_failure_gives_451_never_250(app):
    tmpdir = os.path.join(app.spool, "tmp")
    os.rename(tmpdir, tmpdir + ".away")
    open(tmpdir, "w").close()  # a file where the spool's tmp/ should be: every write fails
    try:
        r = app.outside(["swaks", "--server", app.env["IP_IN"], "--from", "billing@outside.test",
                         "--to", "finance@inside.test", "--h-Subject", "spool broken"], timeout=60)
        out = r.stdout + r.stderr
        assert "451 4.3.0 Message cannot be held now" in out, out[-2000:]
        assert "held as" not in out
    finally:
        os.remove(tmpdir)
        os.rename(tmpdir + ".away", tmpdir)
