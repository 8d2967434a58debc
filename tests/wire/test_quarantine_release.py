"""Quarantine release end to end (issue 7): a password-protected ZIP is
held by sekisho-dataplane (250 held, spooled, never delivered);
sekisho-control, running in the `outside` namespace like a management host,
takes it from the spool, lists it, and releases it through the API with an
admin token: the dataplane is told the message's SHA-256, the control
plane's SMTP client delivers it through the wire with the original
envelope, and the real server in `inside` stores it byte-identical to what
the client first sent. The appliance does not hold it a second time; a
second release is refused; the same bytes sent again are held again (one
release, one delivery); the audit log records the release and verifies."""
import hashlib
import json
import os
import subprocess
import time

from harness import Appliance, delivered, telemetry, wait_for

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
SEKISHOCTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
CONTROL = os.path.join(BUILD, "control", "sekisho-control")
DEMO_MAIL = os.path.join(SRC, "appliance", "demo-mail.py")


def swaks(app, path):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", "alice@outside.test",
                     "--to", "bob@inside.test,carol@inside.test", "--data", "@" + path], timeout=60)
    out = r.stdout + r.stderr
    codes = [l[4:] for l in out.splitlines() if l[:3] in ("<- ", "<**") and l[4:7].isdigit()
             and l[4:7] not in ("221", "354", "421")]
    return codes[-1] if codes else out


def api(app, method, path, token, body=None):
    argv = ["curl", "-sS", "-X", method, "-H", "Authorization: Bearer " + token, "-w", "\n%{http_code}",
            "http://127.0.0.1:18025" + path]
    if body is not None:
        argv[1:1] = ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    r = app.outside(argv, timeout=120)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), (json.loads(text) if text.strip().startswith(("{", "[")) else text)


def test_held_message_released_through_the_api_arrives_byte_identical(tmp_path):
    subprocess.run(["/usr/bin/python3", DEMO_MAIL, str(tmp_path / "mail")], check=True)
    rules = str(tmp_path / "demo.srs")
    r = subprocess.run([SEKISHOCTL, "rules", "compile", "-o", rules, os.path.join(SRC, "rules", "packs"),
                        os.path.join(SRC, "appliance", "demo-policy.cf")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    ppap = str(tmp_path / "mail" / "ppap.eml")
    with Appliance(tmp_path, extra='  ruleset = "%s";\n' % rules) as app:
        maildir = app.start_sink()
        reply = swaks(app, ppap)
        assert reply.startswith("250 2.0.0 Ok: held as "), reply
        held = wait_for(lambda: [e for e in app.events() if e["verdict"]["action"] == "quarantine"], timeout=10)
        event = held[0]

        conf = tmp_path / "control.conf"
        conf.write_text(
            "control = {\n  listen = \"127.0.0.1:18025\";\n  journal = \"%s\";\n  spool = \"%s\";\n"
            "  database = \"%s\";\n  ingest_interval_ms = 100;\n  audit_key = \"%s\";\n  audit_anchor = \"%s\";\n"
            "  dataplane_socket = \"/var/run/dpdk/%s/dpdk_telemetry.v2\";\n  release_timeout_s = 20;\n};\n"
            % (app.journal, app.spool, tmp_path / "control.db", tmp_path / "audit.key", tmp_path / "audit.anchor",
               app.prefix))
        tok = subprocess.run([CONTROL, "-c", str(conf), "token", "create", "wire-test", "--admin"],
                             capture_output=True, text=True)
        assert tok.returncode == 0, tok.stderr
        token = tok.stdout.strip().split()[-1]
        ctl = app.spawn_in(app.env["NS_OUT"], [CONTROL, "-c", str(conf)], str(tmp_path / "control.log"))
        assert wait_for(lambda: "listening" in open(tmp_path / "control.log").read(), timeout=15), \
            open(tmp_path / "control.log").read()

        # Taken from the spool; the spool file is gone once stored.
        def listed():
            code, body = api(app, "GET", "/api/quarantine?state=held", token)
            return body["rows"] if code == 200 and body["total"] >= 1 else None
        rows = wait_for(listed, timeout=15)
        assert rows, open(tmp_path / "control.log").read()
        item = rows[0]
        assert item["id"] == event["id"]
        assert item["recipients"] == ["bob@inside.test", "carol@inside.test"]
        assert item["sha256"] == event["sha256"]
        assert not os.listdir(os.path.join(app.spool, "new"))
        code, detail = api(app, "GET", "/api/quarantine/" + item["id"], token)
        assert code == 200 and detail["subject"] == event["subject"]
        assert any(h[0] == "Subject" for h in detail["headers"])
        assert delivered(maildir) == []  # held: the server has nothing yet

        # Without a token: refused.
        r = app.outside(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                         "http://127.0.0.1:18025/api/quarantine/%s/release" % item["id"]])
        assert r.stdout in ("401", "403"), r.stdout

        stored = app.outside(["curl", "-sS", "-H", "Authorization: Bearer " + token,
                              "http://127.0.0.1:18025/api/quarantine/%s/message" % item["id"]],
                             text=False).stdout
        assert hashlib.sha256(stored).hexdigest() == event["sha256"]
        code, rel = api(app, "POST", "/api/quarantine/%s/release" % item["id"], token, {})
        assert code == 200, rel
        assert rel["state"] == "released" and rel["release"]["announced"], rel
        mails = wait_for(lambda: delivered(maildir), timeout=15)
        assert len(mails) == 1
        meta, data = mails[0]
        assert data == stored  # byte-identical to what the client first sent (its SHA-256 below)
        assert hashlib.sha256(data).hexdigest() == event["sha256"]
        assert meta["mail_from"] == "alice@outside.test"
        assert meta["rcpt_to"] == ["bob@inside.test", "carol@inside.test"]
        # The dataplane saw the re-delivery and let it pass once.
        again = wait_for(lambda: [e for e in app.events() if e.get("sha256") == event["sha256"]
                                  and e["verdict"]["action"] == "pass"], timeout=10)
        assert again[0]["verdict"]["rule"].startswith("released:"), again[0]["verdict"]
        stats = app.stats()
        assert sum(w["stream"]["released_passed"] for w in stats["workers"].values()) == 1, stats

        code, body = api(app, "POST", "/api/quarantine/%s/release" % item["id"], token, {})
        assert code == 409, body
        # The same bytes once more: judged again, held again.
        assert swaks(app, ppap).startswith("250 2.0.0 Ok: held as ")
        assert len(delivered(maildir)) == 1

        code, body = api(app, "GET", "/api/quarantine?state=released", token)
        assert code == 200 and body["total"] == 1, body
        assert "wire-test" in body["rows"][0]["changed_by"], body["rows"][0]
        ctl.terminate()
        ctl.wait(10)
        v = subprocess.run([SEKISHOCTL, "audit", "verify", "-c", str(conf)], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
        assert "ok" in v.stdout, v.stdout
