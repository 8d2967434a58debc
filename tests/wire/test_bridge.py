"""The bridge on the virtual wire: real swaks, a real SMTP server, raw
frames byte for byte, counters and the one-worker-per-flow invariant."""
import binascii
import hashlib
import os
import struct
import subprocess
import time

import pytest

from harness import PY, Appliance, delivered, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
RAW = os.path.join(HERE, "rawframes.py")


def make_message(path, i, body_bytes=2000):
    lines = [
        "From: Alice <alice%d@outside.test>" % i,
        "To: Bob <bob%d@inside.test>" % i,
        "Subject: wire test %d" % i,
        "Message-ID: <wire-%d@outside.test>" % i,
        "",
        "Hello %d." % i,
        ".a line that starts with a dot (dot-stuffed on the wire)",
    ]
    row = ("%d " % i) + "x" * 70
    size = sum(len(l) + 2 for l in lines)
    while size < body_bytes:
        lines.append(row)
        size += len(row) + 2
    data = ("\r\n".join(lines) + "\r\n").encode()
    with open(path, "wb") as f:
        f.write(data)
    # swaks sends the file, then "\r\n.\r\n": the message the server must
    # receive is the file plus one CRLF (an empty last line).
    data += b"\r\n"
    return hashlib.sha256(data).hexdigest(), len(data)


def swaks(app, i, path, **kw):
    r = app.outside(["swaks", "--server", app.env["IP_IN"], "--helo", "outside.test",
                     "--from", "alice%d@outside.test" % i, "--to", "bob%d@inside.test" % i,
                     "--data", path], **kw)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


@pytest.mark.parametrize("workers", [1, 2])
def test_swaks_delivery_across_the_appliance(tmp_path, workers):
    n = 12
    with Appliance(tmp_path, workers=workers) as app:
        maildir = app.start_sink()
        sent = []
        for i in range(n):
            p = str(tmp_path / ("m%d.eml" % i))
            sent.append(make_message(p, i))
            swaks(app, i, p)
        got = wait_for(lambda: len(delivered(maildir)) == n and delivered(maildir))
        assert got, "server received %d of %d messages" % (len(delivered(maildir)), n)
        for i, (meta, data) in enumerate(got):
            assert meta["mail_from"] == "alice%d@outside.test" % i
            assert meta["rcpt_to"] == ["bob%d@inside.test" % i]
            assert (meta["sha256"], meta["size"]) == sent[i], "message %d changed on the way" % i
            assert meta["peer"] == app.env["IP_OUT"]

        # Both directions of every TCP flow on one worker, from per-worker censuses.
        flows = app.flows()
        assert sorted(flows) == [str(w) for w in range(workers)]
        assert sum(f["tcp_flows"] for f in flows.values()) == n  # one connection per swaks
        for wid, f in flows.items():
            assert f["tcp_one_direction"] == 0, "worker %s saw a TCP flow in one direction only" % wid
        if workers == 2:
            assert all(f["tcp_flows"] > 0 for f in flows.values()), flows
        listed = app.flows(0)["0"]["list"]
        assert all(e["pkts_a_to_b"] > 0 and e["pkts_b_to_a"] > 0 for e in listed.values())

        final = app.stop()
        assert app.returncode == 0
        out, ins = final["ports"]["outside"], final["ports"]["inside"]
        # Every frame received on one port left on the other; nothing dropped.
        assert out["rx_pkts"] == ins["tx_pkts"] and ins["rx_pkts"] == out["tx_pkts"]
        assert out["rx_bytes"] == ins["tx_bytes"] and ins["rx_bytes"] == out["tx_bytes"]
        assert out["tx_dropped"] == ins["tx_dropped"] == 0
        totals = final["totals"]
        assert totals["rx_pkts"] == out["rx_pkts"] + ins["rx_pkts"]
        assert totals["tx_pkts"] == totals["rx_pkts"]
        assert final["io"]["dispatched"] == totals["rx_pkts"]
        # at least the SMTP bytes crossed: every message once, client to server
        assert out["rx_bytes"] > sum(size for _, size in sent)
        assert totals["tcp_pkts"] > 0 and totals["malformed"] == 0
        # What the dataplane inspected is what the server received, message by message.
        events = app.events()
        assert [(e["mail_from"], e["rcpt_to"], e["size"], e["sha256"], e["server_reply"]) for e in events] == \
            [(m["mail_from"], m["rcpt_to"], m["size"], m["sha256"], 250) for m, _ in got]
        assert all(e["src"].startswith(app.env["IP_OUT"] + ":") and e["dst"] == app.env["IP_IN"] + ":25"
                   for e in events)
        assert len(app.events("session")) == n
        stream = [w["stream"] for w in final["workers"].values()]
        assert sum(x["messages"] for x in stream) == n and sum(x["events_dropped"] for x in stream) == 0


