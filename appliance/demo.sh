#!/usr/bin/env bash
# The main job on its embedded default: install what is missing, build,
# build the virtual wire, run sekisho-dataplane on it, deliver real mail
# from `outside` (swaks) to a real SMTP server in `inside` (aiosmtpd), and
# print what crossed the wire. Everything is removed on exit or Ctrl-C.
#   appliance/demo.sh [--keep-running]   (needs root for namespaces)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces); try: sudo $0" >&2; exit 2; }
appliance/setup.sh

ID=demo
WIRE=appliance/wire/wire.sh
TEL=appliance/wire/telemetry.py
PREFIX=sekisho
work=$(mktemp -d /tmp/sekisho-demo.XXXXXX)
dp_pid=""; sink_pid=""; ctl_pid=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$ctl_pid" ]; then kill "$ctl_pid" 2>/dev/null || true; wait "$ctl_pid" 2>/dev/null || true; fi
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$dp_pid" ] && kill -0 "$dp_pid" 2>/dev/null; then
    kill -INT "$dp_pid"; wait "$dp_pid" 2>/dev/null || true
  fi
  "$WIRE" down "$ID"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

"$WIRE" down "$ID"
eval "$("$WIRE" up "$ID")"
echo "== virtual wire: $NS_OUT ($IP_OUT) <-> [$NS_APP: sekisho-dataplane on $IF_A, $IF_B] <-> $NS_IN ($IP_IN)"

# The shipped rule packs and the demo's policy, compiled to one artifact.
build/tools/sekishoctl/sekishoctl rules compile --quiet -o "$work/rules.srs" rules/packs appliance/demo-policy.cf \
  > "$work/compile.log" 2>&1 || { cat "$work/compile.log"; exit 1; }
echo "== ruleset: $(grep -m1 -E 'rules|artifact' "$work/compile.log" || echo compiled) -> $work/rules.srs"
# The shipped configuration, with the journal, spool and ruleset in this run's work dir.
sed -e "s#\"/var/lib/sekisho/journal\"#\"$work/journal\"#" -e "s#\"/var/lib/sekisho/spool\"#\"$work/spool\"#" \
  -e "s#^  \# ruleset = .*#  ruleset = \"$work/rules.srs\";#" \
  -e "s#\"/var/lib/sekisho/control.db\"#\"$work/control.db\"#" -e "s#\"/var/lib/sekisho/audit\\.#\"$work/audit.#" \
  appliance/sekisho.conf > "$work/sekisho.conf"
ip netns exec "$NS_APP" build/dataplane/dpdk/sekisho-dataplane -c "$work/sekisho.conf" >"$work/dataplane.log" 2>&1 &
dp_pid=$!
for _ in $(seq 100); do grep -q "ready" "$work/dataplane.log" && break; kill -0 $dp_pid 2>/dev/null || break; sleep 0.1; done
grep -q "ready" "$work/dataplane.log" || { cat "$work/dataplane.log"; echo "demo: dataplane did not start" >&2; exit 1; }
grep "ready" "$work/dataplane.log"

ip netns exec "$NS_IN" /usr/bin/python3 appliance/wire/smtp-sink.py --listen "$IP_IN" --dir "$work/mail" \
  --refuse nobody@inside.test >"$work/sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 50); do grep -q listening "$work/sink.log" && break; sleep 0.1; done

send() {  # label, swaks args...
  local label=$1; shift
  local out rc=0
  out=$(ip netns exec "$NS_OUT" swaks --server "$IP_IN" --from alice@outside.test --helo outside.test "$@" 2>&1) || rc=$?
  printf '  %-34s client saw: %s\n' "$label" \
    "$(echo "$out" | grep -E '^(<-|<\*\*) +[245][0-9][0-9] ' | grep -vE ' (221|354|421) ' | tail -1 | cut -c5-80)"
}
echo "== sending real mail with swaks from $NS_OUT"
head -c 300000 /dev/urandom > "$work/report.bin"
send "plain message"          --to bob@inside.test --h-Subject "Quarterly figures"
send "with an attachment"     --to bob@inside.test --attach "@$work/report.bin" --h-Subject "Report attached"
send "pipelined, 2 recipients" --to bob@inside.test,carol@inside.test --pipeline --h-Subject "Team lunch"
send "one refused recipient"  --to carol@inside.test,nobody@inside.test --h-Subject "Partly refused"
send "null sender (bounce)"   --to bob@inside.test -f '<>' --h-Subject "Undeliverable"
send "spam.test sender (reject)" --to bob@inside.test -f spammer@spam.test --h-Subject "Cheap pills"
send "to finance@ (quarantine)"  --to finance@inside.test --h-Subject "Invoice 4711 overdue"
echo "== content verdicts: messages made by appliance/demo-mail.py, scanned with the rule packs"
/usr/bin/python3 appliance/demo-mail.py "$work/msgs"
send "clean mail"                     --to bob@inside.test --data "@$work/msgs/clean.eml"
send "Japanese phishing (ISO-2022-JP)" --to bob@inside.test --data "@$work/msgs/phishing-ja.eml"
send "Word macro attachment (.docm)"  --to bob@inside.test --data "@$work/msgs/macro.eml"
send "password-protected ZIP (PPAP)"  --to bob@inside.test --data "@$work/msgs/ppap.eml"

