"""Packet shapes of recorded SMTP sessions (tools/pcapgen/record-sessions.py)
as a JSON profile that sekisho-pcapgen --shapes follows.

A recording is one TCP connection to port 25. It is cut into flights (the
payload one side sends before the other side sends payload); each flight
keeps its events: data segments as [size, psh] and "A" for a pure ACK from
the other side. The SMTP dialogue is read from the clear-text flights
(commands paired with replies in order, DATA bodies to the dot, BDAT chunks
by their size, STARTTLS turns the rest into opaque TLS whose record sizes
are kept). The profile holds:

  tcp         MSS, SYN/SYN-ACK options, window values (from the recordings)
  templates   one per recording: server, client, banner and EHLO texts,
              prologue / transactions / epilogue as flights of tokens (MAIL,
              RCPT*, RCPT!, DATA, BODY, BDAT, R:MAIL, ...), command and reply
              formats with {addr}/{size}/{qid}/{n}, ACK-before-reply flags,
              and for STARTTLS sessions the TLS flights with record sizes
  bodies      per client: the events of its largest body flight (segment
              sizes, PSH, the receiver's ACKs in between), which is how a
              generated body of any size is cut
  stats       segment size histograms per phase (commands, replies, body,
              TLS), segments per ACK in bodies, pipelined command groups
"""
import collections
import re
import struct

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
BODY_EVENTS = 1500   # about 2 MB of a body's segments and ACKs, cycled beyond
FLIGHT_EVENTS = 40


