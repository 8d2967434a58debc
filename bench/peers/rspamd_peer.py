#!/usr/bin/python3
"""A message-level peer: Debian's rspamd on the SpamAssassin public corpus,
per core, in one run, two rule sets.

    bench/peers/rspamd_peer.py [--corpus DIR] [--concurrency 16] [--warmup 300]

Starts a private rspamd (never the system service) from a config written
into a temp dir (pid, log, hyperscan cache, symbol cache all there), one
normal worker (count = 1) and a controller bound to free ports on 127.0.0.1.
DNS points at a closed local port and no network-using module is loaded:
the modules path names only rspamd's `spamassassin` plugin file, `filters`
is empty (no chartable/dkim/regexp/fuzzy_check C modules) and rspamd's own
rules (`rules/rspamd.lua`) are not loaded. Two runs, each on a fresh
instance:

  sa_rules  the spamassassin plugin with /usr/share/spamassassin/*.cf; the
            run starts only after hs_helper has compiled the regexps and
            the worker has loaded the hyperscan databases;
  no_rules  no plugin at all: rspamd's cost of receiving and parsing.

Every corpus message is sent with `rspamc -n CONCURRENCY` (after a warm-up
pass of the first WARMUP messages); the figure per core is messages (bytes)
divided by the CPU time the normal worker spent (utime + stime from
/proc/PID/stat), wall time is printed next to it. Last line of stdout: JSON.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SA_GLOB = "/usr/share/spamassassin/*.cf"
SA_PLUGIN = "/usr/share/rspamd/plugins/spamassassin.lua"
TICK = os.sysconf("SC_CLK_TCK")

CONF = """
options {{
  filters = "";
  pidfile = "{d}/rspamd.pid";
  cache_file = "{d}/symbols.cache";
  dynamic_conf = "{d}/rspamd_dynamic";
  history_file = "{d}/rspamd.history";
  stats_file = "{d}/stats.ucl";
  control_socket = "{d}/rspamd.sock mode=0600";
  hs_cache_dir = "{d}/hs";
  tempdir = "{d}";
  url_tld = "${{SHAREDIR}}/effective_tld_names.dat";
  explicit_modules = [];
  check_all_filters = false;
  task_timeout = 120s;
  dns {{ nameserver = ["127.0.0.1:{dns}"]; timeout = 0.1s; retransmits = 0; sockets = 1; }}
}}
logging {{
  type = "file";
  filename = "{d}/rspamd.log";
  level = "info";
  color = false;
}}
worker "normal" {{
  bind_socket = "127.0.0.1:{port}";
  count = 1;
  mime = true;
}}
worker "controller" {{
  bind_socket = "127.0.0.1:{cport}";
  count = 1;
  password = "bench";
  secure_ip = "127.0.0.1";
}}
worker "hs_helper" {{
  count = 1;
}}
modules {{
  path = "{modules}";
}}
{extra}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def log_text(d):
    try:
        with open(os.path.join(d, "rspamd.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_tail(d, n=40):
    lines = []
    for name in ("rspamd.log", "stdout.txt"):
        try:
            with open(os.path.join(d, name), "rb") as f:
                lines += [name + ": " + l.decode("utf-8", "replace")[:300]
                          for l in f.read().splitlines()[-n:]]
        except OSError:
            pass
    return "\n".join(lines)


def http_get(port, path, timeout=2):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.read()


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            if ppid != pid:
                continue
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            out.append((int(p), cmd))
        except (OSError, ValueError):
            pass
    return out


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime (fields 14, 15)


class Instance:
    def __init__(self, root, name, sa):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "hs"))
        self.sa = sa
        self.port, self.cport = free_port(), free_port()
        if sa:
            modules = SA_PLUGIN
            extra = 'spamassassin {\n  ruleset = "%s";\n}\n' % SA_GLOB
        else:
            modules = os.path.join(self.dir, "plugins")      # empty: no Lua plugin at all
            os.makedirs(modules)
            extra = ""
        self.conf = os.path.join(self.dir, "rspamd.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(d=self.dir, port=self.port, cport=self.cport, dns=free_port(),
                                modules=modules, extra=extra))
        self.proc = None

    def start(self, timeout):
        argv = ["rspamd", "-f", "-c", self.conf]
        if os.geteuid() == 0:
            argv += ["-u", "root", "-g", "root"]
        out = open(os.path.join(self.dir, "stdout.txt"), "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        out.close()
        while True:
            self.check_alive()
            try:
                if http_get(self.port, "/ping").strip() == b"pong":
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > timeout:
                self.fail("rspamd did not answer /ping within %d s" % timeout)
            time.sleep(0.5)
        self.ready_s = time.monotonic() - t0
        self.worker = self.worker_pid()

    def wait_hyperscan(self, timeout):
        """hs_helper compiles the regexps after start; the worker runs PCRE until it
        loads the databases. Wait for the worker's 'has been loaded' line."""
        t0 = time.monotonic()
        pat = re.compile(r"#%d\(normal\).* (\w+) hyperscan database of (\d+) regexps has been loaded" % self.worker)
        while True:
            self.check_alive()
            m = pat.findall(log_text(self.dir))
            if m:
                self.hs_wait_s = time.monotonic() - t0
                return m[-1][0], int(m[-1][1])
            if self.worker_pid() != self.worker:
                self.fail("rspamd normal worker %d was replaced while waiting for hyperscan" % self.worker)
            if time.monotonic() - t0 > timeout:
                self.fail("hyperscan databases not loaded by the worker within %d s" % timeout)
            time.sleep(1)

    def worker_pid(self):
        w = [p for p, cmd in children(self.proc.pid) if cmd.startswith("rspamd: normal process")]
        if len(w) != 1:
            self.fail("expected one rspamd normal worker, found %d" % len(w))
        return w[0]

    def check_alive(self):
        if self.proc.poll() is not None:
            self.fail("rspamd exited with status %s" % self.proc.returncode)

    def fail(self, msg):
        raise SystemExit("rspamd_peer: %s\n--- log tail of %s (removed unless --keep) ---\n%s" % (
            msg, self.dir, log_tail(self.dir)))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        # workers of a dead main process, if any are left in its group
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rspamc(port, files, concurrency, listfile):
    """Send files through rspamc; return (wall s, client cpu s, per-file results)."""
    with open(listfile, "w") as f:
        f.write("\n".join(files))
    r0 = os.times()
    t0 = time.perf_counter()
    with open(listfile) as lf:
        # xargs hands rspamc the whole list in as few invocations as ARG_MAX allows
        p = subprocess.run(["xargs", "-d", "\n", "rspamc", "-h", "127.0.0.1:%d" % port,
                            "-n", str(concurrency), "-t", "120", "-j", "--compact"],
                           stdin=lf, capture_output=True)
    wall = time.perf_counter() - t0
    r1 = os.times()
    client = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return wall, client, parse_rspamc(p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def parse_rspamc(out, err):
    """rspamc -j prints one JSON object per scanned file (a header line before
    each when there are several files). Count the replies and the symbols."""
    ok = 0
    errors = 0
    symbols = 0
    dec = json.JSONDecoder()
    i = 0
    n = len(out)
    while i < n:
        j = out.find("{", i)
        if j < 0:
            break
        try:
            obj, end = dec.raw_decode(out, j)
        except ValueError:
            i = j + 1
            continue
        i = end
        if not isinstance(obj, dict):
            continue
        if "error" in obj:
            errors += 1
            continue
        if "symbols" in obj or "action" in obj:
            ok += 1
            symbols += len(obj.get("symbols", {}))
    errors += len([l for l in err.splitlines() if "error" in l.lower()])
    return {"ok": ok, "errors": errors, "symbols": symbols, "stderr": err[-2000:]}


def measure(inst, files, nbytes, a, tmp):
    if a.warmup:
        rspamc(inst.port, files[:a.warmup], a.concurrency, os.path.join(tmp, "warm.lst"))
    w = inst.worker_pid()
    if w != inst.worker:
        inst.fail("normal worker restarted during warm-up (crash?)")
    c0 = cpu_s(w)
    wall, client, res = rspamc(inst.port, files, a.concurrency, os.path.join(tmp, "all.lst"))
    c1 = cpu_s(w)
    inst.check_alive()
    if inst.worker_pid() != w:
        inst.fail("normal worker restarted during the run (crash?)")
    if res["ok"] != len(files):
        inst.fail("rspamc got %d replies for %d messages (%d errors)\n%s" % (
            res["ok"], len(files), res["errors"], res["stderr"]))
    cpu = c1 - c0
    return {
        "msgs_per_s_per_core": round(len(files) / cpu, 1),
        "mb_per_s_per_core": round(nbytes / 1e6 / cpu, 3),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "msgs_per_s_wall": round(len(files) / wall, 1),
        "client_cpu_s": round(client, 2),
        "symbols_per_msg": round(res["symbols"] / len(files), 2),
    }


def sa_load_facts(inst):
    """What the spamassassin plugin loaded, from rspamd's own log and controller."""
    log = log_text(inst.dir)
    own = re.compile(r"^\S+ \S+ #\d+\((?:main|hs_helper)\)")
    lines = [l for l in log.splitlines() if own.match(l)]
    files = sum(1 for l in lines if "loading SA rules from" in l)
    bad_re = sum(1 for l in lines if "cannot parse regexp" in l.lower())
    classes = re.findall(r"compiled class .* (\d+)/(\d+) regexps", "\n".join(lines))
    hs_ok = sum(int(x) for x, _ in classes)
    regexps = sum(int(y) for _, y in classes)
    syms = 0
    try:
        groups = json.loads(http_get(inst.cport, "/symbols", timeout=10))
        syms = sum(len(g.get("rules", [])) for g in groups)
    except (OSError, ValueError):
        pass
    return {"sa_files": files, "regexps": regexps, "regexps_in_hyperscan": hs_ok,
            "regex_classes": len(classes), "regexps_rejected": bad_re,
            "symbols": syms}


def unsupported_evals(inst):
    """SA eval functions the plugin cannot run, as logged at config time and by the worker."""
    return sorted(set(re.findall(r"\((?:main|normal)\).*(?:is not supported in|cannot find appropriate eval "
                                 r"rule for function|unimplemented mime check) (\w+)", log_text(inst.dir))))


def rspamd_version():
    out = subprocess.run(["rspamd", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version\s+(\S+)", out)
    return m.group(1) if m else out.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", help="directory with NAME.txt messages (default: fetch the SpamAssassin corpus)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=300, help="messages sent before the timed pass")
    ap.add_argument("--start-timeout", type=int, default=300)
    ap.add_argument("--hs-timeout", type=int, default=1200, help="seconds to wait for hyperscan compile")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    a = ap.parse_args()

    if not shutil.which("rspamd") or not shutil.which("rspamc"):
        sys.exit("rspamd_peer: rspamd/rspamc not installed (Debian package rspamd)")
    if not glob.glob(SA_GLOB) or not os.path.exists(SA_PLUGIN):
        sys.exit("rspamd_peer: need %s and %s" % (SA_GLOB, SA_PLUGIN))
    corpus = a.corpus or subprocess.run([os.path.join(SRC, "tests", "corpus", "fetch-spamassassin-corpus.sh")],
                                        capture_output=True, text=True, check=True).stdout.strip()
    files = sorted(glob.glob(os.path.join(corpus, "**", "*.txt"), recursive=True))
    if not files:
        sys.exit("rspamd_peer: no *.txt messages under %s" % corpus)
    nbytes = sum(os.path.getsize(f) for f in files)

    tmp = tempfile.mkdtemp(prefix="sekisho-rspamd-")
    inst = None

    def on_signal(sig, _frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGINT, on_signal)     # also when started in the background (SIGINT ignored)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    result = {"rspamd_version": rspamd_version(), "rules_loaded": 0, "messages": len(files), "bytes": nbytes,
              "concurrency": a.concurrency}
    try:
        print("corpus: %s, %d messages, %.1f MB" % (corpus, len(files), nbytes / 1e6), flush=True)

        inst = Instance(tmp, "sa_rules", True)
        inst.start(a.start_timeout)
        print("sa_rules: rspamd up in %.0f s, waiting for hs_helper to compile the SA regexps" % inst.ready_s,
              flush=True)
        hs_kind, hs_loaded = inst.wait_hyperscan(a.hs_timeout)
        facts = sa_load_facts(inst)
        facts["hyperscan_db_in_worker"] = "%s, %d regexps" % (hs_kind, hs_loaded)
        facts["hs_compile_wait_s"] = round(inst.hs_wait_s, 1)
        result["rules_loaded"] = facts["regexps"]
        result["rules_detail"] = facts
        print("sa_rules: %d files, %d regexps registered (%d compiled into hyperscan, the rest PCRE), "
              "%d rejected by rspamd's regexp parser, %d symbols; hyperscan ready after %.0f s more" % (
                  facts["sa_files"], facts["regexps"], facts["regexps_in_hyperscan"], facts["regexps_rejected"],
                  facts["symbols"], inst.hs_wait_s), flush=True)
        result["sa_rules"] = measure(inst, files, nbytes, a, tmp)
        facts["eval_functions_unsupported"] = unsupported_evals(inst)
        print("sa_rules: %d SA eval functions rspamd lacks were met in the run (rules using them never match; "
              "the worker logs an error line at each use)" % len(facts["eval_functions_unsupported"]), flush=True)
        inst.stop()

        inst = Instance(tmp, "no_rules", False)
        inst.start(a.start_timeout)
        result["no_rules"] = measure(inst, files, nbytes, a, tmp)
        inst.stop()
        inst = None
    except KeyboardInterrupt:
        print("rspamd_peer: interrupted, cleaning up", file=sys.stderr)
        raise SystemExit(130)
    finally:
        if inst is not None:
            inst.stop()
        if a.keep:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    for k in ("sa_rules", "no_rules"):
        r = result[k]
        print("%-8s %7.1f msgs/s per core, %6.3f MB/s per core (worker CPU %.1f s; wall %.1f s = %.1f msgs/s; "
              "rspamc CPU %.1f s; %.1f symbols/msg)" % (
                  k, r["msgs_per_s_per_core"], r["mb_per_s_per_core"], r["cpu_s"], r["wall_s"],
                  r["msgs_per_s_wall"], r["client_cpu_s"], r["symbols_per_msg"]))
    print("SA rules cost rspamd %.1fx its parse-only time per message" % (
        result["sa_rules"]["cpu_s"] / result["no_rules"]["cpu_s"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
