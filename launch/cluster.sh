#!/usr/bin/env bash
# A pretend cluster on one Linux machine: N "hosts" that are network namespaces on a private
# bridge, each with its own IP address (and, through the launch agent, its own hostname).
# Open MPI treats them as separate nodes: ranks on different hosts talk TCP over the bridge,
# ranks on the same host use shared memory, exactly as on a real cluster.
#
# Usage:
#   launch/cluster.sh up N      create (or repair) hosts PREFIX1..PREFIXN; idempotent
#   launch/cluster.sh down      remove everything 'up' created (also after a failed run); idempotent
#   launch/cluster.sh status    show hosts, addresses, links and processes; exit 0 iff up and healthy
#   launch/cluster.sh check     exit 0 if this machine allows it, else print why and exit 2
#   launch/cluster.sh exec HOST CMD...   run CMD on HOST (its namespace, hostname HOST)
#   launch/cluster.sh pids HOST          processes running on HOST, one PID a line
#   launch/cluster.sh cut HOST           pull HOST's cable (delete its veth); 'up' restores it
#   launch/cluster.sh reap               kill every process left on the hosts (by PID)
#
# Environment (read by 'up'; later commands read the state dir):
#   UMN_PREFIX     host name prefix (default umn: hosts umn1, umn2, ...); letters/digits, <= 8 chars
#   UMN_SUBNET     private /24 for the bridge (default 10.77.0.0/24); host i gets .i
#   UMN_STATE_DIR  state dir (default /tmp/umtrain-cluster-PREFIX): agent.sh, hostfile,
#                  cluster.env, and 'created' (every object this script made, so 'down'
#                  removes exactly those and nothing else)
#   SLOTS          slots per host in the hostfile (default 1)
#
# Use the hosts with:  launch/multinode.sh --hostfile "$UMN_STATE_DIR/hostfile" -np N umtrain ...
# Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 (installed if missing) and util-linux.
set -euo pipefail

PREFIX="${UMN_PREFIX:-umn}"
STATE="${UMN_STATE_DIR:-/tmp/umtrain-cluster-$PREFIX}"

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit "${2:-1}"; }

usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; }

# ---- rights and tools -------------------------------------------------------------------

# Prints nothing and returns 0 when namespaces can be used; otherwise prints the reason
# on stderr and returns 2. Installs iproute2 when it is missing and we are root.
check_rights() {
  if [ "$(id -u)" != 0 ]; then
    echo "[cluster] cannot create hosts: not root (uid $(id -u)). Network namespaces, veths and bridges need CAP_NET_ADMIN and CAP_SYS_ADMIN. Hint: run as root or with sudo." >&2
    return 2
  fi
  if ! command -v ip >/dev/null; then
    say "installing iproute2 (ip is missing)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null; }; then
      echo "[cluster] cannot create hosts: 'ip' (iproute2) is missing and apt-get install iproute2 failed. Hint: install iproute2." >&2
      return 2
    fi
  fi
  if ! command -v unshare >/dev/null || ! command -v hostname >/dev/null; then
    echo "[cluster] cannot create hosts: 'unshare' or 'hostname' is missing. Hint: apt-get install util-linux hostname." >&2
    return 2
  fi
  if ! ip netns list >/dev/null 2>&1; then
    echo "[cluster] cannot create hosts: this 'ip' has no netns support. Hint: install a current iproute2." >&2
    return 2
  fi
  local probe="${PREFIX}probe$$" err
  if ! err=$(ip netns add "$probe" 2>&1); then
    echo "[cluster] cannot create hosts: network namespaces are not permitted here (ip netns add: $err). Hint: containers need CAP_SYS_ADMIN (docker run --privileged) or run on a VM." >&2
    return 2
  fi
  if ! err=$(ip netns exec "$probe" unshare --uts sh -c "hostname $probe" 2>&1); then
    ip netns del "$probe" 2>/dev/null || true
    echo "[cluster] cannot create hosts: private UTS namespaces are not permitted (unshare --uts: $err). Hint: needs CAP_SYS_ADMIN." >&2
    return 2
  fi
  ip netns del "$probe"
  local pbr="${PREFIX}p$(( $$ % 100000 ))"   # interface names are at most 15 characters
  if ! err=$(ip link add "$pbr" type bridge 2>&1); then
    echo "[cluster] cannot create hosts: cannot create a bridge (ip link add type bridge: $err). Hint: load the 'bridge' kernel module or use a VM." >&2
    return 2
  fi
  ip link del "$pbr"
}

# ---- state ------------------------------------------------------------------------------

