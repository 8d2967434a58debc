#!/usr/bin/python3
"""A DPDK telemetry client for sekisho-dataplane (the socket protocol of
dpdk-telemetry.py: SOCK_SEQPACKET, JSON replies), with a table printer.

    telemetry.py PREFIX /sekisho/stats          raw JSON
    telemetry.py PREFIX --report                per-port and per-worker table
"""
import json
import socket
import sys

RUNTIME = "/var/run/dpdk"


def query(prefix, command, params=None):
    path = "%s/%s/dpdk_telemetry.v2" % (RUNTIME, prefix)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        info = json.loads(s.recv(16384).decode())
        s.send((command + ("," + str(params) if params is not None else "")).encode())
        reply = json.loads(s.recv(info.get("max_output_len", 16384) + 1).decode())
    finally:
        s.close()
    return reply[command]


def report(stats, flows=None):
    out = []
    out.append("ports                 rx_pkts    rx_bytes     tx_pkts    tx_bytes  tx_dropped")
    for name, p in stats["ports"].items():
        out.append("  %-14s %12d %11d %11d %11d %11d" % (
            name, p["rx_pkts"], p["rx_bytes"], p["tx_pkts"], p["tx_bytes"], p["tx_dropped"]))
    out.append("workers (dispatch %s)   rx_pkts     tcp     udp    icmp   other  malformed  flows" % stats["dispatch"])
    for wid, w in stats["workers"].items():
        out.append("  worker %-2s lcore %-3d %10d %7d %7d %7d %7d %10d %6d" % (
            wid, w["lcore"], w["rx_pkts"], w["tcp_pkts"], w["udp_pkts"], w["icmp_pkts"],
            w["other_pkts"], w["malformed"], w["flows"]))
    if flows:
        both = sum(f["both_directions"] for f in flows.values())
        one = sum(f["tcp_one_direction"] for f in flows.values())
        out.append("flows: %d seen in both directions on one worker, %d TCP flows seen in one direction only" % (both, one))
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    prefix, cmd = sys.argv[1], sys.argv[2]
    if cmd == "--report":
        print(report(query(prefix, "/sekisho/stats"), query(prefix, "/sekisho/flows")))
    else:
        print(json.dumps(query(prefix, cmd, sys.argv[3] if len(sys.argv) > 3 else None), indent=1))
