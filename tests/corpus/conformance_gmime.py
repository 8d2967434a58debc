#!/usr/bin/python3
"""GMime 3 as a second reference (issue 22): every leaf part GMime exposes
for a conformance-corpus message must be among what the MIME engine scans:
a part that is not text by its transfer-decoded bytes (SHA-256 among the
engine's leaves), a text part by its text (GMime's UTF-8 found in one of the
engine's leaf texts, line ends and trailing white space aside: where GMime
starts a body later, its text is part of the engine's). Parts the
engine exposes beyond GMime's are not disagreements (the engine scans the
union of the readings). Every message where a GMime part is missing must be
listed in tests/corpus/mime_gmime.tsv (MESSAGE<TAB>CLASS<TAB>EVIDENCE, as
mime_conformance.tsv); exits 1 on an unlisted or stale line.

    conformance_gmime.py SEKISHO_MIME GMIME_LEAVES [--data DIR] [--table TSV] [FILE...]
With FILEs: compare those messages only and print what is missing (no table).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import conformance_mime  # noqa: E402

TABLE = os.path.join(HERE, "mime_gmime.tsv")


def norm(t):
    lines = t.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(l.rstrip(" \t") for l in lines).strip("\n")


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8", "replace")
    return {j["file"]: j for j in (json.loads(l) for l in out.splitlines() if l)}


def missing_parts(g, s):
    """GMime's leaves of one message that the engine's leaves do not cover."""
    shas = {l["sha256"] for l in s.get("leaves", [])}
    texts = {norm(l.get("text", "")) for l in s.get("leaves", [])}
    miss = []
    for l in g["leaves"]:
        if l["sha256"] in shas:
            continue
        if "text" in l:
            t = norm(l["text"])
            if not t or t in texts or any(t in x for x in texts):
                continue
        miss.append("%s %s (%d bytes%s)" % (l["type"], l["filename"] or "-", l["size"],
                                           ", text" if "text" in l else ""))
    return miss


def compare(mime, gmime, paths):
    ours = run_json([mime, "--leaf-text"] + paths)
    theirs = run_json([gmime] + paths)
    return {p: missing_parts(theirs[p], ours[p]) for p in paths}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mime")
    ap.add_argument("gmime")
    ap.add_argument("--data", default=conformance_mime.DATA)
    ap.add_argument("--table", default=TABLE)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.files:
        bad = 0
        for p, miss in compare(a.mime, a.gmime, a.files).items():
            if miss:
                bad += 1
                print("%s: %s" % (p, "; ".join(miss)))
        return 1 if bad else 0
    cases = list(conformance_mime.mime4j_cases(a.data)) + list(conformance_mime.python_cases(a.data))
    keys = {}
    for _ref, key, path, _leaves in cases:
        keys.setdefault(path, os.path.relpath(path, a.data))
    res = compare(a.mime, a.gmime, sorted(keys))
    table = conformance_mime.load_table(a.table)
    summary = {"messages": len(res), "agree": 0, "listed": 0, "unlisted": 0, "stale": 0}
    for path in sorted(res):
        key, miss = keys[path], res[path]
        if not miss:
            summary["agree"] += 1
            if key in table:
                summary["stale"] += 1
                print("STALE  %s: GMime's parts are all scanned now, remove it from the table" % key)
            continue
        if key in table:
            summary["listed"] += 1
            print("listed %s: %s (%s: %s)" % (key, "; ".join(miss), *table[key]))
        else:
            summary["unlisted"] += 1
            print("UNLISTED %s: GMime exposes, the engine does not scan: %s" % (key, "; ".join(miss)))
    for k in sorted(set(table) - set(keys.values())):
        summary["stale"] += 1
        print("STALE  %s: no such message" % k)
    print(json.dumps(summary, sort_keys=True))
    return 1 if summary["unlisted"] or summary["stale"] else 0


if __name__ == "__main__":
    sys.exit(main())
