"""The MIME engine against Python's email package over the SpamAssassin
public corpus (6,046 real messages): subject, From/To/Cc, attachment names
and SHA-256s, decoded text bodies, part counts. Every difference must be
explained (tests/corpus/compare_mime.py says by which evidence); and every
message fed byte by byte must give what it gives fed whole."""
import json
import os
import subprocess

import pytest

from replay_lib import BUILD, SRC

FETCH = os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")
COMPARE = os.path.join(SRC, "tests", "corpus", "compare_mime.py")
MIME = os.path.join(BUILD, "tools", "mime", "sekisho-mime")


@pytest.fixture(scope="module")
def corpus():
    r = subprocess.run([FETCH], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip("the npm registry is unreachable: " + r.stderr[-300:])
    return r.stdout.strip()


def test_agreement_with_python_email(corpus, tmp_path, capsys):
    out = subprocess.run(["/usr/bin/python3", COMPARE, MIME, corpus, "--show", "20", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    with capsys.disabled():
        print("\nMIME agreement with Python's email, %d messages: %s" % (summary["messages"], json.dumps(summary)))
        for line in out.splitlines()[:-1]:
            print(line)
    assert summary["messages"] > 6000
    # Where Python decodes a header to U+FFFD (undeclared 8-bit bytes) it has no
    # value to agree with; those messages are left out of the first figure and
    # counted in the strict one (see compare_mime.py, python_lost_text).
    assert summary["subject_addresses_attachments"] >= 99.5
    assert summary["subject_addresses_attachments_strict"] >= 99.0
    assert summary["unexplained"] == 0


def test_one_byte_chunks_equal_whole_messages(corpus, tmp_path):
    subprocess.run(["/usr/bin/python3", COMPARE, MIME, corpus, "--show", "0", "--workdir", str(tmp_path)],
                   capture_output=True, check=True)
    lst = str(tmp_path / "list.txt")
    for c in ("1", "13"):
        r = subprocess.run([MIME, "--crlf", "--compare-chunks", c, "--list", lst], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[:3000] + r.stderr
