#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing sweeps end to end.
#
#   scripts/local_slurm.sh start    # install (if missing), configure, start; wait until the node is idle
#   scripts/local_slurm.sh status   # sinfo + squeue; exit 0 only if the node answers
#   scripts/local_slurm.sh stop     # stop slurmd, slurmctld, munged by their pid files
#
# Why: a sweep that "works with the local launcher" says nothing about sbatch,
# job arrays, scancel and resume. Debian's slurm-wlm + munge give a real SLURM
# that runs as root on localhost in seconds, so the tests and CI exercise the
# same path a cluster does. Needs root (apt-get, /etc/slurm, daemons).
# Idempotent: `start` on a running cluster only checks it; `stop` on a stopped
# one does nothing.
#
# Environment: SLURM_START_TIMEOUT (seconds to wait for an idle node, default 60).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
LOG_DIR=/var/log/slurm
START_TIMEOUT="${SLURM_START_TIMEOUT:-60}"

log() { printf '[local_slurm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Is the process named in pid file $1 alive?
alive() {
  local pidfile=$1 pid
  [[ -s $pidfile ]] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (installs packages, writes $CONF, starts daemons); uid is $(id -u)"
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v munged >/dev/null && command -v sinfo >/dev/null; then
    return 0
  fi
  log "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
  local host cpus mem_kb mem_mb tmp
  host=$(hostname -s)
  cpus=$(nproc)
  mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  mem_mb=$(( mem_kb * 9 / 10240 ))   # a little under MemTotal, or slurmd marks the node invalid
  mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by hsd-bench scripts/local_slurm.sh: one node, root, localhost.
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmUser=root
# Finished jobs stay visible to scontrol (and so to the sacct stand-in) for 5 min.
MinJobAge=300
# SIGKILL right after SIGTERM (the step still lives ~1.5-4.6 s: 4.6 s on the CI VM of
# 2026-12-06): submitit ignores SIGTERM, so a grace period would only let a cancelled test
# job run on.
KillWait=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$tmp" "$CONF"; then
    if alive "$CTLD_PID" || alive "$SLURMD_PID"; then
      log "config changed while SLURM runs: restarting it"
      stop_daemons
    fi
    install -m 0644 "$tmp" "$CONF"
  fi
  rm -f "$tmp"
}

start_munge() {
  alive "$MUNGE_PID" && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then mungekey -c -f; else create-munge-key -f; fi
  fi
  local user=munge
  id munge >/dev/null 2>&1 || user=root
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown "$user" /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  rm -f /run/munge/munge.socket.2.lock
  if [[ $user == root ]]; then
    munged --force
  else
    runuser -u munge -- munged
  fi
  # munged forks; wait for its socket so slurmctld's first auth call succeeds.
  for _ in $(seq 50); do
    [[ -S /run/munge/munge.socket.2 ]] && return 0
    sleep 0.1
  done
  die "munged did not create /run/munge/munge.socket.2 (see /var/log/munge/munged.log)"
}

# With accounting disabled (as here) the real `sacct` only says "Slurm
# accounting storage is disabled", and submitit — which polls
# `sacct -o JobID,State,NodeList --parsable2 -j ID` to learn that a task died
# without a result (scancel, preemption, node failure) — would then wait
# forever. This stand-in answers that one query from `scontrol show job`,
# which keeps finished jobs for MinJobAge seconds. Installed as
# /usr/local/bin/sacct (ahead of /usr/bin in PATH) by `start`, removed by `stop`.
SACCT_SHIM=/usr/local/bin/sacct
SACCT_MARK="# hsd-bench local_slurm.sh sacct stand-in"

install_sacct_shim() {
  if [[ -e $SACCT_SHIM ]] && ! grep -qF "$SACCT_MARK" "$SACCT_SHIM"; then
    log "leaving the existing $SACCT_SHIM alone (not ours)"
    return 0
  fi
  mkdir -p "$(dirname "$SACCT_SHIM")"
  cat >"$SACCT_SHIM" <<'SHIM'
#!/usr/bin/env bash
# hsd-bench local_slurm.sh sacct stand-in
# Prints JobID|State|NodeList (--parsable2) for the job ids given with -j,
# from `scontrol show job`, one line per array task; other options are ignored.
ids=()
while (( $# )); do
  case $1 in
    -j|--jobs) ids+=("${2//,/ }"); shift 2 ;;
    -j*) ids+=("${1#-j}"); shift ;;
    --jobs=*) ids+=("${1#--jobs=}"); shift ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
for id in ${ids[@]+"${ids[@]}"}; do
  scontrol -o show job "$id" 2>/dev/null | awk '
    {
      jid = ""; aj = ""; at = ""; st = ""; nl = ""
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "JobId") jid = kv[2]
        else if (kv[1] == "ArrayJobId") aj = kv[2]
        else if (kv[1] == "ArrayTaskId") at = kv[2]
        else if (kv[1] == "JobState") st = kv[2]
        else if (kv[1] == "NodeList") nl = kv[2]
      }
      if (nl == "(null)") nl = "None assigned"
      if (aj == "") { print jid "|" st "|" nl; next }
      sub(/%.*/, "", at)
      n = split(at, parts, ",")
      for (p = 1; p <= n; p++) {
        if (split(parts[p], r, "-") == 2) { for (t = r[1]; t <= r[2]; t++) print aj "_" t "|" st "|" nl }
        else print aj "_" parts[p] "|" st "|" nl
      }
    }'
done
SHIM
  chmod 0755 "$SACCT_SHIM"
}

remove_sacct_shim() {
  if [[ -e $SACCT_SHIM ]] && grep -qF "$SACCT_MARK" "$SACCT_SHIM"; then rm -f "$SACCT_SHIM"; fi
}

node_state() {
  sinfo --noheader --nodes="$(hostname -s)" --format=%T 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-' || true
}

wait_idle() {
  local deadline=$(( SECONDS + START_TIMEOUT )) state=""
  while (( SECONDS < deadline )); do
    state=$(node_state)
    case $state in
      idle|mixed|allocated|completing) return 0 ;;
      down|drained|draining|fail|failing|inval|invalid)
        # Left over from an earlier run (e.g. daemons killed): put it back in service.
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  die "node $(hostname -s) not idle after ${START_TIMEOUT}s (state '${state:-no answer}'); see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
}

start() {
  need_root
  local t0=$SECONDS
  install_packages
  write_config
  install_sacct_shim
  start_munge
  if ! alive "$CTLD_PID"; then
    rm -f "$CTLD_PID"
    slurmctld
  fi
  if ! alive "$SLURMD_PID"; then
    rm -f "$SLURMD_PID"
    slurmd
  fi
  wait_idle
  log "SLURM up in $(( SECONDS - t0 ))s: node $(hostname -s) $(node_state), partition debug"
}

# Send TERM to the daemon in pid file $1 and wait (up to 10 s) for it to exit.
stop_one() {
  local pidfile=$1 name=$2 pid
  if alive "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) ignored TERM; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$pidfile"
}

stop_daemons() {
  stop_one "$SLURMD_PID" slurmd
  stop_one "$CTLD_PID" slurmctld
}

stop() {
  need_root
  stop_daemons
  stop_one "$MUNGE_PID" munged
  remove_sacct_shim
}

status() {
  local rc=0
  for pair in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
    if alive "${pair#*:}"; then
      echo "${pair%%:*}: running (pid $(cat "${pair#*:}"))"
    else
      echo "${pair%%:*}: stopped"; rc=1
    fi
  done
  if (( rc == 0 )); then
    sinfo || rc=1
    squeue || rc=1
  fi
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
