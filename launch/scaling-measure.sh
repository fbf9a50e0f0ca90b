#!/usr/bin/env bash
# Inputs of the scaling model (issue 19; docs/performance.md "A scaling model"): one rank, one
# OpenBLAS thread, training throughput at per-rank batches 2..128 for densenet_bc100 (CIFAR,
# 32 px) and resnet50 (ImageNet, 224 px, 1000 classes); prints JSON for launch/scaling-model.py.
#   bash launch/scaling-measure.sh > docs/results/scaling-inputs.json
set -euo pipefail
cd "$(dirname "$0")/.."
UMTRAIN="${UMTRAIN:-.build/release/umtrain}"
export OPENBLAS_NUM_THREADS=1
echo "{"
first=1
for spec in "densenet_bc100 32 10" "resnet50 224 1000"; do
  set -- $spec
  arch=$1; size=$2; classes=$3
  [ $first = 1 ] || echo ","
  first=0
  printf '"%s": {"image_size": %s, "classes": %s, "images_per_second": {' "$arch" "$size" "$classes"
  sep=""
  for b in 2 4 8 16 32 64 128; do
    steps=3; [ "$arch" = resnet50 ] && [ "$b" -ge 32 ] && steps=2
    ips=$("$UMTRAIN" bench train --comm local --arch "$arch" --image-size "$size" --num-classes "$classes" --batch "$b" \
      --steps "$steps" --warmup 1 --no-inference --gemm-repeats 0 2>&1 | sed -nE 's/^train: +([0-9.]+) img\/s.*/\1/p')
    printf '%s"%s": %s' "$sep" "$b" "${ips:-null}"
    sep=", "
    echo "[scaling] $arch batch $b: $ips img/s" >&2
  done
  info=$("$UMTRAIN" model-info --arch "$arch" --image-size "$size" --num-classes "$classes" 2>/dev/null)
  params=$(sed -nE 's/.*parameters \(trainable\): +([0-9,]+).*/\1/p' <<<"$info" | tr -d ',')
  int64=$(sed -nE 's/.* ([0-9]+) int64 counters.*/\1/p' <<<"$info")
  # One num_batches_tracked counter per BatchNorm layer.
  printf '}, "parameters": %s, "batchnorm_layers": %s}' "${params:-null}" "${int64:-null}"
done
echo
echo "}"
