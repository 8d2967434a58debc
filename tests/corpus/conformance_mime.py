#!/usr/bin/python3
"""The MIME engine (sekisho-mime --leaves) against two references, message
by message, over ../shared/testdata/conformance/mime:

  mime4j   the 80 messages of Apache James mime4j's test suites (testmsgs,
           mimetools-testmsgs) against their expected `_decoded` trees: the
           leaf bodies mime4j's MessageParserTest writes (text bodies in the
           part's charset, binary bodies as bytes), in document order;
  python   the 142 messages of expected-python/ (CPython's email test data,
           both mime4j sets, SpamAssassin's CJK and olevbmacro mails) against
           Python 3.11 email's (compat32) leaves: get_payload(decode=True).

A message agrees when the engine's leaves (transfer-decoded bytes, by
SHA-256) are the reference's, as multisets. Every other message must be
listed in the table (tests/corpus/mime_conformance.tsv) with its class,
"engine convention" or "reference quirk", and one line of evidence;
"engine gap" is not a class the table may hold. Prints one line per
message that disagrees, then a JSON summary; exits 1 on any disagreement
not in the table, and on a table line whose message now agrees (stale).

    conformance_mime.py SEKISHO_MIME [--data DIR] [--table TSV] [--all]
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "testdata", "conformance", "mime"))
TABLE = os.path.join(HERE, "mime_conformance.tsv")
CLASSES = ("engine convention", "reference quirk")

# expected-python/<set>/<file>.json -> the message file it was made from
PY_SETS = {
    "cpython": "cpython/data",
    "mime4j-mimetools": "mime4j/mimetools-testmsgs",
    "mime4j-testmsgs": "mime4j/testmsgs",
    "spamassassin-cjk": "japanese/spamassassin-cjk",
    "spamassassin-olevbmacro": "spamassassin-olevbmacro",
}
MIME4J_SETS = ("testmsgs", "mimetools-testmsgs")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def mime4j_cases(data):
    for s in MIME4J_SETS:
        d = os.path.join(data, "mime4j", s)
        for n in sorted(os.listdir(d)):
            if not n.endswith(".msg"):
                continue
            xml = os.path.join(d, n[:-4] + "_decoded.xml")
            if not os.path.exists(xml):
                continue
            names = re.findall(r'<(?:text|binary)-body name="([^"]+)"/>', open(xml, encoding="latin-1").read())
            leaves = [sha(open(os.path.join(d, x), "rb").read()) for x in names]
            yield "mime4j", "mime4j/%s/%s" % (s, n), os.path.join(d, n), leaves


def py_leaves(t, out):
    if t["children"]:
        for c in t["children"]:
            py_leaves(c, out)
    elif not t["is_multipart"]:
        out.append(t["decoded_sha256"])
    return out


def python_cases(data):
    for s, src in PY_SETS.items():
        d = os.path.join(data, "expected-python", s)
        for n in sorted(os.listdir(d)):
            if not n.endswith(".json"):
                continue
            e = json.load(open(os.path.join(d, n)))
            path = os.path.join(data, src, e["file"])
            yield "python", "python/%s/%s" % (s, e["file"]), path, py_leaves(e["tree"], [])


def load_table(path):
    table = {}
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 3 or f[1] not in CLASSES or not f[2].strip():
            raise SystemExit("%s:%d: want MESSAGE<TAB>CLASS<TAB>EVIDENCE, CLASS one of %s" % (path, no, CLASSES))
        if f[0] in table:
            raise SystemExit("%s:%d: %s listed twice" % (path, no, f[0]))
        table[f[0]] = (f[1], f[2])
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mime")
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--table", default=TABLE)
    ap.add_argument("--all", action="store_true", help="print agreeing messages too")
    a = ap.parse_args()
    cases = list(mime4j_cases(a.data)) + list(python_cases(a.data))
    paths = sorted({c[2] for c in cases})
    out = subprocess.run([a.mime, "--leaves"] + paths, capture_output=True, check=True).stdout
    ours = {}
    for line in out.decode("utf-8").splitlines():
        j = json.loads(line)
        ours[j["file"]] = j
    table = load_table(a.table)
    summary = {"messages": 0, "agree": 0, "listed": 0, "unlisted": 0, "stale": 0}
    per_ref = Counter()
    per_ref_agree = Counter()
    seen = set()
    for ref, key, path, ref_leaves in cases:
        j = ours[path]
        mine = [l["sha256"] for l in j.get("leaves", [])]
        missing = Counter(ref_leaves) - Counter(mine)
        extra = Counter(mine) - Counter(ref_leaves)
        summary["messages"] += 1
        per_ref[ref] += 1
        seen.add(key)
        if not missing and not extra:
            summary["agree"] += 1
            per_ref_agree[ref] += 1
            if key in table:
                summary["stale"] += 1
                print("STALE  %s: agrees now, remove it from the table" % key)
            elif a.all:
                print("agree  %s" % key)
            continue
        what = "%d of %d reference leaves not among ours, %d of ours not in the reference" % (
            sum(missing.values()), len(ref_leaves), sum(extra.values()))
        anomalies = ",".join(sorted(j.get("mime_anomalies", {})))
        if key in table:
            summary["listed"] += 1
            print("listed %s: %s [%s] (%s: %s)" % (key, what, anomalies, table[key][0], table[key][1]))
        else:
            summary["unlisted"] += 1
            print("UNLISTED %s: %s [%s]" % (key, what, anomalies))
    for k in sorted(set(table) - seen):
        summary["stale"] += 1
        print("STALE  %s: no such message" % k)
    for r in sorted(per_ref):
        summary[r] = "%d/%d agree" % (per_ref_agree[r], per_ref[r])
    print(json.dumps(summary, sort_keys=True))
    return 1 if summary["unlisted"] or summary["stale"] else 0


if __name__ == "__main__":
    sys.exit(main())
