"""Crafted SMTP dialogues (scapy captures built at test time) that stress
how the engine pairs messages with their replies."""
import hashlib

import pytest

from replay_lib import replay

pytest.importorskip("scapy.all", reason="Debian's python3-scapy is needed to build the captures")
import evasion_pcaps as ev  # noqa: E402
from scapy.all import wrpcap  # noqa: E402

MSG1 = b"Subject: one\r\n\r\nfirst message\r\n"
MSG2 = b"Subject: two\r\n\r\nsecond message, longer than the first\r\n"


def test_bdat_last_pipelined_before_the_reply(tmp_path):
    """A PIPELINING+CHUNKING client sends the next transaction before the
    server answered BDAT LAST: each message keeps its own hash, size and
    headers, and each gets its own reply (the second is refused)."""
    s = ev.Session(1000)
    s.server(b"220 mx ESMTP\r\n")
    s.client(b"EHLO c\r\n")
    s.server(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    s.client(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT %d LAST\r\n" % len(MSG1) + MSG1 +
             b"MAIL FROM:<>\r\nRCPT TO:<c@example.net>\r\nBDAT %d LAST\r\n" % len(MSG2) + MSG2)
    s.server(b"250 ok\r\n250 ok\r\n250 queued one\r\n250 ok\r\n250 ok\r\n554 refused two\r\n")
    s.client(b"QUIT\r\n")
    s.server(b"221 bye\r\n")
    cap = str(tmp_path / "bdat.pcap")
    wrpcap(cap, s.frames)
    out = replay(cap, "--smtp-port", "25")
    assert out["returncode"] == 0, out["stderr"]
    got = [(m["mail_from"], m["rcpt_to"], m["size"], m["sha256"], m["server_reply"], m["subject"])
           for m in out["messages"]]
    assert got == [
        ("a@example.org", ["b@example.net"], len(MSG1), hashlib.sha256(MSG1).hexdigest(), 250, "one"),
        ("", ["c@example.net"], len(MSG2), hashlib.sha256(MSG2).hexdigest(), 554, "two"),
    ]
