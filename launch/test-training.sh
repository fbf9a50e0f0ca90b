#!/usr/bin/env bash
# Multi-rank training tests on real data (Fashion-MNIST from Debian's dataset-fashion-mnist),
# run by launch/test.sh after the release build:
#   1. resume is bit-exact on 2 ranks: 10 uninterrupted steps == 5 steps + checkpoint +
#      fresh processes + 5 steps (same state checksum), and a negative control (resume without
#      the momentum buffers) gives a different checksum;
#   2. a rank killed with SIGKILL mid-training ends the job non-zero within 30 s, naming the
#      rank; no checkpoint is left half-written: resume picks the newest complete one;
#   3. SIGTERM makes every rank finish its step, write a checkpoint and exit 75;
#   4. the stall inspector on rank 0 names a rank that is slowed down on purpose;
#   5. `umtrain score` with a saved detector reproduces evaluate's per-sample scores, and
#      `umtrain metrics` reproduces its trapezoid AUPR, OpenOOD FPR95 and group averages;
#   6. lazy folder loading trains bit-identically to in-memory loading on 2 ranks, and a bad
#      file stops both ranks;
#   7. a configuration error on one node only ends the job within seconds, naming it.
# Ends with one line: "training: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"
CFG=Tests/MultiRank/tiny-train.yaml
OUT=$(mktemp -d /tmp/umtrain-test-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "[test] ok    $*"; }
bad() { failed=$((failed + 1)); echo "[test] FAIL  $*"; }

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  bad "training tests need Fashion-MNIST (apt-get install dataset-fashion-mnist; launch/setup.sh does it)"
  echo "training: $passed passed, $failed failed"; exit 1
fi

train() {  # train LOGNAME NAME [extra args...]
  local log="$LOG_DIR/train-$1.log" name=$2; shift 2
  timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name "$name" \
    --set output_dir="$OUT" --stall-timeout 60 "$@" >"$log" 2>&1
}
checksum() { grep -ao 'state checksum: [0-9a-f]*' "$LOG_DIR/train-$1.log" | tail -1 | awk '{print $3}'; }

# 1. Resume.
set +e
train full full --set train.max_steps=10; r1=$?
train half1 half --set train.max_steps=5; r2=$?
train half2 half --resume --set train.max_steps=10; r3=$?
train ctrl1 ctrl --set train.max_steps=5; r4=$?
train ctrl2 ctrl --resume --debug-drop-momentum --set train.max_steps=10; r5=$?
set -e
a=$(checksum full); b=$(checksum half2); c=$(checksum ctrl2)
if [ "$r1$r2$r3" = 000 ] && [ -n "$a" ] && [ "$a" = "$b" ] && grep -aq "resumed from" "$LOG_DIR/train-half2.log"; then
  ok "resume is bit-exact on 2 ranks: 10 steps = 5 + checkpoint + fresh processes + 5 (checksum $a)"
else
  bad "resume: exits $r1/$r2/$r3, checksums '$a' vs '$b'; see $LOG_DIR/train-full.log, train-half2.log"
fi
if [ "$r4$r5" = 00 ] && [ -n "$c" ] && [ "$c" != "$a" ]; then
  ok "negative control: resuming without momentum buffers changes the checksum ($c != $a)"
else
  bad "negative control: exits $r4/$r5, checksum '$c' (uninterrupted '$a'); the resume test could not fail"
fi