load_state() {  # sets N SUBNET_BASE SLOTS_STATE BRIDGE PREFIX from cluster.env; returns 1 if absent
  [ -f "$STATE/cluster.env" ] || return 1
  # shellcheck disable=SC1091
  . "$STATE/cluster.env"
  PREFIX="$UMN_CLUSTER_PREFIX"; N="$UMN_CLUSTER_N"; SUBNET_BASE="$UMN_CLUSTER_BASE"
  BRIDGE="$UMN_CLUSTER_BRIDGE"; SLOTS_STATE="$UMN_CLUSTER_SLOTS"
}
recorded() { [ -f "$STATE/created" ] && grep -qx "$1 $2" "$STATE/created"; }
record() { recorded "$1" "$2" || echo "$1 $2" >> "$STATE/created"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
link_exists() { ip link show "$1" >/dev/null 2>&1; }
host_name() { echo "${PREFIX}$1"; }
veth_name() { echo "v-${PREFIX}$1"; }
hosts_list() { local i; for i in $(seq 1 "$N"); do printf '%s ' "$(host_name "$i")"; done; }

# ---- up ---------------------------------------------------------------------------------

write_agent() {
  local hosts; hosts=$(hosts_list)
  cat > "$STATE/agent.sh.tmp" <<EOF
#!/bin/sh
# Open MPI rsh launch agent for the namespace cluster in $STATE (written by launch/cluster.sh).
# Open MPI calls it the way it would call ssh:  agent.sh [ssh-style options] HOST COMMAND...
# It runs COMMAND in network namespace HOST, in a private UTS namespace whose hostname is
# HOST, so ranks, logs and MPI_Get_processor_name see the host's own name.
hosts="${hosts% }"
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host=\$1; shift
case " \$hosts " in
  *" \$host "*) ;;
  *) echo "agent.sh: '\$host' is not a host of this cluster (\$hosts). Hint: use the hostfile $STATE/hostfile." >&2; exit 255 ;;
esac
[ -n "\${UMN_AGENT_LOG:-}" ] && echo "\$(date +%T) host=\$host cmd=\$*" >> "\$UMN_AGENT_LOG"
exec ip netns exec "\$host" unshare --uts sh -c "hostname \$host && \$*"
EOF
  chmod 755 "$STATE/agent.sh.tmp"
  mv "$STATE/agent.sh.tmp" "$STATE/agent.sh"
}

write_hostfile() {
  local i
  {
    echo "# umtrain-cluster state=$STATE (namespace hosts from launch/cluster.sh; launch/multinode.sh detects them by this line)"
    for i in $(seq 1 "$N"); do echo "$(host_name "$i") slots=$SLOTS_STATE"; done
  } > "$STATE/hostfile.tmp"
  mv "$STATE/hostfile.tmp" "$STATE/hostfile"
}

up_failed() {
  echo "[cluster] error: 'up' failed (line $1). Removing what it created. Hint: see the message above; 'launch/cluster.sh check' tells whether this machine allows namespaces." >&2
  trap - ERR
  set +e
  do_down >/dev/null 2>&1
  exit 1
}

