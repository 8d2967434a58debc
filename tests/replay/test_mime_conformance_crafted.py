"""Phishing messages crafted to hide a URL or an attachment through each
parsing differential of issue 22 (a line that is no header field, a base64
message/rfc822, a delimiter with text after it, a delimiter line over 1,024
bytes, a boundary ending in a space, a stray line before an attachment's
blank line or in a forwarded message's part header): the URL and the
attachment reach the rules and the verdict. Each is judged by a URL rule and
an attachment rule compiled by sekishoctl, through the evaluator the
dataplane runs (sekishoctl rules explain), and through sekisho-replay with
the same ruleset on the message sent as an SMTP session."""
import base64
import json
import os
import subprocess

import pytest

from replay_lib import BUILD, SRC, replay

CTL = os.path.join(BUILD, "tools", "sekishoctl", "sekishoctl")
MIME = os.path.join(BUILD, "tools", "mime", "sekisho-mime")
PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")

EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"A" * 120 + b"PE"
RULES = r"""
uri        SK_T_PHISH_URL  /phish\.example/i
describe   SK_T_PHISH_URL  a URL of the crafted phishing messages
score      SK_T_PHISH_URL  1.0
action     SK_T_PHISH_URL  reject
attachment SK_T_EXE        name =~ /\.(?:exe|scr)$/i
describe   SK_T_EXE        an executable attachment
score      SK_T_EXE        1.0
action     SK_T_EXE        reject
"""


