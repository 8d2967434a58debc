"""The hold deadline (issue 6): a quarantined message whose spool write does
not finish in hold_timeout_ms gets the configured fallback, counted as
hold_timeouts. The spool is made slow with the fault-injection setting
spool_fault_delay_ms. "tempfail": the client hears 451 and the server gets
nothing; "pass": the held segment goes on, the real server accepts the
message byte-identical, the event says pass (hold_timeout), and the copy
the spool writes late is removed so it can never be released twice."""
import hashlib
import os
import time

from harness import Appliance, delivered, wait_for

POLICY = """  envelope_policy = ( { name = "hold-finance"; rcpt_to = "finance@*"; action = "quarantine"; } );
  hold_timeout_ms = 200;
  spool_fault_delay_ms = 1500;
"""


def swaks(app, subject):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", "alice@outside.test",
                     "--to", "finance@inside.test", "--h-Subject", subject], timeout=60)
    return r.stdout + r.stderr


def spooled(app):
    d = os.path.join(app.spool, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_deadline_tempfail(tmp_path):
    with Appliance(tmp_path, extra=POLICY + '  hold_timeout_action = "tempfail";\n') as app:
        maildir = app.start_sink()
        out = swaks(app, "slow spool, fail closed")
        assert "451 4.3.0" in out, out
        time.sleep(2.0)  # the late write lands
        assert delivered(maildir) == []
        w = app.stats()["workers"]["0"]["stream"]
        assert w["hold_timeouts"] == 1 and w["hold_timeout_passed"] == 0, w
        ev = wait_for(lambda: app.events(), timeout=10)
        assert ev[0]["verdict"]["action"] == "tempfail", ev[0]["verdict"]


def test_deadline_pass_delivers_and_drops_the_late_copy(tmp_path):
    with Appliance(tmp_path, extra=POLICY + '  hold_timeout_action = "pass";\n') as app:
        maildir = app.start_sink()
        out = swaks(app, "slow spool, fail open")
        replies = [l[3:].strip() for l in out.splitlines() if l.startswith("<-")]
        last = [r for r in replies if r[:3].isdigit() and r[:3] not in ("221", "354")]
        assert last and last[-1].startswith("250 ") and "held" not in last[-1], replies
        mails = wait_for(lambda: delivered(maildir), timeout=10)
        assert len(mails) == 1
        ev = wait_for(lambda: app.events(), timeout=10)[0]
        assert ev["verdict"] == {"action": "pass", "rule": "hold_timeout"}, ev["verdict"]
        assert hashlib.sha256(mails[0][1]).hexdigest() == ev["sha256"]
        time.sleep(2.0)  # the spool thread finishes its (late) write; the worker removes it
        assert wait_for(lambda: spooled(app) == [], timeout=5), spooled(app)
        w = app.stats()["workers"]["0"]["stream"]
        assert w["hold_timeouts"] == 1 and w["hold_timeout_passed"] == 1, w