sleep 0.5
echo "== delivered to the server in $NS_IN"
for j in "$work"/mail/*.json; do
  /usr/bin/python3 -c '
import email, email.policy, json, sys
m = json.load(open(sys.argv[1]))
subj = email.message_from_bytes(open(sys.argv[1][:-5] + ".eml", "rb").read(), policy=email.policy.default)["subject"]
print("  from <%s> to %s, %d bytes, sha256 %s..., \"%s\"" % (m["mail_from"], ",".join(m["rcpt_to"]), m["size"], m["sha256"][:16], subj))' "$j"
done
echo "== what the dataplane inspected and decided (event journal)"
sleep 0.3
cat "$work"/journal/*.jsonl 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e.get("type") != "message":
        continue
    v = e["verdict"]["action"] + (" (" + e["verdict"]["rule"] + ")" if e["verdict"].get("rule") else "")
    if e["verdict"].get("rules"):
        v += ", score %.1f: %s" % (e["verdict"]["score"], " ".join(r["rule"] for r in e["verdict"]["rules"]))
    att = "; ".join("%s%s%s" % (a["name"], " [macros]" if a["macros"] else "", " [encrypted]" if a["encrypted"] else "")
                    for a in e.get("attachments", []))
    print("  <%s> -> %s \"%s\"%s: %d bytes, %s%s" % (e["mail_from"], ",".join(e["rcpt_to"]) or "-", e["subject"],
          " (" + att + ")" if att else "", e["size"], v, ", spooled " + e["spool"].split("/")[-1] if e.get("spool") else ""))
'
echo "== control plane: sekisho-control in $NS_OUT (a management host; its releases cross the appliance)"
CTL=build/control/sekisho-control
SCTL=build/tools/sekishoctl/sekishoctl
token=$("$CTL" -c "$work/sekisho.conf" token create demo --admin 2>/dev/null | tail -1)
ip netns exec "$NS_OUT" "$CTL" -c "$work/sekisho.conf" >"$work/control.log" 2>&1 &
ctl_pid=$!
for _ in $(seq 100); do grep -q listening "$work/control.log" && break; sleep 0.1; done
grep -m1 listening "$work/control.log" | sed 's/^/  /'
ctl() { ip netns exec "$NS_OUT" env SEKISHO_URL=http://127.0.0.1:8025 SEKISHO_TOKEN="$token" "$SCTL" "$@"; }
for _ in $(seq 50); do [ "$(ctl quarantine list state=held 2>/dev/null | wc -l)" -ge 3 ] && break; sleep 0.1; done
echo "  \$ sekishoctl quarantine list state=held"
ctl quarantine list state=held 2>&1 | sed 's/^/    /'
held_id=$(ctl quarantine list state=held category=encrypted --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)["rows"]
print(rows[0]["id"] if rows else "")')
[ -n "$held_id" ] || held_id=$(ctl quarantine list state=held --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["id"])')
before=$(ls "$work"/mail/*.json 2>/dev/null | wc -l)
echo "  \$ sekishoctl quarantine release $held_id"
ctl quarantine release "$held_id" 2>&1 | sed 's/^/    /'
for _ in $(seq 50); do [ "$(ls "$work"/mail/*.json 2>/dev/null | wc -l)" -gt "$before" ] && break; sleep 0.1; done
newest=$(ls "$work"/mail/*.json | tail -1)
/usr/bin/python3 - "$newest" "$held_id" "$work/journal" <<'PY'
import json, sys, glob
m = json.load(open(sys.argv[1]))
held = {}
for f in sorted(glob.glob(sys.argv[3] + "/*.jsonl")):
    for line in open(f):
        e = json.loads(line)
        if e.get("id") == sys.argv[2]:
            held = e
same = "byte-identical to what the client sent" if held and m["sha256"] == held["sha256"] else "DIFFERENT from the held message"
print("  the server in inside received it: from <%s> to %s, %d bytes, sha256 %s... (%s)" % (
    m["mail_from"], ",".join(m["rcpt_to"]), m["size"], m["sha256"][:16], same))
PY
echo "  \$ sekishoctl log search verdict=quarantine"
ctl log search verdict=quarantine 2>/dev/null | cut -c1-150 | sed 's/^/    /'
echo "  \$ sekishoctl audit verify -c sekisho.conf"
"$SCTL" audit verify -c "$work/sekisho.conf" 2>&1 | sed 's/^/    /'

echo "== sekisho-dataplane counters (telemetry /sekisho/stats, /sekisho/flows)"
/usr/bin/python3 "$TEL" "$PREFIX" --report | sed 's/^/  /'

if [ "${1:-}" = "--keep-running" ]; then
  echo "== running; telemetry: echo /sekisho/stats | dpdk-telemetry.py -f $PREFIX ; Ctrl-C ends the demo"
  echo "   control plane: ip netns exec $NS_OUT curl -H 'Authorization: Bearer $token' http://127.0.0.1:8025/api/quarantine"
  wait "$dp_pid"
fi
kill -INT "$dp_pid"; wait "$dp_pid" || true; dp_pid=""
echo "== dataplane stopped: $(grep -c 'final counters' "$work/dataplane.log") final counter line written"
