#!/usr/bin/env bash
# Stop the daemons started by start.sh (slurmd, slurmctld, slurmdbd, mariadbd, munged) through
# their pid files and wait for them to exit. Never fails when nothing runs.
#   --wipe  also cancel all jobs and delete the state folder (job ids restart at 1).
# Without --wipe, running job steps (slurmstepd) are left alone: the next slurmd adopts them.
set -euo pipefail

STATE=${EVALGRID_SLURM_STATE:-/var/tmp/evalgrid-slurm}
WIPE=0
for a in "$@"; do
  case $a in
    --wipe) WIPE=1 ;;
    *) echo "usage: $0 [--wipe]" >&2; exit 2 ;;
  esac
done
log() { echo "[slurm-stop] $*"; }

# Zombies count as gone: PID 1 here may take seconds to reap the daemons.
alive() { grep -q -E '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status" 2>/dev/null; }

# stop_daemon NAME: SIGTERM the process in $STATE/run/NAME.pid, SIGKILL after 30 s.
stop_daemon() {
  local name=$1 pidfile=$STATE/run/$1.pid pid i
  [[ -r $pidfile ]] && pid=$(<"$pidfile") && [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]] && alive "$pid" || return 0   # gone, or pid reused
  log "stopping $name ($pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    alive "$pid" || return 0
    sleep 0.2
  done
  log "$name ($pid) ignored SIGTERM for 30s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.2; done
}

# Pids of slurmstepd processes bound to a socket in this cluster's slurmd spool folder.
stray_stepds() {
  local inodes pid fd
  inodes=$(awk -v d="$STATE/slurmd/" 'index($NF, d) == 1 {print $7}' /proc/net/unix 2>/dev/null | sort -u)
  [[ -n $inodes ]] || return 0
  for pid in $(pgrep -x slurmstepd || true); do
    for fd in /proc/"$pid"/fd/*; do
      fd=$(readlink "$fd" 2>/dev/null) || continue
      [[ $fd =~ ^socket:\[([0-9]+)\]$ ]] && grep -qx "${BASH_REMATCH[1]}" <<<"$inodes" && { echo "$pid"; break; }
    done
  done
}

# tree PID: PID and all its descendants.
tree() {
  local c
  echo "$1"
  for c in $(pgrep -P "$1" || true); do tree "$c"; done
}

if ((WIPE)) && [[ -r $STATE/run/slurmctld.pid ]] && timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; then
  mapfile -t jobs < <(timeout 10 squeue -h -o %A 2>/dev/null || true)
  if ((${#jobs[@]})); then
    log "cancelling ${#jobs[@]} job(s)"
    timeout 20 scancel "${jobs[@]}" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      [[ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ]] && break
      sleep 0.5
    done
  fi
fi

for d in slurmd slurmctld slurmdbd mariadbd munged; do stop_daemon "$d"; done

if ((WIPE)); then
  # Job steps the cancel could not reach (controller down): kill them with their job processes.
  for pid in $(stray_stepds); do
    log "killing stray slurmstepd $pid and its job processes"
    mapfile -t pids < <(tree "$pid")
    kill -KILL "${pids[@]}" 2>/dev/null || true
  done
  [[ $STATE == /* && $STATE != / ]] || { echo "[slurm-stop] refusing to wipe '$STATE'" >&2; exit 3; }
  # Links start.sh made in /etc/slurm would dangle once the state folder is gone.
  for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf /etc/slurm/gres.conf; do
    [[ -L $f && "$(readlink "$f")" == "$STATE"/* ]] && rm -f "$f"
  done
  if [[ -e $STATE ]]; then log "deleting $STATE"; rm -rf -- "$STATE"; fi
fi
log "stopped"
