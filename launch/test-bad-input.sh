#!/usr/bin/env bash
# Broken state is refused loudly (run by launch/test.sh, on real data, Fashion-MNIST from Debian's
# dataset-fashion-mnist):
#   1. training that diverges (lr 1000) stops with the non-finite error, exit non-zero, and
#      writes no model and no checkpoint holding NaN or infinity;
#   2. weights holding NaN are refused, naming the tensor, by evaluate, estimate-loss,
#      finetune, score and pipeline --checkpoint, and a NaN checkpoint by train --resume;
#   3. Ctrl-C (SIGINT) on a single-process run finishes the step, writes a checkpoint and exits 75;
#   4. launch/mpirun.sh accepts a path to the binary instead of the word `umtrain`;
#   5. metrics.jsonl lists every epoch once after a resume from an older checkpoint.
# Ends with one line: "bad-input: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"
OUT=$(mktemp -d /tmp/umtrain-badinput-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "[bad-input] ok    $*"; }
bad() { failed=$((failed + 1)); echo "[bad-input] FAIL  $*"; }
UBIN="$ROOT/.build/release/umtrain"
FM=/usr/share/datasets/fashion-mnist
CFG=Tests/MultiRank/tiny-train.yaml
COMMON=(--config "$CFG" --set output_dir="$OUT" --set evaluate.ood_manifest= --set evaluate.scores=[msp,energy]
        --set "evaluate.ood_sets=[{name: t10k, images: $FM/t10k-images-idx3-ubyte.gz, synthetic: false}]")

# nonfinite FILE...: prints "FILE: N non-finite" for each safetensors file holding NaN/inf.
nonfinite() {
  python3 - "$@" <<'PY'
import json, math, struct, sys
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    bad = 0
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32": continue
        a, b = t["data_offsets"]
        bad += sum(1 for (v,) in struct.iter_unpack("<f", body[a:b]) if not math.isfinite(v))
    if bad: print(f"{path}: {bad} non-finite")
PY
}

# 1. Divergence.
log="$LOG_DIR/bad-diverge.log"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train "${COMMON[@]}" --name diverge --set train.lr=1000 \
  --set train.epochs=3 --stall-timeout 60 >"$log" 2>&1
