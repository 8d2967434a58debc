#!/usr/bin/python3
"""Inline inspection and enforcement against the plain bridge, same traffic,
same devices, one run: the SpamAssassin corpus as SMTP sessions
(sekisho-pcapgen) is replayed with tcpreplay into the virtual wire through
sekisho-dataplane three times, alternating: "rules" (smtp_ports = [25]:
reassembly, SMTP, MIME engine, the shipped rule packs scanned at the hold
point, envelope policy), "inspect" (the same without a ruleset) and
"bridge" (smtp_ports = [ ]). Prints the dataplane's
forwarding rate for each, their ratio, and the hold latency of passed
messages (from the worker taking the segment that ends a message to handing
it on) as p50/p99 from the dataplane's own histogram.

    bench/enforce/enforce_vs_bridge.py [--rounds 2] [--limit 2000] [--json OUT]
"""
import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "appliance", "wire"))
import telemetry  # noqa: E402

WIRE = os.path.join(SRC, "appliance", "wire", "wire.sh")
DATAPLANE = os.environ.get("SEKISHO_DATAPLANE") or os.path.join(SRC, "build", "dataplane", "dpdk", "sekisho-dataplane")
PCAPGEN = os.path.join(SRC, "tools", "pcapgen", "sekisho-pcapgen.py")
FETCH = os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")


def run(mode, env, wid, tmp, pcap, rules):
    prefix = "ske-%s-%s" % (wid, mode)
    conf = os.path.join(tmp, mode + ".conf")
    ports = "[ ]" if mode == "bridge" else "[ 25 ]"
    ruleset = 'ruleset = "%s"; ' % rules if mode == "rules" else ""
    with open(conf, "w") as f:
        f.write('dataplane = { eal = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "%s", "--log-level", '
                '"lib.eal:warning"]; ports = ( { name = "outside"; device = "net_af_packet0,iface=%s"; }, '
                '{ name = "inside"; device = "net_af_packet1,iface=%s"; } ); bridges = ( ["outside", "inside"] ); '
                'workers = 1; smtp_ports = %s; journal = "%s/journal-%s"; spool = "%s/spool"; %s'
                'envelope_policy = ( { name = "bench"; mail_from = "*@never.test"; action = "reject"; } ); };\n'
                % (prefix, env["IF_A"], env["IF_B"], ports, tmp, mode, tmp, ruleset))
    log = open(os.path.join(tmp, mode + ".log"), "w")
    dp = subprocess.Popen(["ip", "netns", "exec", env["NS_APP"], DATAPLANE, "-c", conf], stdout=log,
                          stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if "ready" in open(log.name).read():
                break
            time.sleep(0.05)
        before = telemetry.query(prefix, "/sekisho/stats")
        t0 = time.time()
        r = subprocess.run(["ip", "netns", "exec", env["NS_OUT"], "tcpreplay", "--topspeed", "-i",
                            "sk%so" % wid, pcap], capture_output=True, text=True)
        time.sleep(0.5)  # let the rings drain
        after = telemetry.query(prefix, "/sekisho/stats")
        secs = time.time() - t0 - 0.5
    finally:
        dp.send_signal(15)
        dp.wait(20)
    rx = after["ports"]["outside"]["rx_pkts"] - before["ports"]["outside"]["rx_pkts"]
    rxb = after["ports"]["outside"]["rx_bytes"] - before["ports"]["outside"]["rx_bytes"]
    tx = after["ports"]["inside"]["tx_pkts"] - before["ports"]["inside"]["tx_pkts"]
    w = after["workers"]["0"]["stream"]
    return {"rx_pkts": rx, "tx_pkts": tx, "seconds": secs, "pps": rx / secs, "gbit_s": rxb * 8 / secs / 1e9,
            "fwd_pps": tx / secs, "fwd_share": tx / rx if rx else 0,
            "messages": w["messages"], "content_scanned": w.get("content_scanned", 0), "hold_samples": w["hold_samples"], "hold_p50_ns": w["hold_p50_ns"],
            "hold_p99_ns": w["hold_p99_ns"], "tcpreplay": r.stdout.strip().splitlines()[-3:] if r.stdout else []}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sekisho-bench-")
    corpus = subprocess.run([FETCH], capture_output=True, text=True, check=True).stdout.strip()
    pcap = os.path.join(tmp, "corpus.pcap")
    subprocess.run(["/usr/bin/python3", PCAPGEN, "--corpus", corpus, "--limit", str(a.limit), "--seed", "3",
                    "--out", pcap, "--truth", os.path.join(tmp, "truth.jsonl")], check=True, capture_output=True)
    rules = os.path.join(tmp, "packs.srs")
    subprocess.run([os.path.join(SRC, "build", "tools", "sekishoctl", "sekishoctl"), "rules", "compile", "--quiet",
                    "-o", rules, os.path.join(SRC, "rules", "packs")], check=True, capture_output=True)
    wid = "e" + secrets.token_hex(2)
    env = dict(kv.split("=", 1) for kv in subprocess.run([WIRE, "up", wid], check=True, capture_output=True,
                                                          text=True).stdout.split())
    MODES = os.environ.get("SEKISHO_BENCH_MODES", "rules,inspect,bridge").split(",")
    res = {m: [] for m in ("rules", "inspect", "bridge")}
    try:
        for rnd in range(a.rounds):
            for mode in MODES:
                r = run(mode, env, wid, tmp, pcap, rules)
                res[mode].append(r)
                print("round %d %-8s in %8.0f frames/s %6.2f Gbit/s  forwarded %8.0f frames/s (%d/%d)  messages %d  "
                      "hold p50 %s ns p99 %s ns" % (rnd + 1, mode, r["pps"], r["gbit_s"], r["fwd_pps"], r["tx_pkts"],
                                                    r["rx_pkts"], r["messages"], r["hold_p50_ns"], r["hold_p99_ns"]),
                      flush=True)
    finally:
        subprocess.run([WIRE, "down", wid])
    best = {m: max(rs, key=lambda r: r["fwd_pps"]) for m, rs in res.items() if rs}
    ratio = best["inspect"]["fwd_pps"] / best["bridge"]["fwd_pps"]
    ratio_rules = best["rules"]["fwd_pps"] / best["bridge"]["fwd_pps"] if "rules" in best else 0
    print("\nforwarded frames per second (what left the box; tcpreplay offers more than the wire takes), same pcap "
          "and devices:")
    print("inspection (MIME, no rules) / plain bridge: %.3f" % ratio)
    if "rules" in best:
        print("inspection + shipped rule packs / plain bridge: %.3f (target >= 0.9); %d messages scanned"
              % (ratio_rules, best["rules"]["content_scanned"]))
    for m in [x for x in ("rules", "inspect") if x in best]:
        print("hold latency of passed messages, %s (%d samples): p50 %d ns, p99 %d ns (target p99 < 50000 ns)"
              % (m, best[m]["hold_samples"], best[m]["hold_p50_ns"], best[m]["hold_p99_ns"]))
    print("(net_af_packet and tcpreplay share the 2 cores: this is the wire path's ceiling, see MEASURED.md)")
    if a.json:
        json.dump({"rounds": res, "ratio_inspect_to_bridge": ratio, "ratio_rules_to_bridge": ratio_rules},
                  open(a.json, "w"), indent=1)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("enforce_vs_bridge: needs root")
    main()
