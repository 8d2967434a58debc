"""Header fields of the SpamAssassin corpus (6,046 real messages) as the
dataplane decodes them (sekisho-replay over the corpus as SMTP sessions)
against Python's email package, message by message.

Thresholds are what the engine reaches; the differences that remain are
listed by tests/corpus/compare_headers.py and are, by kind:
- subjects in raw 8-bit bytes that are not UTF-8: Python replaces every
  byte with U+FFFD (the text is lost), the engine reads them as Latin-1
  and counts a charset error;
- To/Cc with malformed groups ("undisclosed-recipients:;@host") that
  Python drops and the engine keeps as written, and display names with
  spaces glued to an @-domain that Python keeps as one address.
"""
import json
import os
import subprocess

import pytest

from replay_lib import REPLAY, SRC

FETCH = os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")
PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")
COMPARE = os.path.join(SRC, "tests", "corpus", "compare_headers.py")


def test_header_fields_agree_with_python_email(tmp_path, capsys):
    r = subprocess.run([FETCH], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip("the npm registry is unreachable: " + r.stderr[-300:])
    pcap, truth = str(tmp_path / "c.pcap"), str(tmp_path / "t.jsonl")
    subprocess.run(["/usr/bin/python3", PCAPGEN, "--corpus", r.stdout.strip(), "--out", pcap, "--truth", truth],
                   check=True, capture_output=True)
    out = subprocess.run(["/usr/bin/python3", COMPARE, REPLAY, pcap, truth, "--show", "5"], capture_output=True,
                         text=True, check=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    with capsys.disabled():
        print("\nheader agreement with Python's email, %d messages: %s" % (summary["messages"], summary))
    assert summary["messages"] > 6000
    assert summary["from"] >= 99.8 and summary["cc"] >= 99.9
    assert summary["to"] >= 99.0 and summary["subject"] >= 99.3
