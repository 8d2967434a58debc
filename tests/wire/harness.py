"""Wire test harness: a uniquely named virtual wire (appliance/wire/wire.sh),
the real sekisho-dataplane bridging it, real programs at both ends, and a
teardown that runs whatever happened.

    with Appliance(workers=2) as app:
        app.start_sink()
        app.outside(["swaks", ...])
        app.stats()
"""
import json
import os
import secrets
import signal
import subprocess
import sys
import time

SRC = os.environ.get("SEKISHO_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
WIRE = os.path.join(SRC, "appliance", "wire", "wire.sh")
SINK = os.path.join(SRC, "appliance", "wire", "smtp-sink.py")
DATAPLANE = os.path.join(BUILD, "dataplane", "dpdk", "sekisho-dataplane")
PY = "/usr/bin/python3"

sys.path.insert(0, os.path.join(SRC, "appliance", "wire"))
import telemetry  # noqa: E402

CONF = """dataplane = {{
  eal = [ "--no-huge", "-m", "256", "--no-pci", "--file-prefix", "{prefix}",
          "--log-level", "lib.eal:warning" ];
  ports = ( {{ name = "outside"; device = "{dev_a}"; }},
            {{ name = "inside";  device = "{dev_b}"; }} );
  bridges = ( [ "outside", "inside" ] );
  workers = {workers};
  malformed = "{malformed}";
  journal = "{journal}";
  spool = "{spool}";
  journal_flush_ms = 20;
{extra}}};
"""


class Appliance:
    def __init__(self, tmpdir, workers=1, malformed="forward", extra="", devices="af_packet"):
        """devices: "af_packet" (veth pairs, software dispatch) or "tap"
        (multi-queue TAP ports made by DPDK and moved into the end
        namespaces: RSS-capable, so dispatch "auto" picks RSS)."""
        self.devices = devices
        self.tmp = str(tmpdir)
        self.id = secrets.token_hex(3)  # 6 chars: parallel runs never collide
        self.prefix = "skw-" + self.id
        self.workers = workers
        self.malformed = malformed
        self.extra = extra
        self.procs = []
        self.dp = None
        self.dp_log = os.path.join(self.tmp, "dataplane.log")
        self.final = None
        self.returncode = None
        self.env = {}

    # -- lifecycle -------------------------------------------------------
    def __enter__(self):
        subprocess.run([WIRE, "gc"], check=False)
        try:
            out = subprocess.run([WIRE, "up", self.id], check=True, capture_output=True, text=True,
                                 env=dict(os.environ, SEKISHO_WIRE_OWNER=str(os.getpid()))).stdout
            self.env = dict(kv.split("=", 1) for kv in out.split())
            self.conf = os.path.join(self.tmp, "sekisho.conf")
            with open(self.conf, "w") as f:
                if self.devices == "tap":
                    dev_a = "net_tap0,iface=sk%sx" % self.id
                    dev_b = "net_tap1,iface=sk%sy" % self.id
                else:
                    dev_a = "net_af_packet0,iface=" + self.env["IF_A"]
                    dev_b = "net_af_packet1,iface=" + self.env["IF_B"]
                self.journal = os.path.join(self.tmp, "journal")
                self.spool = os.path.join(self.tmp, "spool")
                f.write(CONF.format(prefix=self.prefix, dev_a=dev_a, dev_b=dev_b, journal=self.journal, spool=self.spool,
                                    workers=self.workers, malformed=self.malformed, extra=self.extra))
            self.dp = subprocess.Popen(["ip", "netns", "exec", self.env["NS_APP"], DATAPLANE, "-c", self.conf],
                                       stdout=open(self.dp_log, "w"), stderr=subprocess.STDOUT)
            deadline = time.time() + 20
            while time.time() < deadline:
                if "ready" in self.log():
                    break
                if self.dp.poll() is not None:
                    raise RuntimeError("dataplane exited: " + self.log())
                time.sleep(0.05)
            else:
                raise RuntimeError("dataplane not ready: " + self.log())
            if self.devices == "tap":
                self._move_taps()
            return self
        except BaseException:
            self.close()
            raise

    def _move_taps(self):
        """The TAP ports' kernel ends replace the veth ends at both sides."""
        for ns, veth, tap, ip4, ip6 in ((self.env["NS_OUT"], "sk%so" % self.id, "sk%sx" % self.id,
                                         self.env["IP_OUT"], self.env["IP6_OUT"]),
                                        (self.env["NS_IN"], "sk%si" % self.id, "sk%sy" % self.id,
                                         self.env["IP_IN"], self.env["IP6_IN"])):
            app = self.env["NS_APP"]
            for argv in (["ip", "-n", ns, "link", "del", veth],
                         ["ip", "-n", app, "link", "set", tap, "netns", ns],
                         ["ip", "-n", ns, "addr", "add", ip4 + "/24", "dev", tap],
                         ["ip", "-n", ns, "addr", "add", ip6 + "/64", "dev", tap, "nodad"],
                         ["ip", "-n", ns, "link", "set", tap, "up"]):
                subprocess.run(argv, check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", tap, "tx", "off", "tso", "off",
                            "gso", "off", "gro", "off"], capture_output=True)

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.dp and self.dp.poll() is None:
            self.stop()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run([WIRE, "down", self.id], check=False)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the dataplane with |sig|; returns the final counters it printed."""
        self.dp.send_signal(sig)
        self.returncode = self.dp.wait(timeout)
        for line in self.log().splitlines():
            if "final counters " in line:
                self.final = json.loads(line.split("final counters ", 1)[1])
        return self.final

    def log(self):
        with open(self.dp_log, errors="replace") as f:
            return f.read()

    # -- the two ends ----------------------------------------------------
    def run_in(self, ns, argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        return subprocess.run(["ip", "netns", "exec", ns] + list(argv), **kw)

    def outside(self, argv, **kw):
        return self.run_in(self.env["NS_OUT"], argv, **kw)

    def inside(self, argv, **kw):
        return self.run_in(self.env["NS_IN"], argv, **kw)

    def spawn_in(self, ns, argv, log):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_sink(self, refuse=()):
        """A real SMTP server (aiosmtpd) in `inside`; returns its mail dir."""
        d = os.path.join(self.tmp, "mail")
        log = os.path.join(self.tmp, "sink.log")
        argv = [PY, SINK, "--listen", self.env["IP_IN"], "--dir", d]
        if refuse:
            argv += ["--refuse"] + list(refuse)
        self.spawn_in(self.env["NS_IN"], argv, log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.exists(log) and "listening" in open(log).read():
                return d
            time.sleep(0.05)
        raise RuntimeError("smtp sink did not start: " + open(log).read())

    # -- the appliance ---------------------------------------------------
    def capture(self, path):
        """Records every TCP frame the appliance receives, on both ports (the
        clients' and the servers' segments as they arrive, not what the
        appliance sends), in one pcap for sekisho-replay. Returns a handle
        for stop_capture()."""
        log = path + ".log"
        p = subprocess.Popen(["ip", "netns", "exec", self.env["NS_APP"], "tcpdump", "-i", "any", "-y", "LINUX_SLL",
                              "-Q", "in", "-U", "--immediate-mode", "-s", "0", "-w", path, "tcp"],
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        self.procs.append(p)
        deadline = time.time() + 15
        while time.time() < deadline:
            if "listening on" in open(log).read():
                return p
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("tcpdump did not start: " + open(log).read())

    @staticmethod
    def stop_capture(p):
        time.sleep(0.5)  # the last frames reach the socket (immediate mode: no ring block waits)
        p.send_signal(signal.SIGINT)
        p.wait(10)

    def events(self, kind="message"):
        """Events the dataplane journaled so far, in order."""
        out = []
        if not os.path.isdir(self.journal):
            return out
        for name in sorted(os.listdir(self.journal)):
            with open(os.path.join(self.journal, name)) as f:
                for line in f:
                    e = json.loads(line)
                    if kind is None or e.get("type") == kind:
                        out.append(e)
        return out

    def stats(self):
        return telemetry.query(self.prefix, "/sekisho/stats")

    def flows(self, worker=None):
        return telemetry.query(self.prefix, "/sekisho/flows", worker)


def delivered(maildir):
    """Messages the sink kept: list of (meta dict, bytes), in arrival order."""
    out = []
    if not os.path.isdir(maildir):
        return out
    for name in sorted(os.listdir(maildir)):
        if name.endswith(".json"):
            meta = json.load(open(os.path.join(maildir, name)))
            data = open(os.path.join(maildir, name[:-5] + ".eml"), "rb").read()
            out.append((meta, data))
    return out


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()
