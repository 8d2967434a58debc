"""SMTP smuggling (issue 6, failure policy): a message whose end of data is
<LF>.<CR><LF> is where lenient and strict servers disagree, so the bytes
after it could reach the server as a message the appliance never judged.
smuggling_action "reject" (the default) answers 550 and resets the server:
nothing is delivered; "pass" lets it through, counted as an anomaly."""
from harness import Appliance, delivered, wait_for

CLIENT = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=20)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l.strip())
        if len(l) < 4 or l[3] != "-":
            return lines[-1]
reply()
for cmd in ("EHLO outside.test", "MAIL FROM:<eve@outside.test>", "RCPT TO:<bob@inside.test>", "DATA"):
    s.sendall(cmd.encode() + b"\r\n")
    reply()
s.sendall(b"Subject: first\r\n\r\nhello\n.\r\nMAIL FROM:<eve@outside.test>\r\nRCPT TO:<bob@inside.test>\r\nDATA\r\n"
          b"Subject: smuggled\r\n\r\nnot inspected?\r\n.\r\n")
try:
    print("REPLY", reply())
except Exception as e:
    print("CLOSED", e)
'''


def run(app):
    r = app.outside(["/usr/bin/python3", "-c", CLIENT, app.env["IP_IN"]], timeout=60)
    return r.stdout + r.stderr


def test_smuggling_rejected_by_default(tmp_path):
    with Appliance(tmp_path) as app:
        maildir = app.start_sink()
        out = run(app)
        assert "REPLY 550 5.7.1" in out, out
        ev = wait_for(lambda: app.events(), timeout=10)
        assert ev[0]["verdict"]["action"] == "reject" and ev[0]["verdict"]["rule"] == "smtp_smuggling", ev[0]
        assert delivered(maildir) == []
        w = app.stats()["workers"]["0"]["stream"]
        assert w["smuggling_refused"] == 1, w


def test_smuggling_pass_is_counted(tmp_path):
    with Appliance(tmp_path, extra='  smuggling_action = "pass";\n') as app:
        app.start_sink()
        out = run(app)
        assert "550 5.7.1" not in out, out
        w = app.stats()["workers"]["0"]["stream"]
        assert w["smuggling_refused"] == 0, w
        sess = wait_for(lambda: app.events("session"), timeout=15)
        assert sess and sess[0]["anomalies"].get("bare_lf_end_of_data") == 1, sess
