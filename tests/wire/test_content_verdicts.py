"""Content verdicts on the wire (issue 6 with the MIME engine and the rule
packs): real mail from swaks through sekisho-dataplane to a real server.
The shipped packs plus appliance/demo-policy.cf decide: a Japanese
phishing mail (ISO-2022-JP, brand in the display name) and a macro
document are rejected (550 with a reference, never reach the server), a
password-protected ZIP is held (250 held, spooled, not delivered), a
clean mail is delivered byte-identical. Then rulesets are swapped every
100 ms through /sekisho/rules while mail flows: nothing is lost, every
verdict is the one of a ruleset that was active, and after the last swap
the new ruleset decides."""
import hashlib
import os
import subprocess
import threading
import time

import pytest

from harness import Appliance, delivered, telemetry, wait_for

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
SEKISHOCTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
DEMO_MAIL = os.path.join(SRC, "appliance", "demo-mail.py")


def compile_rules(out, *paths):
    r = subprocess.run([SEKISHOCTL, "rules", "compile", "-o", out] + list(paths), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def send_file(app, path):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", "alice@outside.test",
                     "--to", "bob@inside.test", "--data", "@" + path], timeout=60)
    return r.stdout + r.stderr


def last_reply(out):
    codes = [l[4:] for l in out.splitlines() if l[:3] in ("<- ", "<**") and l[4:7].isdigit()
             and l[4:7] not in ("221", "354", "421")]
    return codes[-1] if codes else ""


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    d = tmp_path_factory.mktemp("content")
    subprocess.run(["/usr/bin/python3", DEMO_MAIL, str(d / "mail")], check=True)
    demo = compile_rules(str(d / "demo.srs"), os.path.join(SRC, "rules", "packs"),
                         os.path.join(SRC, "appliance", "demo-policy.cf"))
    lenient = d / "lenient.cf"
    lenient.write_text("ruleset_version lenient-1\nthreshold tag 100\nthreshold quarantine 200\nthreshold reject 300\n")
    # The packs' forced actions (blocklists, executables) stay; the scores decide nothing.
    loose = compile_rules(str(d / "lenient.srs"), os.path.join(SRC, "rules", "packs"), str(lenient))
    return d, demo, loose


def test_phishing_and_macros_rejected_ppap_held_clean_delivered(material, tmp_path):
    d, demo, _ = material
    with Appliance(tmp_path, extra='  ruleset = "%s";\n' % demo) as app:
        maildir = app.start_sink()
        got = {}
        for name in ("clean", "phishing-ja", "macro", "ppap"):
            got[name] = last_reply(send_file(app, str(d / "mail" / (name + ".eml"))))
        assert got["clean"].startswith("250 ") and "held" not in got["clean"], got
        assert got["phishing-ja"].startswith("550 5.7.1") and "ref " in got["phishing-ja"], got
        assert got["macro"].startswith("550 5.7.1"), got
        assert got["ppap"].startswith("250 2.0.0 Ok: held as "), got
        mails = wait_for(lambda: delivered(maildir), timeout=10)
        assert len(mails) == 1, [m for m, _ in mails]
        meta, data = mails[0]
        events = wait_for(lambda: len(app.events()) >= 4 and app.events(), timeout=10)
        by_subject = {e["subject"]: e for e in events}
        # What the server stored is byte for byte what the client sent and the dataplane inspected.
        assert hashlib.sha256(data).hexdigest() == by_subject["Minutes of Tuesday's meeting"]["sha256"]
        phish = by_subject["【重要】Amazonアカウント一時停止のお知らせ"]
        assert phish["verdict"]["action"] == "reject"
        assert {"SK_BRAND_DISPLAY_SPOOF", "SK_SUBJ_ACCOUNT_SUSPEND"} <= {r["rule"] for r in phish["verdict"]["rules"]}
        assert phish["from_name"] == "Amazon カスタマーサービス"
        ppap = by_subject["お見積書の送付"]
        assert ppap["verdict"]["action"] == "quarantine" and ppap["spool"]
        assert ppap["attachments"][0]["name"] == "見積書.zip" and ppap["attachments"][0]["encrypted"]
        macro = by_subject["Updated remittance form"]
        assert macro["attachments"][0]["macros"] and macro["verdict"]["action"] == "reject"
        stream = app.stats()
        assert sum(w["stream"]["content_scanned"] for w in stream["workers"].values()) >= 4, stream


