#!/usr/bin/env bash
# Slurm tests on a private single-node cluster (issue 20, first part; launch/slurm-cluster.sh):
#   1. sbatch --ntasks=2 launch/slurm.sbatch selftest passes with both launchers (srun --mpi=pmix, mpirun);
#   2. a training job pre-empted with `scancel --signal=USR1 --batch` checkpoints, requeues itself,
#      resumes with --resume by itself and ends with the same state checksum as an uninterrupted job;
#      a pipeline pre-empted in its UM stage does the same and ends with the same weights of every stage;
#   3. a job that fails with an ordinary error is not requeued;
#   4. a multi-node allocation (USL_HOSTS=3: three namespace hosts, a slurmd in each): sbatch --nodes=3
#      runs the selftest through both launchers over TCP and a training equal to 3 ranks on one host.
# Skips (exit 0, with the reason) where the machine cannot run Slurm. Every job has --time=5;
# the cluster is taken down at the end, also on failure. Slurm holds a requeued job for about
# two minutes before it may start again, so the suite takes about 6 minutes.
# Ends with one line: "slurm: N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0
ok() { echo "[slurm] ok    $*"; passed=$((passed + 1)); }
bad() { echo "[slurm] FAIL  $*"; failed=$((failed + 1)); }
if ! bash launch/slurm-cluster.sh check >/dev/null 2>&1; then
  echo "[slurm] skipped: $(bash launch/slurm-cluster.sh check 2>&1 | tail -1)"
  echo "slurm: 0 passed, 0 failed, 1 skipped"; exit 0
fi
[ -x .build/release/umtrain ] || { echo "[slurm] .build/release/umtrain missing: run launch/setup.sh"; echo "slurm: 0 passed, 1 failed"; exit 1; }
export USL_STATE="${USL_STATE:-/tmp/umtrain-slurm-test}"
trap 'bash launch/slurm-cluster.sh down >/dev/null 2>&1' EXIT
bash launch/slurm-cluster.sh up || { echo "slurm: 0 passed, 1 failed"; exit 1; }
export SLURM_CONF="$USL_STATE/slurm.conf" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/umtrain-slurm-runs-XXXXXX)
state() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p'; }
restarts() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*Restarts=([0-9]+).*/\1/p'; }
await() {  # JOB SECONDS: wait until the job has ended
  for _ in $(seq 1 "$2"); do case "$(state "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL) return 0 ;; esac; sleep 1; done
  return 1
}

# 1. The selftest through both launchers.
for launcher in srun mpirun; do
  t0=$(date +%s)
  job=$(LAUNCHER=$launcher sbatch --parsable --ntasks=2 --time=5 --output="$OUT/selftest-$launcher-%j.out" --export=ALL launch/slurm.sbatch selftest)
  await "$job" 300
  if [ "$(state "$job")" = COMPLETED ] && grep -aq "^[0-9]* passed, 0 failed" "$OUT/selftest-$launcher-$job.out"; then
    ok "selftest via $launcher: job $job $(state "$job") in $(( $(date +%s) - t0 )) s, $(grep -a "passed, 0 failed" "$OUT/selftest-$launcher-$job.out" | tail -1)"
  else
    bad "selftest via $launcher: job $job $(state "$job"); see $OUT/selftest-$launcher-$job.out"
  fi
done

# 2. Pre-emption, requeue and resume, against uninterrupted jobs: a training, and a pipeline stopped
# in its UM fine-tuning stage (so the requeued run reuses train and estimate and continues UM from
# its checkpoint). All four jobs are submitted at once; Slurm holds a requeued job about two
# minutes, and the other jobs run meanwhile. The slow rank (a sleep after each step) changes no number.
train=(train --config Tests/MultiRank/tiny-train.yaml --set output_dir="$OUT/runs" --set train.epochs=3 --debug-slow-rank 0 --debug-slow-seconds 0.3)
FM=/usr/share/datasets/fashion-mnist
pipe=(pipeline --config Tests/MultiRank/tiny-train.yaml --set output_dir="$OUT/runs" --stall-timeout 60
      --set train.epochs=4 --set finetune.epochs=4 --set finetune.lr=0.02 --set train.checkpoint_every=1
      --set estimate.keep_ratios=[0.99] --set estimate.masks=2 --set um.force=true --set umap.keep_ratio=0.9
      --set evaluate.ood_manifest= --set evaluate.scores=[msp,energy] --set evaluate.batch_size=1000
      --set "evaluate.ood_sets=[{name: t10k, images: $FM/t10k-images-idx3-ubyte.gz, synthetic: false}]")
