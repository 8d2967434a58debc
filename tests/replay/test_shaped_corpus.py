"""sekisho-pcapgen --shapes without root: the committed reference profile
(tools/pcapgen/shapes-reference.json, extracted by record-sessions.py from
real sessions on the virtual wire) drives the generator, which must be
byte-identical twice from one seed and replay exactly; the extractor is
checked on a few small real recordings kept as fixtures
(tests/fixtures/shapes/). The fresh recording itself is tested under the
wire suite (tests/wire/test_recorded_shapes.py)."""
import json
import os

from replay_lib import SRC
from shapes_lib import check_generator, corpus_or_none, shapes

REFERENCE = os.path.join(SRC, "tools", "pcapgen", "shapes-reference.json")
FIXTURES = os.path.join(SRC, "tests", "fixtures", "shapes")


def extract(name, server, client):
    return shapes.extract([{"name": name, "server": server, "client": client,
                            "pcap": os.path.join(FIXTURES, name + ".pcap")}])


def test_extractor_on_real_recordings():
    pipe = extract("postfix_swaks_pipelining", "postfix", "swaks")
    t = pipe["templates"][0]
    assert t["banner"] == "220 inside.sekisho.test ESMTP Postfix"
    assert [f["tok"] for f in t["transactions"][0]][:2] == [["MAIL", "RCPT*", "DATA"], ["R:MAIL", "R:RCPT*", "R:DATA"]]
    assert pipe["tcp"]["mss"] == 1460 and pipe["tcp"]["data_options"] == "0101|ts"
    ref = extract("postfix_swaks_refused", "postfix", "swaks")["templates"][0]
    assert "<{addr}>: Recipient address rejected" in ref["formats"]["R!:RCPT"]
    auth = extract("aiosmtpd_swaks_auth", "aiosmtpd", "swaks")["templates"][0]
    assert auth["formats"]["R:AUTH"].startswith("235 ") and auth["banner"].startswith("220 inside.sekisho.test Python SMTP")
    tls = extract("aiosmtpd_swaks_starttls", "aiosmtpd", "swaks")["templates"][0]
    assert tls["tls"] and tls["tls_flights"][0]["records"][0][0] == 22 and len(tls["tls_flights"]) >= 6
    ja = extract("postfix_swaks_japanese", "postfix", "swaks")
    body = ja["stats"]["segments_summary"]["body"]
    assert body["count"] >= 2 and body["max"] == 1448


def test_reference_profile_is_from_real_software():
    prof = json.load(open(REFERENCE))
    assert prof["tools"]["postfix"] and prof["tools"]["swaks"] and prof["tools"]["aiosmtpd"]
    clients = {t["client"] for t in prof["templates"]}
    assert clients >= {"swaks", "smtplib", "net-smtp", "postfix"}


def test_shaped_generator_is_deterministic_and_replays_exactly(tmp_path, capsys):
    res = check_generator(REFERENCE, str(tmp_path), corpus_or_none())
    with capsys.disabled():
        print("\nshaped (reference profile): %d messages, %d clear all exact, %d STARTTLS sessions; %d shapes used"
              % (res["messages"], res["clear"], res["tls_sessions"], len(res["shapes_used"])))
    assert len(res["shapes_used"]) >= 6
