#!/usr/bin/python3
"""A scripted SMTP client on a raw socket (scapy frames) that sends its
DATA bytes in hostile segmentations, for evasion tests across the wire.

It speaks from an address the kernel of its namespace does not own (so
that kernel never answers for it); the server side needs a neighbour entry
for that address pointing at this interface's MAC.

    tcp_craft.py IFACE SRC_IP DST_IP DST_MAC MODE [--isn N] [--message FILE]

MODE: plain | one_byte | reverse | overlap_decoy_first | overlap_decoy_last |
      retransmit_different | rst_out_of_window | seq_wrap
Prints one JSON line: the replies the server sent and the message the
client meant (the bytes after DATA, before the final dot).
"""
import argparse
import json
import random
import threading
import time

from scapy.all import AsyncSniffer, Ether, IP, TCP, conf, get_if_hwaddr, sendp  # noqa: E402

conf.verb = 0


class RawClient:
    def __init__(self, iface, src, dst, dst_mac, isn, dport=25):
        self.iface, self.src, self.dst, self.dport = iface, src, dst, dport
        self.sport = random.randint(30000, 60000)
        self.isn = isn & 0xffffffff
        self.snd_nxt = (self.isn + 1) & 0xffffffff
        self.rcv_nxt = None
        self.server_bytes = b""
        self.consumed = 0
        self.lock = threading.Lock()
        self.mac = get_if_hwaddr(iface)
        self.dst_mac = dst_mac
        self.sniffer = AsyncSniffer(iface=iface, store=False, prn=self._on_frame,
                                    lfilter=lambda p: TCP in p and p[TCP].dport == self.sport)
        self.sniffer.start()
        time.sleep(0.3)

    def _frame(self, seq, flags, data=b"", ack=True):
        return (Ether(src=self.mac, dst=self.dst_mac) /
                IP(src=self.src, dst=self.dst, flags="DF") /
                TCP(sport=self.sport, dport=self.dport, seq=seq & 0xffffffff,
                    ack=(self.rcv_nxt or 0) if ack else 0, flags=flags, window=64240) / data)

    def _on_frame(self, p):
        t = p[TCP]
        with self.lock:
            if "S" in t.flags and "A" in t.flags:
                self.rcv_nxt = (t.seq + 1) & 0xffffffff
                return
            data = bytes(t.payload)
            if self.rcv_nxt is not None and data and t.seq == self.rcv_nxt:
                self.server_bytes += data
                self.rcv_nxt = (self.rcv_nxt + len(data)) & 0xffffffff
            if "F" in t.flags and self.rcv_nxt is not None and t.seq + len(data) == self.rcv_nxt:
                self.rcv_nxt = (self.rcv_nxt + 1) & 0xffffffff
        if data or "F" in t.flags:
            sendp(self._frame(self.snd_nxt, "A"), iface=self.iface)

    def connect(self):
        for _ in range(3):
            sendp(self._frame(self.isn, "S", ack=False), iface=self.iface)
            if self.wait(lambda: self.rcv_nxt is not None, 2):
                break
        else:
            raise RuntimeError("no SYN-ACK")
        sendp(self._frame(self.snd_nxt, "A"), iface=self.iface)

    def wait(self, pred, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if pred():
                    return True
            time.sleep(0.01)
        return False

    def wait_reply(self, code, timeout=5.0):
        """Waits for a complete reply line starting with |code| among the
        server bytes not consumed yet; returns (found, those bytes)."""
        pat = code.encode() + b" "

        def done():
            for line in self.server_bytes[self.consumed:].split(b"\r\n")[:-1]:
                if line.startswith(pat):
                    return True
            return False
        ok = self.wait(done, timeout)
        with self.lock:
            got = self.server_bytes[self.consumed:]
            self.consumed = len(self.server_bytes)
        return ok, got

    def send_at(self, offset, data, flags="PA"):
        """Sends |data| at stream offset |offset| from snd_nxt (without advancing)."""
        sendp(self._frame(self.snd_nxt + offset, flags, data), iface=self.iface)

    def advance(self, n):
        self.snd_nxt = (self.snd_nxt + n) & 0xffffffff

    def send(self, data):
        self.send_at(0, data)
        self.advance(len(data))


def send_data_block(c, block, mode):
    """Sends |block| (message + final dot line) with the given segmentation."""
    n = len(block)
    if mode in ("plain", "seq_wrap"):
        for off in range(0, n, 1000):
            c.send_at(off, block[off:off + 1000])
    elif mode == "one_byte":
        for off in range(n):
            c.send_at(off, block[off:off + 1])
            time.sleep(0.0005)
    elif mode == "reverse":
        offs = list(range(0, n, 16))
        for off in reversed(offs):
            c.send_at(off, block[off:off + 16])
    elif mode in ("overlap_decoy_first", "overlap_decoy_last"):
        # A decoy overlapping the first part of the body, then the real bytes.
        # Out of order (the first 8 bytes are held back), so the server's
        # reassembly queue, not its socket, decides between them.
        decoy = bytes(b ^ 0x20 if 97 <= b <= 122 else b for b in block)
        first, later = (decoy, block) if mode == "overlap_decoy_first" else (block, decoy)
        c.send_at(8, first[8:n // 2])
        c.send_at(8, later[8:n // 2])
        c.send_at(n // 2, block[n // 2:])
        c.send_at(0, block[:8])
    elif mode == "retransmit_different":
        half = n // 2
        c.send_at(0, block[:half])
        time.sleep(0.2)  # acknowledged by now
        decoy = block[:half].replace(b"e", b"3")
        c.send_at(0, decoy)
        c.send_at(half, block[half:])
    elif mode == "rst_out_of_window":
        half = n // 2
        c.send_at(0, block[:half])
        c.send_at(half + 10_000_000, b"", flags="R")
        c.send_at(half, block[half:])
    else:
        raise SystemExit("unknown mode " + mode)
    c.advance(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("dst_mac")
    ap.add_argument("mode")
    ap.add_argument("--isn", type=int, default=None)
    ap.add_argument("--message")
    a = ap.parse_args()
    isn = a.isn if a.isn is not None else (0xffffffff - 300 if a.mode == "seq_wrap" else random.getrandbits(32))
    msg = open(a.message, "rb").read() if a.message else (
        b"From: mallory@outside.test\r\nTo: bob@inside.test\r\nSubject: evasion " + a.mode.encode() +
        b"\r\n\r\nThis body was segmented to confuse an inspector.\r\nfree money viagra lottery\r\n")
    c = RawClient(a.iface, a.src, a.dst, a.dst_mac, isn)
    out = {"mode": a.mode, "isn": isn, "message": msg.decode("latin-1"), "replies": []}
    try:
        c.connect()
        steps = [(None, "220"), (b"EHLO crafted.outside.test\r\n", "250"), (b"MAIL FROM:<mallory@outside.test>\r\n", "250"),
                 (b"RCPT TO:<bob@inside.test>\r\n", "250"), (b"DATA\r\n", "354")]
        for data, code in steps:
            if data:
                c.send(data)
            ok, got = c.wait_reply(code)
            out["replies"].append(got.decode("latin-1"))
            if not ok:
                raise RuntimeError("no %s after %r: %r" % (code, data, got))
        send_data_block(c, msg + b".\r\n", a.mode)
        ok, got = c.wait_reply("250", 10)
        out["replies"].append(got.decode("latin-1"))
        out["final_reply"] = got.decode("latin-1").strip()
        c.send(b"QUIT\r\n")
        c.wait_reply("221", 3)
        c.send_at(0, b"", flags="FA")
    finally:
        c.sniffer.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
