#!/usr/bin/env bash
# The virtual wire: three network namespaces joined by two veth pairs.
#
#   [ns outside]  o-end ====veth==== port A  [ns app]  port B ====veth==== i-end  [ns inside]
#   192.0.2.1/24                     (sekisho-dataplane,             192.0.2.2/24
#   2001:db8:5e::1/64                 net_af_packet on A and B)      2001:db8:5e::2/64
#
#   wire.sh up ID     create it (ID: 1-8 chars of [a-z0-9]); prints shell variables
#   wire.sh down ID   remove it (safe to call twice)
#   wire.sh gc        remove wires whose creating process is gone
#
# Offloads are turned off on all four ends: frames cross net_af_packet as
# the kernel built them, so checksums and segment sizes must be final.
set -euo pipefail

cmd=${1:-}; id=${2:-}

names() {
  NS_OUT="sk-$id-out"; NS_IN="sk-$id-in"; NS_APP="sk-$id-app"
  IF_OUT="sk${id}o"; IF_A="sk${id}a"; IF_B="sk${id}b"; IF_IN="sk${id}i"
}

offloads_off() {  # ns ifname
  ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

case "$cmd" in
  up)
    [[ "$id" =~ ^[a-z0-9]{1,8}$ ]] || { echo "wire.sh: ID must be 1-8 chars of [a-z0-9]" >&2; exit 2; }
    names
    if ip netns list | grep -qE "^($NS_OUT|$NS_IN|$NS_APP)( |$)"; then
      echo "wire.sh: wire '$id' exists already (wire.sh down $id)" >&2; exit 1
    fi
    trap 'rc=$?; [ $rc -ne 0 ] && "$0" down "$id"; exit $rc' EXIT
    for ns in "$NS_OUT" "$NS_IN" "$NS_APP"; do
      ip netns add "$ns"
      ip -n "$ns" link set lo up
    done
    # remember who made it, for gc
    mkdir -p /run/sekisho-wire && echo "${SEKISHO_WIRE_OWNER:-$PPID}" > "/run/sekisho-wire/$id.owner"
    ip link add "$IF_OUT" netns "$NS_OUT" type veth peer name "$IF_A" netns "$NS_APP"
    ip link add "$IF_IN" netns "$NS_IN" type veth peer name "$IF_B" netns "$NS_APP"
    ip -n "$NS_OUT" addr add 192.0.2.1/24 dev "$IF_OUT"
    ip -n "$NS_IN" addr add 192.0.2.2/24 dev "$IF_IN"
    ip -n "$NS_OUT" addr add 2001:db8:5e::1/64 dev "$IF_OUT" nodad
    ip -n "$NS_IN" addr add 2001:db8:5e::2/64 dev "$IF_IN" nodad
    for pair in "$NS_OUT:$IF_OUT" "$NS_APP:$IF_A" "$NS_APP:$IF_B" "$NS_IN:$IF_IN"; do
      ns=${pair%%:*}; ifn=${pair#*:}
      offloads_off "$ns" "$ifn"
      ip -n "$ns" link set "$ifn" up
    done
    # the appliance's ends carry no addresses: it is a bump in the wire
    ip netns exec "$NS_APP" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
    trap - EXIT
    echo "NS_OUT=$NS_OUT NS_IN=$NS_IN NS_APP=$NS_APP IF_A=$IF_A IF_B=$IF_B IP_OUT=192.0.2.1 IP_IN=192.0.2.2 IP6_OUT=2001:db8:5e::1 IP6_IN=2001:db8:5e::2"
    ;;
  down)
    names
    for ns in "$NS_OUT" "$NS_IN" "$NS_APP"; do
      if ip netns pids "$ns" >/dev/null 2>&1; then
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
      fi
    done
    rm -f "/run/sekisho-wire/$id.owner"
    ;;
  gc)
    for f in /run/sekisho-wire/*.owner; do
      [ -e "$f" ] || continue
      owner=$(cat "$f"); wid=${f#/run/sekisho-wire/}; wid=${wid%.owner}
      kill -0 "$owner" 2>/dev/null || "$0" down "$wid"
    done
    ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
