#!/usr/bin/python3
"""Sekisho beside its ceilings and its peers, in one run on one machine
(issue 8). Every figure that compares two things is measured in this run
on the same input; the results go to a JSON file and a Markdown table, and
are printed.

    bench/sekisho-bench.py [--out DIR] [--quick]

Steps (each reports "not run" with the reason if its tool is missing):
  1. corpus -> SMTP sessions as a pcap (sekisho-pcapgen: the SpamAssassin
     corpus, generated Japanese mail, large attachments, 5% STARTTLS
     sessions, 10% non-SMTP background; deterministic, seed 1), shaped
     like sessions recorded from real software on the virtual wire
     (--shapes: .cache/sessions/shapes.json, recorded first by
     tools/pcapgen/record-sessions.py when missing; without root, the
     committed tools/pcapgen/shapes-reference.json)
  2. rulesets compiled: the shipped packs and Debian's SpamAssassin set
     (compile time, artifact size)
  3. full pipeline per worker core on packets in memory (stream_bench):
     no rules, packs, SpamAssassin set; memcpy of the same frames
  4. scaling: 1 and N pipelines at once on N cores (flows are sharded per
     worker, so workers share nothing)
  5. MIME engine alone (mime_bench) next to memcpy and SHA-256
  6. matching alone (rules_bench): each set against raw Hyperscan block
     scans of the same decoded bytes with the same databases, and memcpy
  7. peers: tshark (SMTP/IMF dissectors) on the same pcap; rspamd with the
     same SpamAssassin rules on the same messages
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
B = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
PY = "/usr/bin/python3"


def run(argv, timeout=1800):
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r, time.time() - t0


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="smaller corpus, fewer rounds")
    ap.add_argument("--shapes", default=os.path.join(SRC, ".cache", "sessions", "shapes.json"),
                    help="shape profile for sekisho-pcapgen (recorded when missing; 'none': the synthetic shapes)")
    a = ap.parse_args()
    out_dir = a.out or tempfile.mkdtemp(prefix="sekisho-bench-")
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.time()
    res = {"machine": {"cpus": os.cpu_count(),
                       "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")},
           "notes": []}

    def note(s):
        print(s, flush=True)
        res["notes"].append(s)

    corpus = run([os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")])[0].stdout.strip()
    shapes = None if a.shapes == "none" else a.shapes
    if shapes and not os.path.exists(shapes):
        r, secs = run([PY, os.path.join(SRC, "tools", "pcapgen", "record-sessions.py"), "--dir",
                       os.path.dirname(shapes), "--profile", shapes], timeout=900)
        if r.returncode == 0 and os.path.exists(shapes):
            note("shapes: recorded from real software on the virtual wire in %.0f s -> %s" % (secs, shapes))
        else:
            note("shapes: recording failed (%s); using the committed reference profile"
                 % (r.stderr.strip().splitlines() or ["?"])[-1])
            shapes = os.path.join(SRC, "tools", "pcapgen", "shapes-reference.json")
    pcap = os.path.join(out_dir, "corpus.pcap")
    gen = [PY, os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py"), "--corpus", corpus, "--seed", "1",
           "--japanese", "100", "--large", "4", "--starttls", "0.05", "--background", "0.1", "--out", pcap,
           "--truth", os.path.join(out_dir, "truth.jsonl")]
    if a.quick:
        gen += ["--limit", "1500"]
    if shapes:
        gen += ["--shapes", shapes]
    r, _ = run(gen)
    if r.returncode:
        sys.exit("pcapgen failed: " + r.stderr[-500:])
    for line in r.stderr.strip().splitlines()[-2 if shapes else -1:]:
        note("input: " + line)
    res["input"] = {"pcap": pcap, "bytes": os.path.getsize(pcap), "shapes": shapes or "synthetic"}

    # 2. rulesets
    ctl = os.path.join(B, "tools", "sekishoctl", "sekishoctl")
    sets = {}
    for name, paths in (("packs", [os.path.join(SRC, "rules", "packs")]),
                        ("spamassassin", sorted(glob.glob("/usr/share/spamassassin/*.cf")))):
        art = os.path.join(out_dir, name + ".srs")
        r, secs = run([ctl, "rules", "compile", "--quiet", "-o", art] + paths)
        if r.returncode or not os.path.exists(art):
            note("ruleset %s: not compiled: %s" % (name, (r.stdout + r.stderr)[-300:]))
            continue
        sets[name] = art
        res.setdefault("rulesets", {})[name] = {"compile_s": round(secs, 2), "artifact_bytes": os.path.getsize(art)}
        note("ruleset %s: compiled in %.1f s, %.1f MB" % (name, secs, os.path.getsize(art) / 1e6))

    # 3. pipeline per core
    sb = os.path.join(B, "bench", "stream", "stream_bench")
    argv = [sb, pcap, "2" if a.quick else "3"]
    for n in ("packs", "spamassassin"):
        if n in sets:
            argv += ["--rules", sets[n]]
    r, _ = run(argv)
    pipe = last_json(r.stdout)
    res["pipeline"] = pipe
    if pipe:
        note("pipeline, one core: memcpy %.1f Gbit/s; engines %.2f; full (MIME, no rules) %.2f Gbit/s %.0f msgs/s"
             % (pipe["memcpy_gbit_s"], pipe["engines_gbit_s"], pipe["pipeline_gbit_s"], pipe["pipeline_msgs_s"]))
        for rs in pipe["rulesets"]:
            rs["set"] = os.path.basename(rs["file"]).replace(".srs", "")
            note("  with %s: %.3f Gbit/s, %.0f msgs/s (%.3f of the pipeline without rules)"
                 % (rs["set"], rs["gbit_s"], rs["msgs_s"], rs["of_pipeline"]))

    # 4. scaling: N independent pipelines at once (one per core)
    n = os.cpu_count() or 1
    procs = [subprocess.Popen(["taskset", "-c", str(i), sb, pcap, "2"], stdout=subprocess.PIPE, text=True)
             for i in range(n)]
    outs = [p.communicate()[0] for p in procs]
    per = [last_json(o) for o in outs]
    if all(per):
        total = sum(p["pipeline_gbit_s"] for p in per)
        res["scaling"] = {"workers": n, "total_gbit_s": total, "per_worker": [p["pipeline_gbit_s"] for p in per],
                          "one_worker_gbit_s": pipe["pipeline_gbit_s"] if pipe else None}
        note("scaling: %d pipelines at once: %.2f Gbit/s in all (%.2f with one)" % (n, total, pipe["pipeline_gbit_s"] if pipe else 0))

    # 5. MIME engine alone
    lst = os.path.join(out_dir, "messages.txt")
    open(lst, "w").write("\n".join(sorted(glob.glob(os.path.join(corpus, "*", "*.txt")))) + "\n")
    r, _ = run([os.path.join(B, "bench", "mime", "mime_bench"), "--passes", "2" if a.quick else "3", "--large", "4", lst])
    res["mime_bench"] = r.stdout
    for line in r.stdout.splitlines():
        if "mime 1460" in line or "memcpy" in line or "sha256" in line or ":" in line and "messages" in line:
            note("mime: " + line.strip())

    # 6. matching alone
    rb = os.path.join(B, "bench", "rules", "rules_bench")
    if os.path.exists(rb):
        r, _ = run([rb, "--passes", "1"] + (["--limit", "1500"] if a.quick else []) + [corpus], timeout=3600)
        res["rules_bench"] = last_json(r.stdout) or r.stdout[-3000:]
        for line in r.stdout.splitlines()[-15:]:
            note("rules: " + line)
    else:
        note("rules_bench: not run (not built)")

    # 7. peers
    r, _ = run([PY, os.path.join(SRC, "bench", "peers", "tshark_vs_replay.py"), pcap, "--runs", "1" if a.quick else "2"])
    res["tshark"] = r.stdout
    for line in r.stdout.splitlines():
        note("tshark: " + line)
    rp = os.path.join(SRC, "bench", "peers", "rspamd_peer.py")
    if os.path.exists(rp):
        r, _ = run([PY, rp] + (["--limit", "1500"] if a.quick else []), timeout=3600)
        res["rspamd"] = last_json(r.stdout) or {"error": (r.stdout + r.stderr)[-1000:]}
        for line in r.stdout.splitlines()[-6:]:
            note("rspamd: " + line)
    else:
        note("rspamd: not run (bench/peers/rspamd_peer.py missing)")

    # Comparisons that the issue asks for, from this run
    cmp = {}
    if pipe:
        cmp["pipeline_vs_memcpy"] = pipe["pipeline_gbit_s"] / pipe["memcpy_gbit_s"]
        sa = next((x for x in pipe["rulesets"] if "spamassassin" in x["file"]), None)
        if sa:
            cmp["sa_pipeline_gbit_s"] = sa["gbit_s"]
            cmp["sa_pipeline_vs_10gbit_target"] = sa["gbit_s"] / 10.0
            cmp["sa_msgs_s_per_core"] = sa["msgs_s"]
        rsp = res.get("rspamd") or {}
        if sa and isinstance(rsp, dict) and rsp.get("sa_rules"):
            cmp["sekisho_vs_rspamd_msgs_per_core_sa_rules"] = sa["msgs_s"] / rsp["sa_rules"]["msgs_per_s_per_core"]
    # Raw Hyperscan over the same decoded contexts with the same databases (rules_bench, this run).
    rb_text = res.get("rules_bench") if isinstance(res.get("rules_bench"), str) else json.dumps(res.get("rules_bench"))
    for label, key in (("shipped packs", "packs"), ("SpamAssassin", "spamassassin")):
        mm = re.search(label + r": raw hs\s+([0-9.]+) MB/s\s+([0-9.]+) msg/s", rb_text or "")
        mp = re.search(label + r": pipeline\s+([0-9.]+) MB/s\s+([0-9.]+) msg/s\s+pipeline / raw hs = ([0-9.]+)", rb_text or "")
        if mm and mp:
            cmp["matching_%s_vs_raw_hyperscan" % key] = float(mp.group(3))
            full = next((x for x in (pipe or {}).get("rulesets", []) if x.get("set") == key), None)
            if full:
                cmp["full_pipeline_%s_vs_raw_hyperscan_msgs" % key] = full["msgs_s"] / float(mm.group(2))
    m = re.search(r"ratio sekisho-replay / tshark.*?: ([0-9.]+)", res.get("tshark", ""))
    if m:
        cmp["sekisho_replay_vs_tshark"] = float(m.group(1))
    res["comparisons"] = cmp
    res["wall_s"] = round(time.time() - t_start, 1)

    jpath = os.path.join(out_dir, "results.json")
    json.dump(res, open(jpath, "w"), indent=1, default=str)
    md = ["# Sekisho benchmark (%s, %d cores, one run, %.0f s)" % (res["machine"]["cpu"], res["machine"]["cpus"], res["wall_s"]), "",
          "| figure | value |", "|---|---|"]
    if pipe:
        md += ["| memcpy of the frames, one core | %.1f Gbit/s |" % pipe["memcpy_gbit_s"],
               "| reassembly + SMTP engines | %.2f Gbit/s |" % pipe["engines_gbit_s"],
               "| full pipeline, no rules | %.2f Gbit/s, %.0f msgs/s |" % (pipe["pipeline_gbit_s"], pipe["pipeline_msgs_s"])]
        for rs in pipe["rulesets"]:
            md.append("| full pipeline, %s rules | %.3f Gbit/s, %.0f msgs/s (%.3f of no rules) |"
                      % (rs.get("set", rs["version"]), rs["gbit_s"], rs["msgs_s"], rs["of_pipeline"]))
        md.append("| memory per idle tracked flow | %.0f bytes |" % pipe["idle_flow_bytes"])
    for name, info in res.get("rulesets", {}).items():
        md.append("| ruleset %s: compile time, artifact | %.1f s, %.1f MB |" % (name, info["compile_s"], info["artifact_bytes"] / 1e6))
    if res.get("scaling"):
        md.append("| %d pipelines at once (one per core) | %.2f Gbit/s in all |" % (res["scaling"]["workers"], res["scaling"]["total_gbit_s"]))
    for k, v in cmp.items():
        md.append("| %s | %.3f |" % (k, v))
    md += ["", "Notes:", ""] + ["- " + n for n in res["notes"]]
    mpath = os.path.join(out_dir, "results.md")
    open(mpath, "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    print("\nresults: %s and %s (%.0f s in all)" % (jpath, mpath, res["wall_s"]))


if __name__ == "__main__":
    main()