t0=$(date +%s)
ref=$(sbatch --parsable --ntasks=2 --time=5 --output="$OUT/ref-%j.out" --export=ALL launch/slurm.sbatch "${train[@]}" --name ref)
pre=$(sbatch --parsable --ntasks=2 --time=5 --output="$OUT/pre-%j.out" --open-mode=append --export=ALL launch/slurm.sbatch "${train[@]}" --name pre)
pref=$(sbatch --parsable --ntasks=2 --time=5 --output="$OUT/pipe-ref-%j.out" --export=ALL launch/slurm.sbatch "${pipe[@]}" --name pipe-ref)
ppre=$(sbatch --parsable --ntasks=2 --time=8 --output="$OUT/pipe-pre-%j.out" --open-mode=append --export=ALL launch/slurm.sbatch \
       "${pipe[@]}" --name pipe-pre --debug-slow-rank 0 --debug-slow-seconds 0.3)
for _ in $(seq 1 120); do [ "$(state "$pre")" = RUNNING ] && break; sleep 1; done
sleep 5
scancel --signal=USR1 --batch "$pre"
# The pipeline: signal once its UM stage has taken a step.
signalled=""
for _ in $(seq 1 900); do
  if awk '/=== UM fine-tuning ===/ {f = 1} f && /epoch [0-9]+ step/ {found = 1} END {exit !found}' "$OUT/pipe-pre-$ppre.out" 2>/dev/null; then
    scancel --signal=USR1 --batch "$ppre"; signalled=yes; break
  fi
  sleep 0.5
