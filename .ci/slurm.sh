#!/usr/bin/env bash
# Run a real single-node Slurm cluster (slurmctld + slurmd + munged) on this machine, as root,
# for tests of the sharded census (examples/slurm/*).
#
#   slurm.sh install          # apt-get install slurm-wlm munge parallel; idempotent
#   slurm.sh start STATEDIR   # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd; wait for idle
#   slurm.sh stop STATEDIR    # cancel jobs, stop the daemons we started (by PID), restore slurm.conf
#
# STATEDIR gets the daemons' logs (slurmctld.log, slurmd.log, munged.log), the PIDs we started
# (*.pid, munged.pid only if we had to start munged), a copy of the slurm.conf we wrote, and the
# backup of a pre-existing /etc/slurm/slurm.conf (slurm.conf.orig; restored on stop).
# Every start uses a fresh spool/state dir (STATEDIR/spool, or a /var/spool/mailcensus-slurm.*
# dir when STATEDIR's path is too long for slurmstepd's unix sockets) and clean-starts the
# daemons (-c), so jobs or node state left from an earlier run never leak into a new one; job
# steps that outlived a crashed slurmd of this STATEDIR (slurmstepd writing into it, and their
# children) are killed by PID at the next start or stop.
#
# The node is `hostname -s`, partition "debug" (the default). Jobs run as root in the directory
# sbatch was called from; sbatch's default --export=ALL passes the caller's environment.
# Job ids restart at 1 on every start (clean state), so slurm-%j.out files of an earlier run
# in the same directory get overwritten.
# DependencyParameters=kill_invalid_depend (22.05 ignores it in SchedulerParameters): a job
# whose afterok dependency can no longer be satisfied is cancelled instead of pending forever,
# so `sbatch --wait` on it returns -- but with exit code 0, as for a job that never ran;
# check `scontrol show job ID` for JobState=COMPLETED (examples/slurm/submit.sh does).
set -euo pipefail

die() { echo "slurm.sh: $*" >&2; exit 1; }

export PATH="$PATH:/usr/sbin:/sbin"
CONF=/etc/slurm/slurm.conf
MARK="# written by mailcensus .ci/slurm.sh"
READY_TIMEOUT=${SLURM_READY_TIMEOUT:-60}

have() { command -v "$1" >/dev/null 2>&1; }

# Is PID a live (non-zombie) process whose command name is NAME? A stale pid file whose PID
# now belongs to another program counts as gone.
alive() {
  local pid=$1 name=$2
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] &&
    ! grep -Eq '^[0-9]+ \(.*\) Z' "/proc/$pid/stat" 2>/dev/null
}

# Does anything accept TCP connections on 127.0.0.1:PORT?
listening() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

cmd_install() {
  [ $# = 0 ] || die "usage: install"
  if have sbatch && have slurmctld && have slurmd && have munged && have parallel; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "install needs root (apt-get)"
  # Keep the packages' own services (munge, slurmctld, slurmd) from being started by postinst.
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local log=/tmp/slurm-install.log rc=0
  : >"$log"
  # GNU parallel recommends/suggests nothing we need; slurm-wlm's recommends are not needed either.
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o Dpkg::Use-Pty=0
                install --no-install-recommends slurm-wlm munge parallel)
  # apt-get update only when the package lists don't know the packages, or the install fails
  # (stale lists pointing at files that are gone from the mirror).
  if ! apt-cache show slurm-wlm munge parallel >/dev/null 2>&1; then
    apt-get -qq update >>"$log" 2>&1 || true
  fi
  if ! "${apt[@]}" >>"$log" 2>&1; then
    apt-get -qq update >>"$log" 2>&1 || true
    "${apt[@]}" >>"$log" 2>&1 || rc=$?
  fi
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" != 0 ]; then
    cat "$log" >&2
    die "apt-get install slurm-wlm munge parallel failed"
  fi
  if [ -d /run/systemd/system ]; then
    systemctl disable --now slurmctld.service slurmd.service munge.service >/dev/null 2>&1 || true
  fi
  if ! { have sbatch && have slurmctld && have slurmd && have munged && have parallel; }; then
    die "sbatch/slurmctld/slurmd/munged/parallel missing after install"
  fi
}

