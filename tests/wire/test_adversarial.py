"""No message reaches the server unjudged (issue 14): an attacker's raw
client (adversary.py) tries each known way to make the inspector's view of
a session differ from the server's, sending a message the policy refuses
(its sender matches an envelope rule that rejects). The server is real
(aiosmtpd on Linux's TCP stack). Whatever happens to the attacker, the
server's mail dir must never hold that message unless the journal shows it
judged with the verdict the clean send gets (here: reject, so never).

Each scenario failed before the fix it names; the clean send proves the
policy really refuses the message."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import PY, SINK, Appliance, delivered, wait_for
from test_replay_agreement import assert_replay_agrees

HERE = os.path.dirname(os.path.abspath(__file__))
ADVERSARY = os.path.join(HERE, "adversary.py")

POLICY = """  envelope_policy = (
    { name = "refuse-evil"; mail_from = "*@evil.test"; action = "reject"; }
  );
  flow_idle_timeout_s = 2;
  starttls_mask_ports = [ 25 ];
"""

POSTFIX_POLICY = POLICY.replace("  flow_idle_timeout_s = 2;\n", "")  # Postfix pauses on purpose below

SCENARIOS = ["rst_in_window", "auth_pipelined", "ack_beyond", "starttls_masked", "idle_after_354",
             "bare_lf_end", "nested_mail", "ehlo_refused"]
POSTFIX = os.path.join(os.path.dirname(SINK), "postfix-instance.sh")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    with Appliance(tmp, workers=1, extra=POLICY) as a:
        a.pcap = str(tmp / "wire.pcap")
        a.tap = a.capture(a.pcap)  # for the replay agreement check after the attacks
        cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=inside.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
        a.maildir = os.path.join(str(tmp), "mail")
        log = os.path.join(str(tmp), "sink.log")
        # STARTTLS offered (masked by the appliance) and AUTH offered in clear
        a.spawn_in(a.env["NS_IN"], [PY, SINK, "--listen", a.env["IP_IN"], "--dir", a.maildir, "--tls", cert, key,
                                    "--auth", "user:secret"], log)
        assert wait_for(lambda: os.path.exists(log) and "listening" in open(log).read(), timeout=15)
        out_mac = a.run_in(a.env["NS_OUT"], ["cat", "/sys/class/net/sk%so/address" % a.id]).stdout.strip()
        a.in_mac = a.run_in(a.env["NS_IN"], ["cat", "/sys/class/net/sk%si/address" % a.id]).stdout.strip()
        # the raw client speaks from 192.0.2.9, an address no kernel owns
        a.run_in(a.env["NS_IN"], ["ip", "neigh", "replace", "192.0.2.9", "lladdr", out_mac, "dev", "sk%si" % a.id])
        yield a


def attack(app, scenario, sender="mallory@evil.test", iface=None, args=()):
    r = app.outside([PY, ADVERSARY, iface or "sk%so" % app.id, "192.0.2.9", app.env["IP_IN"], app.in_mac, scenario,
                     "--sender", sender] + list(args), timeout=120)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def evil_delivered(app):
    return [m for m, _ in delivered(app.maildir) if m["mail_from"].endswith("@evil.test")]


def stream_totals(app):
    return app.stats()["workers"]["0"]["stream"]


def test_clean_send_is_refused_and_a_good_one_delivered(app):
    out = attack(app, "clean")
    assert "550 5.7.1" in out["all"], out
    good = attack(app, "clean", sender="alice@good.test")
    assert "250 2.0.0 Ok: queued" in good["all"], good
    assert wait_for(lambda: any(m["mail_from"] == "alice@good.test" for m, _ in delivered(app.maildir)))
    assert evil_delivered(app) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_attack_never_delivers_unjudged(app, scenario):
    before = len(app.events("session"))
    evil_before = len(evil_delivered(app))
    out = attack(app, scenario)
    # give a late delivery every chance to show up
    wait_for(lambda: len(evil_delivered(app)) > evil_before, timeout=3)
    assert len(evil_delivered(app)) == evil_before, "%s: the refused message reached the server: %s" % (scenario, out)
    assert "queued as" not in out["all"], out
    if scenario in ("rst_in_window", "ack_beyond", "nested_mail", "ehlo_refused"):
        # the inspector kept the session and judged the message as the clean send
        assert "550 5.7.1" in out["all"], out
        ev = [e for e in app.events() if e["mail_from"] == "mallory@evil.test"]
        assert ev and ev[-1]["verdict"] == {"action": "reject", "rule": "refuse-evil"}, ev[-1:]
    if scenario == "bare_lf_end":
        assert "550 5.7.1" in out["all"], out
    if scenario in ("auth_pipelined", "starttls_masked"):
        assert "451 4.7.0 sekisho: session cannot be inspected" in out["all"], out
        sessions = wait_for(lambda: len(app.events("session")) > before and app.events("session"), timeout=10)
        assert sessions[-1]["desync"], sessions[-1]
    if scenario == "starttls_masked":
        assert "220 " not in out["replies"][-1], out
    if scenario == "idle_after_354":
        assert out["resets"] > 0, out
    s = stream_totals(app)
    if scenario == "rst_in_window":
        assert s["rst_challenged"] >= 1, s
    if scenario == "ack_beyond":
        assert s["ack_beyond_data"] >= 1, s
    if scenario == "idle_after_354":
        assert app.stats()["workers"]["0"]["midstream_reset"] >= 1


def test_replay_agrees_on_the_attacks(app):
    """The attacks above, captured as the appliance received them and
    replayed with its configuration: every message the appliance judged
    (not cut off by its desync enforcement) gets the same verdict from
    sekisho-replay (issue 15: one evaluator)."""
    journaled = app.events()
    app.stop_capture(app.tap)
    compared = assert_replay_agrees(app, journaled, app.pcap)
    assert ("reject", "refuse-evil") in compared and ("pass", "") in compared, compared


@pytest.mark.parametrize("scenario", ["bare_lf_end", "ehlo_before_banner"])
def test_against_postfix(tmp_path, scenario):
    """bare_lf_end: Postfix (as Debian ships it: smtpd_forbid_bare_newline
    = no) takes <LF>.<LF> as the end of data; aiosmtpd does not. Against
    the lenient server the message must be judged where that server ends
    it. ehlo_before_banner: Postfix greets after a second (a sleeping
    client restriction) and, holding output while input waits, sends the
    banner and the EHLO reply in one segment."""
    with Appliance(tmp_path, workers=1, extra=POSTFIX_POLICY) as app:
        # the postfix user must walk into its queue: not under pytest's 0700 tmp dirs
        pf = os.path.join(tempfile.mkdtemp(prefix="sk-adv-pf-"), "postfix")
        r = app.inside(["bash", POSTFIX, "up", pf, app.env["IP_IN"]])
        assert r.returncode == 0, r.stdout + r.stderr
        if scenario == "ehlo_before_banner":
            with open(os.path.join(pf, "etc", "main.cf"), "a") as f:
                f.write("smtpd_delay_reject = no\nsmtpd_client_restrictions = sleep 1, permit\n")
            app.inside(["postfix", "-c", os.path.join(pf, "etc"), "reload"])
            time.sleep(1.5)
        try:
            out_mac = app.run_in(app.env["NS_OUT"], ["cat", "/sys/class/net/sk%so/address" % app.id]).stdout.strip()
            app.in_mac = app.run_in(app.env["NS_IN"], ["cat", "/sys/class/net/sk%si/address" % app.id]).stdout.strip()
            app.run_in(app.env["NS_IN"], ["ip", "neigh", "replace", "192.0.2.9", "lladdr", out_mac, "dev",
                                          "sk%si" % app.id])
            assert wait_for(lambda: "220 " in attack(app, "clean", sender="alice@good.test")["all"], timeout=30)
            out = attack(app, scenario)
            assert "queued as" not in out["all"], out
            assert "550 5.7.1" in out["all"], out
            ev = [e for e in app.events() if e["mail_from"] == "mallory@evil.test"]
            assert ev and ev[-1]["verdict"]["action"] == "reject", ev[-1:]
            log = open(os.path.join(pf, "maillog")).read() if os.path.exists(os.path.join(pf, "maillog")) else ""
            assert "from=<mallory@evil.test>" not in log, log[-2000:]
        finally:
            app.inside(["bash", POSTFIX, "down", pf])
            shutil.rmtree(os.path.dirname(pf), ignore_errors=True)


def test_body_in_ip_fragments_is_refused(tmp_path):
    """The body sent in IP fragments. On af_packet ports the kernel
    defragments before DPDK reads (PACKET_FANOUT_FLAG_DEFRAG), as no real
    NIC does: this runs on TAP ports, where fragments arrive as sent. They
    are dropped (ip_fragments = "drop"); the client's retransmission
    unfragmented is judged like the clean send."""
    with Appliance(tmp_path, workers=1, extra=POLICY, devices="tap") as app:
        app.maildir = app.start_sink()
        out_mac = app.run_in(app.env["NS_OUT"], ["cat", "/sys/class/net/sk%sx/address" % app.id]).stdout.strip()
        app.in_mac = app.run_in(app.env["NS_IN"], ["cat", "/sys/class/net/sk%sy/address" % app.id]).stdout.strip()
        app.run_in(app.env["NS_IN"], ["ip", "neigh", "replace", "192.0.2.9", "lladdr", out_mac, "dev",
                                      "sk%sy" % app.id])
        out = attack(app, "fragments", iface="sk%sx" % app.id)
        wait_for(lambda: evil_delivered(app), timeout=3)
        assert evil_delivered(app) == [], out
        assert "550 5.7.1" in out["all"] and "queued as" not in out["all"], out
        w = app.stats()["workers"]["0"]
        assert w["tcp_fragments_dropped"] >= 1 and w["decode"]["ip_fragment"] >= 1, w
