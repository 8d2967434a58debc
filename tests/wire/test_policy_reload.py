"""Hot swap (issue 6): policies are published to the workers with RCU every
100 ms while mail flows. No message is lost or changed, each verdict is the
one its policy gave (the client's reply and the journal agree), messages
after a swap get the new verdicts, and replaced sets are freed."""
import threading
import time

import pytest

from harness import Appliance, delivered, telemetry, wait_for

REJECT = 'envelope_policy = ( { name = "no-spam-test"; mail_from = "*@spam.test"; action = "reject"; } );\n'
PASS_ALL = "envelope_policy = ( );\n"


def swaks(app, sender, subject):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", sender,
                     "--to", "bob@inside.test", "--h-Subject", subject], timeout=60)
    return r.stdout + r.stderr


def reload(app, path):
    return telemetry.query(app.prefix, "/sekisho/reload", path)


def test_swap_every_100ms_while_mail_flows(tmp_path):
    a, b = tmp_path / "reject.conf", tmp_path / "pass.conf"
    a.write_text(REJECT)
    b.write_text(PASS_ALL)
    with Appliance(tmp_path, workers=2) as app:
        maildir = app.start_sink()
        stop = threading.Event()
        swaps = []

        def swapper():
            i = 0
            while not stop.is_set():
                r = reload(app, str(a if i % 2 == 0 else b))
                assert "version" in r, r
                swaps.append(r["version"])
                i += 1
                time.sleep(0.1)
        t = threading.Thread(target=swapper)
        t.start()
        outcomes = []
        try:
            for i in range(24):
                spam = i % 3 == 0
                out = swaks(app, "s%d@spam.test" % i if spam else "alice%d@outside.test" % i, "msg %d" % i)
                outcomes.append((i, spam, out))
        finally:
            stop.set()
            t.join()
        assert len(swaps) >= 10, "the policy was swapped every 100 ms while mail flowed"
        got = wait_for(lambda: delivered(maildir), timeout=10)
        subjects = {}
        for meta, data in got:
            subjects[data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()] = meta
        events = wait_for(lambda: len(app.events()) >= len(outcomes) and app.events(), timeout=10)
        by_sender = {e["mail_from"]: e for e in events}
        for i, spam, out in outcomes:
            sender = "s%d@spam.test" % i if spam else "alice%d@outside.test" % i
            e = by_sender[sender]
            if "550 5.7.1 Message rejected by policy" in out:
                assert spam and e["verdict"]["action"] == "reject" and "msg %d" % i not in subjects
            else:
                assert "250 2.0.0 Ok: queued" in out, out[-800:]
                assert e["verdict"]["action"] == "pass"
                assert subjects["msg %d" % i]["sha256"] == e["sha256"], "delivered == inspected"
        assert all("msg %d" % i in subjects for i, spam, _ in outcomes if not spam), "no clean message lost"

        # After a swap, the new verdicts hold.
        assert "version" in reload(app, str(a))
        assert "550 5.7.1" in swaks(app, "after@spam.test", "after-a")
        assert "version" in reload(app, str(b))
        assert "250 2.0.0 Ok: queued" in swaks(app, "after@spam.test", "after-b")

        # Every replaced set is freed once no worker or message can hold it.
        pol = wait_for(lambda: (lambda p: p if p["retired_pending"] == 0 else None)(app.stats()["policy"]), timeout=10)
        assert pol and pol["freed"] == pol["version"] - 1, app.stats()["policy"]


def test_bad_policy_file_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('envelope_policy = (\n  { name = "x"; action = "explode"; }\n);\n')
    with Appliance(tmp_path) as app:
        before = app.stats()["policy"]["version"]
        r = reload(app, str(bad))
        assert r["error"].startswith(str(bad) + ":2: envelope rule action must be"), r
        assert app.stats()["policy"]["version"] == before
        r = reload(app, str(tmp_path / "missing.conf"))
        assert r["error"].endswith(":0: cannot read the policy file")