def read_pcap(path):
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return
        magic = struct.unpack("<I", hdr[:4])[0]
        endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
        nano = magic in (0xa1b23c4d, 0x4d3cb2a1)
        linktype = struct.unpack(endian + "I", hdr[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            yield sec + frac / (1e9 if nano else 1e6), linktype, data


def parse_tcp(linktype, frame):
    if linktype == 1:
        et, off = struct.unpack("!H", frame[12:14])[0], 14
        while et == 0x8100:
            et, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
        if et != 0x0800:
            return None
    elif linktype == 113:  # Linux cooked (tcpdump -i any)
        off = 16
    else:
        return None
    ip = frame[off:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 6:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    sport, dport, seq, ack, doff, flags, win = struct.unpack("!HHIIBBH", tcp[:16])
    thl = (doff >> 4) * 4
    return {"src": ip[12:16], "dst": ip[16:20], "sport": sport, "dport": dport, "seq": seq, "ack": ack,
            "flags": flags, "win": win, "opts": tcp[20:thl], "payload": bytes(tcp[thl:])}


def options(opts):
    """TCP options as [(kind, bytes)]."""
    out, i = [], 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            out.append((1, b""))
            i += 1
            continue
        ln = opts[i + 1] if i + 1 < len(opts) else 2
        out.append((k, opts[i + 2:i + ln]))
        i += max(ln, 2)
    return out


def sessions(path, port=25):
    """The connections to |port| in |path|, in the order of their SYNs: a
    list of packet lists with direction ("c" to the server, "s" back)."""
    conns = collections.OrderedDict()
    for ts, lt, frame in read_pcap(path):
        t = parse_tcp(lt, frame)
        if not t or port not in (t["sport"], t["dport"]):
            continue
        k = (t["src"], t["sport"], t["dst"], t["dport"]) if t["dport"] == port else \
            (t["dst"], t["dport"], t["src"], t["sport"])
        if k not in conns:
            if not (t["flags"] & SYN and not t["flags"] & ACK):
                continue  # joined mid-way: not a whole session
            conns[k] = []
        t["d"] = "c" if t["dport"] == port else "s"
        t["ts"] = ts
        conns[k].append(t)
    return list(conns.values())


def flights(pkts):
    out, cur, nxt, close = [], None, {}, []
    for p in pkts:
        d, fl, pl = p["d"], p["flags"], p["payload"]
        if fl & SYN:
            nxt[d] = (p["seq"] + 1) & 0xffffffff
            continue
        if pl:
            start = nxt.get(d, p["seq"])
            off = (start - p["seq"]) & 0xffffffff
            if off >= len(pl) and off < 1 << 31:
                continue  # retransmission
            if off < 1 << 31:
                pl = pl[off:]
            nxt[d] = (p["seq"] + len(p["payload"])) & 0xffffffff
            if cur is None or cur["d"] != d:
                cur = {"d": d, "ev": [], "data": bytearray()}
                out.append(cur)
            cur["ev"].append([len(pl), 1 if fl & PSH else 0])
            cur["data"] += pl
        if fl & (FIN | RST) or close:
            close.append([d, "".join(n for b, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"))
                                     if fl & b)])
        elif not pl and fl == ACK and cur is not None and d != cur["d"]:
            cur["ev"].append("A")
    return out, close


def tls_records(data):
    recs, i = [], 0
    while i + 5 <= len(data):
        typ, ln = data[i], struct.unpack("!H", data[i + 3:i + 5])[0]
        recs.append([typ, ln])
        i += 5 + ln
    return recs


REPLY_END = re.compile(rb"^\d{3}(?: |$)")


def tokenize(fls):
    """Adds f["tok"] (list of token dicts) to each clear-text flight; returns
    the index of the first TLS flight (or len)."""
    pending = collections.deque([{"t": "BANNER"}])
    mode, bdat_left, last_code, tls_from = "cmd", 0, 0, None
    body = None
    for n, f in enumerate(fls):
        data = bytes(f["data"])
        f["tok"] = []
        if mode == "tls":
            tls_from = n if tls_from is None else tls_from
            continue
        if f["d"] == "c":
            i = 0
            while i < len(data):
                if bdat_left:
                    take = min(bdat_left, len(data) - i)
                    bdat_left -= take
                    body["len"] += take
                    i += take
                    continue
                if mode == "data":
                    j = data.find(b"\r\n.\r\n", max(i - 2, 0)) if i or body["len"] else \
                        (-2 if data.startswith(b".\r\n") else data.find(b"\r\n.\r\n"))
                    if j < 0 and body["len"] and body.get("tail") and data[i:].startswith(b".\r\n"):
                        j = i - 2
                    if j < 0:
                        body["len"] += len(data) - i
                        body["tail"] = data.endswith(b"\r\n")
                        i = len(data)
                        continue
                    body["len"] += j + 5 - i
                    i = j + 5
                    mode = "cmd"
                    pending.append(body)
                    continue
                j = data.find(b"\r\n", i)
                line = data[i:j if j >= 0 else len(data)]
                i = j + 2 if j >= 0 else len(data)
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode("latin-1")
                if last_code == 334:
                    tok = {"t": "AUTHDATA", "line": line}
                elif verb == "BDAT":
                    parts = line.split()
                    last = len(parts) > 2 and parts[2].upper() == b"LAST"
                    tok = {"t": "BDAT_LAST" if last else "BDAT", "line": line, "len": 0, "size": int(parts[1])}
                    bdat_left = tok["size"]
                    body = tok
                else:
                    tok = {"t": verb, "line": line}
                last_code = 0
                f["tok"].append(tok)
                pending.append(tok)
        else:
            lines = data.split(b"\r\n")
            if lines and lines[-1] == b"":
                lines.pop()
            acc = []
            for line in lines:
                acc.append(line)
                if REPLY_END.match(line):
                    cmd = pending.popleft() if pending else {"t": "?"}
                    code = int(line[:3])
                    refused = code >= 400 and cmd["t"] == "RCPT"
                    f["tok"].append({"t": ("R!:" if refused else "R:") + cmd["t"], "code": code,
                                     "text": b"\r\n".join(acc), "cmd": cmd})
                    acc = []
                    last_code = code
                    if refused:
                        cmd["t"] = "RCPT!"
                    if code == 354:
                        mode = "data"
                        body = {"t": "BODY", "len": 0}
                        f["tok"][-1]["body"] = body
                    if code == 220 and cmd["t"] == "STARTTLS":
                        mode = "tls"
    return tls_from if tls_from is not None else len(fls)


def template_text(tok):
    """A command line or reply with the per-session parts as placeholders."""
    if "line" in tok:
        s = tok["line"].decode("latin-1")
        if tok["t"] in ("MAIL", "RCPT", "RCPT!"):
            s = re.sub(r"<[^>]*>", "<{addr}>", s, count=1)
            s = re.sub(r"(?i)(size=)\d+", r"\g<1>{size}", s)
        if tok["t"] in ("BDAT", "BDAT_LAST"):
            s = re.sub(r"^(\S+ )\d+", r"\g<1>{n}", s)
        return s
    s = tok["text"].decode("latin-1")
    s = re.sub(r"(queued as )(\S+)", lambda m: m.group(1) + "{qid:%d}" % len(m.group(2)), s)
    s = re.sub(r"\b\d+ (bytes|octets)", r"{n} \1", s)
    if tok["t"] == "R!:RCPT":
        s = re.sub(r"<[^>]*>", "<{addr}>", s)
    return s


def hist(sizes, edges=(64, 128, 256, 512, 1024, 1447, 1448, 1449)):
    h = collections.OrderedDict()
    lo = 0
    for e in edges:
        h["%d-%d" % (lo, e)] = sum(1 for s in sizes if lo <= s <= e)
        lo = e + 1
    h[">%d" % edges[-1]] = sum(1 for s in sizes if s > edges[-1])
    return h


def extract(recorded, tools=None):
    """recorded: [{"name", "server", "client", "pcap"}] -> the profile."""
    prof = {"version": 1, "tools": tools or {}, "tcp": {}, "templates": [], "bodies": {},
            "stats": {"segments": {"command": [], "reply": [], "body": [], "tls": []},
                      "body_segments_per_ack": [], "pipelined_groups": collections.Counter()}}
    wins = {"c": collections.Counter(), "s": collections.Counter()}
    best_body = {}
    conns = []
    for rec in recorded:
        found = sessions(rec["pcap"])
        if not found:
            raise ValueError("%s: no SMTP connection in %s" % (rec["name"], rec["pcap"]))
        for k, pkts in enumerate(found):
            conns.append((dict(rec, name=rec["name"] + ("#%d" % (k + 1) if k else "")), pkts))
    for rec, pkts in conns:
        for p in pkts:
            if p["flags"] & SYN:
                side = "syn" if p["d"] == "c" else "synack"
                prof["tcp"].setdefault(side + "_options", p["opts"].hex())
                prof["tcp"].setdefault(side + "_window", p["win"])
                for k, v in options(p["opts"]):
                    if k == 2:
                        prof["tcp"]["mss"] = struct.unpack("!H", v)[0]
                    if k == 3:
                        prof["tcp"]["wscale"] = v[0]
            elif p["flags"] & ACK:
                wins[p["d"]][p["win"]] += 1
                if p["opts"]:
                    prof["tcp"].setdefault("data_options", bytes(p["opts"][:2]).hex() + "|ts")
        fls, close = flights(pkts)
        tls_from = tokenize(fls)
        tpl = {"name": rec["name"], "server": rec["server"], "client": rec["client"], "formats": {},
               "tls": tls_from < len(fls), "close": close}
        clear = []
        for f in fls[:tls_from]:
            toks = []
            for t in f["tok"]:
                name = t["t"]
                tpl["formats"].setdefault(name, template_text(t))
                toks.append(name)
            c = {"d": f["d"], "tok": toks, "ev": f["ev"], "len": len(f["data"])}
            ends, pos = set(), 0
            for e in f["ev"]:
                if e != "A":
                    pos += e[0]
                    ends.add(pos)
            lines_end, pos = set(), 0
            for line in bytes(f["data"]).split(b"\r\n")[:-1]:
                pos += len(line) + 2
                lines_end.add(pos)
            if len(ends) > 1 and ends <= lines_end and not any(t.get("size") for t in f["tok"]):
                c["split"] = "line"
            if f["tok"] and f["tok"][0]["t"] in ("BDAT", "BDAT_LAST"):
                first = next(e for e in f["ev"] if e != "A")
                c["bdat_cmd_apart"] = first[0] == len(f["tok"][0]["line"]) + 2
                c["bdat_chunk"] = f["tok"][0]["size"]
            clear.append(c)
        # bodies: a client flight that carried DATA content gets a BODY token first
        for f, c in zip(fls[:tls_from], clear):
            if f["d"] != "c":
                continue
            cmd_bytes = sum(len(t.get("line", b"")) + 2 for t in f["tok"] if t["t"] not in ("BDAT", "BDAT_LAST"))
            bdat_bytes = sum(len(t["line"]) + 2 + t["size"] for t in f["tok"] if t["t"] in ("BDAT", "BDAT_LAST"))
            if len(f["data"]) > cmd_bytes + bdat_bytes:
                c["tok"].insert(0, "BODY")
                c["body"] = len(f["data"]) - cmd_bytes
            elif bdat_bytes:
                c["body"] = bdat_bytes
        for c in clear:
            sizes = [e[0] for e in c["ev"] if e != "A"]
            if "body" in c:
                prof["stats"]["segments"]["body"] += sizes
                run = 0
                for e in c["ev"]:
                    if e == "A":
                        prof["stats"]["body_segments_per_ack"].append(run)
                        run = 0
                    else:
                        run += 1
                cur = best_body.get(rec["client"])
                if cur is None or c["body"] > cur[0]:
                    best_body[rec["client"]] = (c["body"], c["ev"], rec["name"])
                if "bdat_chunk" in c:
                    tpl["bdat_chunk"] = tpl.get("bdat_chunk") or c["bdat_chunk"]
                    tpl["bdat_cmd_apart"] = c["bdat_cmd_apart"]
            else:
                prof["stats"]["segments"]["command" if c["d"] == "c" else "reply"] += sizes
            cmds = [t for t in c["tok"] if not t.startswith(("R:", "R!:"))]
            if c["d"] == "c" and len(cmds) > 1:
                prof["stats"]["pipelined_groups"][" ".join(collapse_rcpts(cmds))] += 1
        tls = []
        for f in fls[tls_from:]:
            tls.append({"d": f["d"], "ev": f["ev"], "records": tls_records(bytes(f["data"]))})
            prof["stats"]["segments"]["tls"] += [e[0] for e in f["ev"] if e != "A"]
        # prologue | transactions | epilogue
        starts = []
        for i, c in enumerate(clear):
            if c["d"] == "c" and c["tok"] and c["tok"][0] == "MAIL":
                rset = i >= 2 and clear[i - 2]["tok"] == ["RSET"] and clear[i - 1]["tok"] == ["R:RSET"]
                starts.append(i - 2 if rset else i)
            elif c["d"] == "c" and len(c["tok"]) > 1 and c["tok"][0] == "RSET" and c["tok"][1] == "MAIL":
                starts.append(i)
        quit_at = next((i for i, c in enumerate(clear) if c["d"] == "c" and c["tok"] and c["tok"][0] == "QUIT"),
                       len(clear))
        if tpl["tls"]:
            tpl["prologue"], tpl["transactions"], tpl["epilogue"] = clear, [], []
            tpl["tls_flights"] = tls
        elif starts:
            tpl["prologue"] = clear[:starts[0]]
            bounds = starts + [quit_at]
            tpl["transactions"] = [collapse_flights(clear[a:b]) for a, b in zip(bounds, bounds[1:])]
            tpl["epilogue"] = clear[quit_at:]
        else:
            tpl["prologue"], tpl["transactions"], tpl["epilogue"] = clear, [], []
        tpl["banner"] = tpl["formats"].get("R:BANNER", "")
        tpl["ehlo_reply"] = tpl["formats"].get("R:EHLO", "")
        tpl["ehlo"] = tpl["formats"].get("EHLO", "")
        prof["templates"].append(tpl)
    for client, (size, ev, name) in sorted(best_body.items()):
        prof["bodies"][client] = {"from": name, "bytes": size, "ev": ev[:BODY_EVENTS]}
    for tpl in prof["templates"]:  # a body flight's own events are in "bodies"; keep the start
        for part in [tpl["prologue"], tpl["epilogue"]] + tpl["transactions"]:
            for f in part:
                f["ev"] = f["ev"][:FLIGHT_EVENTS]
    for d in "cs":
        if wins[d]:
            prof["tcp"]["window_" + d] = wins[d].most_common(1)[0][0]
    st = prof["stats"]
    st["pipelined_groups"] = dict(st["pipelined_groups"].most_common())
    spa = st["body_segments_per_ack"]
    st["body_segments_per_ack_hist"] = dict(sorted(collections.Counter(spa).items()))
    st["segments_summary"] = {k: {"count": len(v), "mean": round(sum(v) / len(v), 1) if v else 0,
                                  "max": max(v) if v else 0, "hist": hist(v)}
                              for k, v in st["segments"].items()}
    del st["segments"]
    del st["body_segments_per_ack"]
    return prof


def collapse_rcpts(tokens):
    out = []
    for t in tokens:
        if t in ("RCPT", "R:RCPT") and out and out[-1] == t + "*":
            continue
        out.append(t + "*" if t in ("RCPT", "R:RCPT") else t)
    return out


def collapse_flights(fls):
    """RCPT runs in one flight become RCPT* (k recipients); a run of
    [c: RCPT] [s: R:RCPT] flight pairs becomes one pair marked per_rcpt."""
    out = []
    i = 0
    while i < len(fls):
        f = dict(fls[i])
        f["tok"] = collapse_rcpts(f["tok"])
        if f["d"] == "c" and f["tok"] == ["RCPT*"] and i + 1 < len(fls) and fls[i + 1]["tok"] == ["R:RCPT"]:
            g = dict(fls[i + 1])
            g["tok"] = ["R:RCPT*"]
            f["per_rcpt"] = g["per_rcpt"] = True
            out += [f, g]
            i += 2
            while i + 1 < len(fls) and fls[i]["tok"] == ["RCPT"] and fls[i + 1]["tok"] == ["R:RCPT"]:
                i += 2
            continue
        out.append(f)
        i += 1
    return out
