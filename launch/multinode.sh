#!/usr/bin/env bash
# Runs umtrain on several hosts: real machines over ssh, or the namespace hosts of
# launch/cluster.sh on this machine. Usage:
#
#   launch/multinode.sh --hostfile FILE [options] [mpirun options...] umtrain SUBCOMMAND [args...]
#
#   --hostfile FILE   Open MPI hostfile ("host slots=K" lines; or -H h1:K,h2:K; or none inside a
#                     Slurm allocation, where mpirun reads the nodes). A hostfile written by
#                     launch/cluster.sh (first line "# umtrain-cluster state=DIR") selects the
#                     namespace hosts automatically.
#   --netns DIR       namespace hosts of the cluster whose state dir is DIR (default hostfile:
#                     DIR/hostfile); overrides the detection
#   --ssh             real machines (Open MPI's ssh launcher), even if the hostfile has the header
#   --if NETS         networks/interfaces MPI (btl_tcp_if_include) and ORTE (oob_tcp_if_include)
#                     may use, comma-separated, e.g. 10.1.0.0/16 or ib0,eth1. Default: the cluster
#                     subnet (namespaces); not set (ssh: Open MPI uses every non-loopback network)
#   --keepalive T,I,P ORTE out-of-band TCP keepalive: idle seconds, probe interval, probes.
#                     Default 5,1,3: a host that drops off the network (no FIN/RST) ends the job
#                     in ~10 s. 'off' keeps Open MPI's 300,20,9 (up to 480 s of hang).
#   --dry-run         print the command instead of running it
#   Environment: UMN_IF, UMN_KEEPALIVE (same as the flags), UMTRAIN (binary, default this
#   checkout's .build/release/umtrain; on real machines it must exist at the same path on every
#   host), OPENBLAS_* and UMTRAIN_* variables are exported to every rank (-x).
#
# It adds: --mca btl self,vader,tcp (shared memory inside a host, TCP between hosts), the
# interface filters, the keepalive, OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) as root, one OpenBLAS
# thread per rank unless OPENBLAS_NUM_THREADS is set, vader's single-copy off without
# CAP_SYS_PTRACE, and for namespace hosts: the launch agent, --bind-to none (all "hosts" share
# this machine's cores) and mpirun itself inside the first host with that host's hostname, so
# rank 0 runs there and every daemon reaches mpirun on the cluster subnet.
# Examples:
#   launch/cluster.sh up 3
#   launch/multinode.sh --hostfile /tmp/umtrain-cluster-umn/hostfile -np 3 --display-map umtrain selftest
#   launch/multinode.sh --hostfile hosts --if 10.1.0.0/16 -np 8 umtrain selftest   # real machines
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
UMTRAIN="${UMTRAIN:-$root/.build/release/umtrain}"

die() { printf '[multinode] error: %s\n' "$*" >&2; exit 1; }

hostfile=""; hosts_given=0; mode=""; state=""; nets="${UMN_IF:-}"; keepalive="${UMN_KEEPALIVE:-5,1,3}"; dry=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile|-hostfile|--machinefile|-machinefile)
      [ $# -ge 2 ] || die "$1 needs a file"; hostfile="$2"; shift 2 ;;
    --netns) [ $# -ge 2 ] || die "--netns needs the cluster state dir"; mode=netns; state="$2"; shift 2 ;;
    --ssh) mode=ssh; shift ;;
    --if) [ $# -ge 2 ] || die "--if needs networks or interfaces"; nets="$2"; shift 2 ;;
    --keepalive) [ $# -ge 2 ] || die "--keepalive needs T,I,P or off"; keepalive="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    -H|--host|-host) [ $# -ge 2 ] || die "$1 needs hosts"; hosts_given=1; args+=("$1" "$2"); shift 2 ;;
    umtrain) shift; break ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -x "$UMTRAIN" ] || die "$UMTRAIN not found. Hint: run launch/setup.sh (or set UMTRAIN)."

