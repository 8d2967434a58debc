"""The MIME engine against the conformance corpora (issue 22): mime4j's 80
messages against their `_decoded` trees and the 142 messages of
expected-python/ against Python's email. Every disagreement must be listed,
with its class and evidence, in tests/corpus/mime_conformance.tsv
(tests/corpus/conformance_mime.py compares); and every corpus message fed in
small chunks must give what it gives fed whole."""
import json
import os
import subprocess

import pytest

from replay_lib import BUILD, SRC, TESTDATA

COMPARE = os.path.join(SRC, "tests", "corpus", "conformance_mime.py")
TABLE = os.path.join(SRC, "tests", "corpus", "mime_conformance.tsv")
MIME = os.path.join(BUILD, "tools", "mime", "sekisho-mime")
DATA = os.path.join(TESTDATA, "conformance", "mime")


@pytest.fixture(scope="module", autouse=True)
def corpus():
    if not os.path.isdir(os.path.join(DATA, "expected-python")):
        pytest.skip("no conformance corpus at " + DATA)


def test_every_disagreement_is_listed(capsys):
    r = subprocess.run(["/usr/bin/python3", COMPARE, MIME, "--data", DATA, "--table", TABLE],
                       capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    with capsys.disabled():
        print("\nMIME conformance: %s" % json.dumps(summary, sort_keys=True))
        for line in lines[:-1]:
            if not line.startswith("listed"):
                print(line)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert summary["messages"] == 222
    assert summary["unlisted"] == 0 and summary["stale"] == 0


def test_table_lines_are_classified_with_evidence():
    n = 0
    for line in open(TABLE, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        msg, cls, evidence = line.rstrip("\n").split("\t")
        assert cls in ("engine convention", "reference quirk"), line
        assert len(evidence) > 40, line
        n += 1
    assert n > 0


def test_chunking_gives_the_same_facts():
    paths = []
    for root, _dirs, names in os.walk(DATA):
        for n in names:
            if n.endswith((".msg", ".eml")) or (n.startswith("msg_") and n.endswith(".txt")) or \
                    os.path.basename(root) == "spamassassin-cjk":
                paths.append(os.path.join(root, n))
    assert len(paths) >= 142
    for c in ("1", "7", "1000"):
        r = subprocess.run([MIME, "--leaves", "--compare-chunks", c] + sorted(paths), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[:3000] + r.stderr
