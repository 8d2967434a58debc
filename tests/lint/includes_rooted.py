#!/usr/bin/env python3
"""Every quoted #include names its file from the repository root (issue 15,
item 6), so one path means one file wherever it is written. Prints each
include that does not resolve from the root and exits 1 if any."""
import os
import re
import subprocess
import sys

root = os.environ.get("SEKISHO_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
files = subprocess.run(["git", "-C", root, "ls-files", "*.cpp", "*.hpp", "*.h", "*.cc", "*.c"],
                       capture_output=True, text=True, check=True).stdout.split()
include = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
bad = []
for f in files:
    with open(os.path.join(root, f), errors="replace") as fh:
        for name in include.findall(fh.read()):
            if not os.path.isfile(os.path.join(root, name)):
                bad.append("%s: #include \"%s\" is not a path from the repository root" % (f, name))
print("\n".join(bad) if bad else "%d files, every quoted include rooted" % len(files))
sys.exit(1 if bad else 0)
