"""sekisho-replay decides as the appliance does (issue 15): the dataplane's
workers and sekisho-replay call the same evaluator (scanners/verdict), so
a capture of what the appliance received, replayed with the appliance's
own configuration, yields the verdicts the appliance journaled: content
rules (reject, quarantine), an envelope rule, SMTP smuggling, a clean
pass, and the attacker's scenarios of issue 14 where a message was judged.

The capture is taken on the appliance's two ports (frames received from
the client and from the server), the way a tap in front of it would see
them; replay runs --inline with --config pointing at the appliance's
sekisho.conf (policy and ruleset)."""
import json
import os
import subprocess

import pytest

from harness import PY, Appliance, wait_for
from test_content_verdicts import compile_rules, send_file, DEMO_MAIL, SRC, BUILD
from test_smuggling import CLIENT as SMUGGLING_CLIENT

REPLAY = os.path.join(BUILD, "tools", "replay", "sekisho-replay")

EXTRA = """  ruleset = "%s";
  envelope_policy = (
    { name = "refuse-evil"; mail_from = "*@evil.test"; action = "reject"; }
  );
"""

# Outcomes that are enforcement, not evaluation: the dataplane's desync
# policy, a hold that timed out, a release from quarantine. Replay has no
# enforcement, so these are left out of the comparison.
ENFORCEMENT = ("desync", "hold_timeout")


def replay(app, cap):
    r = subprocess.run([REPLAY, "--inline", "--config", app.conf, "--smtp-port", "25", cap],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def assert_replay_agrees(app, journaled, cap):
    """Every complete message the appliance judged (not by enforcement) has
    the same verdict, deciding rule, rules hit and envelope in
    sekisho-replay's output for the capture; returns the (action, rule)
    pairs compared."""
    replayed = {e["sha256"]: e for e in replay(app, cap) if e.get("type") == "message" and e.get("sha256")}
    compared = []
    for e in journaled:
        if not e.get("sha256") or not e.get("complete") or verdict_of(e)[1] in ENFORCEMENT:
            continue
        assert e["sha256"] in replayed, ("replay did not see the message", e.get("subject"), sorted(replayed))
        r = replayed[e["sha256"]]
        assert verdict_of(r) == verdict_of(e), (e.get("subject"), verdict_of(e), verdict_of(r))
        assert r["verdict"].get("rules", []) == e["verdict"].get("rules", []), e.get("subject")
        # the same envelope: the sender and the recipients the server accepted and refused
        for k in ("mail_from", "rcpt_to", "rcpt_refused", "helo"):
            assert r.get(k) == e.get(k), (e.get("subject"), k, e.get(k), r.get(k))
        compared.append(verdict_of(e))
    return compared


def verdict_of(e):
    v = e["verdict"]
    return v["action"], v.get("rule", "")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("agreement")
    subprocess.run([PY, DEMO_MAIL, str(d / "mail")], check=True)
    art = compile_rules(str(d / "demo.srs"), os.path.join(SRC, "rules", "packs"),
                        os.path.join(SRC, "appliance", "demo-policy.cf"))
    return d, art


def test_replay_of_the_wire_gives_the_journaled_verdicts(demo, tmp_path):
    d, art = demo
    with Appliance(tmp_path, extra=EXTRA % art) as app:
        cap = str(tmp_path / "wire.pcap")
        tap = app.capture(cap)
        app.start_sink()
        for name in ("clean", "phishing-ja", "macro", "ppap"):
            send_file(app, str(d / "mail" / (name + ".eml")))
        app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", "mallory@evil.test",
                     "--to", "bob@inside.test", "--body", "envelope says no"], timeout=60)
        app.outside([PY, "-c", SMUGGLING_CLIENT, app.env["IP_IN"]], timeout=60)
        journaled = wait_for(lambda: len(app.events()) >= 6 and app.events(), timeout=15)
        assert journaled, app.events()
        app.stop_capture(tap)
    compared = assert_replay_agrees(app, journaled, cap)
    # Every stage of the evaluator was exercised on the wire.
    assert ("pass", "") in compared, compared
    assert ("reject", "refuse-evil") in compared, compared
    assert ("reject", "smtp_smuggling") in compared, compared
    assert any(a == "quarantine" for a, _ in compared), compared
    content_rejects = [r for a, r in compared if a == "reject" and r not in ("refuse-evil", "smtp_smuggling")]
    assert len(content_rejects) >= 2, compared  # the phishing mail and the macro document
