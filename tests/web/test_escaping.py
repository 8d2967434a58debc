"""The escaping test of issue 7: a message whose Subject, From, To,
Reply-To, Message-ID, attachment name and body carry script/HTML payloads
goes through the dataplane's own stream and content engines
(sekisho-replay with a ruleset that quarantines it) into the event journal;
sekisho-control (HTTPS, a real admin user) ingests it; Debian's Chromium,
driven by playwright-core (escaping.mjs), logs in through the login page
and opens the tracking-log search, the message detail and, when the
message is in the quarantine, the quarantine list and view. Nothing may
run (window.__pwned stays undefined, no dialog, no CSP report, no script
error, no injected element) and every payload must read back literally as
the element's textContent."""
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SEKISHO_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
CONTROL = os.path.join(BUILD, "control", "sekisho-control")
REPLAY = os.path.join(BUILD, "tools", "replay", "sekisho-replay")
SEKISHOCTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
sys.path.insert(0, os.path.join(SRC, "tests", "replay"))

pytest.importorskip("scapy.all", reason="Debian's python3-scapy builds the capture")
import evasion_pcaps as ev  # noqa: E402
from scapy.all import wrpcap  # noqa: E402


def need(what, path):
    """Missing tools fail under CI (setup.sh installs them) and skip elsewhere."""
    if path and os.path.exists(path):
        return path
    msg = f"{what} not found ({path}); appliance/setup.sh installs it"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NODE = shutil.which("node") or "/usr/bin/node"
NPM = shutil.which("npm") or "/usr/bin/npm"

# The payloads. Each would run if a page wrote it as HTML.
SUBJECT = ('<script>window.__pwned=1</script>"><svg onload=window.__pwned=2> '
           '<img src=x onerror="window.__pwned=3"> =?UTF-8?B?PGlmcmFtZSBzcmM9amF2YXNjcmlwdDp3aW5kb3cuX19wd25lZD00Pg==?=')
SUBJECT_DECODED_PART = "<iframe src=javascript:window.__pwned=4>"
FROM = '"<img src=x onerror=window.__pwned=5>" <"<svg/onload=window.__pwned=6>"@evil.test>'
TO = '"<script>window.__pwned=7</script>"@inside.test'
REPLY_TO = '"<b onmouseover=window.__pwned=8>"@evil.test'
MESSAGE_ID = '<"<script>window.__pwned=9</script>"@evil.test>'
ATTACHMENT = "<img src=x onerror=window.__pwned=10>.pdf"
BODY_MARKER = "XSS-BODY-MARKER <script>window.__pwned=12</script>"
ENVELOPE_FROM = "attacker@evil.test"
ENVELOPE_TO = "bob@inside.test"

RULES = r"""ruleset_version web-escaping-1
header SK_TEST_XSS_SUBJECT Subject =~ /__pwned/
score SK_TEST_XSS_SUBJECT 1
body SK_TEST_XSS_BODY /XSS-BODY-MARKER[^\n]*/
score SK_TEST_XSS_BODY 1
action SK_TEST_XSS_SUBJECT quarantine
category SK_TEST_XSS_SUBJECT xss-test
"""


def hostile_message():
    body = ("Click javascript:window.__pwned=11 now.\r\n" + BODY_MARKER + "\r\n"
            '<a href="javascript:window.__pwned=13">here</a>\r\n')
    return ("From: " + FROM + "\r\n"
            "To: " + TO + "\r\n"
            "Reply-To: " + REPLY_TO + "\r\n"
            "Subject: " + SUBJECT + "\r\n"
            "Message-ID: " + MESSAGE_ID + "\r\n"
            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n'
            "\r\n"
            "--b1\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n" + body +
            "--b1\r\n"
            'Content-Type: application/pdf; name="' + ATTACHMENT + '"\r\n'
            'Content-Disposition: attachment; filename="' + ATTACHMENT + '"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n"
            "JVBERi0xLjQKJSVFT0YK\r\n"
            "--b1--\r\n").encode()


