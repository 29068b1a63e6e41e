#!/usr/bin/env bash
# Serve a test DNS zone on loopback with Knot DNS (knotd, authoritative), for the test suite.
#
#   dns-server.sh install                             # apt-get install knot + knot-dnsutils (kdig); idempotent
#   dns-server.sh start ZONEFILE ORIGIN PORT STATEDIR # serve ZONEFILE as zone ORIGIN on 127.0.0.1:PORT (UDP+TCP)
#   dns-server.sh stop STATEDIR                       # stop it and wait until it no longer answers
#
# ZONEFILE is a standard RFC 1035 zone file. If it has no SOA record, a minimal SOA and NS for
# ORIGIN are prepended (the file itself is never modified; a combined copy goes into STATEDIR).
# ORIGIN "." serves a root zone, which holds names under any TLD (e.g. a DKIM key file with
# absolute names under .com, .example, .test ...). STATEDIR gets knot.conf, zone.db, knotd.pid,
# knotd.log and the server's (unused) databases. The server runs as the invoking user.
set -euo pipefail

die() { echo "dns-server.sh: $*" >&2; exit 1; }

# kdig query against the local server: q PORT NAME TYPE [extra kdig options]
q() {
  local port=$1 name=$2 type=$3; shift 3
  kdig @127.0.0.1 -p "$port" +time=1 +retry=0 "$@" "$name" "$type" 2>&1
}

# Does the server answer authoritatively (NOERROR or NXDOMAIN, aa flag) for the zone?
answers() {
  local out
  out=$(q "$1" "$2" TXT "${@:3}") || return 1
  grep -Eq 'status: (NOERROR|NXDOMAIN)' <<<"$out" && grep -Eq '^;; Flags: .*\baa\b' <<<"$out"
}

# Does anything answer DNS on 127.0.0.1:PORT at all (any rcode)?
anything_answers() {
  local out
  out=$(q "$1" . SOA "${@:2}") || return 1
  grep -q 'status: ' <<<"$out"
}

# Is PID a running knotd (a zombie left unreaped by a container's PID 1 counts as gone;
# a stale pid file whose PID now belongs to another program is ignored)?
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = knotd ] &&
    ! grep -Eq '^[0-9]+ \(.*\) Z' "/proc/$1/stat" 2>/dev/null
}

cmd_install() {
  if command -v knotd >/dev/null 2>&1 && command -v kdig >/dev/null 2>&1; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "install needs root (apt-get)"
  # Keep the package's own service (knot on port 53) from being started by its postinst.
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o Dpkg::Use-Pty=0
                install --no-install-recommends knot knot-dnsutils)
  if ! "${apt[@]}" >/tmp/dns-server-install.log 2>&1; then
    # Fresh machine without package lists (or stale ones): update once and retry.
    apt-get -qq update >>/tmp/dns-server-install.log 2>&1 || true
    "${apt[@]}" >>/tmp/dns-server-install.log 2>&1 || rc=$?
  fi
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" != 0 ]; then
    cat /tmp/dns-server-install.log >&2
    die "apt-get install knot knot-dnsutils failed"
  fi
  # Belt and braces: make sure the packaged service is neither running nor enabled.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now knot.service >/dev/null 2>&1 || true
  elif [ -s /run/knot/knot.pid ] && alive "$(cat /run/knot/knot.pid)"; then
    kill "$(cat /run/knot/knot.pid)" 2>/dev/null || true
  fi
  command -v knotd >/dev/null && command -v kdig >/dev/null || die "knotd/kdig missing after install"
}

