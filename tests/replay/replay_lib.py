"""Runs sekisho-replay and parses its JSON lines."""
import json
import os
import subprocess

SRC = os.environ.get("SEKISHO_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SEKISHO_BUILD_ROOT") or os.path.join(SRC, "build")
REPLAY = os.path.join(BUILD, "tools", "replay", "sekisho-replay")
TESTDATA = os.environ.get("SEKISHO_TESTDATA") or os.path.join(SRC, "..", "shared", "testdata")


def replay(path, *args, timeout=120):
    r = subprocess.run([REPLAY] + list(args) + [path], capture_output=True, timeout=timeout)
    out = {"returncode": r.returncode, "stderr": r.stderr.decode(errors="replace"), "stdout": r.stdout,
           "messages": [], "sessions": [], "summary": None}
    for line in r.stdout.decode(errors="replace").splitlines():
        o = json.loads(line)
        if o["type"] == "message":
            out["messages"].append(o)
        elif o["type"] == "session":
            out["sessions"].append(o)
        elif o["type"] == "summary":
            out["summary"] = o
    return out


def key(m):
    """What a message must reproduce exactly."""
    return (m["mail_from"], tuple(m["rcpt_to"]), m["size"], m["sha256"])