# Namespace hosts: from --netns, or from the header cluster.sh writes into its hostfile.
if [ -z "$mode" ] && [ -n "$hostfile" ] && [ -f "$hostfile" ]; then
  line=$(grep -m1 '^# umtrain-cluster state=' "$hostfile" || true)
  if [ -n "$line" ]; then
    mode=netns; state=$(sed -E 's/^# umtrain-cluster state=([^ ]+).*/\1/' <<<"$line")
  fi
fi
mode="${mode:-ssh}"
# Hosts come from --hostfile, -H, or a Slurm allocation (mpirun reads it; Debian builds lack PBS/tm).
[ -n "$hostfile" ] || [ "$mode" = netns ] || [ "$hosts_given" = 1 ] || [ -n "${SLURM_JOB_ID:-}" ] ||
  die "no hosts: give --hostfile FILE or -H h1,h2, or run inside a Slurm allocation (salloc/sbatch). Hint: for one machine use launch/mpirun.sh."
[ -z "$hostfile" ] || [ -f "$hostfile" ] || die "hostfile '$hostfile' not found. Hint: launch/cluster.sh up 3 writes one into its state dir."

extra=()
if [ "$mode" = netns ]; then
  [ -f "$state/cluster.env" ] || die "namespace cluster '$state' is not up (no $state/cluster.env). Hint: launch/cluster.sh up 3."
  # shellcheck disable=SC1091
  . "$state/cluster.env"
  hostfile="${hostfile:-$state/hostfile}"
  # mpirun runs on the first host of the hostfile (rank 0 goes there).
  first=$(awk '!/^[[:space:]]*(#|$)/ {print $1; exit}' "$hostfile")
  [ -n "$first" ] || die "hostfile '$hostfile' lists no host."
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$first" ||
    die "host '$first' of '$hostfile' does not exist (no namespace). Hint: launch/cluster.sh up $UMN_CLUSTER_N (with UMN_PREFIX=$UMN_CLUSTER_PREFIX)."
  nets="${nets:-$UMN_CLUSTER_SUBNET}"
  extra+=(--mca plm_rsh_agent "$state/agent.sh" --mca plm_rsh_no_tree_spawn 1 --bind-to none)
fi

if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

[ -z "$hostfile" ] || extra+=(--hostfile "$hostfile")
extra+=(--mca btl "self,vader,tcp")
if [ -n "$nets" ]; then
  extra+=(--mca btl_tcp_if_include "$nets" --mca oob_tcp_if_include "$nets")
fi
case "$keepalive" in
  off|default) ;;
  *)
    IFS=, read -r ka_time ka_intvl ka_probes <<<"$keepalive"
    for v in "$ka_time" "$ka_intvl" "$ka_probes"; do
      [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "--keepalive wants T,I,P (positive seconds, seconds, count), got '$keepalive'. Hint: --keepalive 5,1,3 or off."
    done
    extra+=(--mca oob_tcp_keepalive_time "$ka_time" --mca oob_tcp_keepalive_intvl "$ka_intvl"
            --mca oob_tcp_keepalive_probes "$ka_probes") ;;
esac
# Environment every rank needs, on every host (ssh does not forward the environment).
while IFS='=' read -r name _; do
  case "$name" in OPENBLAS_*|UMTRAIN_*) extra+=(-x "$name") ;; esac
done < <(env)
# CAP_SYS_PTRACE is bit 19 of the effective capability mask (see launch/mpirun.sh).
capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status 2>/dev/null || echo 0)
if [ -z "${OMPI_MCA_btl_vader_single_copy_mechanism+x}" ] && (( (16#${capeff:-0} >> 19 & 1) == 0 )); then
  extra+=(--mca btl_vader_single_copy_mechanism none)
fi

cmd=(mpirun "${extra[@]}" "${args[@]}" "$UMTRAIN" "$@")
if [ "$mode" = netns ]; then
  # mpirun (the HNP) inside the first host, with that host's name: ORTE then recognises the
  # host as its own node and starts only the other hosts' daemons through the agent.
  # ip netns exec and unshare exec in place, so a signal to this script's PID reaches mpirun.
  cmd=(ip netns exec "$first" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$first" "${cmd[@]}")
fi
if [ "$dry" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; exit 0; fi
exec "${cmd[@]}"