# Make sure munged runs and works; start it (as user munge) if it doesn't. Records the PID in
# STATEDIR/munged.pid only when we started it, so stop never kills a munged that isn't ours.
start_munge() {
  local statedir=$1
  if munge_works; then
    # Ours from an earlier start with this STATEDIR (keep it recorded, stop stops it), or not.
    if ! alive "$(cat "$statedir/munged.pid" 2>/dev/null || true)" munged; then
      rm -f "$statedir/munged.pid"
      echo "slurm.sh: munged already running (not started here); using it, stop leaves it"
    fi
    return 0
  fi
  rm -f "$statedir/munged.pid"
  id munge >/dev/null 2>&1 || die "user munge does not exist (run: $0 install)"
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if have mungekey; then
      mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  : >"$statedir/munged.log"
  chown munge "$statedir/munged.log" 2>/dev/null || true
  # No munged answers, so a socket/pid file left in /run/munge is stale: --force takes it over.
  local pidfile=/run/munge/munged.pid
  rm -f "$pidfile"
  if ! su -s /bin/sh munge -c "/usr/sbin/munged --force --pid-file=$pidfile" \
        >>"$statedir/munged.log" 2>&1 </dev/null; then
    cat "$statedir/munged.log" /var/log/munge/munged.log 2>/dev/null >&2 || true
    die "munged failed to start"
  fi
  local pid=
  for _ in $(seq 1 100); do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if alive "$pid" munged && munge_works; then
      echo "$pid" >"$statedir/munged.pid"
      return 0
    fi
    sleep 0.1
  done
  cat "$statedir/munged.log" /var/log/munge/munged.log 2>/dev/null >&2 || true
  die "munged did not start or munge -n | unmunge fails"
}

# Start DAEMON (slurmctld or slurmd) clean (-c); record its PID in STATEDIR/DAEMON.pid.
start_daemon() {
  local statedir=$1 spool=$2 name=$3
  local log="$statedir/$name.log" out="$statedir/$name.stderr" pidfile="$spool/$name.pid"
  : >"$log"
  # (-L: the log; what it prints before it daemonizes, e.g. a fatal config error, goes to $out)
  if ! "/usr/sbin/$name" -c -f "$CONF" -L "$log" >"$out" 2>&1 </dev/null; then
    cat "$out" "$log" >&2
    die "$name failed to start"
  fi
  local pid=
  for _ in $(seq 1 100); do
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if alive "$pid" "$name"; then
      echo "$pid" >"$statedir/$name.pid"
      return 0
    fi
    sleep 0.1
  done
  cat "$out" "$log" >&2
  die "$name did not stay up (no live PID in $pidfile)"
}