done
await "$ref" 300
await "$pre" 400
want=$(grep -a "state checksum" "$OUT/ref-$ref.out" | tail -1 | awk '{print $3}')
got=$(grep -a "state checksum" "$OUT/pre-$pre.out" | tail -1 | awk '{print $3}')
if [ "$(state "$pre")" = COMPLETED ] && [ "$(restarts "$pre")" = 1 ] && grep -aq "requeueing job $pre" "$OUT/pre-$pre.out" \
   && grep -aq "resumed from" "$OUT/pre-$pre.out" && [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "pre-empted training job $pre requeued itself once, resumed by itself and ended with the uninterrupted job $ref's checksum $want"
else
  bad "pre-emption: job $pre $(state "$pre"), restarts $(restarts "$pre"), checksum '$got' vs '$want'; see $OUT/pre-$pre.out"
fi
await "$pref" 300
await "$ppre" 600
sums() {  # the first 16 hex digits of each stage's model.safetensors sha256
  local s out=""
  for s in train um umap ce_finetune; do
    if [ -f "$OUT/runs/$1/$s/model.safetensors" ]; then out+="$s:$(sha256sum "$OUT/runs/$1/$s/model.safetensors" | cut -c1-16) "
    else out+="$s:missing "; fi
  done
  echo "${out% }"
}
want=$(sums pipe-ref); got=$(sums pipe-pre)
if [ -n "$signalled" ] && [ "$(state "$ppre")" = COMPLETED ] && [ "$(restarts "$ppre")" = 1 ] && grep -aq "requeueing job $ppre" "$OUT/pipe-pre-$ppre.out" \
   && grep -aq "resumed from .*um/checkpoints" "$OUT/pipe-pre-$ppre.out" && [ -f "$OUT/runs/pipe-pre/summary.md" ] \
   && ! grep -q missing <<<"$want" && [ "$got" = "$want" ]; then
  ok "pre-empted pipeline job $ppre (stopped in UM fine-tuning) requeued itself once, continued UM from its checkpoint and ended with the uninterrupted job $pref's weights ($want); jobs 2 to 5 took $(( $(date +%s) - t0 )) s"
else
  bad "pipeline pre-emption: job $ppre $(state "$ppre"), restarts $(restarts "$ppre"), signalled '${signalled:-no}', weights '$got' vs '$want'; see $OUT/pipe-pre-$ppre.out"
fi

# 3. An ordinary failure is not requeued.
job=$(sbatch --parsable --ntasks=2 --time=5 --output="$OUT/fail-%j.out" --export=ALL launch/slurm.sbatch train --config /nonexistent.yaml)
await "$job" 120
if [ "$(state "$job")" = FAILED ] && [ "$(restarts "$job")" = 0 ]; then
  ok "a job failing with an ordinary error (missing config) is not requeued: job $job FAILED, 0 restarts"
else
  bad "failing job $job: $(state "$job"), $(restarts "$job") restarts"
fi
# 4. A multi-node allocation: three namespace hosts (launch/cluster.sh), a slurmd in each with its
# own host name and address; sbatch --nodes=3 runs the selftest through both launchers (one rank
# per host, TCP between hosts, from Open MPI's btl_base_verbose) and a short training whose state
# checksum equals the same 3-rank training on one host outside Slurm (same reduction order; only
# the transport differs).
bash launch/slurm-cluster.sh down >/dev/null 2>&1
if ! why=$(USL_HOSTS=3 bash launch/slurm-cluster.sh check 2>&1); then
  echo "[slurm] multi-node checks skipped: $(tail -1 <<<"$why")"; skipped=1
elif ! USL_HOSTS=3 bash launch/slurm-cluster.sh up; then
  bad "multi-node cluster did not come up; see /tmp/umtrain-slurm-multi/log"
else
  trap 'bash launch/slurm-cluster.sh down >/dev/null 2>&1; USL_HOSTS=3 bash launch/slurm-cluster.sh down >/dev/null 2>&1' EXIT
  mc() { USL_HOSTS=3 bash launch/slurm-cluster.sh client "$@"; }
  mstate() { mc scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p'; }
  mawait() { for _ in $(seq 1 "$2"); do case "$(mstate "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL) return 0 ;; esac; sleep 1; done; return 1; }
  for launcher in srun mpirun; do
    t0=$(date +%s)
    job=$(LAUNCHER=$launcher OMPI_MCA_btl_base_verbose=30 mc sbatch --parsable --nodes=3 --ntasks-per-node=1 --time=5 \
          --output="$OUT/multi-$launcher-%j.out" --export=ALL launch/slurm.sbatch selftest)
    mawait "$job" 300
    log="$OUT/multi-$launcher-$job.out"
    nodes=$(mc scontrol show job "$job" | sed -nE 's/^ *NodeList=([^ ]+).*/\1/p')
    btls=$(grep -a "mca: bml: Using" "$log" | grep -av "Using self btl" | sed -E 's/.*Using ([a-z]+) btl.*/\1/' | sort | uniq -c | tr -s ' ' | sed 's/^ //')
    if [ "$(mstate "$job")" = COMPLETED ] && grep -aq "^[0-9]* passed, 0 failed" "$log" && grep -aq "ranks: 3 on 3 host(s)" "$log" && [ "$btls" = "6 tcp" ]; then
      ok "multi-node selftest via $launcher: job $job COMPLETED in $(( $(date +%s) - t0 )) s on nodes $nodes, $(grep -a "^  ranks:" "$log" | head -1 | sed 's/^ *//'), transport between ranks: $btls, $(grep -a "passed, 0 failed" "$log" | tail -1)"
    else
      bad "multi-node selftest via $launcher: job $job $(mstate "$job"), nodes '$nodes', transport '$btls'; see $log"
    fi
  done
  mtrain=(train --config Tests/MultiRank/tiny-train.yaml --set output_dir="$OUT/runs" --set train.epochs=2)
  t0=$(date +%s)
  job=$(mc sbatch --parsable --nodes=3 --ntasks-per-node=1 --time=5 --output="$OUT/multi-train-%j.out" --export=ALL launch/slurm.sbatch "${mtrain[@]}" --name multi)
  timeout -k 5 300 bash launch/mpirun.sh -np 3 umtrain "${mtrain[@]}" --name local3 > "$OUT/local3.out" 2>&1
  mawait "$job" 300
  want=$(grep -a "state checksum" "$OUT/local3.out" | tail -1 | awk '{print $3}')
  got=$(grep -a "state checksum" "$OUT/multi-train-$job.out" | tail -1 | awk '{print $3}')
  if [ "$(mstate "$job")" = COMPLETED ] && [ -n "$want" ] && [ "$got" = "$want" ]; then
    ok "multi-node training: job $job on 3 nodes (TCP) ended with checksum $got, equal to 3 ranks on one host; $(( $(date +%s) - t0 )) s"
  else
    bad "multi-node training: job $job $(mstate "$job"), checksum '$got' vs 3 ranks on one host '$want'; see $OUT/multi-train-$job.out"
  fi
fi
echo "slurm: $passed passed, $failed failed${skipped:+, $skipped skipped}"
[ "$failed" = 0 ] && rm -rf "$OUT"
[ "$failed" = 0 ]
