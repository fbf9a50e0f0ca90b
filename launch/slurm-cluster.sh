#!/usr/bin/env bash
# A private single-node Slurm cluster on this machine for tests (issue 20): its own munge key and
# socket, slurm.conf, spool and log folders under one state directory, non-default ports, so it
# never touches a system Slurm.
#   launch/slurm-cluster.sh up        start munged, slurmctld and slurmd; wait until the node is idle
#   launch/slurm-cluster.sh down      stop them and remove the state directory (idempotent)
#   launch/slurm-cluster.sh check     exit 0 if this machine can run it (root, packages), else say why, exit 2
#   launch/slurm-cluster.sh env       print `export SLURM_CONF=...` for the clients (sbatch, squeue, ...)
#   launch/slurm-cluster.sh client CMD...  run a client command (sbatch, scontrol, sinfo) where it
#                                     reaches the controller (inside the first host with USL_HOSTS)
# Environment: USL_STATE (default /tmp/umtrain-slurm), USL_CPUS (default: nproc).
#   USL_HOSTS=N (N >= 2): a multi-node cluster instead. launch/cluster.sh makes N namespace hosts
#   (UMN_PREFIX usl, 10.78.0.0/24 unless set): slurmctld runs in the first, a slurmd in each, each
#   with its own host name (unshare --uts), address (NodeAddr), spool, log and node-local temporary
#   folder (TmpFS=<state>/nodetmp/%n, where srun's PMIx plugin puts its per-step folders), so
#   `sbatch --nodes=N` spreads the ranks over the hosts and they talk TCP over the bridge. Ports
#   16827/16828. The cgroup v1 hierarchies are mounted again inside each host's mount namespace
#   (`ip netns exec` remounts /sys), because slurmd refuses to start without them.
set -euo pipefail
HOSTS="${USL_HOSTS:-0}"
if [ "$HOSTS" -ge 2 ] 2>/dev/null; then STATE="${USL_STATE:-/tmp/umtrain-slurm-multi}"; else HOSTS=0; STATE="${USL_STATE:-/tmp/umtrain-slurm}"; fi
HERE="$(cd "$(dirname "$0")" && pwd)"
export UMN_PREFIX="${UMN_PREFIX:-usl}" UMN_SUBNET="${UMN_SUBNET:-10.78.0.0/24}" UMN_STATE_DIR="${UMN_STATE_DIR:-/tmp/umtrain-cluster-usl}"
say() { printf '[slurm-cluster] %s\n' "$*"; }
die() { printf '[slurm-cluster] error: %s\n' "$*" >&2; exit "${2:-1}"; }

check() {
  [ "$(id -u)" = 0 ] || { echo "[slurm-cluster] needs root (slurmd and munged run as root here)" >&2; return 2; }
  for b in munged slurmctld slurmd sbatch scontrol; do
    command -v "$b" >/dev/null || { echo "[slurm-cluster] $b missing: apt-get install slurm-wlm munge" >&2; return 2; }
  done
  if [ "$HOSTS" -ge 2 ]; then bash "$HERE/cluster.sh" check || { echo "[slurm-cluster] USL_HOSTS=$HOSTS needs namespace hosts (launch/cluster.sh check says no)" >&2; return 2; }; fi
}

# The node side of a multi-node cluster, run inside host NAME's namespaces: cgroup hierarchies
# (slurmd's cgroup plugin needs them; `ip netns exec` gave us a fresh /sys), host name, slurmd.
node_script() {
  cat <<'SH'
set -e
name=$1 conf=$2
if [ "$(grep -c . /proc/self/cgroup)" = 1 ] && grep -q '^0::' /proc/self/cgroup; then
  mount -t cgroup2 none /sys/fs/cgroup             # a cgroup v2 (unified) host
else                                               # v1 or hybrid: the v1 hierarchies as the host has them
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  # one mount per hierarchy, with the controllers the host mounted together (e.g. cpu,cpuacct)
  for c in $(awk 'NR > 1 && $2 != 0 && $4 == 1 {h[$2] = h[$2] (h[$2] ? "," : "") $1} END {for (k in h) print h[k]}' /proc/cgroups); do
    mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
  done
  if grep -q 'name=systemd' /proc/self/cgroup; then
    mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  fi
  mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 none /sys/fs/cgroup/unified 2>/dev/null || true
fi
hostname "$name"
shift 2
exec "$@"
SH
}
client() {
  if [ -f "$STATE/hosts" ]; then
    exec ip netns exec "$(head -1 "$STATE/hosts")" env SLURM_CONF="$STATE/slurm.conf" "$@"
  fi
  exec env SLURM_CONF="$STATE/slurm.conf" "$@"
}

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || return 0
  say "installing slurm-wlm and munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge >/dev/null 2>&1 || say "apt-get failed"
}