# 2. Kill a rank mid-training.
log="$LOG_DIR/train-kill.log"
s=$(date +%s.%N)
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name kill --set output_dir="$OUT" \
  --set train.epochs=200 --set train.checkpoint_every=1 --stall-timeout 60 >"$log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 600); do
  if [ -d "$OUT/kill/train/checkpoints" ] && ls "$OUT"/kill/train/checkpoints/*/COMPLETE >/dev/null 2>&1; then
    for pid in $(pgrep -f "umtrain train --config $CFG --name kill" || true); do
      if tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=1$'; then victim=$pid; fi
    done
    [ -n "$victim" ] && break
  fi
  sleep 0.1
done
if [ -z "$victim" ]; then
  kill $job 2>/dev/null || true; wait $job 2>/dev/null || true
  bad "kill test: no checkpoint or no rank-1 process appeared; see $log"
else
  sleep 0.7
  tk=$(date +%s.%N)
  kill -9 "$victim"
  set +e; wait $job; rc=$?; set -e
  secs=$(awk -v a="$tk" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  if [ "$rc" != 0 ] && awk -v t="$secs" 'BEGIN {exit !(t <= 30)}' && grep -aqiE "rank 1.*(signal 9|killed)" "$log"; then
    ok "SIGKILL of rank 1 ended the job (exit $rc) ${secs} s later, naming rank 1"
  else
    bad "kill test: exit $rc after ${secs} s; see $log"
  fi
  # No half-written checkpoint: resume must find a complete one and verify it.
  set +e
  timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name kill --set output_dir="$OUT" \
    --resume --set train.epochs=200 --set train.max_steps=1 >"$LOG_DIR/train-kill-resume.log" 2>&1
  rc=$?
  # max_steps=1 is already passed by the resumed position: it stops at once after resuming.
  set -e
  if grep -aq "resumed from" "$LOG_DIR/train-kill-resume.log" && ! grep -aq "skipping" "$LOG_DIR/train-kill-resume.log" && [ "$rc" = 0 ]; then
    ok "after the kill, resume found a complete checkpoint ($(grep -ao 'resumed from [^ ]*' "$LOG_DIR/train-kill-resume.log" | head -1 | awk '{print $3}' | xargs basename))"
  else
    bad "resume after kill: exit $rc; see $LOG_DIR/train-kill-resume.log"
  fi
fi

# 3. SIGTERM (pre-emption): checkpoint and exit 75.
log="$LOG_DIR/train-term.log"
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name term --set output_dir="$OUT" \
  --set train.epochs=200 --set train.checkpoint_every=0 >"$log" 2>&1 &
job=$!
for _ in $(seq 1 300); do grep -aq "epoch 1 step" "$log" 2>/dev/null && break; sleep 0.1; done
# Signal the ranks (as Slurm signals a job step's tasks), not mpirun itself.
pids=""
for pid in $(pgrep -f "umtrain train --config $CFG --name term" || true); do
  tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -q '^OMPI_COMM_WORLD_RANK=' && pids="$pids $pid"
done
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null || true
set +e; wait $job; rc=$?; set -e
if [ "$rc" = 75 ] && grep -aq "stop requested" "$log" && ls "$OUT"/term/train/checkpoints/*/COMPLETE >/dev/null 2>&1; then
  ok "SIGTERM: ranks finished the step, wrote a checkpoint and exited 75"
else
  bad "SIGTERM test: exit $rc; see $log"
fi