rc=$?
set -e
ckpts=$(ls "$OUT"/diverge/train/checkpoints/*/model.safetensors 2>/dev/null || true)
poisoned=$( [ -n "$ckpts" ] && nonfinite $ckpts || true )
if [ "$rc" != 0 ] && grep -aqE "non-finite (training loss|parameters)" "$log" && [ ! -e "$OUT/diverge/train/model.safetensors" ] \
   && [ -z "$poisoned" ]; then
  ok "lr 1000 stops with '$(grep -aoE "non-finite (training loss|parameters)[^.]*" "$log" | head -1)' (exit $rc), no model, no non-finite checkpoint"
else
  bad "divergence: exit $rc, model $(ls "$OUT"/diverge/train/model.safetensors 2>/dev/null || echo none), poisoned: '$poisoned'; see $log"
fi

# A trained tiny model, and a copy whose first tensor is all NaN.
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train "${COMMON[@]}" --name good --set train.epochs=2 >"$LOG_DIR/bad-good.log" 2>&1
set -e
GOOD="$OUT/good/train/model.safetensors"
NAN="$OUT/nan.safetensors"
python3 - "$GOOD" "$NAN" <<'PY'
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
name = sorted(k for k in header if k != "__metadata__" and header[k]["dtype"] == "F32")[0]
a, b = header[name]["data_offsets"]
raw[8 + n + a:8 + n + b] = struct.pack("<f", float("nan")) * ((b - a) // 4)
open(sys.argv[2], "wb").write(raw)
PY

# 2. Every command that loads weights refuses the NaN file, naming the tensor.
refused() {  # refused NAME -- command...
  local name=$1; shift 2
  local log="$LOG_DIR/bad-nan-$name.log"
  set +e; timeout -k 5 120 "$@" >"$log" 2>&1; local rc=$?; set -e
  if [ "$rc" != 0 ] && grep -aq "non-finite values in" "$log" && grep -aq "nan.safetensors" "$log"; then
    ok "$name refuses NaN weights (exit $rc): $(grep -ao "non-finite values in [^.]*" "$log" | head -1)"
  else
    bad "$name with NaN weights: exit $rc; see $log"
  fi
}
refused evaluate -- bash launch/mpirun.sh -np 2 umtrain evaluate "${COMMON[@]}" --name nan --checkpoint "$NAN"
refused estimate-loss -- bash launch/mpirun.sh -np 2 umtrain estimate-loss "${COMMON[@]}" --name nan --checkpoint "$NAN"
refused finetune -- bash launch/mpirun.sh -np 2 umtrain finetune "${COMMON[@]}" --name nan --method ce --checkpoint "$NAN"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain evaluate "${COMMON[@]}" --name good --checkpoint "$GOOD" >"$LOG_DIR/bad-good-eval.log" 2>&1
set -e
refused score -- "$UBIN" score "${COMMON[@]}" --checkpoint "$NAN" --detector "$OUT/good/evaluate/reports/detector" \
  --input "$FM/t10k-images-idx3-ubyte.gz" --output "$OUT/scores.csv"
refused "pipeline --checkpoint" -- bash launch/mpirun.sh -np 2 umtrain pipeline "${COMMON[@]}" --name nanpipe --checkpoint "$NAN"
# train --resume: the newest checkpoint's weights made NaN (its COMPLETE marker updated to match).
CK=$(ls -d "$OUT"/good/train/checkpoints/step-* | tail -1)
cp "$NAN" "$CK/model.safetensors"
python3 - "$CK" <<'PY'
import json, sys
ck = sys.argv[1]
data = open(ck + "/model.safetensors", "rb").read()
h = 0xcbf29ce484222325
for b in data:
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
marker = json.load(open(ck + "/COMPLETE"))
marker["files"]["model.safetensors"] = {"bytes": len(data), "fnv1a64": format(h, "x")}
json.dump(marker, open(ck + "/COMPLETE", "w"))
PY
log="$LOG_DIR/bad-nan-resume.log"
set +e
timeout -k 5 120 bash launch/mpirun.sh -np 2 umtrain train "${COMMON[@]}" --name good --set train.epochs=3 --resume >"$log" 2>&1
rc=$?
set -e
if [ "$rc" != 0 ] && grep -aq "non-finite values in" "$log" && grep -aq "$(basename "$CK")" "$log"; then
  ok "train --resume refuses a checkpoint with NaN weights (exit $rc), naming it"
else
  bad "train --resume from a NaN checkpoint: exit $rc; see $log"
fi

# 3. Ctrl-C on a single process: a checkpoint and exit 75.
log="$LOG_DIR/bad-sigint.log"
timeout -k 5 120 "$UBIN" train "${COMMON[@]}" --name sigint --set train.epochs=200 --set train.checkpoint_every=0 >"$log" 2>&1 &
job=$!
for _ in $(seq 1 600); do grep -aq "epoch 2 step" "$log" 2>/dev/null && break; sleep 0.05; done
pid=$(pgrep -P "$job" umtrain || true)
[ -n "$pid" ] && kill -INT "$pid"
set +e; wait "$job"; rc=$?; set -e
if [ "$rc" = 75 ] && grep -aq "interrupt: finishing the step" "$log" && ls "$OUT"/sigint/train/checkpoints/*/COMPLETE >/dev/null 2>&1; then
  ok "Ctrl-C (SIGINT) finishes the step, writes a checkpoint and exits 75"
else
  bad "SIGINT: exit $rc; see $log"
fi

# 4. launch/mpirun.sh with a path to the binary.
log="$LOG_DIR/bad-mpirun-path.log"
set +e
timeout -k 5 120 bash launch/mpirun.sh -np 2 "$UBIN" selftest --filter "barrier" >"$log" 2>&1
rc=$?
set -e
if [ "$rc" = 0 ] && grep -aq "^1 passed, 0 failed" "$log"; then
  ok "launch/mpirun.sh accepts a path to the binary ($UBIN)"
else
  bad "mpirun.sh with a binary path: exit $rc; see $log"
fi

# 5. metrics.jsonl after resuming from an older checkpoint: every epoch once.
log="$LOG_DIR/bad-metrics.log"
set +e
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train "${COMMON[@]}" --name metrics --set train.epochs=3 \
  --set train.keep_checkpoints=3 >"$log" 2>&1
rm -rf "$(ls -d "$OUT"/metrics/train/checkpoints/step-* | tail -1)"   # the newest checkpoint is lost
timeout -k 5 300 bash launch/mpirun.sh -np 2 umtrain train "${COMMON[@]}" --name metrics --set train.epochs=3 \
  --set train.keep_checkpoints=3 --resume >>"$log" 2>&1
rc=$?
set -e
epochs=$(python3 -c 'import json,sys; print(",".join(str(json.loads(l)["epoch"]) for l in open(sys.argv[1]) if l.strip()))' \
  "$OUT/metrics/train/metrics.jsonl" 2>/dev/null || echo "?")
if [ "$rc" = 0 ] && [ "$epochs" = "1,2,3" ] && grep -aq "metrics.jsonl: removed 1 record" "$log"; then
  ok "metrics.jsonl after a resume from an older checkpoint lists epochs $epochs once each"
else
  bad "metrics.jsonl after resume: exit $rc, epochs '$epochs'; see $log"
fi

echo "bad-input: $passed passed, $failed failed"
[ "$failed" = 0 ]