down() {
  local f pids
  pids=$(cat "$STATE"/*.pid 2>/dev/null || true)
  for f in $pids; do kill "$f" 2>/dev/null || true; done
  sleep 1
  for f in $pids; do kill -9 "$f" 2>/dev/null || true; done
  pkill -f "slurmstepd.*$STATE" 2>/dev/null || true
  pkill -f "slurm.*-f $STATE/slurm.conf" 2>/dev/null || true
  if [ -f "$STATE/hosts" ]; then bash "$HERE/cluster.sh" down >/dev/null 2>&1 || true; fi
  rm -rf "$STATE"
  say "down"
}

up() {
  install_packages
  check || exit 2
  down >/dev/null 2>&1 || true
  mkdir -p "$STATE"/{ctld,spool,log,munge}
  chmod 700 "$STATE/munge"
  local host cpus i nodes="" ctld_host port_c=16817 port_d=16818
  host=$(hostname -s)
  cpus="${USL_CPUS:-$(nproc)}"
  if [ "$HOSTS" -ge 2 ]; then
    bash "$HERE/cluster.sh" up "$HOSTS" >/dev/null || die "launch/cluster.sh up $HOSTS failed"
    : > "$STATE/hosts"
    local base="${UMN_SUBNET%.0/24}"
    for i in $(seq 1 "$HOSTS"); do
      echo "$UMN_PREFIX$i" >> "$STATE/hosts"
      nodes+="NodeName=$UMN_PREFIX$i NodeAddr=$base.$i CPUs=${USL_CPUS:-1} State=UNKNOWN"$'\n'
      mkdir -p "$STATE/nodetmp/$UMN_PREFIX$i" "$STATE/spool/$UMN_PREFIX$i"
    done
    ctld_host="${UMN_PREFIX}1($base.1)"; port_c=16827; port_d=16828
  else
    nodes="NodeName=$host CPUs=$cpus State=UNKNOWN"
    ctld_host=$host
  fi
  dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$STATE/munge/munge.key"
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munge.seed"
  cat > "$STATE/slurm.conf" <<CONF
ClusterName=umtest
SlurmctldHost=$ctld_host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port_c
SlurmdPort=$port_d
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
$nodes
PartitionName=test Nodes=ALL Default=YES MaxTime=30 State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$STATE/slurm.conf"
  if [ "$HOSTS" -ge 2 ]; then
    sed -i -e "s|^SlurmdSpoolDir=.*|SlurmdSpoolDir=$STATE/spool/%n|" -e "s|^SlurmdPidFile=.*|SlurmdPidFile=$STATE/slurmd-%n.pid|" \
      -e "s|^SlurmdLogFile=.*|SlurmdLogFile=$STATE/log/slurmd-%n.log|" "$SLURM_CONF"
    echo "TmpFS=$STATE/nodetmp/%n" >> "$SLURM_CONF"
    node_script > "$STATE/node.sh"
    local first; first=$(head -1 "$STATE/hosts")
    ip netns exec "$first" unshare --uts sh "$STATE/node.sh" "$first" "$SLURM_CONF" slurmctld -f "$SLURM_CONF" -i
    for h in $(cat "$STATE/hosts"); do
      ip netns exec "$h" unshare --uts sh "$STATE/node.sh" "$h" "$SLURM_CONF" slurmd -f "$SLURM_CONF" -N "$h"
    done
    local idle
    for _ in $(seq 1 60); do
      idle=$(ip netns exec "$first" sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle$' || true)
      [ "$idle" = "$HOSTS" ] && { say "up: $HOSTS nodes $(tr '\n' ' ' < "$STATE/hosts")idle, controller on $first; run clients with: launch/slurm-cluster.sh client sbatch ..."; return 0; }
      sleep 0.5
    done
    die "the nodes did not all become idle ($idle of $HOSTS); logs in $STATE/log"
  fi
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
  client) shift; client "$@" ;;
  *) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 2 ;;
esac
