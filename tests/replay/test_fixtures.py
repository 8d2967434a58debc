"""sekisho-replay against SMTP sessions recorded from real software on the
virtual wire (tests/fixtures/wire): envelope, accepted and refused
recipients, byte-exact message, final reply; STARTTLS uninspected; AUTH
credentials never printed."""
import glob
import json
import os

import pytest

from replay_lib import SRC, replay

FIXTURES = sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "wire", "*.truth.json")))


@pytest.mark.parametrize("truth_path", FIXTURES, ids=[os.path.basename(p)[:-11] for p in FIXTURES])
def test_recorded_fixture_reproduces_its_truth(truth_path):
    truth = json.load(open(truth_path))
    out = replay(os.path.join(os.path.dirname(truth_path), truth["pcap"]))
    assert out["returncode"] == 0, out["stderr"]
    want = [(t["mail_from"], tuple(t["rcpt_to"]), tuple(t["rcpt_refused"]), t["message_bytes"],
             t["message_sha256"], t["final_reply"]) for t in truth["inspectable_transactions"]]
    got = [(m["mail_from"], tuple(m["rcpt_to"]), tuple(m["rcpt_refused"]), m["size"], m["sha256"],
            m["server_reply"]) for m in out["messages"]]
    assert got == want
    assert len(out["sessions"]) == 1
    session = out["sessions"][0]
    assert session["tls"] == truth["tls"]
    assert session["src"].startswith(truth["client_ip"] + ":") and session["dst"] == truth["server"]
    for m, t in zip(out["messages"], truth["inspectable_transactions"]):
        assert m["src"] == session["src"] and m["helo"] == "client.outside.test"
        assert m["body_via"] == t.get("body_via", "DATA")
    if truth["scenario"] == "swaks_auth_plain":
        assert session["auth"] == "PLAIN" and out["messages"][0]["auth"] == "PLAIN"
        assert b"s3cret" not in out["stdout"] and b"czNjcmV0" not in out["stdout"]
        # the base64 of "\0alice\0s3cret-never-logged" neither
        assert b"AGFsaWNlAHMzY3JldC1uZXZlci1sb2dnZWQ" not in out["stdout"]
    if truth["tls"]:
        assert session["messages"] == 0 and not out["messages"]
    assert truth["server_received"], "the server received the message(s)"


def test_fixtures_are_present():
    assert len(FIXTURES) >= 8
