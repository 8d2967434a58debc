#!/usr/bin/python3
"""Forwarding rate of sekisho-dataplane against dpdk-testpmd (io mode) on the
same net_af_packet devices of one virtual wire, in one run, as ratios.

Traffic: iperf3 between the outside and inside namespaces, one TCP stream
(bulk, MTU frames) and one UDP stream of 64-byte datagrams (frame rate).
Rounds alternate the forwarders so drift hits both alike; the median of the
rounds is reported. A Linux bridge on the same veths is printed for context.

    bench/bridge/bridge_vs_testpmd.py [--seconds 5] [--rounds 2] [--json OUT]
Needs root; builds nothing (run appliance/setup.sh first).
"""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WIRE = os.path.join(SRC, "appliance", "wire", "wire.sh")
DATAPLANE = os.path.join(SRC, "build", "dataplane", "dpdk", "sekisho-dataplane")


def sh(ns, argv, **kw):
    return subprocess.run(["ip", "netns", "exec", ns] + argv, capture_output=True, text=True, **kw)


class Forwarder:
    def __init__(self, kind, env, wid, tmp):
        self.kind, self.env, self.wid, self.tmp = kind, env, wid, tmp
        self.proc = None

    def start(self):
        ns, a, b = self.env["NS_APP"], self.env["IF_A"], self.env["IF_B"]
        prefix = "skb-%s-%s" % (self.wid, self.kind)
        log = open(os.path.join(self.tmp, self.kind + ".log"), "w")
        if self.kind == "sekisho":
            conf = os.path.join(self.tmp, "sekisho.conf")
            with open(conf, "w") as f:
                f.write('dataplane = { eal = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "%s", '
                        '"--log-level", "lib.eal:warning"]; ports = ( { name = "outside"; device = '
                        '"net_af_packet0,iface=%s"; }, { name = "inside"; device = "net_af_packet1,iface=%s"; } ); '
                        'bridges = ( ["outside", "inside"] ); workers = 1; };\n' % (prefix, a, b))
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, DATAPLANE, "-c", conf], stdout=log,
                                         stderr=subprocess.STDOUT)
            ready = "ready"
        elif self.kind == "testpmd":
            # main lcore + one forwarding lcore: the same two lcores sekisho uses (io + 1 worker)
            cmd = ("sleep 100000 | stdbuf -oL dpdk-testpmd -l 0-1 --no-huge -m 1024 --no-pci --file-prefix %s "
                   "--log-level lib.eal:warning --vdev=net_af_packet0,iface=%s --vdev=net_af_packet1,iface=%s "
                   "-- --forward-mode=io --auto-start --nb-cores=1" % (prefix, a, b))
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "bash", "-c", cmd], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            ready = "Press enter to exit"
        else:  # linux bridge
            for c in (["ip", "link", "add", "br0", "type", "bridge"], ["ip", "link", "set", a, "master", "br0"],
                      ["ip", "link", "set", b, "master", "br0"], ["ip", "link", "set", "br0", "up"]):
                sh(ns, c, check=True)
            time.sleep(0.5)
            return
        deadline = time.time() + 30
        while time.time() < deadline:
            if ready in open(log.name).read():
                time.sleep(0.5)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("%s did not start: %s" % (self.kind, open(log.name).read()[-2000:]))

    def stop(self):
        if self.kind == "bridge":
            sh(self.env["NS_APP"], ["ip", "link", "del", "br0"])
            return
        if self.kind == "testpmd":
            os.killpg(self.proc.pid, 15)
        else:
            self.proc.send_signal(15)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        time.sleep(0.5)


def iperf(env, seconds, udp):
    srv = subprocess.Popen(["ip", "netns", "exec", env["NS_IN"], "iperf3", "-s", "-1", "-B", env["IP_IN"]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    args = ["iperf3", "-c", env["IP_IN"], "-t", str(seconds), "-J"]
    if udp:
        args += ["-u", "-b", "0", "-l", "22"]  # 22-byte payload: 64-byte Ethernet frames
    r = sh(env["NS_OUT"], args, timeout=seconds + 30)
    srv.wait(10)
    j = json.loads(r.stdout)
    end = j["end"]
    if udp:
        s = end["sum"]
        secs = s["seconds"] or seconds
        received = s["packets"] - s["lost_packets"]
        return {"pps": received / secs, "lost_percent": s["lost_percent"]}
    return {"gbit_s": end["sum_received"]["bits_per_second"] / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    wid = "b" + secrets.token_hex(2)
    tmp = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    env = dict(kv.split("=", 1) for kv in subprocess.run([WIRE, "up", wid], check=True, capture_output=True,
                                                          text=True).stdout.split())
    results = {k: {"tcp_gbit_s": [], "udp64_pps": []} for k in ("sekisho", "testpmd", "bridge")}
    try:
        for rnd in range(a.rounds):
            for kind in ("sekisho", "testpmd", "bridge"):
                fw = Forwarder(kind, env, wid, tmp)
                fw.start()
                try:
                    t = iperf(env, a.seconds, udp=False)
                    u = iperf(env, a.seconds, udp=True)
                finally:
                    fw.stop()
                results[kind]["tcp_gbit_s"].append(t["gbit_s"])
                results[kind]["udp64_pps"].append(u["pps"])
                print("round %d %-8s tcp %6.2f Gbit/s   udp 64-byte frames %9.0f pps (%.1f%% lost)" % (
                    rnd + 1, kind, t["gbit_s"], u["pps"], u["lost_percent"]), flush=True)
    finally:
        subprocess.run([WIRE, "down", wid])
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    summary = {
        "machine": {"cpus": os.cpu_count(), "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")},
        "seconds_per_run": a.seconds, "rounds": a.rounds, "median": med,
        "ratio_sekisho_to_testpmd": {m: med["sekisho"][m] / med["testpmd"][m] for m in med["sekisho"]},
        "ratio_sekisho_to_linux_bridge": {m: med["sekisho"][m] / med["bridge"][m] for m in med["sekisho"]},
    }
    print()
    print("| forwarder | TCP Gbit/s | UDP 64-byte pps |")
    print("|---|---|---|")
    for k in ("sekisho", "testpmd", "bridge"):
        print("| %s | %.2f | %.0f |" % (k, med[k]["tcp_gbit_s"], med[k]["udp64_pps"]))
    r = summary["ratio_sekisho_to_testpmd"]
    print("\nsekisho / testpmd (io mode, same devices, same run): TCP %.2f, 64-byte frames %.2f" % (
        r["tcp_gbit_s"], r["udp64_pps"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bridge_vs_testpmd: needs root (network namespaces)")
    main()