def smtp_capture(path, message):
    s = ev.Session(4242)
    s.server(b"220 mx.inside.test ESMTP\r\n")
    s.client(b"EHLO outside.test\r\n")
    s.server(b"250-mx.inside.test\r\n250 8BITMIME\r\n")
    s.client(b"MAIL FROM:<" + ENVELOPE_FROM.encode() + b">\r\n")
    s.server(b"250 2.1.0 Ok\r\n")
    s.client(b"RCPT TO:<" + ENVELOPE_TO.encode() + b">\r\n")
    s.server(b"250 2.1.5 Ok\r\n")
    s.client(b"DATA\r\n")
    s.server(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    s.client(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    s.server(b"250 2.0.0 Ok: queued\r\n")
    s.client(b"QUIT\r\n")
    s.server(b"221 2.0.0 Bye\r\n")
    wrpcap(path, s.frames)


def npm_ci():
    """playwright-core from the lock file, into tests/web/node_modules."""
    lock = json.load(open(os.path.join(HERE, "package-lock.json")))
    want = lock["packages"]["node_modules/playwright-core"]["version"]
    have = os.path.join(HERE, "node_modules", "playwright-core", "package.json")
    if os.path.exists(have) and json.load(open(have))["version"] == want:
        return
    r = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, "npm ci failed:\n" + r.stdout + r.stderr


class Control:
    """sekisho-control over HTTPS on a free loopback port."""

    def __init__(self, tmp, journal, spool=None):
        self.tmp = tmp
        crt, key = str(tmp / "control.crt"), str(tmp / "control.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        self.ca = crt
        self.conf = str(tmp / "control.conf")
        with open(self.conf, "w") as f:
            f.write('control = {\n  listen = "127.0.0.1:0";\n  journal = "%s";\n  database = "%s";\n'
                    '  spool = "%s";\n  audit_key = "%s";\n  audit_anchor = "%s";\n  rulesets_dir = "%s";\n'
                    '  ingest_interval_ms = 100;\n  tls_certificate = "%s";\n  tls_key = "%s";\n};\n'
                    % (journal, tmp / "control.db", spool or "", tmp / "audit.key", tmp / "audit.anchor", tmp / "rulesets",
                       crt, key))
        self.proc = None
        self.base = None

    def admin(self, *args, stdin=""):
        return subprocess.run([CONTROL, "-c", self.conf] + list(args), input=stdin, capture_output=True, text=True,
                              timeout=60)

    def start(self):
        self.log = open(self.tmp / "control.log", "w+")
        self.proc = subprocess.Popen([CONTROL, "-c", self.conf], stderr=self.log, stdout=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if "listening on https://" in line:
                    self.base = line.split("listening on ")[1].split(",")[0]
                    return
            assert self.proc.poll() is None, "sekisho-control exited:\n" + self.output()
            time.sleep(0.05)
        raise AssertionError("sekisho-control did not start:\n" + self.output())

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def get(self, path, token):
        ctx = ssl.create_default_context(cafile=self.ca)
        req = urllib.request.Request(self.base + path, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.load(r)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def control(tmp_path):
    need("sekisho-control", CONTROL)
    need("sekisho-replay", REPLAY)
    need("sekishoctl", SEKISHOCTL)
    journal = tmp_path / "journal"
    journal.mkdir()
    c = Control(tmp_path, journal)
    yield c
    c.stop()


def run_browser(tmp_path, case):
    need("Debian's chromium", CHROMIUM)
    need("node", NODE)
    npm_ci()
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case))
    r = subprocess.run([NODE, os.path.join(HERE, "escaping.mjs"), str(case_file)], cwd=HERE, capture_output=True,
                       text=True, timeout=300)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    seen = json.loads(lines[-1]) if lines else {}
    return r, seen


def test_hostile_message_is_shown_literally_and_nothing_runs(control, tmp_path):
    # 1. The dataplane's engines: SMTP capture -> replay with a quarantining ruleset -> journal.
    rules = tmp_path / "xss.cf"
    rules.write_text(RULES)
    artifact = str(tmp_path / "xss.srs")
    r = subprocess.run([SEKISHOCTL, "rules", "compile", "-o", artifact, str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    cap = str(tmp_path / "hostile.pcap")
    smtp_capture(cap, hostile_message())
    r = subprocess.run([REPLAY, "--smtp-port", "25", "--rules", artifact, cap], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    lines = [l for l in r.stdout.decode().splitlines() if json.loads(l)["type"] == "message"]
    assert len(lines) == 1, r.stdout.decode()
    event = json.loads(lines[0])
    assert event["verdict"]["action"] == "quarantine", event["verdict"]
    (tmp_path / "journal" / "events-000000000000.jsonl").write_text(lines[0] + "\n")

    # 2. The control plane: the first admin from the command line, then serve and ingest.
    password = "correct horse battery staple"
    r = control.admin("user", "add", "admin", "--admin", "--password-stdin", stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    r = control.admin("token", "create", "web-test")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    control.start()
    deadline = time.time() + 20
    page = {"total": 0}
    while time.time() < deadline and page["total"] < 1:
        page = control.get("/api/log?q=__pwned", token)
        time.sleep(0.1)
    assert page["total"] == 1, page
    row = page["rows"][0]

    # What the pages must show is what the API holds; the API must hold the payloads unmangled.
    assert "<script>window.__pwned=1</script>" in row["subject"] and SUBJECT_DECODED_PART in row["subject"], row
    assert "<svg/onload=window.__pwned=6>" in row["from"], row
    assert any("<script>window.__pwned=7</script>" in t for t in row["to"]), row
    assert "<b onmouseover=window.__pwned=8>" in (row["reply_to"] or ""), row
    names = [a.get("name") or a.get("filename") for a in row["attachments"]]
    assert ATTACHMENT in names, row["attachments"]
    rule_names = sorted(x["rule"] for x in row["rules"])
    assert rule_names == ["SK_TEST_XSS_BODY", "SK_TEST_XSS_SUBJECT"], row["rules"]

    quarantine_id = None
    try:
        q = control.get("/api/quarantine?q=__pwned", token)
        quarantine_id = q["rows"][0]["id"] if q.get("rows") else None
    except urllib.error.HTTPError as e:
        assert e.code == 404, e  # a control plane without the quarantine routes
    # sekisho-replay writes no spool, so the quarantine stays empty on this path.

    shots = os.environ.get("SEKISHO_WEB_SCREENSHOTS")
    case = {
        "base": control.base, "user": "admin", "password": password, "chromium": CHROMIUM,
        "event_id": row["event_id"], "quarantine_id": quarantine_id, "screenshots": shots,
        "expect": {
            "subject": row["subject"], "from": row["from"], "sender": row["sender"], "to": ", ".join(row["to"]),
            "reply_to": row["reply_to"], "attachment": ATTACHMENT, "rules": rule_names,
            "body_marker": BODY_MARKER,
        },
    }
    r, seen = run_browser(tmp_path, case)
    assert r.returncode == 0, "browser checks failed:\n%s\n%s\n%s" % (
        json.dumps(seen.get("failures"), indent=1), r.stderr[-4000:], control.output()[-2000:])
    assert {p["name"] for p in seen["pages"]} >= {"log", "log-filtered", "message"}, seen
    assert all(p["pwned"] == "undefined" for p in seen["pages"]), seen


# Registered by meson only with the wire tests (-Dwire_tests=true): root,
# network namespaces, sekisho-dataplane.
def test_message_held_by_the_dataplane_is_shown_literally_in_the_quarantine(tmp_path):
    """The same message sent by swaks through the real sekisho-dataplane on
    the virtual wire: held (journal and spool written by the dataplane),
    then the quarantine list and view in the browser as well."""
    need("sekisho-control", CONTROL)
    need("sekishoctl", SEKISHOCTL)
    need("sekisho-dataplane", os.path.join(BUILD, "dataplane", "dpdk", "sekisho-dataplane"))
    if os.geteuid() != 0:
        pytest.skip("the virtual wire needs root")
    sys.path.insert(0, os.path.join(SRC, "tests", "wire"))
    from harness import Appliance, wait_for

    rules = tmp_path / "xss.cf"
    rules.write_text(RULES)
    artifact = str(tmp_path / "xss.srs")
    r = subprocess.run([SEKISHOCTL, "rules", "compile", "-o", artifact, str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    msg = tmp_path / "hostile.eml"
    msg.write_bytes(hostile_message())
    wire = tmp_path / "wire"
    wire.mkdir()
    with Appliance(wire, extra='  ruleset = "%s";\n' % artifact) as app:
        app.start_sink()
        r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test", "--from", ENVELOPE_FROM,
                         "--to", ENVELOPE_TO, "--data", "@" + str(msg)], timeout=60)
        assert "held as" in r.stdout + r.stderr, r.stdout + r.stderr
        wait_for(lambda: any(e["verdict"]["action"] == "quarantine" for e in app.events()), timeout=10)
        journal, spool = app.journal, app.spool

    c = Control(tmp_path, journal, spool)
    try:
        password = "correct horse battery staple"
        assert c.admin("user", "add", "admin", "--admin", "--password-stdin", stdin=password + "\n").returncode == 0
        token = c.admin("token", "create", "web-test").stdout.strip()
        c.start()
        deadline = time.time() + 20
        log = held = {"total": 0}
        while time.time() < deadline and (log["total"] < 1 or held["total"] < 1):
            log = c.get("/api/log?q=__pwned", token)
            held = c.get("/api/quarantine?q=__pwned", token)
            time.sleep(0.1)
        assert log["total"] == 1 and held["total"] == 1, (log, held, c.output())
        row, item = log["rows"][0], held["rows"][0]
        assert item["subject"] == row["subject"] and item["from"] == row["from"], (row, item)
        detail = c.get("/api/quarantine/" + urllib.parse.quote(item["id"], safe=""), token)
        assert "<script>window.__pwned=12</script>" in (detail["text"] or ""), detail
        case = {
            "base": c.base, "user": "admin", "password": password, "chromium": CHROMIUM,
            "event_id": row["event_id"], "quarantine_id": item["id"],
            "screenshots": os.environ.get("SEKISHO_WEB_SCREENSHOTS"),
            "expect": {
                "subject": row["subject"], "from": row["from"], "sender": row["sender"], "to": ", ".join(row["to"]),
                "reply_to": row["reply_to"], "attachment": ATTACHMENT,
                "rules": sorted(x["rule"] for x in row["rules"]), "body_marker": BODY_MARKER,
            },
        }
        r, seen = run_browser(tmp_path, case)
        assert r.returncode == 0, "browser checks failed:\n%s\n%s\n%s" % (
            json.dumps(seen.get("failures"), indent=1), r.stderr[-4000:], c.output()[-2000:])
        assert {p["name"] for p in seen["pages"]} >= {"log", "message", "quarantine", "quarantine-view"}, seen
    finally:
        c.stop()