def b64(data):
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def msgs():
    bnd = b"q" * 5000
    inner = (b"From: ceo@corp.example\r\nSubject: urgent wire\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
             b"--in\r\nContent-Type: text/html\r\n\r\n<a href=\"http://wire.phish.example/pay\">pay now</a>\r\n"
             b"--in\r\nContent-Type: application/octet-stream; name=\"payment.exe\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(EXE) + b"--in--\r\n")
    head = b"From: it@corp.example\r\nTo: user@corp.example\r\nMessage-ID: <%s@crafted.example>\r\n"
    return {
        # the HTML right after its Content-Type, no blank line
        "html_after_header": (head + b"Subject: Password expires\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
                              b"--alt\r\nContent-Type: text/plain\r\n\r\nSee the HTML version.\r\n"
                              b"--alt\r\nContent-Type: text/html\r\n<a href=\"https://login.phish.example/reset\">keep</a>\r\n"
                              b"--alt--\r\n", "SK_T_PHISH_URL"),
        # base64 of an executable right after its headers
        "base64_after_header": (head + b"Subject: Invoice\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                                b"--b\r\nContent-Type: text/plain\r\n\r\nattached\r\n"
                                b"--b\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\n"
                                b"Content-Transfer-Encoding: base64\r\n" + b64(EXE) + b"--b--\r\n", "SK_T_EXE"),
        "stray_line_before_blank": (head + b"Subject: Invoice 2\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                                    b"--b\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n"
                                    b"Content-Transfer-Encoding: base64\r\nX-Scanned by nothing\r\n\r\n" + b64(EXE) +
                                    b"--b--\r\n", "SK_T_EXE"),
        "encoded_rfc822": (head + b"Subject: Fwd: urgent wire\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
                           b"--out\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--out\r\nContent-Type: message/rfc822\r\n"
                           b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(inner) + b"--out--\r\n", "SK_T_PHISH_URL SK_T_EXE"),
        "stray_line_in_rfc822_part": (head + b"Subject: Fwd\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
                                      b"--o\r\nContent-Type: message/rfc822\r\nContent-Disposition\xbd inline\r\n\r\n" + inner +
                                      b"--o--\r\n", "SK_T_PHISH_URL SK_T_EXE"),
        "junk_delimiter": (head + b"Subject: Your parcel\r\nContent-Type: multipart/mixed; boundary=\"=_p\"\r\n\r\n"
                           b"--=_p\r\nContent-Type: image/png; name=logo.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
                           b64(b"\x89PNG\r\n\x1a\n....") +
                           b"--=_p tracking\r\nContent-Type: text/html\r\n\r\n<a href=\"https://parcel.phish.example/t\">track</a>\r\n"
                           b"--=_p\tx\r\nContent-Type: application/octet-stream; name=\"label.exe\"\r\n"
                           b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(EXE) + b"--=_p--\r\n", "SK_T_PHISH_URL SK_T_EXE"),
        "long_boundary": (head + b"Subject: scan\r\nContent-Type: multipart/mixed; boundary=\"" + bnd + b"\"\r\n\r\n"
                          b"--" + bnd + b"\r\nContent-Type: text/html\r\n\r\n<a href=\"http://long.phish.example/\">open</a>\r\n"
                          b"--" + bnd + b"\r\nContent-Type: application/octet-stream; name=\"scan.exe\"\r\n"
                          b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(EXE) + b"--" + bnd + b"--\r\n",
                          "SK_T_PHISH_URL SK_T_EXE"),
        "boundary_ending_in_space": (head + b"Subject: remittance\r\nContent-Type: multipart/mixed; boundary=\"=_b \"\r\n\r\n"
                                     b"--=_b \r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                                     b"--=_b\r\nContent-Type: application/octet-stream; name=\"remit.exe\"\r\n"
                                     b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(EXE) + b"--=_b --\r\n", "SK_T_EXE"),
    }


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    if not os.path.exists(CTL):
        pytest.skip("sekishoctl not built")
    d = tmp_path_factory.mktemp("crafted")
    cf = d / "crafted.cf"
    cf.write_text(RULES)
    art = str(d / "crafted.skr")
    r = subprocess.run([CTL, "rules", "compile", "-o", art, "--quiet", str(cf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    paths = {}
    for name, (data, want) in msgs().items():
        p = d / (name + ".eml")
        p.write_bytes(data.replace(b"%s", name.encode()))
        paths[name] = (str(p), want.split())
    return art, paths, d


def test_rules_see_the_hidden_url_or_attachment(crafted):
    art, paths, _ = crafted
    for name, (p, want) in paths.items():
        r = subprocess.run([CTL, "rules", "explain", art, p], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for rule in want:
            assert rule in r.stdout, (name, r.stdout)
        assert "action reject" in r.stdout, (name, r.stdout)


def test_each_message_names_its_ambiguity(crafted):
    _, paths, _ = crafted
    out = subprocess.run([MIME] + [p for p, _ in paths.values()], capture_output=True, check=True).stdout
    facts = {os.path.basename(j["file"])[:-4]: j for j in map(json.loads, out.splitlines())}
    expect = {"html_after_header": "header_block_garbage", "base64_after_header": "header_block_garbage",
              "stray_line_before_blank": "header_after_garbage", "encoded_rfc822": "encoded_message",
              "stray_line_in_rfc822_part": "header_after_garbage", "junk_delimiter": "boundary_junk",
              "long_boundary": "long_boundary_line", "boundary_ending_in_space": "boundary_trailing_space"}
    for name, anomaly in expect.items():
        assert facts[name]["mime_anomalies"].get(anomaly, 0) >= 1, (name, facts[name]["mime_anomalies"])


def test_replay_verdicts(crafted):
    art, paths, d = crafted
    pcap, truth = str(d / "crafted.pcap"), str(d / "truth.jsonl")
    subprocess.run(["/usr/bin/python3", PCAPGEN, "--corpus"] + [p for p, _ in paths.values()] + ["--out", pcap, "--truth", truth],
                   check=True, capture_output=True)
    r = replay(pcap, "--rules", art)
    assert r["returncode"] == 0, r["stderr"]
    got = {m["message_id"].strip("<>").split("@")[0]: m for m in r["messages"]}
    for name, (_, want) in paths.items():
        m = got.get(name)
        assert m is not None, (name, list(got))
        v = json.dumps(m)
        for rule in want:
            assert rule in v, (name, v[:2000])
