"""GMime 3 as a second reference parser (issue 22): every leaf part GMime
exposes for a conformance-corpus message must be among what the MIME engine
scans, or be listed with its class and evidence in tests/corpus/mime_gmime.tsv
(tests/corpus/conformance_gmime.py compares; tools/mime/gmime-leaves is built
when libgmime-3.0-dev is installed)."""
import json
import os
import subprocess

import pytest

from replay_lib import BUILD, SRC, TESTDATA

COMPARE = os.path.join(SRC, "tests", "corpus", "conformance_gmime.py")
MIME = os.path.join(BUILD, "tools", "mime", "sekisho-mime")
GMIME = os.path.join(BUILD, "tools", "mime", "gmime-leaves")
DATA = os.path.join(TESTDATA, "conformance", "mime")


def test_every_gmime_part_is_scanned_or_listed(capsys):
    if not os.path.exists(GMIME):
        pytest.skip("gmime-leaves not built (libgmime-3.0-dev missing)")
    if not os.path.isdir(os.path.join(DATA, "expected-python")):
        pytest.skip("no conformance corpus at " + DATA)
    r = subprocess.run(["/usr/bin/python3", COMPARE, MIME, GMIME, "--data", DATA], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    with capsys.disabled():
        print("\nGMime's parts scanned by the engine: %s" % json.dumps(summary, sort_keys=True))
        for line in lines[:-1]:
            if not line.startswith("listed"):
                print(line)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert summary["messages"] == 142 and summary["unlisted"] == 0 and summary["stale"] == 0
