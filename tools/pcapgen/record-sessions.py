#!/usr/bin/python3
"""Records SMTP sessions between real clients and real servers on the
virtual wire, then extracts their packet shapes into a JSON profile that
sekisho-pcapgen --shapes follows.

    tools/pcapgen/record-sessions.py [--dir CACHE] [--profile FILE] [SCENARIO ...]

The wire is appliance/wire/wire.sh's (namespaces outside/inside, offloads
off, MTU 1500); no dataplane is needed to record, so a Linux bridge joins
the two veths in the middle namespace. Servers in `inside`: a private
Postfix instance (appliance/wire/postfix-instance.sh, with STARTTLS; it
offers PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8) on 192.0.2.2 and Debian's
aiosmtpd (appliance/wire/smtp-sink.py, with AUTH and STARTTLS) on
192.0.2.3. Clients in `outside`: swaks, Python's smtplib and Perl's
Net::SMTP (BDAT). tcpdump captures each session on the client's interface.

Writes CACHE/NAME.pcap per scenario and the profile (default
CACHE/shapes.json; see shapes.py for what it holds). Needs root.
Default CACHE: .cache/sessions in the source tree ($SEKISHO_CACHE/sessions
if set).
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
WIRE = os.path.join(SRC, "appliance", "wire", "wire.sh")
POSTFIX = os.path.join(SRC, "appliance", "wire", "postfix-instance.sh")
SINK = os.path.join(SRC, "appliance", "wire", "smtp-sink.py")
BDAT_CLIENT = os.path.join(SRC, "tests", "fixtures", "netsmtp_bdat.pl")
PY = "/usr/bin/python3"
POSTFIX_IP, AIOSMTPD_IP = "192.0.2.2", "192.0.2.3"
sys.path.insert(0, HERE)
import shapes  # noqa: E402


def default_cache():
    """The project's .cache/ (beside the npm corpus), or $SEKISHO_CACHE."""
    return os.path.join(os.environ.get("SEKISHO_CACHE") or os.path.join(SRC, ".cache"), "sessions")


SMTPLIB_MULTI = r'''
import smtplib, sys
host, big, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "tls"
ja = ("From: =?UTF-8?B?5pel5pys6Kqe?= <a@outside.test>\r\nTo: b@inside.test\r\n"
      "Subject: =?UTF-8?B?5Lya6K2w44Gu6K2w5LqL6Yyy?=\r\nMIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
      + "お世話になっております。添付の資料をご確認ください。\r\n" * 40).encode()
plain = b"From: a@outside.test\r\nTo: c@inside.test\r\nSubject: second\r\n\r\n" + \
        b"".join(b"line %05d of a plain message, with .dots\r\n.leading dot\r\n" % i for i in range(big))
s = smtplib.SMTP(host, 25, local_hostname="client.outside.test")
s.ehlo()
if tls:
    import ssl
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx); s.ehlo()
s.sendmail("a@outside.test", ["b@inside.test"], ja, mail_options=["BODY=8BITMIME"])
s.rset()
try:
    s.sendmail("a@outside.test", ["c@inside.test", "nobody@refused.test"], plain)
except smtplib.SMTPRecipientsRefused:
    pass
s.sendmail("", ["b@inside.test", "d@inside.test"], b"From: MAILER-DAEMON@outside.test\r\nTo: b@inside.test\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\n\r\nnull sender\r\n")
s.quit()
'''

JA_ISO2022 = ("From: =?ISO-2022-JP?B?GyRCJTUlXSE8JUgbKEI=?= <info@example.jp>\r\nTo: bob@inside.test\r\n"
              "Subject: =?ISO-2022-JP?B?GyRCRXY6cSROJCpDTiRpJDsbKEI=?=\r\nMIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")


def japanese_file(tmp):
    body = ("いつもご利用いただきありがとうございます。\r\n下記のリンクからご確認ください。\r\n"
            "https://example.jp/login\r\n" * 30).encode("iso-2022-jp")
    path = os.path.join(tmp, "ja.eml")
    with open(path, "wb") as f:
        f.write(JA_ISO2022.encode() + body)
    return path


def blob(tmp, name, size, seed):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(__import__("random").Random(seed).randbytes(size))
    return path