def test_ten_megabyte_message(tmp_path):
    with Appliance(tmp_path, workers=2) as app:
        maildir = app.start_sink()
        p = str(tmp_path / "big.eml")
        digest, size = make_message(p, 1, body_bytes=10 * 1024 * 1024)
        swaks(app, 1, p, timeout=300)
        got = wait_for(lambda: delivered(maildir), timeout=30)
        assert len(got) == 1
        assert (got[0][0]["sha256"], got[0][0]["size"]) == (digest, size)
        final = app.stop()
        assert final["ports"]["outside"]["rx_bytes"] > size
        assert final["ports"]["outside"]["tx_dropped"] == final["ports"]["inside"]["tx_dropped"] == 0


def mac_of(app, ns, ifname):
    r = app.run_in(ns, ["cat", "/sys/class/net/%s/address" % ifname])
    return binascii.unhexlify(r.stdout.strip().replace(":", ""))


def ipv4_header(total, proto, src=b"\xc0\x00\x02\x01", dst=b"\xc0\x00\x02\x02"):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0, src, dst)
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return h[:10] + struct.pack("!H", ~s & 0xffff) + h[12:]


def probe_frames(dst, src):
    eth4 = dst + src + b"\x08\x00"
    eth6 = dst + src + b"\x86\xdd"
    payload = b"sekisho-udp-probe"
    udp4 = eth4 + ipv4_header(20 + 8 + len(payload), 17) + struct.pack("!HHHH", 5353, 9999, 8 + len(payload), 0) + payload
    icmp_body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"ping-probe"
    icmp4 = eth4 + ipv4_header(20 + len(icmp_body), 1) + icmp_body
    v6src = bytes.fromhex("20010db8005e00000000000000000001")
    v6dst = bytes.fromhex("20010db8005e00000000000000000002")
    udp6 = eth6 + struct.pack("!IHBB", 0x60000000, 8 + len(payload), 17, 64) + v6src + v6dst + \
        struct.pack("!HHHH", 5353, 9999, 8 + len(payload), 0) + payload
    other = dst + src + b"\x88\xb5" + b"local experimental ethertype".ljust(46, b"\0")
    return {"udp4": udp4, "icmp4": icmp4, "udp6": udp6, "non_ip": other}


def malformed_frames(dst, src):
    eth4 = dst + src + b"\x08\x00"
    return {
        "ipv4_truncated": eth4 + b"\x45\x00\x00\x14\x00\x00",                      # 6 of 20 header bytes
        "ipv4_bad_length": eth4 + ipv4_header(1400, 17) + b"\0" * 8,               # claims 1400, carries 28
        "tcp_truncated": eth4 + ipv4_header(40, 6) + b"\x00\x19\x00\x19" + b"\0" * 8 + b"\x20\x10" + b"\0" * 6,  # doff 2
    }


def undecodable_frames(dst, src):
    """Frames whose L4 header the decoder cannot reach: they may carry SMTP."""
    return {
        "vlan_too_deep": dst + src + b"\x81\x00\x00\x01" * 3 + b"\x08\x00" + ipv4_header(20, 17),
        "encapsulated": dst + src + b"\x88\x64" + b"\x11\x00\x00\x01\x00\x16\x00\x21" + ipv4_header(20, 6) +
        b"\0" * 20,
    }


def send_and_capture(app, tmp_path, frames, seconds=3):
    ns_in, if_in = app.env["NS_IN"], "sk%si" % app.id
    cap = str(tmp_path / "captured.hex")
    rx = app.spawn_in(ns_in, [PY, RAW, "recv", if_in, cap, str(seconds)], str(tmp_path / "recv.log"))
    assert wait_for(lambda: "ready" in open(str(tmp_path / "recv.log")).read(), timeout=10)
    hexfile = str(tmp_path / "frames.hex")
    with open(hexfile, "w") as f:
        for fr in frames.values():
            f.write(binascii.hexlify(fr).decode() + "\n")
    r = app.outside([PY, RAW, "send", "sk%so" % app.id, hexfile])
    assert r.returncode == 0, r.stderr
    rx.wait(seconds + 10)
    return {binascii.unhexlify(l.strip()) for l in open(cap) if l.strip()}


def test_udp_icmp_and_non_ip_pass_unchanged(tmp_path):
    with Appliance(tmp_path, workers=2) as app:
        # the kernels at both ends talk through it
        for argv in (["ping", "-c", "3", "-i", "0.2", app.env["IP_IN"]],
                     ["ping", "-6", "-c", "3", "-i", "0.2", app.env["IP6_IN"]]):
            r = app.outside(argv)
            assert r.returncode == 0, r.stdout + r.stderr
        before = app.stats()["totals"]
        dst = mac_of(app, app.env["NS_IN"], "sk%si" % app.id)
        src = mac_of(app, app.env["NS_OUT"], "sk%so" % app.id)
        frames = probe_frames(dst, src)
        got = send_and_capture(app, tmp_path, frames)
        for name, fr in frames.items():
            assert fr in got, "%s did not arrive byte for byte" % name
        after = app.stats()["totals"]
        assert after["udp_pkts"] - before["udp_pkts"] == 2
        assert after["icmp_pkts"] - before["icmp_pkts"] >= 1
        assert after["other_pkts"] - before["other_pkts"] >= 1
        assert after["malformed"] == 0