cmd_start() {
  [ $# = 4 ] || die "usage: start ZONEFILE ORIGIN PORT STATEDIR"
  local zonefile=$1 origin=$2 port=$3 statedir=$4
  [ -r "$zonefile" ] || die "zone file not readable: $zonefile"
  [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
  command -v knotd >/dev/null && command -v kdig >/dev/null || die "knotd/kdig not installed (run: $0 install)"
  [[ $origin == *. ]] || origin="$origin."
  mkdir -p "$statedir"
  statedir=$(cd "$statedir" && pwd -P)
  [[ $statedir != *'"'* ]] || die "STATEDIR must not contain a double quote"

  # A server of ours still running from an earlier start in this STATEDIR? Stop it first.
  if [ -s "$statedir/knotd.pid" ] && alive "$(cat "$statedir/knotd.pid")"; then
    cmd_stop "$statedir"
  fi
  # Anything else answering on that port would share it (SO_REUSEPORT) or block it: refuse.
  if anything_answers "$port" +tcp; then
    die "something already answers DNS on 127.0.0.1:$port"
  fi

  # Zone: the file as is if it has an SOA, else minimal SOA + NS, then the file's content.
  local zone="$statedir/zone.db"
  # (an SOA type token before any quote or comment on a line)
  if grep -Eiq '^[^";]*[[:space:]]SOA([[:space:](]|$)' "$zonefile"; then
    cp "$zonefile" "$zone"
  else
    {
      echo "\$ORIGIN $origin"
      echo "\$TTL 3600"
      echo "@ 3600 IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 60"
      echo "@ 3600 IN NS ns.invalid."
      # glue, when the NS name falls inside the zone (root or .invalid zone)
      case $origin in .|invalid.|ns.invalid.) echo "ns.invalid. 3600 IN A 127.0.0.1" ;; esac
      cat "$zonefile"
      echo
    } >"$zone"
  fi

  mkdir -p "$statedir/db"
  # Control socket path must be short (sun_path limit 108 bytes): use a private dir under /tmp.
  local rundir
  rundir=$(mktemp -d /tmp/knotd-run.XXXXXX)
  echo "$rundir" >"$statedir/rundir"
  echo "$port" >"$statedir/port"
  rm -f "$statedir/knotd.pid"
  : >"$statedir/knotd.log"
  cat >"$statedir/knot.conf" <<EOF
server:
    rundir: "$rundir"
    pidfile: "$statedir/knotd.pid"
    listen: 127.0.0.1@$port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

log:
  - target: "$statedir/knotd.log"
    any: info

database:
    storage: "$statedir/db"

template:
  - id: default
    storage: "$statedir"
    semantic-checks: off
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none

zone:
  - domain: "$origin"
    file: "$zone"
EOF

  if ! knotd -c "$statedir/knot.conf" -s "$rundir/knot.sock" -d \
        >>"$statedir/knotd.log" 2>&1 </dev/null; then
    cat "$statedir/knotd.log" >&2
    die "knotd failed to start"
  fi

  # Wait (about 10 s at most) until the zone is loaded and answered authoritatively.
  local i pid
  for i in $(seq 1 100); do
    # TCP fails fast while nothing listens; then make sure UDP answers too.
    if answers "$port" "$origin" +tcp && answers "$port" "$origin" +notcp; then
      echo "dns-server.sh: knotd serving $origin on 127.0.0.1:$port (pid $(cat "$statedir/knotd.pid" 2>/dev/null))"
      return 0
    fi
    pid=$(cat "$statedir/knotd.pid" 2>/dev/null || true)
    if [ "$i" -gt 10 ] && ! alive "$pid"; then
      break   # the daemon died
    fi
    if grep -Eq 'error: \[|failed to load|zone file error' "$statedir/knotd.log"; then
      break   # the zone failed to load; knotd would only answer REFUSED
    fi
    sleep 0.1
  done
  echo "dns-server.sh: knotd did not answer on 127.0.0.1:$port; log follows" >&2
  cat "$statedir/knotd.log" >&2
  cmd_stop "$statedir" >/dev/null 2>&1 || true
  exit 1
}

cmd_stop() {
  [ $# = 1 ] || die "usage: stop STATEDIR"
  local statedir=$1 pid port i
  [ -d "$statedir" ] || return 0
  port=$(cat "$statedir/port" 2>/dev/null || true)
  pid=$(cat "$statedir/knotd.pid" 2>/dev/null || true)
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$statedir/knotd.pid"
  if [ -s "$statedir/rundir" ]; then
    local rundir
    rundir=$(cat "$statedir/rundir")
    case $rundir in /tmp/knotd-run.*) rm -rf "$rundir" ;; esac
    rm -f "$statedir/rundir"
  fi
  if [ -n "$port" ]; then
    for i in $(seq 1 50); do
      anything_answers "$port" +tcp || return 0
      sleep 0.1
    done
    die "something still answers on 127.0.0.1:$port after stop"
  fi
}

case ${1:-} in
  install) shift; cmd_install "$@" ;;
  start)   shift; cmd_start "$@" ;;
  stop)    shift; cmd_stop "$@" ;;
  *) echo "usage: $0 install | start ZONEFILE ORIGIN PORT STATEDIR | stop STATEDIR" >&2; exit 2 ;;
esac
