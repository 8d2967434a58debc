"""Checks shared by the shaped-pcapgen tests (tests/replay/test_shaped_corpus.py
without root, tests/wire/test_recorded_shapes.py with a fresh recording):
the generator with a shape profile is byte-identical twice from one seed, and
sekisho-replay finds every clear-text message with its envelope, size and
SHA-256."""
import hashlib
import json
import os
import subprocess
import sys

from replay_lib import SRC, key, replay

PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")
FETCH = os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")
sys.path.insert(0, os.path.join(SRC, "tools", "pcapgen"))
import shapes  # noqa: E402,F401


def corpus_or_none():
    r = subprocess.run([FETCH], capture_output=True, text=True, timeout=600)
    return r.stdout.strip() if r.returncode == 0 else None


def generate(profile, out_dir, tag, corpus=None, limit=600, seed=11):
    pcap, truth = os.path.join(out_dir, tag + ".pcap"), os.path.join(out_dir, tag + ".truth.jsonl")
    argv = ["/usr/bin/python3", PCAPGEN, "--shapes", profile, "--seed", str(seed), "--japanese", "40",
            "--large", "2", "--large-mb", "2", "--starttls", "0.1", "--background", "0.1", "--out", pcap,
            "--truth", truth]
    if corpus:
        argv += ["--corpus", corpus, "--limit", str(limit)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return pcap, truth, r.stderr


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_generator(profile, out_dir, corpus=None):
    """Returns a summary dict; asserts determinism and exact replay."""
    p1, t1, log = generate(profile, out_dir, "a", corpus)
    p2, t2, _ = generate(profile, out_dir, "b", corpus)
    assert sha(p1) == sha(p2) and sha(t1) == sha(t2), "same seed, different output"
    p3, _t3, _ = generate(profile, out_dir, "c", corpus, seed=12)
    assert sha(p3) != sha(p1), "the seed changes nothing"
    rows = [json.loads(line) for line in open(t1)]
    clear = [(t["mail_from"], tuple(t["rcpt_to"]), t["size"], t["sha256"]) for t in rows if not t.get("tls")]
    tls_sessions = {t["session"] for t in rows if t.get("tls")}
    shapes_used = {t["shape"] for t in rows if "shape" in t}
    out = replay(p1, timeout=600)
    assert out["returncode"] == 0, out["stderr"]
    got = [key(m) for m in out["messages"]]
    missing = [c for c in clear if c not in set(got)]
    assert not missing, missing[:3]
    assert sorted(got) == sorted(clear)
    assert sum(1 for s in out["sessions"] if s["tls"]) == len(tls_sessions)
    assert out["summary"]["decode_errors"] == 0
    return {"messages": len(rows), "clear": len(clear), "tls_sessions": len(tls_sessions),
            "shapes_used": sorted(shapes_used), "log": log.strip().splitlines()}
