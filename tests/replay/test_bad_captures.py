"""Truncated, corrupt and non-Ethernet captures are reported, never crash."""
import os
import struct

from replay_lib import SRC, replay

PCAP = os.path.join(SRC, "tests", "fixtures", "wire", "swaks_attachment.pcap")


def test_truncated_capture_reports_and_keeps_what_it_read(tmp_path):
    data = open(PCAP, "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) // 2 + 7])  # mid-record
    out = replay(str(cut))
    assert out["returncode"] == 0
    assert out["summary"]["packets"] > 10
    assert "read_error" in out["summary"] and "cut short" in out["stderr"]
    assert out["messages"] and out["messages"][0]["complete"] is False


def test_every_prefix_of_a_capture_is_safe(tmp_path):
    data = open(PCAP, "rb").read()
    for n in list(range(0, 200, 7)) + list(range(200, len(data), len(data) // 40)):
        p = tmp_path / "p.pcap"
        p.write_bytes(data[:n])
        out = replay(str(p))
        assert out["returncode"] in (0, 1), (n, out["returncode"], out["stderr"])


def test_garbage_file_is_refused(tmp_path):
    p = tmp_path / "garbage.pcap"
    p.write_bytes(os.urandom(4096))
    out = replay(str(p))
    assert out["returncode"] == 1 and out["stderr"]


def test_unsupported_link_type_is_refused(tmp_path):
    p = tmp_path / "wifi.pcap"
    p.write_bytes(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 105))  # 802.11
    out = replay(str(p))
    assert out["returncode"] == 1 and "unsupported link type 105" in out["stderr"]


def test_corrupted_packets_are_skipped(tmp_path):
    data = bytearray(open(PCAP, "rb").read())
    # flip bytes inside packet bodies (past the global header), keep record headers
    off, i = 24, 0
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        if i % 3 == 0 and incl > 40:
            for k in range(off + 16 + 14, off + 16 + min(incl, 60)):
                data[k] ^= 0x5a
        off += 16 + incl
        i += 1
    p = tmp_path / "corrupt.pcap"
    p.write_bytes(bytes(data))
    out = replay(str(p))
    assert out["returncode"] == 0
    assert out["summary"]["decode_errors"] > 0
