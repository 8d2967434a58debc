"""The MIME engine on mail built here by independent encoders: Python's
email package (ISO-2022-JP, Shift_JIS, EUC-JP, RFC 2231 file names),
Info-ZIP's `zip -P` and `7z -p -mhe=on` (password-protected archives, the
PPAP case), an OOXML .docm with vbaProject.bin written by zipfile. Each
message goes through sekisho-mime (fed whole and byte by byte) and, as an
SMTP session in a pcap, through sekisho-replay: both must report the same
decoded fields, and the right ones."""
import email.header
import email.policy
import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from email.message import EmailMessage

import pytest

from replay_lib import BUILD, SRC, replay

MIME = os.path.join(BUILD, "tools", "mime", "sekisho-mime")
PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")

JA_SUBJECT = "【重要】お客様のアカウントは一時停止されました"
JA_BODY = "お客様のアカウントで不審なログインが検出されました。\n下記よりご確認ください。\nhttps://例え.jp/ログイン?id=1\n"


def ja_message(charset, subject_charset="iso-2022-jp"):
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "=?%s?B?%s?= <support@bank.example.jp>" % (
        "ISO-2022-JP", __import__("base64").b64encode("カスタマーサポート".encode("iso-2022-jp")).decode())
    m["To"] = "user@example.com"
    m["Subject"] = email.header.Header(JA_SUBJECT, subject_charset, maxlinelen=0).encode()
    m["Message-ID"] = "<ja-%s@bank.example.jp>" % charset
    m.set_content(JA_BODY, charset=charset, cte="base64" if charset != "iso-2022-jp" else "7bit")
    return m.as_bytes()


def zip_encrypted(tmp, inner_name, data):
    src = os.path.join(tmp, inner_name)
    open(src, "wb").write(data)
    out = os.path.join(tmp, "enc.zip")
    subprocess.run(["zip", "-q", "-j", "-P", "himitsu", out, src], check=True)
    return open(out, "rb").read()


def sevenzip_encrypted(tmp, inner_name, data):
    src = os.path.join(tmp, inner_name)
    open(src, "wb").write(data)
    out = os.path.join(tmp, "enc.7z")
    exe = shutil.which("7z") or shutil.which("7zz") or shutil.which("7za")
    subprocess.run([exe, "a", "-bd", "-phimitsu", "-mhe=on", out, src], check=True, capture_output=True)
    return open(out, "rb").read()


def docm():
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    return b.getvalue()


@pytest.fixture(scope="module")
def messages(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("mime"))
    msgs = {}
    msgs["iso2022jp"] = ja_message("iso-2022-jp")
    msgs["shift_jis"] = ja_message("shift_jis")
    msgs["euc_jp"] = ja_message("euc-jp")
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = "経理部 <keiri@example.co.jp>"
    m["To"] = "a@example.com, \"B, Person\" <b@example.com>"
    m["Cc"] = "c@example.com"
    m["Reply-To"] = "other@elsewhere.example"
    m["Subject"] = "請求書送付のご案内"
    m.set_content("請求書を添付いたします。パスワードは別途お送りします。\n")
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    m.add_attachment(zip_encrypted(tmp, "請求書.pdf", pdf), maintype="application", subtype="zip",
                     filename="請求書_2026年11月.zip")
    if shutil.which("7z") or shutil.which("7zz") or shutil.which("7za"):
        m.add_attachment(sevenzip_encrypted(tmp, "meisai.xlsx", b"x" * 2000), maintype="application",
                         subtype="x-7z-compressed", filename="明細.7z")
    m.add_attachment(docm(), maintype="application", subtype="vnd.ms-word.document.macroEnabled.12",
                     filename="report.docm")
    m.add_attachment(b"MZ\x90\x00\x03\x00\x00\x00" + b"\0" * 120, maintype="application",
                     subtype="octet-stream", filename="invoice.pdf.exe")
    msgs["ppap"] = m.as_bytes()
    paths = {}
    for k, v in msgs.items():
        p = os.path.join(tmp, k + ".eml")
        open(p, "wb").write(v.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        paths[k] = p
    return tmp, paths


def mime(path, *args):
    out = subprocess.run([MIME] + list(args) + [path], capture_output=True, check=True).stdout
    return json.loads(out)


def test_japanese_charsets_decode(messages):
    _, paths = messages
    for k in ("iso2022jp", "shift_jis", "euc_jp"):
        f = mime(paths[k], "--leaf-text")
        assert f["subject"] == JA_SUBJECT, k
        assert f["from"] == "support@bank.example.jp" and f["from_name"] == "カスタマーサポート", k
        assert f["charset_errors"] == 0, k
        texts = [l["text"] for l in f["leaves"] if l.get("text")]
        assert texts and texts[0].replace("\r\n", "\n") == JA_BODY, (k, texts)
        assert f["urls"] == ["https://xn--r8jz45g.jp/%E3%83%AD%E3%82%B0%E3%82%A4%E3%83%B3?id=1"], (k, f["urls"])


def test_attachments_ppap_macros_double_extension(messages):
    _, paths = messages
    f = mime(paths["ppap"])
    assert f["from"] == "keiri@example.co.jp" and f["from_name"] == "経理部"
    assert f["to"] == ["a@example.com", "b@example.com"] and f["cc"] == ["c@example.com"]
    assert f["reply_to"] == "other@elsewhere.example"
    assert f["subject"] == "請求書送付のご案内"
    byname = {a["name"]: a for a in f["attachments"]}
    z = byname["請求書_2026年11月.zip"]
    assert z["encrypted"] and z["sniffed_type"] == "application/zip" and not z["macros"]
    raw = email.message_from_bytes(open(paths["ppap"], "rb").read(), policy=email.policy.default)
    py = {p.get_filename(): p.get_content() for p in raw.iter_attachments()}
    for name, a in byname.items():  # size and SHA-256 of what Python decodes from the same part
        assert a["size"] == len(py[name]) and a["sha256"] == hashlib.sha256(py[name]).hexdigest(), name
    if "明細.7z" in byname:
        assert byname["明細.7z"]["encrypted"], byname["明細.7z"]
    assert byname["report.docm"]["macros"] and not byname["report.docm"]["encrypted"]
    exe = byname["invoice.pdf.exe"]
    assert exe["executable"] and exe["double_extension"] and exe["sniffed_type"] == "application/x-dosexec"


def test_byte_by_byte_feeding_gives_the_same_facts(messages):
    tmp, paths = messages
    for c in ("1", "3", "1000"):
        r = subprocess.run([MIME, "--compare-chunks", c] + list(paths.values()), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[:2000] + r.stderr


def test_replay_events_carry_the_mime_fields(messages):
    tmp, paths = messages
    pcap, truth = os.path.join(tmp, "m.pcap"), os.path.join(tmp, "t.jsonl")
    subprocess.run(["/usr/bin/python3", PCAPGEN, "--corpus"] + list(paths.values()) + ["--out", pcap, "--truth", truth],
                   check=True, capture_output=True)
    r = replay(pcap)
    assert r["returncode"] == 0, r["stderr"]
    by_mid = {m["message_id"]: m for m in r["messages"]}
    for k, p in paths.items():
        want = mime(p)
        got = next((m for m in r["messages"] if m["subject"] == want["subject"] and m["message_id"] == want["message_id"]), None)
        assert got is not None, (k, list(by_mid))
        for field in ("from", "from_name", "to", "cc", "reply_to", "subject", "message_id", "date", "urls",
                      "attachments", "parts", "charset_errors"):
            assert got[field] == want[field], (k, field, got[field], want[field])