do_up() {
  local want_n=$1
  [[ "$want_n" =~ ^[0-9]+$ ]] && [ "$want_n" -ge 1 ] && [ "$want_n" -le 200 ] ||
    die "up: expected a host count 1..200, got '$want_n'. Hint: launch/cluster.sh up 3"
  [[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] ||
    die "UMN_PREFIX must be 1-8 lowercase letters/digits starting with a letter (it names namespaces and 15-char interfaces), got '$PREFIX'. Hint: UMN_PREFIX=umn"
  local subnet="${UMN_SUBNET:-}"
  if [ -z "$subnet" ]; then   # default: the subnet of the cluster already up, else 10.77.0.0/24
    subnet=10.77.0.0/24
    [ -f "$STATE/cluster.env" ] && subnet=$(sed -n 's/^UMN_CLUSTER_SUBNET=//p' "$STATE/cluster.env")
  fi
  [[ "$subnet" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.0/24$ ]] ||
    die "UMN_SUBNET must be a /24 written A.B.C.0/24 (host i gets A.B.C.i), got '$subnet'. Hint: UMN_SUBNET=10.77.0.0/24"
  local base="${subnet%.0/24}"
  local slots="${SLOTS:-1}"
  [[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "SLOTS must be a positive integer, got '$slots'. Hint: SLOTS=2"
  check_rights || exit 2

  if load_state; then
    [ "$N" = "$want_n" ] && [ "$SUBNET_BASE" = "$base" ] ||
      die "a cluster with $N host(s) on $SUBNET_BASE.0/24 is already up in $STATE; asked for $want_n on $base.0/24. Hint: launch/cluster.sh down first."
  fi
  N=$want_n; SUBNET_BASE=$base; SLOTS_STATE=$slots; BRIDGE="${PREFIX}br0"
  # Refuse to adopt objects someone else made (anything with our names not in 'created').
  local i h v
  if ! recorded bridge "$BRIDGE" && link_exists "$BRIDGE"; then
    die "interface $BRIDGE exists but was not created by this script (not in $STATE/created). Hint: choose another UMN_PREFIX."
  fi
  for i in $(seq 1 "$N"); do
    h=$(host_name "$i"); v=$(veth_name "$i")
    if ! recorded netns "$h" && ns_exists "$h"; then
      die "namespace $h exists but was not created by this script. Hint: choose another UMN_PREFIX."
    fi
    if ! recorded link "$v" && link_exists "$v"; then
      die "interface $v exists but was not created by this script. Hint: choose another UMN_PREFIX."
    fi
  done
  mkdir -p "$STATE"; touch "$STATE/created"
  cat > "$STATE/cluster.env" <<EOF
UMN_CLUSTER_PREFIX=$PREFIX
UMN_CLUSTER_N=$N
UMN_CLUSTER_BASE=$SUBNET_BASE
UMN_CLUSTER_SUBNET=$SUBNET_BASE.0/24
UMN_CLUSTER_BRIDGE=$BRIDGE
UMN_CLUSTER_SLOTS=$SLOTS_STATE
EOF

  trap 'up_failed $LINENO' ERR
  if ! link_exists "$BRIDGE"; then
    record bridge "$BRIDGE"
    ip link add "$BRIDGE" type bridge
  fi
  ip link set "$BRIDGE" up
  local created=0 repaired=0
  for i in $(seq 1 "$N"); do
    h=$(host_name "$i"); v=$(veth_name "$i")
    if ! ns_exists "$h"; then
      record netns "$h"
      ip netns add "$h"
      created=$((created + 1))
    fi
    ip netns exec "$h" ip link set lo up
    if ! link_exists "$v"; then
      # A missing veth on an existing host is a cut cable (cluster.sh cut): re-plug it.
      ns_exists "$h" && ip netns exec "$h" ip link show eth0 >/dev/null 2>&1 &&
        ip netns exec "$h" ip link del eth0
      record link "$v"
      ip link add "$v" type veth peer name eth0 netns "$h"
      repaired=$((repaired + 1))
    fi
    ip link set "$v" master "$BRIDGE"
    ip link set "$v" up
    if ! ip netns exec "$h" ip -4 -o addr show dev eth0 | grep -q " $SUBNET_BASE.$i/24 "; then
      ip netns exec "$h" ip addr add "$SUBNET_BASE.$i/24" dev eth0
    fi
    ip netns exec "$h" ip link set eth0 up
  done
  write_agent
  write_hostfile
  trap - ERR
  repaired=$((repaired - created))
  say "up: $N host(s) $(hosts_list)on bridge $BRIDGE, $SUBNET_BASE.0/24 ($created new, $repaired re-plugged); hostfile $STATE/hostfile ($SLOTS_STATE slot(s) per host), agent $STATE/agent.sh"
}

# ---- down -------------------------------------------------------------------------------

kill_pids() {  # kill_pids PID... : TERM, wait up to 3 s, then KILL
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in 1 2 3 4 5 6; do
    local alive=0 p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.5
  done
  kill -KILL "$@" 2>/dev/null || true
}

reap_hosts() {  # kills every process in the namespaces this script created
  local h pids n=0
  for h in $(awk '$1 == "netns" {print $2}' "$STATE/created" 2>/dev/null); do
    ns_exists "$h" || continue
    pids=$(ip netns pids "$h" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// /}" ]; then
      # shellcheck disable=SC2086
      kill_pids $pids
      n=$((n + $(wc -w <<<"$pids")))
    fi
  done
  echo "$n"
}

do_down() {
  if [ ! -f "$STATE/created" ]; then
    say "down: nothing to remove (no $STATE/created)"
    rm -rf "$STATE"
    return 0
  fi
  local killed; killed=$(reap_hosts)
  local kind name n_links=0 n_ns=0 n_br=0
  # veths first: a namespace still referenced by sockets of an aborted job is freed late,
  # and its veth would stay behind in the root namespace.
  while read -r kind name; do
    [ "$kind" = link ] || continue
    if link_exists "$name"; then ip link del "$name" 2>/dev/null && n_links=$((n_links + 1)); fi
  done < "$STATE/created"
  while read -r kind name; do
    [ "$kind" = netns ] || continue
    if ns_exists "$name"; then ip netns del "$name" && n_ns=$((n_ns + 1)); fi
    # Open MPI session dirs of this host's UTS name (mpirun/orted leave them after an abort).
    # The pattern is exact up to the dot, so umn1 never matches umn10's.
    rm -rf /tmp/ompi."$name".* 2>/dev/null || true
  done < "$STATE/created"
  while read -r kind name; do
    [ "$kind" = bridge ] || continue
    if link_exists "$name"; then ip link del "$name" && n_br=$((n_br + 1)); fi
  done < "$STATE/created"
  rm -rf "$STATE"
  say "down: killed $killed process(es), removed $n_links veth(s), $n_ns namespace(s) and $n_br bridge(s)"
}

# ---- status / helpers -------------------------------------------------------------------

do_status() {
  if ! load_state; then
    say "status: no cluster (no $STATE/cluster.env)"
    return 3
  fi
  local healthy=1 i h v addr state procs
  link_exists "$BRIDGE" || { healthy=0; echo "bridge $BRIDGE: MISSING"; }
  echo "cluster $STATE: $N host(s), $SUBNET_BASE.0/24, bridge $BRIDGE, $SLOTS_STATE slot(s) per host"
  for i in $(seq 1 "$N"); do
    h=$(host_name "$i"); v=$(veth_name "$i")
    if ! ns_exists "$h"; then echo "  $h: namespace MISSING"; healthy=0; continue; fi
    addr=$(ip netns exec "$h" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' || true)
    if link_exists "$v"; then state=$(ip -br link show "$v" | awk '{print $2}'); else state="CUT (no $v)"; healthy=0; fi
    [ -n "$addr" ] || healthy=0
    procs=$(ip netns pids "$h" | paste -sd, | xargs -r ps -o comm= -p | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}' || true)
    echo "  $h: ${addr:-NO ADDRESS} link $state processes: ${procs:-none}"
  done
  echo "  hostfile: $STATE/hostfile   agent: $STATE/agent.sh"
  [ "$healthy" = 1 ] || { echo "status: DEGRADED. Hint: launch/cluster.sh up $N repairs it."; return 4; }
}

env_hint() { [ "$PREFIX" = umn ] || printf 'UMN_PREFIX=%s ' "$PREFIX"; }

need_host() {  # need_host HOST: the host must belong to the cluster that is up
  load_state || die "no cluster in $STATE. Hint: launch/cluster.sh up 3"
  case " $(hosts_list)" in *" $1 "*) ;; *) local hl; hl=$(hosts_list); die "'$1' is not a host of this cluster (${hl% }). Hint: launch/cluster.sh status" ;; esac
}

cmd="${1:-}"; [ $# -gt 0 ] && shift
case "$cmd" in
  up) [ $# -ge 1 ] || die "usage: launch/cluster.sh up N"; do_up "$1" ;;
  down)
    [ "$(id -u)" = 0 ] || die "down needs root. Hint: sudo launch/cluster.sh down" 2
    command -v ip >/dev/null || { say "down: no 'ip', so nothing can exist"; exit 0; }
    do_down ;;
  status) do_status ;;
  check) check_rights && say "check: network namespaces, UTS namespaces and bridges are available" ;;
  exec)
    [ $# -ge 2 ] || die "usage: launch/cluster.sh exec HOST CMD..."
    need_host "$1"; h=$1; shift
    exec ip netns exec "$h" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$h" "$@" ;;
  pids) [ $# -eq 1 ] || die "usage: launch/cluster.sh pids HOST"; need_host "$1"; ip netns pids "$1" ;;
  cut)
    [ $# -eq 1 ] || die "usage: launch/cluster.sh cut HOST"; need_host "$1"
    v="v-$1"; link_exists "$v" || die "$1 is already cut off ($v does not exist). Hint: launch/cluster.sh up $N re-plugs it."
    ip link del "$v"; say "cut: deleted $v; $1 is unreachable until '$(env_hint)launch/cluster.sh up $N'" ;;
  reap) load_state || die "no cluster in $STATE"; say "reap: killed $(reap_hosts) process(es)" ;;
  -h|--help|help) usage ;;
  *) usage >&2; die "unknown command '$cmd'. Hint: up N | down | status | check | exec | pids | cut | reap" ;;
esac
