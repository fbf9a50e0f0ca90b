#!/usr/bin/env bash
# mpirun wrapper for umtrain. Usage:
#   launch/mpirun.sh -np N [mpirun options...] umtrain SUBCOMMAND [options...]
# 'umtrain' is resolved to this checkout's release build; a path ending in /umtrain
# (e.g. .build/release/umtrain) runs that binary instead.
# It adds:
#  - OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) when running as root;
#  - --oversubscribe when N exceeds this machine's cores (single node, no hostfile);
#  - a container-safe shared-memory setting: when CAP_SYS_PTRACE is missing (typical in
#    Docker/Kubernetes), vader's single-copy CMA fails with "Read -1", so it is disabled;
#  - one OpenBLAS thread per rank unless OPENBLAS_NUM_THREADS is set, exported (-x) to
#    every rank along with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE and every UMTRAIN_* variable if set;
#  - pass-through of --hostfile/-H and every other mpirun option for several nodes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
UMTRAIN="${UMTRAIN:-$root/.build/release/umtrain}"

if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

args=()
np=""
multi_node=0
while [ $# -gt 0 ]; do
  case "$1" in
    -np|-n|--np|-c) np="$2"; args+=("$1" "$2"); shift 2 ;;
    --hostfile|-hostfile|--machinefile|-machinefile|-H|--host|-host) multi_node=1; args+=("$1" "$2"); shift 2 ;;
    umtrain) shift; break ;;
    */umtrain)  # a path to a binary (e.g. .build/release/umtrain or /opt/x/umtrain) instead of the word
      if [ ! -x "$1" ]; then
        echo "[mpirun.sh] error: $1 is not an executable umtrain binary. Hint: build it (launch/setup.sh) or write 'umtrain'." >&2
        exit 1
      fi
      UMTRAIN="$1"; shift; break ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -x "$UMTRAIN" ]; then
  echo "[mpirun.sh] error: $UMTRAIN not found. Hint: run launch/setup.sh first." >&2
  exit 1
fi

extra=(-x OPENBLAS_NUM_THREADS)
[ -n "${OPENBLAS_CORETYPE+x}" ] && extra+=(-x OPENBLAS_CORETYPE)
[ -n "${OPENBLAS_L2_SIZE+x}" ] && extra+=(-x OPENBLAS_L2_SIZE)
# UMTRAIN_* settings (UMTRAIN_CONV_ALGORITHM, UMTRAIN_MALLOC, ...) must reach ranks on other hosts too.
while IFS='=' read -r name _; do
  case "$name" in UMTRAIN_*) extra+=(-x "$name") ;; esac
done < <(env)
cores=$(nproc)
if [ -n "$np" ] && [ "$multi_node" = 0 ] && [ "$np" -gt "$cores" ]; then
  extra+=(--oversubscribe --bind-to none)
fi
# CAP_SYS_PTRACE is bit 19 of the effective capability mask.
capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status 2>/dev/null || echo 0)
if [ -z "${OMPI_MCA_btl_vader_single_copy_mechanism+x}" ] && (( (16#${capeff:-0} >> 19 & 1) == 0 )); then
  extra+=(--mca btl_vader_single_copy_mechanism none)
fi
exec mpirun "${extra[@]}" "${args[@]}" "$UMTRAIN" "$@"
