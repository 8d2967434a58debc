"""Ruleset push (issue 7): a rule pack pushed with `sekishoctl rules push
--activate` through sekisho-control's API is compiled, activated on the
running sekisho-dataplane over its telemetry socket, and changes the
verdict real mail gets; a policy saved through the API (PUT /api/policy)
becomes a new version whose first-match rules decide over the packs
(tempfail for many recipients, pass for an allowed sender); `sekishoctl
rules rollback` goes back to the packs alone. The client's SMTP replies,
the journal's verdicts and what the server received agree."""
import json
import os
import subprocess

from harness import Appliance, delivered, wait_for

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
SEKISHOCTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
CONTROL = os.path.join(BUILD, "control", "sekisho-control")
URL = "http://127.0.0.1:18026"

PACK = """# A pack pushed by the wire test.
header   T_WIRE_PUSH  Subject =~ /push-test-reject/
describe T_WIRE_PUSH  The wire test's subject
score    T_WIRE_PUSH  10
threshold reject 5
"""


def swaks(app, sender, rcpts, subject):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", sender,
                     "--to", ",".join(rcpts), "--h-Subject", subject], timeout=60)
    out = r.stdout + r.stderr
    codes = [l[4:] for l in out.splitlines() if l[:3] in ("<- ", "<**") and l[4:7].isdigit()
             and l[4:7] not in ("221", "354", "421")]
    return codes[-1] if codes else out


def ctl(app, token, *args):
    r = app.outside([SEKISHOCTL, "rules"] + list(args) + ["--url", URL, "--token", token], timeout=300)
    return r.returncode, r.stdout + r.stderr


def api(app, method, path, token, body=None):
    argv = ["curl", "-sS", "-X", method, "-H", "Authorization: Bearer " + token, "-w", "\n%{http_code}", URL + path]
    if body is not None:
        argv[1:1] = ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    r = app.outside(argv, timeout=120)
    text, _, code = r.stdout.rpartition("\n")
    return int(code or 0), (json.loads(text) if text.strip().startswith(("{", "[")) else text)


def verdict_of(app, subject):
    got = wait_for(lambda: [e for e in app.events() if e.get("subject") == subject], timeout=10)
    assert got, "no event for %r" % subject
    return got[-1]["verdict"]


def test_pushed_ruleset_and_policy_change_the_dataplanes_verdicts(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "wire.cf").write_text(PACK)
    (pack / ".hidden.cf").write_text("this is not a rule file\n")  # dot files are not pushed
    with Appliance(tmp_path) as app:
        maildir = app.start_sink()
        # No ruleset yet: delivered.
        assert swaks(app, "alice@outside.test", ["bob@inside.test"], "push-test-reject 1").startswith("250 2.0.0 Ok: queued")

        conf = tmp_path / "control.conf"
        conf.write_text(
            "control = {\n  listen = \"127.0.0.1:18026\";\n  journal = \"%s\";\n  spool = \"\";\n"
            "  database = \"%s\";\n  audit_key = \"%s\";\n  audit_anchor = \"%s\";\n"
            "  dataplane_prefix = \"%s\";\n  rulesets_dir = \"%s\";\n};\n"
            % (app.journal, tmp_path / "control.db", tmp_path / "audit.key", tmp_path / "audit.anchor",
               app.prefix, tmp_path / "rulesets"))
        tok = subprocess.run([CONTROL, "-c", str(conf), "token", "create", "wire-rules", "--admin"],
                             capture_output=True, text=True)
        assert tok.returncode == 0, tok.stderr
        token = tok.stdout.strip().split()[-1]
        control = app.spawn_in(app.env["NS_OUT"], [CONTROL, "-c", str(conf)], str(tmp_path / "control.log"))
        assert wait_for(lambda: "listening" in open(tmp_path / "control.log").read(), timeout=15), \
            open(tmp_path / "control.log").read()

        # A pack with an error: file:line from the server, exit 1, no version.
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "bad.cf").write_text("header OK Subject =~ /x/\nheader BROKEN Subject =~ /(/\n")
        rc, out = ctl(app, token, "push", str(bad))
        assert rc == 1, out
        assert "packs/bad.cf:2: " in out, out
        rc, out = ctl(app, token, "push", str(pack))  # without a token's admin right it would be 403
        assert rc == 0, out
        rc, out = ctl(app, token, "activate", "1")
        assert rc == 0 and "v1 active" in out, out
        # Dataplane loaded it: the same message is now refused.
        reply = swaks(app, "alice@outside.test", ["bob@inside.test"], "push-test-reject 2")
        assert reply.startswith("550 5.7.1 Message rejected by policy"), reply
        v = verdict_of(app, "push-test-reject 2")
        assert v["action"] == "reject" and v["rule"] == "T_WIRE_PUSH", v
        assert swaks(app, "alice@outside.test", ["bob@inside.test"], "harmless").startswith("250 2.0.0 Ok: queued")

        # A policy: many recipients are deferred, alice is allowed over the packs.
        policy = {"internal_domains": ["inside.test"],
                  "rules": [{"name": "Defer wide mail", "order": 10, "action": "tempfail",
                             "conditions": {"recipient_count": {"of": "envelope", "op": ">=", "value": 2},
                                            "direction": "inbound"}},
                            {"name": "Allow alice", "order": 20, "action": "pass",
                             "conditions": {"senders": {"list": ["alice@outside.test"]}}}]}
        code, body = api(app, "PUT", "/api/policy?activate=1", token, policy)
        assert code == 202, body
        pv = body["version"]

        def active():
            c, b = api(app, "GET", "/api/rulesets/%d" % pv, token)
            return b if c == 200 and b["state"] in ("active", "failed") else None
        state = wait_for(active, timeout=60)
        assert state and state["state"] == "active", state
        reply = swaks(app, "alice@outside.test", ["bob@inside.test"], "push-test-reject 3")
        assert reply.startswith("250 2.0.0 Ok: queued"), reply
        v = verdict_of(app, "push-test-reject 3")
        assert v["action"] == "pass", v
        reply = swaks(app, "mallory@outside.test", ["bob@inside.test", "carol@inside.test"], "push-test-wide")
        assert reply.startswith("451 4.7.1"), reply
        v = verdict_of(app, "push-test-wide")
        assert v["action"] == "tempfail" and v["rule"] == "POLICY_DEFER_WIDE_MAIL", v
        assert swaks(app, "mallory@outside.test", ["bob@inside.test"], "push-test-reject 4").startswith("550 5.7.1")

        # Roll back to the packs alone: alice is refused again.
        rc, out = ctl(app, token, "rollback")
        assert rc == 0 and "v1 active" in out, out
        reply = swaks(app, "alice@outside.test", ["bob@inside.test"], "push-test-reject 5")
        assert reply.startswith("550 5.7.1"), reply
        rc, out = ctl(app, token, "versions")
        assert rc == 0 and "v%d  compiled" % pv in out and "v1  active" in out, out

        # Only what passed reached the server.
        subjects = sorted(d.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for _, d in delivered(maildir))
        assert subjects == ["harmless", "push-test-reject 1", "push-test-reject 3"], subjects
        # Every step is in the audit log.
        control.terminate()
        control.wait(10)
        a = subprocess.run([SEKISHOCTL, "audit", "list", "-c", str(conf)], capture_output=True, text=True)
        actions = [l.split("\t")[3] for l in a.stdout.splitlines()]
        for want in ("rules.upload", "rules.activate", "policy.update", "rules.rollback"):
            assert want in actions, a.stdout + a.stderr
