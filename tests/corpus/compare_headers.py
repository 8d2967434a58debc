#!/usr/bin/python3
"""Header fields from sekisho-replay (the dataplane's HeaderScanner) against
Python's email package, message by message, over the SpamAssassin corpus
made into SMTP sessions. Prints agreement per field and the disagreements.

    compare_headers.py REPLAY PCAP TRUTH [--show N]
Exit 0; the caller asserts on the printed JSON summary (last line).
"""
import email
import email.header
import email.policy
import email.utils
import json
import sys


def norm(msg_bytes):
    return msg_bytes  # the pcap carries the CRLF-normalised bytes; Python parses those same bytes


def py_fields(data):
    m = email.message_from_bytes(data)

    def dec(v):
        if v is None:
            return ""
        try:
            return str(email.header.make_header(email.header.decode_header(v)))
        except Exception:
            return None  # Python cannot decode it either

    def addrs(name):
        vals = m.get_all(name) or []
        return [a for _, a in email.utils.getaddresses([str(v) for v in vals]) if a]
    frm = email.utils.getaddresses([str(v) for v in (m.get_all("from") or [])[:1]])
    subj = m.get("subject")
    return {"subject": " ".join(dec(subj).split()) if dec(subj) is not None else None,
            "from": frm[0][1] if frm and frm[0][1] else "",
            "to": addrs("to"), "cc": addrs("cc")}


def read_source(path):
    """A corpus message: raw bytes, or the "text" of an npm corpus .json file."""
    if path.endswith(".json"):
        return json.load(open(path, encoding="utf-8"))["text"].encode("utf-8", "surrogateescape")
    return open(path, "rb").read()


def main():
    replay, pcap, truth = sys.argv[1:4]
    show = int(sys.argv[sys.argv.index("--show") + 1]) if "--show" in sys.argv else 10
    import subprocess
    out = subprocess.run([replay, pcap], capture_output=True, check=True).stdout.decode(errors="replace")
    events = {}
    for line in out.splitlines():
        e = json.loads(line)
        if e.get("type") == "message":
            events[e["sha256"]] = e
    rows = [json.loads(l) for l in open(truth)]
    agree = {"subject": 0, "from": 0, "to": 0, "cc": 0}
    total = 0
    diffs = []
    for t in rows:
        if t.get("tls") or not t["source"].startswith("/"):
            continue
        e = events.get(t["sha256"])
        if e is None:
            continue
        raw = read_source(t["source"])
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]
        lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        data = b"".join(l + b"\r\n" for l in lines)
        p = py_fields(data)
        total += 1
        ours = {"subject": " ".join(e["subject"].split()), "from": e["from"], "to": e["to"], "cc": e["cc"]}
        for k in agree:
            if p[k] is None or ours[k] == p[k]:
                agree[k] += 1
            else:
                diffs.append((t["source"].split("/data/")[-1], k, ours[k], p[k]))
    for d in diffs[:show]:
        print("DIFF %s %s: sekisho=%r python=%r" % d)
    summary = {k: round(100.0 * v / total, 2) for k, v in agree.items()}
    summary["messages"] = total
    summary["all_fields_agree"] = round(100.0 * (total - len({d[0] for d in diffs})) / total, 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
