#!/usr/bin/env bash
# Pre-emption and resume of the pipeline and of `umtrain finetune`, on 2 ranks with real data
# (Fashion-MNIST from Debian's dataset-fashion-mnist), run by launch/test.sh:
#   a reference pipeline runs uninterrupted; then the same pipeline is stopped
#     1. by SIGTERM to one rank during the train stage,
#     2. by SIGUSR1 to mpirun (what launch/slurm.sbatch arranges) during the train stage,
#     3. by SIGTERM to one rank during UMAP,
#     4. by SIGUSR1 to mpirun during UM,
#   and each must exit 75 with a complete checkpoint of the stopped stage, no final model of
#   that stage and no later stage; re-running with --resume must finish and give every stage's
#   model.safetensors byte for byte as the reference (checksums compared);
#   5. `umtrain finetune --method ce` stopped by SIGTERM exits 75 without a model, and
#      --resume gives the reference's ce_finetune weights.
# Ends with one line: "preemption: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"
OUT=$(mktemp -d /tmp/umtrain-preempt-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "[preempt] ok    $*"; }
bad() { failed=$((failed + 1)); echo "[preempt] FAIL  $*"; }

FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
  bad "pre-emption tests need Fashion-MNIST (apt-get install dataset-fashion-mnist; launch/setup.sh does it)"
  echo "preemption: $passed passed, $failed failed"; exit 1
fi

# A small pipeline: 640 training images, 6 epochs (60 steps), 4 fine-tuning epochs, two scores.
ARGS=(--config Tests/MultiRank/tiny-train.yaml --set output_dir="$OUT" --stall-timeout 60
      --set train.epochs=6 --set finetune.epochs=4 --set finetune.lr=0.02 --set train.checkpoint_every=2
      --set estimate.keep_ratios=[0.99] --set estimate.masks=2 --set um.force=true --set umap.keep_ratio=0.9
      --set evaluate.ood_manifest= --set evaluate.scores=[msp,energy] --set evaluate.batch_size=1000
      --set "evaluate.ood_sets=[{name: t10k, images: $FM/t10k-images-idx3-ubyte.gz, synthetic: false}]")
STAGES="train um umap ce_finetune"

sums() {  # sums NAME: the first 16 hex digits of each stage's model.safetensors sha256
  local s out=""
  for s in $STAGES; do
    if [ -f "$OUT/$1/$s/model.safetensors" ]; then out+="$s:$(sha256sum "$OUT/$1/$s/model.safetensors" | cut -c1-16) "
    else out+="$s:missing "; fi
  done
  echo "$out"
}

# start NAME LOG [extra args...]: the pipeline in the background; sets $job (the timeout pid).
start() {
  local name=$1 log=$2; shift 2
  timeout -k 5 600 bash launch/mpirun.sh -np 2 umtrain pipeline "${ARGS[@]}" --name "$name" "$@" >"$log" 2>&1 &
  job=$!
}

