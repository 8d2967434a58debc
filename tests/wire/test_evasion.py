"""Evasion on the wire: a raw-socket client (tcp_craft.py) sends DATA in
hostile segmentations through sekisho-dataplane to a real SMTP server.
For each, the message the dataplane inspected (journal SHA-256) must be
the message the server stored."""
import json
import os

import pytest

from harness import PY, Appliance, delivered, wait_for

CRAFT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_craft.py")
MODES = ["plain", "one_byte", "reverse", "overlap_decoy_first", "overlap_decoy_last", "retransmit_different",
         "rst_out_of_window", "seq_wrap"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with Appliance(tmp_path_factory.mktemp("evasion"), workers=2) as a:
        a.maildir = a.start_sink()
        out_mac = a.run_in(a.env["NS_OUT"], ["cat", "/sys/class/net/sk%so/address" % a.id]).stdout.strip()
        a.in_mac = a.run_in(a.env["NS_IN"], ["cat", "/sys/class/net/sk%si/address" % a.id]).stdout.strip()
        # the crafted client speaks from 192.0.2.9, an address no kernel owns
        a.run_in(a.env["NS_IN"], ["ip", "neigh", "replace", "192.0.2.9", "lladdr", out_mac, "dev", "sk%si" % a.id])
        yield a


@pytest.mark.parametrize("mode", MODES)
def test_inspected_equals_delivered(app, mode):
    before_server = len(delivered(app.maildir))
    before_events = len(app.events())
    r = app.outside([PY, CRAFT, "sk%so" % app.id, "192.0.2.9", app.env["IP_IN"], app.in_mac, mode], timeout=120)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["final_reply"].startswith("250"), result
    got = wait_for(lambda: len(delivered(app.maildir)) > before_server and delivered(app.maildir), timeout=10)
    server = got[-1][0]
    events = wait_for(lambda: len(app.events()) > before_events and app.events(), timeout=10)
    inspected = events[-1]
    assert inspected["mail_from"] == "mallory@outside.test" and inspected["rcpt_to"] == ["bob@inside.test"]
    assert (inspected["size"], inspected["sha256"]) == (server["size"], server["sha256"]), \
        "%s: the server stored other bytes than the dataplane inspected" % mode
    stats = app.stats()["workers"]
    if mode in ("overlap_decoy_first", "overlap_decoy_last", "retransmit_different"):
        assert sum(w["stream"]["conflicts_rewritten"] for w in stats.values()) > 0