def test_ruleset_swapped_every_100ms_while_mail_flows(material, tmp_path):
    d, demo, loose = material
    with Appliance(tmp_path, workers=2, extra='  ruleset = "%s";\n' % demo) as app:
        maildir = app.start_sink()
        stop = threading.Event()
        swaps = []

        def swapper():
            i = 0
            while not stop.is_set():
                r = telemetry.query(app.prefix, "/sekisho/rules", loose if i % 2 == 0 else demo)
                assert "version" in r, r
                swaps.append(r["ruleset"])
                i += 1
                time.sleep(0.1)
        t = threading.Thread(target=swapper)
        t.start()
        sent = []
        try:
            for i in range(16):
                name = "phishing-ja" if i % 2 else "clean"
                sent.append((name, last_reply(send_file(app, str(d / "mail" / (name + ".eml"))))))
        finally:
            stop.set()
            t.join()
        assert len(swaps) >= 10 and set(swaps) == {"lenient-1", "demo-1"}, swaps
        # Every clean mail arrives; each phishing mail was delivered or rejected, as one ruleset said.
        for name, reply in sent:
            if name == "clean":
                assert reply.startswith("250 ") and "held" not in reply, sent
            else:
                assert reply.startswith("250 ") or reply.startswith("550 5.7.1"), sent
        delivered_now = wait_for(lambda: delivered(maildir), timeout=10)
        passed = sum(1 for n, r in sent if r.startswith("250 "))
        assert len(delivered_now) == passed, (len(delivered_now), sent)
        events = wait_for(lambda: len(app.events()) >= len(sent) and app.events(), timeout=10)
        assert len(events) == len(sent)
        for e in events:
            assert e["verdict"]["action"] in ("pass", "reject"), e["verdict"]
        # After the swaps: the strict ruleset decides the next phishing mail.
        r = telemetry.query(app.prefix, "/sekisho/rules", demo)
        assert r.get("ruleset") == "demo-1", r
        assert last_reply(send_file(app, str(d / "mail" / "phishing-ja.eml"))).startswith("550 5.7.1")
        r = telemetry.query(app.prefix, "/sekisho/rules", loose)
        assert last_reply(send_file(app, str(d / "mail" / "phishing-ja.eml"))).startswith("250 ")
        # Replaced sets are freed once no message holds them.
        wait_for(lambda: app.stats()["policy"]["retired_pending"] == 0, timeout=10)
        assert app.stats()["policy"]["freed"] >= len(swaps)


def test_deciding_rule_reply_text_reaches_the_client(tmp_path):
    """A `decide R tempfail|reject` rule with a `reply` text: the client hears
    that text (with the reference) in the 451/550 the dataplane injects, the
    journal names the deciding rule (the compiler refuses reply texts that are
    not printable ASCII: tests/unit/rules/test_rules_conditions.cpp)."""
    cf = tmp_path / "decide.cf"
    cf.write_text("ruleset_version decide-1\n"
                  "header __PILLS Subject =~ /Cheap pills/\nmeta DEFER_PILLS __PILLS\nscore DEFER_PILLS 0\n"
                  "decide DEFER_PILLS tempfail\nreply DEFER_PILLS Held for review, try again tomorrow\n"
                  "header __LOTTERY Subject =~ /lottery/i\nmeta NO_LOTTERY __LOTTERY\nscore NO_LOTTERY 0\n"
                  "decide NO_LOTTERY reject\nreply NO_LOTTERY Lottery mail is not accepted here\n")
    rules = compile_rules(str(tmp_path / "decide.srs"), str(cf))
    with Appliance(tmp_path, extra='  ruleset = "%s";\n' % rules) as app:
        maildir = app.start_sink()

        def send(subject):
            r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from",
                             "alice@outside.test", "--to", "bob@inside.test", "--h-Subject", subject], timeout=60)
            return last_reply(r.stdout + r.stderr)
        deferred = send("Cheap pills")
        rejected = send("You won the LOTTERY")
        clean = send("Lunch")
        assert deferred.startswith("451 4.7.1 Held for review, try again tomorrow (ref SK"), deferred
        assert rejected.startswith("550 5.7.1 Lottery mail is not accepted here (ref SK"), rejected
        assert clean.startswith("250 ") and "held" not in clean, clean
        assert len(wait_for(lambda: delivered(maildir), timeout=10)) == 1
        events = wait_for(lambda: len(app.events()) >= 3 and app.events(), timeout=10)
        by_subject = {e["subject"]: e["verdict"] for e in events}
        assert by_subject["Cheap pills"]["action"] == "tempfail"
        assert by_subject["Cheap pills"]["rule"] == "DEFER_PILLS"
        assert by_subject["You won the LOTTERY"]["rule"] == "NO_LOTTERY"