# wait_for LOG HEADER PATTERN: until PATTERN appears after the line HEADER (120 s at most).
wait_for() {
  local i
  for i in $(seq 1 2400); do
    awk -v h="$2" -v p="$3" 'index($0, h) {f = 1} f && $0 ~ p {found = 1} END {exit !found}' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# signal_job HOW NAME: HOW = rank-term (SIGTERM to rank 1 only) or mpirun-usr1.
signal_job() {
  local how=$1 name=$2 pid target=""
  if [ "$how" = mpirun-usr1 ]; then
    target=$(pgrep -P "$job" mpirun || true)
    [ -n "$target" ] && kill -USR1 "$target"
  else
    for pid in $(pgrep -f "umtrain pipeline .*--name $name( |$)" || true); do
      tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$' && target=$pid
    done
    [ -n "$target" ] && kill -TERM "$target"
  fi
  [ -n "$target" ]
}

# 0. The uninterrupted reference.
set +e
timeout -k 5 600 bash launch/mpirun.sh -np 2 umtrain pipeline "${ARGS[@]}" --name ref >"$LOG_DIR/preempt-ref.log" 2>&1
rc=$?
set -e
REF=$(sums ref)
if [ "$rc" != 0 ] || grep -q missing <<<"$REF"; then
  bad "reference pipeline: exit $rc, models: $REF; see $LOG_DIR/preempt-ref.log"
  echo "preemption: $passed passed, $failed failed"; exit 1
fi
echo "[preempt] reference models: $REF"

# case NAME HEADER STAGE LATER HOW: interrupt, check the stop, resume, compare.
case_() {
  local name=$1 header=$2 stage=$3 later=$4 how=$5
  local log="$LOG_DIR/preempt-$name.log" rc rc2 secs
  start "$name" "$log"
  if ! wait_for "$log" "$header" "epoch [12] step"; then
    kill "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true
    bad "$name: the $stage stage never started; see $log"; return
  fi
  if ! signal_job "$how" "$name"; then
    kill "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true
    bad "$name: no process to signal ($how)"; return
  fi
  set +e; wait "$job"; rc=$?; set -e
  local problems=""
  [ "$rc" = 75 ] || problems+=" exit $rc (expected 75);"
  ls "$OUT/$name/$stage/checkpoints/"*/COMPLETE >/dev/null 2>&1 || problems+=" no complete $stage checkpoint;"
  [ ! -e "$OUT/$name/$stage/model.safetensors" ] || problems+=" a final $stage model was written;"
  local l
  for l in $later; do [ ! -e "$OUT/$name/$l" ] || problems+=" later stage $l ran;"; done
  [ ! -e "$OUT/$name/summary.md" ] || problems+=" summary.md written;"
  grep -aq "stopped on request" "$log" || problems+=" no stop message;"
  if [ -n "$problems" ]; then bad "$name ($how during $stage):$problems see $log"; return; fi
  local ck; ck=$(ls -d "$OUT/$name/$stage/checkpoints/"step-* | tail -1 | xargs basename)
  set +e
  timeout -k 5 600 bash launch/mpirun.sh -np 2 umtrain pipeline "${ARGS[@]}" --name "$name" --resume >"$log.resume" 2>&1
  rc2=$?
  set -e
  local got; got=$(sums "$name")
  if [ "$rc2" = 0 ] && [ "$got" = "$REF" ] && grep -aq "resumed from .*$stage/checkpoints" "$log.resume"; then
    ok "$how during $stage: exit 75 with $stage/checkpoints/$ck, no $stage model, no later stage; --resume finished with identical weights ($got)"
  else
    bad "$name resume: exit $rc2, models $got vs reference $REF; see $log.resume"
  fi
}

case_ term-train "=== train ===" train "estimate um umap ce_finetune evaluate" rank-term
case_ usr1-train "=== train ===" train "estimate um umap ce_finetune evaluate" mpirun-usr1
case_ term-umap "=== UMAP ===" umap "ce_finetune evaluate" rank-term
case_ usr1-um "=== UM fine-tuning ===" um "umap ce_finetune evaluate" mpirun-usr1

# 5. umtrain finetune on its own: stop, then --resume; the weights equal the pipeline's control.
FT=(finetune "${ARGS[@]}" --name ft --method ce --checkpoint "$OUT/ref/train/model.safetensors")
log="$LOG_DIR/preempt-finetune.log"
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain "${FT[@]}" >"$log" 2>&1 &
job=$!
if wait_for "$log" "fine-tuning schedule" "epoch [12] step"; then
  for pid in $(pgrep -f "umtrain finetune .*--name ft " || true); do
    tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=0$' && kill -TERM "$pid"
  done
fi
set +e; wait "$job"; rc=$?; set -e
[ -e "$OUT/ft/ce_finetune/model.safetensors" ] && rc="$rc, and a final model was written"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain "${FT[@]}" --resume >"$log.resume" 2>&1
rc2=$?
set -e
a=$(sha256sum "$OUT/ft/ce_finetune/model.safetensors" 2>/dev/null | cut -c1-16 || true)
b=$(sha256sum "$OUT/ref/ce_finetune/model.safetensors" | cut -c1-16)
if [ "$rc" = 75 ] && grep -aq "resumed from" "$log.resume" && [ "$rc2" = 0 ] && [ "$a" = "$b" ]; then
  ok "umtrain finetune: SIGTERM to rank 0 exits 75 without a model; --resume gives the pipeline's control weights ($a)"
else
  bad "umtrain finetune pre-emption: exits $rc/$rc2, weights '$a' vs '$b'; see $log, $log.resume"
fi

echo "preemption: $passed passed, $failed failed"
[ "$failed" = 0 ]
