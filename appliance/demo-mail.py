#!/usr/bin/python3
"""Writes the demo's test messages (RFC 5322 files for `swaks --data`):
a Japanese phishing mail (ISO-2022-JP, a brand name in the display name),
a Word document with a VBA project (.docm), and a password-protected ZIP
("PPAP"). Each is built with Python's email package; the ZIP by Info-ZIP.
    demo-mail.py OUTDIR"""
import email.header
import email.utils
import email.policy
import io
import os
import subprocess
import sys
import zipfile
from email.message import EmailMessage


def base(subject, sender, to="bob@inside.test", charset=None):
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = to
    m["Subject"] = email.header.Header(subject, charset, maxlinelen=0).encode() if charset else subject
    m["Message-ID"] = email.utils.make_msgid(domain="outside.test")
    m["Date"] = email.utils.formatdate()
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    m = base("【重要】Amazonアカウント一時停止のお知らせ",
             "%s <security@amaz0n-support.example>" % email.header.Header("Amazon カスタマーサービス", "iso-2022-jp").encode(),
             charset="iso-2022-jp")
    m.set_content("お客様のアカウントで不審なログインが検出されたため、アカウントを一時停止しました。\n"
                  "下記のURLからログインして本人確認を行ってください。\n"
                  "24時間以内に手続きがない場合、アカウントは削除されます。\n"
                  "http://amaz0n-support.example/login\n", charset="iso-2022-jp", cte="7bit")
    open(os.path.join(out, "phishing-ja.eml"), "wb").write(m.as_bytes())

    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504)
    m = base("Updated remittance form", "accounts@partner.example")
    m.set_content("Please enable editing and macros to view the remittance details.\n")
    m.add_attachment(b.getvalue(), maintype="application", subtype="vnd.ms-word.document.macroEnabled.12",
                     filename="remittance.docm")
    open(os.path.join(out, "macro.eml"), "wb").write(m.as_bytes())

    src = os.path.join(out, "見積書.pdf")
    open(src, "wb").write(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    zpath = os.path.join(out, "enc.zip")
    if os.path.exists(zpath):
        os.unlink(zpath)
    subprocess.run(["zip", "-q", "-j", "-P", "pass1234", zpath, src], check=True)
    m = base("お見積書の送付", "sales@vendor.example.co.jp")
    m.set_content("お見積書をお送りします。パスワードは別メールにてお送りします。\n")
    m.add_attachment(open(zpath, "rb").read(), maintype="application", subtype="zip", filename="見積書.zip")
    open(os.path.join(out, "ppap.eml"), "wb").write(m.as_bytes())

    m = base("Minutes of Tuesday's meeting", "carol@outside.test")
    m.set_content("Hi Bob,\n\nthe minutes are below. Nothing urgent.\n\nCarol\n")
    open(os.path.join(out, "clean.eml"), "wb").write(m.as_bytes())


if __name__ == "__main__":
    main()
