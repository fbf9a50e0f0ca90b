#!/usr/bin/env bash
# A private single-node Slurm cluster on this machine for tests (issue 20): its own munge key and
# socket, slurm.conf, spool and log folders under one state directory, non-default ports, so it
# never touches a system Slurm.
#   launch/slurm-cluster.sh up        start munged, slurmctld and slurmd; wait until the node is idle
#   launch/slurm-cluster.sh down      stop them and remove the state directory (idempotent)
#   launch/slurm-cluster.sh check     exit 0 if this machine can run it (root, packages), else say why, exit 2
#   launch/slurm-cluster.sh env       print `export SLURM_CONF=...` for the clients (sbatch, squeue, ...)
# Environment: USL_STATE (default /tmp/umtrain-slurm), USL_CPUS (default: nproc).
set -euo pipefail
STATE="${USL_STATE:-/tmp/umtrain-slurm}"
say() { printf '[slurm-cluster] %s\n' "$*"; }
die() { printf '[slurm-cluster] error: %s\n' "$*" >&2; exit "${2:-1}"; }

check() {
  [ "$(id -u)" = 0 ] || { echo "[slurm-cluster] needs root (slurmd and munged run as root here)" >&2; return 2; }
  for b in munged slurmctld slurmd sbatch scontrol; do
    command -v "$b" >/dev/null || { echo "[slurm-cluster] $b missing: apt-get install slurm-wlm munge" >&2; return 2; }
  done
}

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || return 0
  say "installing slurm-wlm and munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >/dev/null 2>&1 || say "apt-get failed"
}

down() {
  for f in slurmd slurmctld munged; do
    [ -f "$STATE/$f.pid" ] && kill "$(cat "$STATE/$f.pid")" 2>/dev/null || true
  done
  sleep 1
  for f in slurmd slurmctld munged; do
    [ -f "$STATE/$f.pid" ] && kill -9 "$(cat "$STATE/$f.pid")" 2>/dev/null || true
  done
  pkill -f "slurmstepd.*$STATE" 2>/dev/null || true
  rm -rf "$STATE"
  say "down"
}

up() {
  install_packages
  check || exit 2
  down >/dev/null 2>&1 || true
  mkdir -p "$STATE"/{ctld,spool,log,munge}
  chmod 700 "$STATE/munge"
  local host cpus
  host=$(hostname -s)
  cpus="${USL_CPUS:-$(nproc)}"
  dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$STATE/munge/munge.key"
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munge.seed"
  cat > "$STATE/slurm.conf" <<CONF
ClusterName=umtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=30 State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$STATE/slurm.conf"
  slurmctld -f "$SLURM_CONF" -i
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 60); do
    state=$(sinfo -h -o '%T' 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && { say "up: node $host ($cpus CPUs) idle; export SLURM_CONF=$SLURM_CONF"; return 0; }
    sleep 0.5
  done
  die "the node did not become idle (state '${state:-none}'); logs in $STATE/log"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check) install_packages; check ;;
  env) echo "export SLURM_CONF=$STATE/slurm.conf" ;;
  *) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 2 ;;
esac
