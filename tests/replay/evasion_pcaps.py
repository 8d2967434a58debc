"""Crafted evasion captures (scapy), generated at test time.

Each scenario is one SMTP session whose DATA is segmented hostilely. The
builder knows which bytes of each client sequence position arrive first:
that is what an inline inspector sees, and (after normalisation) what the
server must receive. `reassemble()` plays the server: it rebuilds the
client's stream from a capture with either overlap policy real stacks use
(first copy wins, or last copy wins), so a test can show that the frames
the engine forwards give the same bytes under both.
"""
import hashlib
import random

from scapy.all import IP, TCP, Ether, Raw, wrpcap, rdpcap  # noqa: F401  (Debian's python3-scapy)

CLIENT, SERVER = ("10.9.0.1", 40001), ("10.9.0.2", 25)
MESSAGE = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: evasion\r\n\r\n"
           b"clean line one\r\n.dot-stuffed line\r\nclean line three, a bit longer to split well\r\n")
DECOY = bytes(b if b in (13, 10) else ord("X") for b in MESSAGE)  # same length, other bytes


def dot_unstuff(data_section):
    """The message a server stores from the bytes after DATA up to CRLF.CRLF."""
    out = []
    for line in data_section.split(b"\r\n"):
        out.append(line[1:] if line.startswith(b".") else line)
    return b"\r\n".join(out)


class Session:
    def __init__(self, client_isn, server_isn=5000):
        self.frames = []
        self.t = 1_700_000_000.0
        self.c_next = client_isn + 1
        self.s_next = server_isn + 1
        self._pkt(True, "S", client_isn, 0)
        self._pkt(False, "SA", server_isn, self.c_next)
        self._pkt(True, "A", self.c_next, self.s_next)

    def _pkt(self, from_client, flags, seq, ack, data=b""):
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src[0], dst=dst[0]) / \
            TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq % 2**32, ack=ack % 2**32, window=65535)
        if data:
            p = p / Raw(data)
        p.time = self.t
        self.t += 0.001
        self.frames.append(p)

    def server(self, line, ack_client=True):
        self._pkt(False, "PA", self.s_next, self.c_next if ack_client else 0, line)
        self.s_next += len(line)

    def client(self, data):
        self._pkt(True, "PA", self.c_next, self.s_next, data)
        self.c_next += len(data)

    def client_at(self, offset, data, flags="PA", base=None):
        """Client data at |offset| from |base| (default: the current stream end), not advancing it."""
        self._pkt(True, flags, (self.c_next if base is None else base) + offset, self.s_next, data)


def build(scenario, path):
    """Writes the scenario's capture; returns the message the inspector must see (dot-unstuffed)."""
    isn = 2**32 - 40 if scenario == "sequence_wrap" else 1000
    s = Session(isn)
    s.server(b"220 mx.example.net ESMTP\r\n")
    for cmd, reply in ((b"EHLO c.example.org\r\n", b"250 mx.example.net\r\n"),
                       (b"MAIL FROM:<a@example.org>\r\n", b"250 ok\r\n"),
                       (b"RCPT TO:<b@example.net>\r\n", b"250 ok\r\n"),
                       (b"DATA\r\n", b"354 go ahead\r\n")):
        s.client(cmd)
        s.server(reply)
    wire = MESSAGE.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    first = bytearray(wire)  # what arrives first at each position
    base = s.c_next
    n = len(wire)
    if scenario in ("in_order", "sequence_wrap"):
        for i in range(0, n, 16):
            s.client_at(i, wire[i:i + 16], base=base)
    elif scenario == "one_byte":
        for i in range(n):
            s.client_at(i, wire[i:i + 1], base=base)
    elif scenario == "reverse":
        for i in reversed(range(0, n, 7)):
            s.client_at(i, wire[i:i + 7], base=base)
    elif scenario == "shuffled":
        chunks = list(range(0, n, 5))
        random.Random(3).shuffle(chunks)
        for i in chunks:
            s.client_at(i, wire[i:i + 5], base=base)
        # More holes than the engine buffers: it drops (fail-closed) what would
        # open one more, the server never acknowledges it, and the sender's
        # retransmission timeout sends it all again in order.
        s.client_at(0, wire, base=base)
    elif scenario == "overlap_decoy_first":
        # Decoy bytes ahead of a hole first, the real ones overlapping them later.
        decoy = DECOY.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        s.client_at(20, decoy[20:60], base=base)
        first[20:60] = decoy[20:60]
        s.client_at(0, wire[0:70], base=base)
        s.client_at(70, wire[70:], base=base)
    elif scenario == "retransmit_different":
        # Everything once, then (before the server acknowledges) the same range with other bytes.
        s.client_at(0, wire, base=base)
        decoy = DECOY.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        s.client_at(10, decoy[10:80], base=base)
    elif scenario == "rst_out_of_window":
        half = n // 2
        s.client_at(0, wire[:half], base=base)
        s.client_at(10_000_000, b"", flags="R", base=base)  # far outside the window: the server ignores it
        s.client_at(half, wire[half:], base=base)
    else:
        raise ValueError(scenario)
    s.c_next = base + n
    s.server(b"250 2.0.0 queued\r\n")
    s.client(b"QUIT\r\n")
    s.server(b"221 bye\r\n")
    s._pkt(True, "FA", s.c_next, s.s_next)
    s._pkt(False, "FA", s.s_next, s.c_next + 1)
    s._pkt(True, "A", s.c_next + 1, s.s_next + 1)
    wrpcap(path, s.frames)
    inspected_wire = bytes(first)
    assert inspected_wire.endswith(b"\r\n.\r\n")
    return dot_unstuff(inspected_wire[:-5]) + b"\r\n"


SCENARIOS = ["in_order", "one_byte", "reverse", "shuffled", "overlap_decoy_first", "retransmit_different",
             "rst_out_of_window", "sequence_wrap"]


def reassemble(path, policy):
    """The client's byte stream as a server with |policy| ('first' or 'last' copy wins) receives it."""
    isn = None
    got = {}
    for p in rdpcap(path):
        if TCP not in p or p[IP].src != CLIENT[0]:
            continue
        t = p[TCP]
        if "S" in str(t.flags):
            isn = t.seq
            continue
        if "R" in str(t.flags) or isn is None:
            continue
        data = bytes(t.payload)
        off = (t.seq - isn - 1) % 2**32
        for i, b in enumerate(data):
            if policy == "last" or off + i not in got:
                got[off + i] = b
    out = bytearray()
    while len(out) in got:
        out.append(got[len(out)])
    return bytes(out)


def delivered_message(stream):
    """The message the server stores from the client's stream (DATA up to CRLF.CRLF, dot-unstuffed)."""
    start = stream.index(b"DATA\r\n") + len(b"DATA\r\n")
    end = stream.index(b"\r\n.\r\n", start)
    return dot_unstuff(stream[start:end]) + b"\r\n"


def sha256(b):
    return hashlib.sha256(b).hexdigest()