def bdat_file(tmp):
    path = os.path.join(tmp, "bdat.eml")
    lines = [b"From: Alice <alice@outside.test>", b"To: bob@inside.test", b"Subject: chunked", b""]
    lines += [b"%05d " % i + b"y" * 70 for i in range(2000)]
    with open(path, "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
    return path


POSTFIX_CLIENT = r"""set -eu
d=$1; dest=$2; n=$3; tls=$4
mkdir -p $d/etc $d/spool $d/data; chmod 755 $d; chown postfix $d/data
cat > $d/etc/main.cf <<MAIN
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = client.outside.test
mydestination =
relayhost = [$dest]
smtp_tls_security_level = $tls
default_destination_concurrency_limit = 1
defer_transports = smtp
alias_maps =
alias_database =
maillog_file = $d/maillog
maillog_file_prefixes = $d
MAIN
sed 's/^smtp\(\s\+inet\s\+n\s\+-\s\+\)y/smtp\1n/' /etc/postfix/master.cf > $d/etc/master.cf
postfix -c $d/etc check
postfix -c $d/etc start >/dev/null 2>&1
for i in $(seq 1 $n); do
  { printf 'From: sender%d@outside.test\r\nTo: user%d@inside.test\r\nSubject: relayed %d\r\n' $i $i $i
    printf 'Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    for j in $(seq 1 $((i * 150))); do
      printf 'line %05d \xe3\x81\x8a\xe4\xb8\x96\xe8\xa9\xb1 of message %d, relayed by Postfix\r\n' $j $i
    done
  } | sendmail -C $d/etc -f sender$i@outside.test user$i@inside.test user$((i + 1))@inside.test
done
sleep 1
postconf -c $d/etc -e defer_transports=
postfix -c $d/etc reload >/dev/null 2>&1
sleep 1
postqueue -c $d/etc -f
for k in $(seq 1 100); do [ -z "$(postqueue -c $d/etc -j)" ] && break; sleep 0.2; done
sleep 3  # the connection cache closes the session (QUIT) after smtp_connection_cache_time_limit
postfix -c $d/etc stop >/dev/null 2>&1
grep -c 'status=sent' $d/maillog
"""


def postfix_client(tmp, dest, n, tls):
    """Postfix's own smtp client (a private instance in `outside`) relaying a
    queue of n messages to dest: how MTAs talk to each other."""
    path = os.path.join(tmp, "postfix-client.sh")
    with open(path, "w") as f:
        f.write(POSTFIX_CLIENT)
    d = os.path.join(tmp, "pfc-%s-%s" % (dest.replace(".", ""), tls))
    return ["bash", path, d, dest, str(n), tls]


def swaks(ip, *args):
    return ["swaks", "--server", ip, "--helo", "client.outside.test"] + list(args)


# name: (server, client, argv builder(tmp) -> argv)
SCENARIOS = {
    "postfix_swaks_one": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--from", "alice@outside.test", "--to", "bob@inside.test", "--h-Subject", "plain")),
    "postfix_swaks_pipelining": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--pipeline", "--from", "alice@outside.test",
        "--to", "bob@inside.test,carol@inside.test,dave@inside.test", "--h-Subject", "pipelined")),
    "postfix_swaks_refused": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--from", "alice@outside.test", "--to", "bob@inside.test,nobody@refused.test",
        "--h-Subject", "one refused")),
    "postfix_swaks_large": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--from", "alice@outside.test", "--to", "bob@inside.test",
        "--attach", "@" + blob(t, "large.bin", 3 << 20, 1), "--h-Subject", "large attachment")),
    "postfix_swaks_japanese": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--from", "info@example.jp", "--to", "bob@inside.test", "--data", "@" + japanese_file(t))),
    "postfix_swaks_starttls": ("postfix", "swaks", lambda t: swaks(
        POSTFIX_IP, "--tls", "--from", "alice@outside.test", "--to", "bob@inside.test",
        "--attach", "@" + blob(t, "mid.bin", 60000, 2), "--h-Subject", "encrypted")),
    "postfix_smtplib_multi": ("postfix", "smtplib", lambda t: [PY, script(t), POSTFIX_IP, "3000", "clear"]),
    "postfix_smtplib_starttls": ("postfix", "smtplib", lambda t: [PY, script(t), POSTFIX_IP, "300", "tls"]),
    "postfix_netsmtp_bdat": ("postfix", "net-smtp", lambda t: [
        "perl", BDAT_CLIENT, POSTFIX_IP, bdat_file(t), "3", "alice@outside.test", "bob@inside.test"]),
    "postfix_postfix_relay": ("postfix", "postfix", lambda t: postfix_client(t, POSTFIX_IP, 4, "none")),
    "postfix_postfix_starttls": ("postfix", "postfix", lambda t: postfix_client(t, POSTFIX_IP, 3, "may")),
    "aiosmtpd_postfix_relay": ("aiosmtpd", "postfix", lambda t: postfix_client(t, AIOSMTPD_IP, 4, "none")),
    "aiosmtpd_swaks_auth": ("aiosmtpd", "swaks", lambda t: swaks(
        AIOSMTPD_IP, "--from", "alice@outside.test", "--to", "bob@inside.test", "--auth", "PLAIN",
        "--auth-user", "alice", "--auth-password", "recorded-test-password", "--h-Subject", "authenticated")),
    "aiosmtpd_swaks_pipelining": ("aiosmtpd", "swaks", lambda t: swaks(
        AIOSMTPD_IP, "--pipeline", "--from", "alice@outside.test", "--to", "bob@inside.test,nobody@refused.test",
        "--attach", "@" + blob(t, "small.bin", 20000, 3), "--h-Subject", "pipelined")),
    "aiosmtpd_smtplib_multi": ("aiosmtpd", "smtplib", lambda t: [PY, script(t), AIOSMTPD_IP, "1000", "clear"]),
    "aiosmtpd_swaks_starttls": ("aiosmtpd", "swaks", lambda t: swaks(
        AIOSMTPD_IP, "--tls", "--from", "alice@outside.test", "--to", "bob@inside.test", "--h-Subject", "tls")),
}


