#!/usr/bin/python3
"""The runtime's X-Spam-Relays-* pseudo-headers against SpamAssassin's own.

    relays_vs_spamassassin.py RELAYS_DUMP CORPUS_DATA_DIR [--show N]

Runs SpamAssassin (Debian's Mail::SpamAssassin, Perl) over every message of
the corpus and prints its X-Spam-Relays-Trusted/-Untrusted/-Internal/
-External values (no trusted_networks configured: SpamAssassin's inference),
runs RELAYS_DUMP (tests/rules/relays_dump.cpp) over the same messages, and
compares: per message (all four values equal), per pseudo-header value, and
per relay (each "[ ... ]" of SpamAssassin's untrusted+trusted lists found
identical in the runtime's). Prints the first N differing relays and one
JSON summary line. Exit 77 when SpamAssassin's Perl modules are missing.
"""
import json
import os
import re
import subprocess
import sys

PERL = r'''
use strict; use warnings;
use Mail::SpamAssassin; use Mail::SpamAssassin::PerMsgStatus;
use JSON::PP; use File::Find;
my $dir = shift;
my $sa = Mail::SpamAssassin->new({ local_tests_only => 1, dont_copy_prefs => 1,
  userprefs_filename => '/dev/null', config_text => "use_bayes 0\n" });
$sa->init(0);
my @files;
find(sub { push @files, $File::Find::name if /\.json$/ && $_ ne 'file_list.json' }, $dir);
my $js = JSON::PP->new->canonical;
for my $f (sort @files) {
  open my $fh, '<:raw', $f or next; local $/; my $j = <$fh>; close $fh;
  my $d = eval { JSON::PP->new->utf8->decode($j) } or next;
  my $t = $d->{text}; next unless defined $t;
  utf8::encode($t);
  my $msg = $sa->parse($t, 1);
  my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $msg);
  $pms->extract_message_metadata();
  my %o = (file => $f);
  for my $k (qw(Trusted Untrusted Internal External)) { $o{$k} = $pms->get("X-Spam-Relays-$k"); }
  print $js->encode(\%o), "\n";
  $pms->finish; $msg->finish;
}
'''

KEYS = ("Trusted", "Untrusted", "Internal", "External")


def load(lines):
    out = {}
    for l in lines:
        l = l.strip()
        if l:
            o = json.loads(l)
            out[o["file"]] = o
    return out


def relays(s):
    return re.findall(r"\[ ip=.*? msa=\d \]", s or "")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    dump, data = sys.argv[1], sys.argv[2]
    show = int(sys.argv[sys.argv.index("--show") + 1]) if "--show" in sys.argv else 20
    if subprocess.run(["perl", "-MMail::SpamAssassin", "-e1"], capture_output=True).returncode != 0:
        print("SKIP: Mail::SpamAssassin not installed (apt-get install spamassassin)")
        return 77
    sa = load(subprocess.run(["perl", "-e", PERL, data], capture_output=True, text=True,
                             errors="surrogateescape").stdout.splitlines())
    rt = load(subprocess.run([dump, data], capture_output=True, text=True,
                             errors="surrogateescape").stdout.splitlines())
    msgs = same_msg = 0
    vals = same_vals = 0
    rel = same_rel = 0
    shown = 0
    for f, a in sorted(sa.items()):
        b = rt.get(f)
        if b is None:
            continue
        msgs += 1
        ok = True
        for k in KEYS:
            vals += 1
            if (a[k] or "") == (b[k] or ""):
                same_vals += 1
            else:
                ok = False
        same_msg += ok
        ra = relays(a["Trusted"]) + relays(a["Untrusted"])
        rb = set(relays(b["Trusted"]) + relays(b["Untrusted"]))
        # Compare without the intl flag (trust is compared by the values above).
        rb_n = {re.sub(r" intl=\d ", " ", x) for x in rb}
        for x in ra:
            rel += 1
            if re.sub(r" intl=\d ", " ", x) in rb_n:
                same_rel += 1
            elif shown < show:
                shown += 1
                cand = [y for y in relays(b["Trusted"]) + relays(b["Untrusted"])
                        if re.search(r"by=(\S*)", y).group(1) == re.search(r"by=(\S*)", x).group(1)]
                print(f"{os.path.basename(os.path.dirname(f))}/{os.path.basename(f)}\n  SA:      {x}\n  runtime: {cand[0] if cand else '(none)'}")
        if len(relays(b["Trusted"]) + relays(b["Untrusted"])) > len(ra):
            rel += len(relays(b["Trusted"]) + relays(b["Untrusted"])) - len(ra)  # extra relays count as misses
    summary = {
        "messages": msgs,
        "messages_identical_pct": round(100.0 * same_msg / max(msgs, 1), 2),
        "values_identical_pct": round(100.0 * same_vals / max(vals, 1), 2),
        "relays": rel,
        "relays_identical_pct": round(100.0 * same_rel / max(rel, 1), 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
