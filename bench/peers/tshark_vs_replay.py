#!/usr/bin/python3
"""A packet-level peer on the same pcap, same run: tshark with its SMTP and
IMF dissectors extracting sender, recipients and subject, against
sekisho-replay (decode, reassembly, SMTP, a SHA-256 per message) on one
core. Both read the file from the page cache; the best of N runs each.

    bench/peers/tshark_vs_replay.py [PCAP] [--runs 3]
Without PCAP, the SpamAssassin corpus is made into sessions first.
"""
import argparse
import os
import subprocess
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REPLAY = os.path.join(os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build"), "tools", "replay", "sekisho-replay")


def best(argv, runs):
    t = 1e30
    out = None
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True)
        t = min(t, time.perf_counter() - t0)
        out = r
    return t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap", nargs="?")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    pcap = a.pcap
    if not pcap:
        corpus = subprocess.run([os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")],
                                capture_output=True, text=True, check=True).stdout.strip()
        tmp = tempfile.mkdtemp(prefix="sekisho-peer-")
        pcap = os.path.join(tmp, "corpus.pcap")
        subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py"),
                        "--corpus", corpus, "--seed", "5", "--out", pcap, "--truth", os.path.join(tmp, "t.jsonl")],
                       check=True, capture_output=True)
    size = os.path.getsize(pcap)
    t_rep, r_rep = best(["taskset", "-c", "0", REPLAY, "--smtp-port", "25", pcap], a.runs)
    t_tsh, r_tsh = best(["taskset", "-c", "0", "tshark", "-r", pcap, "-2", "-Y", "imf", "-T", "fields",
                         "-e", "imf.from", "-e", "imf.to", "-e", "imf.subject"], a.runs)
    msgs_rep = sum(1 for l in r_rep.stdout.splitlines() if '"type":"message"' in l)
    msgs_tsh = len([l for l in r_tsh.stdout.splitlines() if l.strip()])
    print("input: %s, %.1f MB" % (pcap, size / 1e6))
    print("sekisho-replay: %.2f s, %.2f Gbit/s, %d messages (%.0f msgs/s)" % (
        t_rep, size * 8 / t_rep / 1e9, msgs_rep, msgs_rep / t_rep))
    print("tshark (SMTP+IMF): %.2f s, %.3f Gbit/s, %d messages (%.0f msgs/s)" % (
        t_tsh, size * 8 / t_tsh / 1e9, msgs_tsh, msgs_tsh / t_tsh))
    print("ratio sekisho-replay / tshark (same pcap, one core each, same run): %.1f" % (t_tsh / t_rep))


if __name__ == "__main__":
    main()