@pytest.mark.parametrize("policy", ["forward", "drop"])
def test_malformed_frames_counted_by_policy(tmp_path, policy):
    with Appliance(tmp_path, workers=1, malformed=policy) as app:
        maildir = app.start_sink()
        dst = mac_of(app, app.env["NS_IN"], "sk%si" % app.id)
        src = mac_of(app, app.env["NS_OUT"], "sk%so" % app.id)
        frames = malformed_frames(dst, src)
        got = send_and_capture(app, tmp_path, frames)
        stats = app.stats()["workers"]["0"]
        assert stats["malformed"] == len(frames)
        for name, fr in frames.items():
            assert stats["decode"][name] == 1, name
            if policy == "forward":
                assert fr in got, "%s was not forwarded unchanged" % name
            else:
                assert fr not in got, "%s was forwarded despite the drop policy" % name
        assert stats["malformed_dropped"] == (len(frames) if policy == "drop" else 0)
        # and mail still flows
        p = str(tmp_path / "after.eml")
        digest, _ = make_message(p, 7)
        swaks(app, 7, p)
        got = wait_for(lambda: delivered(maildir))
        assert got and got[0][0]["sha256"] == digest
        app.stop()
        assert app.returncode == 0


@pytest.mark.parametrize("policy", ["drop", "forward"])
def test_undecodable_frames_follow_their_policy(tmp_path, policy):
    extra = '  undecodable = "%s";\n' % policy if policy != "drop" else ""  # drop is the default
    with Appliance(tmp_path, workers=1, extra=extra) as app:
        dst = mac_of(app, app.env["NS_IN"], "sk%si" % app.id)
        src = mac_of(app, app.env["NS_OUT"], "sk%so" % app.id)
        frames = undecodable_frames(dst, src)
        got = send_and_capture(app, tmp_path, frames)
        stats = app.stats()["workers"]["0"]
        assert stats["undecodable"] == len(frames) and stats["malformed"] == 0, stats
        for name, fr in frames.items():
            assert stats["decode"][name] == 1, name
            assert (fr in got) == (policy == "forward"), name
        assert stats["undecodable_dropped"] == (len(frames) if policy == "drop" else 0)


def test_dpdk_telemetry_script_reads_sekisho_stats(tmp_path):
    with Appliance(tmp_path) as app:
        r = subprocess.run(["dpdk-telemetry.py", "-f", app.prefix], input="/sekisho/stats\n",
                           capture_output=True, text=True, timeout=30)
        assert '"/sekisho/stats"' in r.stdout and '"outside"' in r.stdout, r.stdout + r.stderr


def test_sigint_stops_cleanly_with_final_counters(tmp_path):
    import signal
    with Appliance(tmp_path, workers=2) as app:
        r = app.outside(["ping", "-c", "2", "-i", "0.2", app.env["IP_IN"]])
        assert r.returncode == 0
        final = app.stop(signal.SIGINT)
        assert app.returncode == 0
        assert final["totals"]["icmp_pkts"] >= 4
        assert sorted(final["workers"]) == ["0", "1"]


def test_rss_dispatch_keeps_flows_on_one_worker(tmp_path):
    """RSS-capable ports (multi-queue TAP): each worker polls its own queue
    of every port; the symmetric hash keeps both directions together."""
    n = 10
    with Appliance(tmp_path, workers=2, devices="tap") as app:
        assert "dispatch rss" in app.log()
        maildir = app.start_sink()
        sent = []
        for i in range(n):
            p = str(tmp_path / ("m%d.eml" % i))
            sent.append(make_message(p, i))
            swaks(app, i, p)
        got = wait_for(lambda: len(delivered(maildir)) == n and delivered(maildir))
        assert got and [(m["sha256"], m["size"]) for m, _ in got] == sent
        flows = app.flows()
        assert sum(f["tcp_flows"] for f in flows.values()) == n
        assert all(f["tcp_one_direction"] == 0 for f in flows.values()), flows
        assert all(f["tcp_flows"] > 0 for f in flows.values()), flows  # the NIC spread them
        final = app.stop()
        assert app.returncode == 0 and final["dispatch"] == "rss"
        # TAP queues can refuse a burst under load: every frame is either sent or counted as dropped.
        out, ins = final["ports"]["outside"], final["ports"]["inside"]
        injected = sum(w["stream"]["rejected"] + w["stream"]["quarantined"] for w in final["workers"].values())
        assert injected == 0
        assert out["rx_pkts"] == ins["tx_pkts"] + ins["tx_dropped"] and ins["rx_pkts"] == out["tx_pkts"] + out["tx_dropped"]
        assert ins["tx_dropped"] + out["tx_dropped"] <= (out["rx_pkts"] + ins["rx_pkts"]) // 100
