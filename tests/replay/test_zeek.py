"""sekisho-replay against Zeek's SMTP traces (../shared/testdata/peers/zeek):
every message whose body the server accepted must come out with its exact
envelope, size and SHA-256; every trace replays without a crash."""
import email.utils
import json
import os

import pytest

from replay_lib import TESTDATA, key, replay

ZEEK = os.path.join(TESTDATA, "peers", "zeek")
MANIFEST = os.path.join(ZEEK, "MANIFEST.json")
pytestmark = pytest.mark.skipif(not os.path.exists(MANIFEST), reason="../shared/testdata is absent (a user's clone)")
ENTRIES = json.load(open(MANIFEST)) if os.path.exists(MANIFEST) else []


def expected(entry):
    """Every transaction whose message the manifest knows byte for byte: the
    server accepted it (final_reply 250), or the capture is one-sided and no
    reply was ever seen (final_reply absent: replay assumes acceptance)."""
    for s in entry["expect"].get("sessions", []):
        for t in s.get("transactions", []):
            if t.get("body_via") in ("DATA", "BDAT") and t.get("final_reply") in (250, None) \
                    and t.get("message_sha256") and not t.get("gap_in_message"):
                yield s, t


def excluded(entry):
    """Transactions left out of the comparison, each with the reason."""
    for s in entry["expect"].get("sessions", []):
        for t in s.get("transactions", []):
            if t.get("body_via") not in ("DATA", "BDAT"):
                yield t, "no message body was sent (%s)" % (t.get("aborted_by") or "no DATA/BDAT")
            elif t.get("gap_in_message"):
                yield t, "the capture has a gap inside the message: no byte-exact truth"
            elif not t.get("message_sha256"):
                yield t, "the manifest has no sha256 for it"
            elif t.get("final_reply") not in (250, None):
                yield t, "the server refused the message (%s)" % t.get("final_reply")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["pcap"] for e in ENTRIES])
def test_zeek_trace(entry):
    out = replay(os.path.join(ZEEK, entry["pcap"]))
    assert out["returncode"] == 0, out["stderr"]
    assert out["summary"] is not None
    got = {key(m): m for m in out["messages"]}
    for session, t in expected(entry):
        want = (t["mail_from"], tuple(t["rcpt_to"]), t["message_bytes"], t["message_sha256"])
        assert want in got, "%s: message %s not reproduced; got %s" % (
            entry["pcap"], want[:3], [k[:3] for k in got])
        m = got[want]
        assert m["body_via"] == t["body_via"]
        assert m["server_reply"] == t.get("final_reply")
        # Sekisho writes IPv6 endpoints as [addr]:port, the manifest as Zeek does (addr:port).
        unbracket = lambda e: e.replace("[", "").replace("]", "")  # noqa: E731
        assert unbracket(m["src"]) == session["client"] and unbracket(m["dst"]) == session["server"]
        if "helo" in session:
            assert m["helo"] == session["helo"]
        assert m["tls"] == session.get("tls", False)
        if session.get("auth"):
            assert m["auth"] == session["auth"]
        # Header fields as Zeek's baseline gives them. Zeek cuts long values:
        # mime-header-size-limit.pcap's 16 KB subject is logged as 200
        # characters and "...", and smtp-many-addresses.pcap's 600 To and
        # 600 Cc addresses as one each; there Zeek's value must be a prefix.
        if t.get("subject") is not None:
            want = t["subject"]
            assert m["subject"] == want or (want.endswith("...") and m["subject"].startswith(want[:-3]))
        if t.get("from"):
            assert m["from"] == email.utils.parseaddr(t["from"])[1]
        for k in ("to", "cc"):
            if t.get(k):
                want = [a for _, a in email.utils.getaddresses(t[k]) if a]
                assert m[k] == want or (entry["pcap"].endswith("many-addresses.pcap") and m[k][:len(want)] == want)
        if t.get("message_id"):
            assert m["message_id"] == t["message_id"]


def test_agreement_over_all_traces(capsys):
    ok = n = 0
    for e in ENTRIES:
        got = {key(m) for m in replay(os.path.join(ZEEK, e["pcap"]))["messages"]}
        for _s, t in expected(e):
            n += 1
            ok += (t["mail_from"], tuple(t["rcpt_to"]), t["message_bytes"], t["message_sha256"]) in got
    skipped = [(e["pcap"], why) for e in ENTRIES for _t, why in excluded(e)]
    with capsys.disabled():
        print("\nZeek SMTP traces: %d/%d messages with exact envelope, size and sha256" % (ok, n))
        for pcap, why in skipped:
            print("  not compared: %s: %s" % (pcap, why))
    assert n > 0 and ok == n
