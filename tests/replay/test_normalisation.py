"""Crafted evasion captures (evasion_pcaps.py, scapy) through sekisho-replay --inline.

For each scenario the test states what the engine must have inspected (the
bytes that reached each sequence position first) and checks that the frames
it forwards give a server exactly those bytes, whether the server's stack
keeps the first or the last copy of an overlap."""
import os

import pytest

from replay_lib import replay

scapy = pytest.importorskip("scapy.all", reason="Debian's python3-scapy is needed to build the captures")
import evasion_pcaps as ev  # noqa: E402

CONFLICTING = {"overlap_decoy_first", "retransmit_different"}


@pytest.mark.parametrize("scenario", ev.SCENARIOS)
def test_inspected_equals_delivered(scenario, tmp_path):
    cap, fwd = str(tmp_path / "in.pcap"), str(tmp_path / "forwarded.pcap")
    inspected = ev.build(scenario, cap)
    out = replay(cap, "--smtp-port", "25", "--inline", "--forwarded", fwd)
    assert out["returncode"] == 0, out["stderr"]
    assert len(out["messages"]) == 1, out["stdout"]
    m = out["messages"][0]
    assert (m["mail_from"], m["rcpt_to"], m["server_reply"]) == ("a@example.org", ["b@example.net"], 250)
    assert (m["size"], m["sha256"]) == (len(inspected), ev.sha256(inspected)), "engine did not inspect what came first"
    for policy in ("first", "last"):
        delivered = ev.delivered_message(ev.reassemble(fwd, policy))
        assert ev.sha256(delivered) == m["sha256"], "server (%s copy wins) would receive other bytes" % policy
    tcp = out["summary"]["tcp"]
    if scenario in CONFLICTING:
        assert out["summary"]["frames_rewritten"] >= 1 and tcp.get("conflicts_rewritten", 0) >= 1
        # The capture as sent really is ambiguous: without normalisation the two stacks disagree.
        raw = {p: ev.delivered_message(ev.reassemble(cap, p)) for p in ("first", "last")}
        assert raw["first"] != raw["last"]
    else:
        assert out["summary"]["frames_rewritten"] == 0 and tcp.get("conflicts_rewritten", 0) == 0
    if scenario == "shuffled":  # more holes than kept: dropped until the retransmission fills them
        assert tcp.get("cap_dropped", 0) >= 1
    if scenario == "rst_out_of_window":
        assert tcp.get("rst_ignored", 0) == 1


def test_drop_policy_drops_the_conflicting_retransmission(tmp_path):
    cap, fwd = str(tmp_path / "in.pcap"), str(tmp_path / "forwarded.pcap")
    inspected = ev.build("retransmit_different", cap)
    out = replay(cap, "--smtp-port", "25", "--inline", "--conflict", "drop", "--forwarded", fwd)
    assert out["returncode"] == 0, out["stderr"]
    assert out["summary"]["frames_dropped"] == 1 and out["summary"]["tcp"]["conflicts_dropped"] == 1
    assert out["messages"][0]["sha256"] == ev.sha256(inspected)
    for policy in ("first", "last"):
        assert ev.sha256(ev.delivered_message(ev.reassemble(fwd, policy))) == ev.sha256(inspected)


def test_offline_mode_forwards_nothing_rewritten(tmp_path):
    """Without --inline nothing is normalised (the capture is history): same inspection, no rewrite counted."""
    cap = str(tmp_path / "in.pcap")
    inspected = ev.build("overlap_decoy_first", cap)
    out = replay(cap, "--smtp-port", "25")
    assert out["messages"][0]["sha256"] == ev.sha256(inspected)
    assert "frames_rewritten" not in out["summary"]
    assert os.path.getsize(cap) > 0
