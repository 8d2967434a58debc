"""Issue 8, corpus to wire traffic: sessions are recorded from real client
and server software on the virtual wire (tools/pcapgen/record-sessions.py:
Postfix and aiosmtpd in `inside`; swaks, Python's smtplib, Perl's Net::SMTP
and Postfix's smtp client in `outside`), their shapes extracted into a
profile, and sekisho-pcapgen --shapes follows that profile: the same seed
gives the same bytes, and sekisho-replay finds every clear-text message
with its exact envelope and SHA-256. Root and network namespaces, like the
other wire tests; no dataplane is involved in recording."""
import json
import os
import subprocess
import sys

import pytest

from harness import PY, SRC

sys.path.insert(0, os.path.join(SRC, "tests", "replay"))
sys.path.insert(0, os.path.join(SRC, "tools", "pcapgen"))
import shapes  # noqa: E402
from shapes_lib import check_generator, corpus_or_none  # noqa: E402

RECORD = os.path.join(SRC, "tools", "pcapgen", "record-sessions.py")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("sessions")
    r = subprocess.run([PY, RECORD, "--dir", str(d)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return str(d)


def payloads(pcap, d):
    out = b""
    for conn in shapes.sessions(pcap):
        fls, _close = shapes.flights(conn)
        out += b"".join(bytes(f["data"]) for f in fls if f["d"] == d)
    return out


def test_recordings_come_from_real_software(recording):
    server = payloads(os.path.join(recording, "postfix_swaks_one.pcap"), "s")
    client = payloads(os.path.join(recording, "postfix_swaks_one.pcap"), "c")
    assert server.startswith(b"220 inside.sekisho.test ESMTP Postfix\r\n")
    assert b"250 CHUNKING\r\n" in server and b"250-PIPELINING\r\n" in server  # Postfix's own EHLO reply
    assert client.startswith(b"EHLO client.outside.test\r\n")
    assert b"X-Mailer: swaks v" in client  # swaks wrote the message
    aio = payloads(os.path.join(recording, "aiosmtpd_swaks_auth.pcap"), "s")
    assert aio.startswith(b"220 inside.sekisho.test Python SMTP ")  # aiosmtpd's banner
    assert b"235 2.7.0 Authentication successful" in aio
    lib = payloads(os.path.join(recording, "postfix_smtplib_multi.pcap"), "c")
    assert lib.startswith(b"ehlo client.outside.test\r\n") and b"\r\nrset\r\n" in lib  # smtplib's lower case
    bdat = payloads(os.path.join(recording, "postfix_netsmtp_bdat.pcap"), "c")
    assert b"BDAT " in bdat and b" LAST\r\n" in bdat
    relay = payloads(os.path.join(recording, "postfix_postfix_relay.pcap"), "c")
    assert b"MAIL FROM:<sender" in relay and b"SIZE=" in relay  # Postfix's smtp client
    tls = payloads(os.path.join(recording, "postfix_swaks_starttls.pcap"), "c")
    i = tls.index(b"STARTTLS\r\n") + len(b"STARTTLS\r\n")
    assert tls[i] == 22 and tls[i + 5] == 1  # a TLS ClientHello follows the 220


def test_profile_is_not_trivial(recording):
    prof = json.load(open(os.path.join(recording, "shapes.json")))
    tcp = prof["tcp"]
    assert tcp["mss"] == 1460 and tcp["wscale"] >= 0 and "080a" in tcp["syn_options"]  # MSS, WS, timestamps
    names = {t["name"] for t in prof["templates"]}
    assert len(names) >= 16
    st = prof["stats"]
    body = st["segments_summary"]["body"]
    assert body["count"] > 1000 and body["hist"]["1448-1448"] > 0.5 * body["count"]  # wire-sized, no TSO
    assert body["max"] <= 1448
    assert st["segments_summary"]["tls"]["count"] > 20
    assert "MAIL RCPT* DATA" in st["pipelined_groups"]  # swaks --pipeline and Postfix's client
    assert st["body_segments_per_ack_hist"]
    toks = lambda t: {x for tr in t["transactions"] for f in tr for x in f["tok"]}
    by = {t["name"]: t for t in prof["templates"]}
    assert "RCPT!" in toks(by["postfix_swaks_refused"]) and "R!:RCPT" in toks(by["postfix_swaks_refused"])
    assert "BDAT_LAST" in toks(by["postfix_netsmtp_bdat"]) and by["postfix_netsmtp_bdat"]["bdat_chunk"] > 0
    assert len(by["postfix_smtplib_multi"]["transactions"]) == 3
    assert len(by["postfix_postfix_relay#2"]["transactions"]) >= 2  # one session, several messages
    assert by["postfix_swaks_starttls"]["tls"] and by["postfix_swaks_starttls"]["tls_flights"][0]["records"][0][0] == 22
    assert "AUTH" in [x for f in by["aiosmtpd_swaks_auth"]["prologue"] for x in f["tok"]]
    assert by["postfix_swaks_large"]["transactions"] and prof["bodies"]["swaks"]["bytes"] > 3 << 20


def test_generator_follows_the_recording(recording, tmp_path, capsys):
    res = check_generator(os.path.join(recording, "shapes.json"), str(tmp_path), corpus_or_none())
    with capsys.disabled():
        print("\nshaped from a fresh recording: %d messages (%d clear, all exact), %d STARTTLS sessions; %s"
              % (res["messages"], res["clear"], res["tls_sessions"], res["log"][-1]))
    assert len(res["shapes_used"]) >= 6
