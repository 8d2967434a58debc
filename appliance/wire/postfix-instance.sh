#!/usr/bin/env bash
# A private Postfix instance for tests: a real SMTP server that offers
# CHUNKING (BDAT), listening on one address, discarding what it accepts
# (its log says what it got: "N bytes queued", "bdat=N").
#   postfix-instance.sh up DIR IP       (run it inside the namespace that owns IP)
#   postfix-instance.sh down DIR
set -euo pipefail
cmd=$1; d=$2
case "$cmd" in
  up)
    ip=$3
    mkdir -p "$d/etc" "$d/spool" "$d/data"
    chmod 755 "$d" "$(dirname "$d")"  # the postfix user walks into its queue and data dirs
    cat > "$d/etc/main.cf" <<MAIN
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = $ip
inet_protocols = ipv4
myhostname = inside.sekisho.test
mydestination =
relay_domains = inside.test
mynetworks = 192.0.2.0/24 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relay_transport = discard:
alias_maps =
alias_database =
maillog_file = $d/maillog
maillog_file_prefixes = $d
MAIN
    # Debian's master.cf, with smtpd out of its chroot (the queue is private).
    sed 's/^smtp\(\s\+inet\s\+n\s\+-\s\+\)y/smtp\1n/' /etc/postfix/master.cf > "$d/etc/master.cf"
    chown postfix "$d/data"
    postfix -c "$d/etc" check
    postfix -c "$d/etc" start
    ;;
  down)
    postfix -c "$d/etc" stop >/dev/null 2>&1 || true
    pkill -f "master.*-c $d/etc" 2>/dev/null || true
    ;;
  *) sed -n 2,7p "$0"; exit 2 ;;
esac
