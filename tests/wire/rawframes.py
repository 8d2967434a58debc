#!/usr/bin/python3
"""Raw Ethernet frames on one interface, for tests that must see frames
byte for byte.

    rawframes.py send IFACE HEXFILE        send each hex line as one frame
    rawframes.py recv IFACE OUTFILE SECS   write every frame received (hex)
"""
import binascii
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40


def main():
    mode, iface = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    if mode == "send":
        for line in open(sys.argv[3]):
            line = line.strip()
            if line:
                s.send(binascii.unhexlify(line))
                time.sleep(0.002)
        return
    out = open(sys.argv[3], "w")
    # The kernel may strip the outer VLAN tag into metadata: put it back.
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.settimeout(0.1)
    print("ready", flush=True)
    deadline = time.time() + float(sys.argv[4])
    while time.time() < deadline:
        try:
            data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        for level, typ, cdata in anc:
            if level == SOL_PACKET and typ == PACKET_AUXDATA and len(cdata) >= 20:
                status, _len, _snap, _mac, _net, tci, tpid = struct.unpack("=IIIHHHH", cdata[:20])
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        out.write(binascii.hexlify(data).decode() + "\n")
        out.flush()


if __name__ == "__main__":
    main()