# 5. A saved detector (reports/detector) reproduces evaluate's per-sample scores with `umtrain score`.
model="$OUT/full/train/model.safetensors"
if [ -f "$model" ] && [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  set +e
  # A second, grouped set (the first 600 test images inverted) for the OpenOOD-convention check (5b).
  python3 - "$OUT/inverted-idx3-ubyte.gz" <<'PY'
import gzip, struct, sys
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    raw = f.read()
n, rows, cols = 600, 28, 28
pixels = bytes(255 - b for b in raw[16:16 + n * rows * cols])
with gzip.open(sys.argv[1], "wb") as f:
    f.write(struct.pack(">IIII", 2051, n, rows, cols) + pixels)
PY
  timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain evaluate --config "$CFG" --name full --set output_dir="$OUT" \
    --checkpoint "$model" --stage evalscore --set evaluate.ood_manifest= --set evaluate.knn_k=5 \
    --set 'evaluate.scores=[msp, maxlogit, energy, odin, mahalanobis, knn, react, gen, fdbd, ash, scale, rmds, vim, nnguide]' \
    --set "evaluate.ood_sets=[{name: digits, images: /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz, synthetic: false, group: near}, {name: inverted, images: $OUT/inverted-idx3-ubyte.gz, group: far}]" \
    --set evaluate.aupr=trapezoid --set evaluate.fpr_mode=openood \
    >"$LOG_DIR/evaluate-score.log" 2>&1
  r1=$?
  timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain score --config "$CFG" --checkpoint "$model" \
    --detector "$OUT/full/evalscore/reports/detector" --input /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
    --set evaluate.knn_k=5 --output "$OUT/score.csv" >>"$LOG_DIR/evaluate-score.log" 2>&1
  r2=$?
  set -e
  if [ "$r1$r2" = 00 ] && cmp -s "$OUT/score.csv" "$OUT/full/evalscore/reports/scores/digits.csv"; then
    ok "umtrain score with the saved detector reproduces evaluate's per-sample scores (14 scores, byte-identical CSV)"
  else
    bad "score vs evaluate: exits $r1/$r2 or the CSVs differ; see $LOG_DIR/evaluate-score.log"
  fi
  # 5b. umtrain metrics reproduces, from the per-sample score files, the evaluation's trapezoid
  #     AUPR, OpenOOD FPR95 and the per-group and overall averages (energy and knn).
  reports="$OUT/full/evalscore/reports"
  set +e
  for col in energy knn; do
    ./.build/release/umtrain metrics --id "$reports/scores/id_test.csv" --ood "$reports/scores/digits.csv" --ood "$reports/scores/inverted.csv" \
      --column "$col" --aupr trapezoid --fpr-mode openood --group "near=$reports/scores/digits.csv" --group "far=$reports/scores/inverted.csv" \
      --json > "$OUT/metrics-$col.json" 2>>"$LOG_DIR/evaluate-score.log"
  done
  set -e
  if python3 - "$reports/ood.json" "$OUT/metrics-energy.json" "$OUT/metrics-knn.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["aupr_mode"] == "trapezoid" and report["fpr_mode"] == "openood", (report["aupr_mode"], report["fpr_mode"])
keys = ["auroc", "aupr_in", "aupr_out", "fpr95"]
for score, path in (("energy", sys.argv[2]), ("knn", sys.argv[3])):
    m = json.load(open(path))
    for g in ("near", "far"):
        a, b = report["group_averages"][score][g], m["groups"][g]
        assert all(a[k] == b[k] for k in keys), (score, g, a, b)
        assert b["aupr_mode"] == "trapezoid"
    a, b = report["average_real"][score], m["average"]
    assert all(a[k] == b[k] for k in keys), (score, "average", a, b)
PY
  then
    ok "umtrain metrics reproduces the evaluation's trapezoid AUPR, OpenOOD FPR95 and near/far and overall averages from the score files (energy, knn)"
  else
    bad "umtrain metrics differs from ood.json (trapezoid / groups); see $OUT/metrics-*.json and $reports/ood.json"
  fi
fi

# 6. Lazy folder loading under MPI: Fashion-MNIST images written as a PNG class-folder tree,
#    trained on 2 ranks with data.loading lazy (decoded per batch on each rank's loader thread)
#    and memory; with augmentation on, the final state checksums must be identical.
FOLDER="$OUT/fmnist-png"
python3 - "$FOLDER" <<'PY'
import gzip, struct, sys, zlib, os
root = sys.argv[1]
def png(path, pixels, h, w):
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for split, prefix, count in [("train", "train", 480), ("val", "t10k", 120)]:
    d = "/usr/share/datasets/fashion-mnist/"
    images = gzip.open(d + prefix + "-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(d + prefix + "-labels-idx1-ubyte.gz").read()[8:]
    for i in range(count):
        folder = os.path.join(root, split, "class%d" % labels[i])
        os.makedirs(folder, exist_ok=True)
        png(os.path.join(folder, "%05d.png" % i), images[i * 784:(i + 1) * 784], 28, 28)
PY
lazyrun() {  # lazyrun NAME LOADING [extra args...]
  local name=$1 loading=$2; shift 2
  timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name "$name" --set output_dir="$OUT" \
    --set data.format=folder --set data.train_images="$FOLDER/train" --set data.test_images="$FOLDER/val" \
    --set data.loading="$loading" --set data.validation_size=80 --set data.train_subset=0 --set data.random_crop=true \
    --set data.padding=2 --set data.horizontal_flip=true --set train.epochs=2 --set train.eval_batch_size=50 \
    --stall-timeout 60 "$@" >"$LOG_DIR/train-$name.log" 2>&1
}
set +e
lazyrun folder-lazy lazy; r1=$?
lazyrun folder-memory memory; r2=$?
set -e
a=$(checksum folder-lazy); b=$(checksum folder-memory)
if [ "$r1$r2" = 00 ] && [ -n "$a" ] && [ "$a" = "$b" ]; then
  ok "lazy folder loading on 2 ranks trains bit-identically to in-memory loading (augmentation on, checksum $a)"
else
  bad "lazy vs memory folder training: exits $r1/$r2, checksums '$a' vs '$b'; see $LOG_DIR/train-folder-lazy.log"
fi
# A text file posing as a PNG: the sharded up-front check (each rank checks its share of the
# files) must stop every rank with an error naming the file, not leave one hanging.
echo "<html>not an image</html>" > "$FOLDER/train/class3/zz-broken.png"
s=$(date +%s.%N)
set +e; lazyrun folder-broken lazy; r3=$?; set -e
secs=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
rm -f "$FOLDER/train/class3/zz-broken.png"
# Resuming on changed data (a file added: ids shift, the validation split reshuffles) is refused.
cp "$FOLDER/train/class3/$(ls "$FOLDER/train/class3" | head -1)" "$FOLDER/train/class3/aa-added.png"
set +e; lazyrun folder-lazy lazy --resume --set train.epochs=3; r4=$?; set -e
rm -f "$FOLDER/train/class3/aa-added.png"
set +e; lazyrun folder-lazy-resume lazy; lazyrun folder-lazy-resume lazy --resume --set train.epochs=3; r5=$?; set -e
if [ "$r3" != 0 ] && grep -aq "zz-broken.png" "$LOG_DIR/train-folder-broken.log" && awk -v t="$secs" 'BEGIN {exit !(t <= 30)}'; then
  ok "a bad file in a lazy folder stops both ranks (exit $r3, ${secs} s) with an error naming it"
else
  bad "bad file in a lazy folder: exit $r3 after ${secs} s; see $LOG_DIR/train-folder-broken.log"
fi
if [ "$r4" != 0 ] && grep -aq "written for other training data" "$LOG_DIR/train-folder-lazy.log" \
   && [ "$r5" = 0 ] && grep -aq "resumed from" "$LOG_DIR/train-folder-lazy-resume.log"; then
  ok "resume refuses a checkpoint written for other training data (a file was added), and resumes on the same data"
else
  bad "resume on changed data: exit $r4; see $LOG_DIR/train-folder-lazy.log"
fi

# 7. A configuration error on one node only (data path present on rank 0's node, missing on
#    rank 1's: MPMD with two working directories): rank 1 must name the error and the job must
#    end within seconds, not at the stall timeout with an unrelated message.
mkdir -p "$OUT/nodeA" "$OUT/nodeB"
ln -sfn "$FOLDER" "$OUT/nodeA/d"
UBIN="$ROOT/.build/release/umtrain"
NARGS="train --config $ROOT/$CFG --name nodes --set output_dir=$OUT --set data.format=folder --set data.train_images=d/train --set data.test_images=d/val --set data.validation_size=80 --set data.train_subset=0 --set train.epochs=1"
s=$(date +%s.%N)
set +e
timeout -k 5 120 mpirun --oversubscribe --mca btl_vader_single_copy_mechanism none -x OPENBLAS_NUM_THREADS=1 \
  -np 1 -wdir "$OUT/nodeA" "$UBIN" $NARGS : -np 1 -wdir "$OUT/nodeB" "$UBIN" $NARGS >"$LOG_DIR/train-node-config.log" 2>&1
r=$?
set -e
secs=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
if [ "$r" != 0 ] && grep -aq "\[rank 1\] error: .*data.train_images" "$LOG_DIR/train-node-config.log" && awk -v t="$secs" 'BEGIN {exit !(t <= 40)}'; then
  ok "a config error on one node only: rank 1 names it and the job ends in ${secs} s (exit $r)"
else
  bad "node-specific config error: exit $r after ${secs} s; see $LOG_DIR/train-node-config.log"
fi

# 8. Ranks started with different UMTRAIN_CONV_ALGORITHM values (plain mpirun does not forward
#    the variable to other hosts): every rank must refuse at start-up, naming each rank's value.
set +e
timeout -k 5 120 mpirun --oversubscribe --mca btl_vader_single_copy_mechanism none -x OPENBLAS_NUM_THREADS=1 \
  -np 1 env UMTRAIN_CONV_ALGORITHM=im2col "$UBIN" bench gemm --square-only --repeats 1 : \
  -np 1 env -u UMTRAIN_CONV_ALGORITHM "$UBIN" bench gemm --square-only --repeats 1 >"$LOG_DIR/conv-algorithm-mismatch.log" 2>&1
r=$?
set -e
if [ "$r" != 0 ] && grep -aq "\[rank 1\] error: ranks disagree on the convolution algorithm (rank 0: im2col, rank 1: auto)" \
     "$LOG_DIR/conv-algorithm-mismatch.log"; then
  ok "ranks with different UMTRAIN_CONV_ALGORITHM refuse to start, naming each rank's value (exit $r)"
else
  bad "conv algorithm mismatch across ranks: exit $r; see $LOG_DIR/conv-algorithm-mismatch.log"
fi

# 4. Stall inspector: rank 2 of 3 is slowed by 0.3 s per step; rank 0 must name it.
log="$LOG_DIR/train-straggler.log"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 3 umtrain train --config "$CFG" --name slow --set output_dir="$OUT" \
  --set train.max_steps=12 --set train.consistency_every=4 --debug-slow-rank 2 --debug-slow-seconds 0.3 >"$log" 2>&1
rc=$?
set -e
if [ "$rc" = 0 ] && grep -aq "stall inspector: ranks behind the median.*rank 2 (busy" "$log" \
   && ! grep -a "stall inspector" "$log" | grep -aq "rank [01] (busy"; then
  ok "stall inspector names the slow rank: $(grep -a 'stall inspector' "$log" | head -1 | sed 's/.*: rank/rank/')"
else
  bad "stall inspector drill: exit $rc; see $log"
fi

# 9. The per-rank timeline (train.trace): 2 ranks, 4 traced steps with small gradient buckets
#    (overlapped with backward), one Chrome trace-event file with a row per rank.
log="$LOG_DIR/train-trace.log"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train --config "$CFG" --name trace --set output_dir="$OUT" \
  --set train.max_steps=6 --set train.trace="$OUT/trace.json" --set train.trace_steps=4 \
  --set train.bucket_first_mib=0.01 --set train.bucket_mib=0.02 >"$log" 2>&1
rc=$?
set -e
if [ "$rc" = 0 ] && python3 - "$OUT/trace.json" <<'PY'
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
for rank in (0, 1):
    mine = [e for e in events if e.get("pid") == rank and e.get("ph") == "X"]
    names = [e["name"] for e in mine]
    assert sum(n.startswith("step ") for n in names) == 4, (rank, "steps")
    assert any(n.startswith("allreduce bucket") for n in names), (rank, "buckets")
    assert any(e["cat"] == "forward" for e in mine) and any(e["cat"] == "backward" for e in mine), (rank, "layers")
    assert "optimizer" in names and "data wait" in names and "loss statistics allreduce" in names, (rank, "phases")
    assert all(e["dur"] >= 0 for e in mine), (rank, "durations")
PY
then
  ok "train.trace writes one Chrome trace-event file: 2 rank rows, 4 steps each with data wait, per-layer forward/backward, bucket allreduces, optimizer"
else
  bad "trace: exit $rc or the file lacks events; see $log and $OUT/trace.json"
fi

echo "training: $passed passed, $failed failed"
[ "$failed" = 0 ]