def script(tmp):
    path = os.path.join(tmp, "smtplib_client.py")
    with open(path, "w") as f:
        f.write(SMTPLIB_MULTI)
    return path


def sh(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, **kw)


class Wire:
    """wire.sh's namespaces with a Linux bridge where the appliance would be."""

    def __init__(self):
        self.id = "rec" + secrets.token_hex(2)
        self.procs = []

    def __enter__(self):
        sh([WIRE, "gc"])
        r = sh([WIRE, "up", self.id], env=dict(os.environ, SEKISHO_WIRE_OWNER=str(os.getpid())))
        if r.returncode:
            raise RuntimeError("wire.sh up: " + r.stderr)
        self.env = dict(kv.split("=", 1) for kv in r.stdout.split())
        app = self.env["NS_APP"]
        for argv in (["ip", "-n", app, "link", "add", "br0", "type", "bridge"],
                     ["ip", "-n", app, "link", "set", self.env["IF_A"], "master", "br0"],
                     ["ip", "-n", app, "link", "set", self.env["IF_B"], "master", "br0"],
                     ["ip", "-n", app, "link", "set", "br0", "up"],
                     ["ip", "-n", self.env["NS_IN"], "addr", "add", AIOSMTPD_IP + "/24", "dev", "sk%si" % self.id]):
            r = sh(argv)
            if r.returncode:
                self.close()
                raise RuntimeError(" ".join(argv) + ": " + r.stderr)
        self.if_out = "sk%so" % self.id
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        sh([WIRE, "down", self.id])

    def run(self, ns, argv, **kw):
        return sh(["ip", "netns", "exec", self.env[ns]] + list(argv), **kw)

    def spawn(self, ns, argv, log):
        p = subprocess.Popen(["ip", "netns", "exec", self.env[ns]] + list(argv), stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p


def wait_for(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def tool_versions():
    v = {}
    for name, argv in (("postfix", ["postconf", "-d", "-h", "mail_version"]),
                       ("swaks", ["swaks", "--version"]),
                       ("aiosmtpd", [PY, "-c", "import aiosmtpd; print(aiosmtpd.__version__)"]),
                       ("python", [PY, "-c", "import sys; print(sys.version.split()[0])"]),
                       ("net-smtp", ["perl", "-MNet::SMTP", "-e", "print $Net::SMTP::VERSION"]),
                       ("kernel", ["uname", "-r"])):
        try:
            out = sh(argv).stdout.strip().splitlines()
            v[name] = out[0].replace("swaks version ", "") if out else None
        except OSError:
            v[name] = None
    return v


def record_all(cache, names):
    os.makedirs(cache, exist_ok=True)
    recorded = []
    with tempfile.TemporaryDirectory(prefix="sekisho-rec-") as tmp, Wire() as w:
        os.chmod(tmp, 0o755)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=inside.sekisho.test", "-keyout", key, "-out", cert], check=True)
        os.chmod(key, 0o644)
        pdir = os.path.join(tmp, "postfix")
        r = w.run("NS_IN", [POSTFIX, "up", pdir, POSTFIX_IP])
        if r.returncode:
            raise RuntimeError("postfix-instance.sh up: " + r.stdout + r.stderr)
        try:
            for kv in ("smtpd_tls_cert_file=" + cert, "smtpd_tls_key_file=" + key, "smtpd_tls_security_level=may",
                       "smtpd_recipient_restrictions=check_recipient_access inline:{refused.test=REJECT}",
                       "message_size_limit=52428800"):
                sh(["postconf", "-c", os.path.join(pdir, "etc"), "-e", kv], check=True)
            w.run("NS_IN", ["postfix", "-c", os.path.join(pdir, "etc"), "reload"])
            slog = os.path.join(tmp, "sink.log")
            w.spawn("NS_IN", [PY, SINK, "--listen", AIOSMTPD_IP, "--dir", os.path.join(tmp, "mail"),
                              "--refuse", "nobody@refused.test", "--tls", cert, key,
                              "--auth", "alice:recorded-test-password"], slog)
            if not wait_for(lambda: "listening" in open(slog).read(), 15):
                raise RuntimeError("smtp-sink did not start: " + open(slog).read())
            time.sleep(1.5)  # postfix reload
            for name in names:
                server, client, build = SCENARIOS[name]
                ip = POSTFIX_IP if server == "postfix" else AIOSMTPD_IP
                pcap = os.path.join(cache, name + ".pcap")
                cap = subprocess.Popen(["ip", "netns", "exec", w.env["NS_OUT"], "tcpdump", "-i", w.if_out, "-U", "--immediate-mode",
                                        "-s", "0", "-w", pcap, "tcp port 25 and host " + ip],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                line = cap.stderr.readline().decode(errors="replace")  # "listening on ..."
                if "listening" not in line:
                    raise RuntimeError("tcpdump: " + line + cap.stderr.read().decode(errors="replace"))
                time.sleep(0.2)
                r = w.run("NS_OUT", build(tmp), timeout=120)
                time.sleep(1.0)
                cap.send_signal(signal.SIGINT)
                cap.wait(10)
                if r.returncode not in (0, 24, 25):  # swaks: 24/25 = a recipient refused (expected)
                    raise RuntimeError("%s: client exited %d: %s %s" % (name, r.returncode, r.stdout[-1500:],
                                                                        r.stderr[-800:]))
                if os.path.getsize(pcap) <= 24 or r.returncode:
                    print("%s: rc %d, pcap %d bytes:\n%s\n%s" % (name, r.returncode, os.path.getsize(pcap), r.stdout[-1200:], r.stderr[-600:]), file=sys.stderr)
                recorded.append({"name": name, "server": server, "client": client, "pcap": pcap})
                print("recorded %-28s %8d bytes" % (name, os.path.getsize(pcap)), file=sys.stderr)
        finally:
            w.run("NS_IN", ["postfix", "-c", os.path.join(pdir, "etc"), "stop"])
    return recorded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=default_cache())
    ap.add_argument("--profile", default=None)
    ap.add_argument("--extract-only", action="store_true",
                    help="no recording: extract the profile from the pcaps already in --dir")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or list(SCENARIOS)
    if a.extract_only:
        recorded = [{"name": n, "server": SCENARIOS[n][0], "client": SCENARIOS[n][1],
                     "pcap": os.path.join(a.dir, n + ".pcap")} for n in names
                    if os.path.exists(os.path.join(a.dir, n + ".pcap"))]
        write_profile(shapes.extract(recorded, tool_versions()), a.profile or os.path.join(a.dir, "shapes.json"))
        return
    if os.geteuid() != 0:
        sys.exit("record-sessions: needs root (network namespaces, tcpdump)")
    for tool in ("swaks", "tcpdump", "postfix", "perl", "ethtool"):
        if not shutil.which(tool):
            sys.exit("record-sessions: %s is missing" % tool)
    recorded = record_all(a.dir, names)
    write_profile(shapes.extract(recorded, tool_versions()), a.profile or os.path.join(a.dir, "shapes.json"))


def write_profile(profile, out):
    profile["recorded"] = [t["name"] for t in profile["templates"]]
    with open(out + ".tmp", "w") as f:
        json.dump(profile, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    os.replace(out + ".tmp", out)
    print("record-sessions: %d sessions -> %s (%d bytes)" % (len(profile["templates"]), out, os.path.getsize(out)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
