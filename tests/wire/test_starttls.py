"""STARTTLS policy per port (issue 6): "pass" lets the session go
encrypted (counted, not inspected); "mask" replaces the server's STARTTLS
keyword with same-length bytes so swaks stays in clear and the message is
inspected. The server offers STARTTLS with a real certificate."""
import os
import subprocess

from harness import PY, SINK, Appliance, delivered, wait_for


def start_tls_sink(app, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=inside.sekisho.test", "-keyout", key, "-out", cert], check=True, capture_output=True)
    maildir, log = os.path.join(tmp, "mail"), os.path.join(tmp, "sink.log")
    app.spawn_in(app.env["NS_IN"], [PY, SINK, "--listen", app.env["IP_IN"], "--dir", maildir, "--tls", cert, key], log)
    assert wait_for(lambda: os.path.exists(log) and "listening" in open(log).read(), timeout=15)
    return maildir


def test_pass_lets_the_session_go_encrypted(tmp_path):
    with Appliance(tmp_path, workers=1) as app:
        maildir = start_tls_sink(app, str(tmp_path))
        r = app.outside(["swaks", "--server", app.env["IP_IN"], "--tls", "--from", "a@outside.test",
                         "--to", "b@inside.test"], timeout=60)
        assert r.returncode == 0 and "TLS started" in r.stdout, r.stdout[-1500:]
        got = wait_for(lambda: delivered(maildir))
        assert got and got[0][0]["tls"] is True
        final = app.stop()
        stream = final["workers"]["0"]["stream"]
        assert stream["tls_sessions"] == 1 and stream["messages"] == 0 and stream["starttls_masked"] == 0
        assert not app.events("message")
        assert [e["tls"] for e in app.events("session")] == [True]


def test_mask_keeps_the_session_in_clear_and_inspected(tmp_path):
    with Appliance(tmp_path, workers=1, extra="  starttls_mask_ports = [ 25 ];\n") as app:
        maildir = start_tls_sink(app, str(tmp_path))
        caps = app.outside(["swaks", "--server", app.env["IP_IN"], "--quit-after", "EHLO"], timeout=30).stdout
        assert "250-XXXXXXXX" in caps or "250 XXXXXXXX" in caps, caps
        r = app.outside(["swaks", "--server", app.env["IP_IN"], "--tls-optional", "--from", "a@outside.test",
                         "--to", "b@inside.test"], timeout=60)
        assert r.returncode == 0 and "TLS started" not in r.stdout, r.stdout[-1500:]
        got = wait_for(lambda: delivered(maildir))
        assert got and got[0][0]["tls"] is False
        events = wait_for(lambda: app.events("message"), timeout=10)
        assert events[0]["tls"] is False and events[0]["sha256"] == got[0][0]["sha256"]
        final = app.stop()
        assert final["workers"]["0"]["stream"]["starttls_masked"] >= 2
        assert final["workers"]["0"]["stream"]["tls_sessions"] == 0
