#!/usr/bin/env bash
# Training throughput across a shaped network (issue 19; docs/performance.md): two namespace
# hosts of launch/cluster.sh, one rank each, talking TCP over a bridge whose links are limited
# with `tc qdisc ... tbf` (netem is not available in this kernel) to 1 Gbit/s and 10 Gbit/s, and
# unshaped; resnet20 and wrn40_2 with the allreduce after backward, overlapped with backward, and
# overlapped with small buckets (0.5 MiB, then 1 MiB).
#   bash launch/bench-shaped.sh [RATE...]        (default: 1gbit 10gbit none)
# Needs root (network namespaces). Prints one line per run; takes the cluster down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bash launch/cluster.sh check >/dev/null
trap 'bash launch/cluster.sh down >/dev/null 2>&1 || true' EXIT
bash launch/cluster.sh up 2 >/dev/null
hostfile=/tmp/umtrain-cluster-umn/hostfile
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(1gbit 10gbit none)
for rate in "${rates[@]}"; do
  for h in umn1 umn2; do
    if [ "$rate" = none ]; then bash launch/cluster.sh exec "$h" tc qdisc del dev eth0 root 2>/dev/null || true
    else bash launch/cluster.sh exec "$h" tc qdisc replace dev eth0 root tbf rate "$rate" burst 1mb latency 50ms; fi
  done
  for arch in resnet20 wrn40_2; do
    for mode in "after-backward:" "overlapped:--overlap" "overlapped-small-buckets:--overlap --buckets 0.5,1"; do
      name="${mode%%:*}"; flags="${mode#*:}"
      # shellcheck disable=SC2086
      line=$(bash launch/multinode.sh --hostfile "$hostfile" -np 2 umtrain bench train --arch "$arch" --batch 64 --steps 6 --warmup 2 \
        --no-inference --gemm-repeats 0 $flags 2>&1 | grep -E "train:|gradient allreduce" | tr -s ' ' | tr '\n' ' ')
      echo "rate=$rate arch=$arch allreduce=$name :: $line"
    done
  done
done
