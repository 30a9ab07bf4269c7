#!/usr/bin/env bash
# Restart slurmctld only (jobs and their state survive in StateSaveLocation, the state folder).
# Not `scontrol shutdown`: that stops slurmd too. SIGTERM makes slurmctld save its state and exit.
set -euo pipefail

STATE=${EVALGRID_SLURM_STATE:-/var/tmp/evalgrid-slurm}
TIMEOUT=${EVALGRID_SLURM_TIMEOUT:-120}
PIDFILE=$STATE/run/slurmctld.pid
LOG=$STATE/log/slurmctld.log
T0=$EPOCHREALTIME

alive() { grep -q -E '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status" 2>/dev/null; }   # zombies count as gone
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1fs", b - a}'; }
log() { echo "[slurm-restart-controller] $*"; }
fail() { echo "[slurm-restart-controller] ERROR: $*" >&2; tail -n 30 "$LOG" >&2 2>/dev/null || true; exit 1; }

[[ $(id -u) -eq 0 ]] || { echo "[slurm-restart-controller] refusing: must run as root" >&2; exit 3; }
[[ -f $STATE/etc/slurm.conf ]] || fail "no cluster in $STATE: run start.sh first"

if [[ -r $PIDFILE ]] && pid=$(<"$PIDFILE") && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == slurmctld ]] && alive "$pid"; then
  log "stopping slurmctld ($pid)"
  kill -TERM "$pid"
  for ((i = 0; i < 150; i++)); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then log "slurmctld ignored SIGTERM for 30s: SIGKILL"; kill -KILL "$pid" || true; fi
  while alive "$pid"; do sleep 0.2; done
fi

log "starting slurmctld"   # same as start.sh; never -c (that would clear the saved jobs)
slurmctld </dev/null >>"$LOG" 2>&1 || fail "slurmctld did not start"

end=$((SECONDS + TIMEOUT))
until timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"; do
  ((SECONDS < end)) || fail "timed out after ${TIMEOUT}s waiting for 'scontrol ping' to report UP"
  sleep 0.5
done
# The node answers again once slurmd re-registers (state without the '*' of "not responding").
while :; do
  st=$(timeout 10 sinfo -h -N -n localhost -o %T 2>/dev/null || true)
  [[ $st =~ ^(idle|mixed|allocated|completing)$ ]] && break
  if [[ $st =~ ^(drain|down|fail) ]]; then scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true; fi
  ((SECONDS < end)) || fail "timed out after ${TIMEOUT}s waiting for node localhost (last state: '$st')"
  sleep 0.5
done
# The node's resources (CPUs, GPUs) are known again once a GPU job would fit.
until sbatch --test-only --ntasks=1 --gpus-per-task=1 --wrap=true >/dev/null 2>&1; do
  ((SECONDS < end)) || fail "timed out after ${TIMEOUT}s waiting for the node to accept a GPU job"
  sleep 0.5
done
log "slurmctld restarted in $(elapsed)"