cmd_start() {
  [ $# = 1 ] || die "usage: start STATEDIR"
  [ "$(id -u)" = 0 ] || die "start needs root (daemons run as root, slurm.conf is in /etc)"
  if ! { have sbatch && have slurmctld && have slurmd && have munged && have sinfo; }; then
    die "slurm/munge not installed (run: $0 install)"
  fi
  local statedir=$1
  mkdir -p "$statedir"
  statedir=$(cd "$statedir" && pwd -P)
  [[ $statedir =~ ^[A-Za-z0-9/._+-]+$ ]] ||
    die "STATEDIR must be a plain path (letters, digits, / . _ + -): $statedir"

  # Daemons of ours still running from an earlier start with this STATEDIR? Stop them first.
  local d
  for d in slurmd slurmctld; do
    if alive "$(cat "$statedir/$d.pid" 2>/dev/null || true)" "$d"; then
      cmd_stop "$statedir"
      break
    fi
  done
  # Any other Slurm on this machine would hold the ports (or answer our sbatch): refuse.
  if listening 6817 || listening 6818; then
    die "something already listens on port 6817 or 6818 (another slurmctld/slurmd?); stop it first"
  fi

  local host cpus mem_kb mem_mb
  host=$(hostname -s)
  [ -n "$host" ] || die "hostname -s is empty"
  cpus=$(nproc)
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  # A bit below the total: slurmd drains a node whose RealMemory exceeds what it finds.
  mem_mb=$(( mem_kb * 95 / 100 / 1024 ))
  [ "$mem_mb" -gt 0 ] || die "could not read MemTotal from /proc/meminfo"

  # Fresh spool + state dirs each start. slurmstepd puts unix sockets (<node>_<job>.<step>)
  # into SlurmdSpoolDir, and sun_path holds 108 bytes: fall back to /var/spool for long paths.
  local spool="$statedir/spool" old
  old=$(cat "$statedir/spooldir" 2>/dev/null || true)
  reap_orphan_steps "$statedir" "$old"
  case $old in /var/spool/mailcensus-slurm.*) rm -rf "$old" ;; esac
  rm -rf "$statedir/spool"
  if [ $(( ${#spool} + ${#host} + 40 )) -gt 100 ] || ! mkdir -p "$spool/slurmd" "$spool/ctld" 2>/dev/null; then
    spool=$(mktemp -d /var/spool/mailcensus-slurm.XXXXXX)
    mkdir -p "$spool/slurmd" "$spool/ctld"
  fi
  echo "$spool" >"$statedir/spooldir"

  # Back up a slurm.conf that isn't ours (once: a second start must not back up our own).
  mkdir -p /etc/slurm
  if [ ! -e "$statedir/slurm.conf.orig" ] && [ ! -e "$statedir/slurm.conf.none" ]; then
    if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
      cp -p "$CONF" "$statedir/slurm.conf.orig"
    else
      : >"$statedir/slurm.conf.none"
    fi
  fi

  start_munge "$statedir"

  cat >"$CONF.tmp" <<EOF
$MARK
# (state in $statedir; "slurm.sh stop $statedir" restores the previous file)
ClusterName=mailcensus
SlurmctldHost=$host
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmUser=root
SlurmdUser=root
ReturnToService=2
StateSaveLocation=$spool/ctld
SlurmdSpoolDir=$spool/slurmd
SlurmctldPidFile=$spool/slurmctld.pid
SlurmdPidFile=$spool/slurmd.pid
SlurmctldLogFile=$statedir/slurmctld.log
SlurmdLogFile=$statedir/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv -f "$CONF.tmp" "$CONF"
  cp "$CONF" "$statedir/slurm.conf"

  start_daemon "$statedir" "$spool" slurmctld
  start_daemon "$statedir" "$spool" slurmd

  local f state=
  for _ in $(seq 1 $(( READY_TIMEOUT * 2 ))); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n1 || true)
    if [ "$state" = idle ]; then
      echo "slurm.sh: slurm up on $host ($cpus CPUs, ${mem_mb} MB), state in $statedir"
      return 0
    fi
    if ! alive "$(cat "$statedir/slurmctld.pid")" slurmctld ||
       ! alive "$(cat "$statedir/slurmd.pid")" slurmd; then
      break
    fi
    sleep 0.5
  done
  {
    echo "slurm.sh: node $host not idle after ${READY_TIMEOUT}s (last sinfo state: '${state}')"
    sinfo 2>&1 || true
    scontrol show node "$host" 2>&1 || true
    for f in slurmctld.stderr slurmctld.log slurmd.stderr slurmd.log munged.log; do
      [ -s "$statedir/$f" ] || continue
      echo "----- $statedir/$f"
      cat "$statedir/$f"
    done
  } >&2
  cmd_stop "$statedir" >/dev/null 2>&1 || true
  exit 1
}

# Kill job steps that outlived their slurmd (e.g. after a crash of an earlier run): the
# slurmstepd processes writing into STATEDIR (their fd 3 is STATEDIR/slurmd.log; their cwd is
# STATEDIR) or the spool dir, and all their descendants (the job scripts). By PID only.
reap_orphan_steps() {
  local statedir=$1 spool=${2:-} p exe f hit
  local -a steps=() victims=()
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
    case $exe in /usr/sbin/slurmstepd*) ;; *) continue ;; esac
    hit=
    for f in "/proc/$p/cwd" "/proc/$p"/fd/*; do
      f=$(readlink "$f" 2>/dev/null || true)
      case $f in
        "$statedir"|"$statedir"/*) hit=1; break ;;
        "")  ;;
        *) if [ -n "$spool" ] && [[ $f == "$spool" || $f == "$spool"/* ]]; then hit=1; break; fi ;;
      esac
    done
    [ -n "$hit" ] && steps+=("$p")
  done
  [ ${#steps[@]} -gt 0 ] || return 0
  # descendants, breadth first, from the ppid field of /proc/PID/stat
  local -A parent=()
  local st rest ppid_
  for p in /proc/[0-9]*; do
    st=$(cat "$p/stat" 2>/dev/null) || continue
    rest=${st##*) }
    read -r _ ppid_ _ <<<"$rest" || continue
    parent[${p#/proc/}]=$ppid_
  done
  victims=("${steps[@]}")
  local i=0 c
  while [ $i -lt ${#victims[@]} ]; do
    for c in "${!parent[@]}"; do
      [ "${parent[$c]}" = "${victims[$i]}" ] && victims+=("$c")
    done
    i=$((i + 1))
  done
  echo "slurm.sh: killing leftover job steps of an earlier run: ${victims[*]}" >&2
  kill -KILL "${victims[@]}" 2>/dev/null || true
  sleep 0.5
}

# Stop the daemon recorded in STATEDIR/NAME.pid: TERM, wait up to ~20 s, then KILL.
stop_daemon() {
  local statedir=$1 name=$2 pid
  pid=$(cat "$statedir/$name.pid" 2>/dev/null || true)
  if alive "$pid" "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      alive "$pid" "$name" || break
      sleep 0.1
    done
    if alive "$pid" "$name"; then
      echo "slurm.sh: $name ($pid) ignored TERM for 20 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        alive "$pid" "$name" || break
        sleep 0.1
      done
    fi
  fi
  rm -f "$statedir/$name.pid"
}

cmd_stop() {
  [ $# = 1 ] || die "usage: stop STATEDIR"
  local statedir=$1
  [ -d "$statedir" ] || return 0
  statedir=$(cd "$statedir" && pwd -P)

  # Cancel what is still queued or running (this cluster is ours alone), so that no
  # slurmstepd or job outlives the daemons.
  if alive "$(cat "$statedir/slurmctld.pid" 2>/dev/null || true)" slurmctld; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086 # word splitting of job ids is intended
      timeout 10 scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 50); do
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
        sleep 0.2
      done
    fi
  fi

  stop_daemon "$statedir" slurmd
  stop_daemon "$statedir" slurmctld
  stop_daemon "$statedir" munged   # only if we started it (else there is no munged.pid)
  reap_orphan_steps "$statedir" "$(cat "$statedir/spooldir" 2>/dev/null || true)"

  # Restore the slurm.conf that was there before start (or remove ours if there was none).
  if [ -e "$statedir/slurm.conf.orig" ]; then
    cp -p "$statedir/slurm.conf.orig" "$CONF"
    rm -f "$statedir/slurm.conf.orig"
  elif [ -e "$statedir/slurm.conf.none" ]; then
    if [ -e "$CONF" ] && grep -qxF "$MARK" "$CONF"; then
      rm -f "$CONF"
    fi
    rm -f "$statedir/slurm.conf.none"
  fi

  # A fallback spool dir under /var/spool is ours alone: remove it (STATEDIR/spool stays
  # for a look after the run; the next start replaces it).
  if [ -s "$statedir/spooldir" ]; then
    local spool
    spool=$(cat "$statedir/spooldir")
    case $spool in /var/spool/mailcensus-slurm.*) rm -rf "$spool"; rm -f "$statedir/spooldir" ;; esac
  fi
  return 0
}

case ${1:-} in
  install) shift; cmd_install "$@" ;;
  start)   shift; cmd_start "$@" ;;
  stop)    shift; cmd_stop "$@" ;;
  *) echo "usage: $0 install | start STATEDIR | stop STATEDIR" >&2; exit 2 ;;
esac
