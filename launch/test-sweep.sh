#!/usr/bin/env bash
# Sweeps (um.xi_positions x finetune.schedules, each UM/UMAP cell with the CE control of its
# schedule) on 2 ranks with real data (Fashion-MNIST from Debian's dataset-fashion-mnist), run by
# launch/test.sh:
#   1. a sweep (2 schedules x 2 xi positions: 10 fine-tuning cells) finishes, writes
#      selection.json, and every cell's model;
#   2. a cell run inside the sweep gives bitwise the same weights as the same cell run alone
#      (a one-cell sweep from the same trained weights), for a UM, a UMAP and a CE cell;
#   3. selection by validation never looks at a test set: the same sweep with the OOD test set's
#      images replaced by different ones (same count and format) selects the same cells, and
#      selection.json and every validation.json are byte-identical, while the test reports differ;
#   4. --resume of the finished sweep reuses every stage (no fine-tuning or evaluation runs);
#   5. without um.force, uncalibrated cells are skipped and listed, and the controls still run.
# Ends with one line: "sweep: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"
OUT=$(mktemp -d /tmp/umtrain-sweep-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "[sweep] ok    $*"; }
bad() { failed=$((failed + 1)); echo "[sweep] FAIL  $*"; }

FM=/usr/share/datasets/fashion-mnist
if [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
  bad "sweep tests need Fashion-MNIST (apt-get install dataset-fashion-mnist; launch/setup.sh does it)"
  echo "sweep: $passed passed, $failed failed"; exit 1
fi

# The OOD test set, and a different one of the same count and format (every pixel inverted).
python3 - "$FM/t10k-images-idx3-ubyte.gz" "$OUT/ood-a.idx" "$OUT/ood-b.idx" <<'EOF'
import gzip, sys
raw = gzip.open(sys.argv[1]).read()
head, pixels = raw[:16], raw[16:16 + 3000 * 784]
count = (3000).to_bytes(4, "big")
open(sys.argv[2], "wb").write(head[:4] + count + head[8:16] + pixels)
open(sys.argv[3], "wb").write(head[:4] + count + head[8:16] + bytes(255 - p for p in pixels))
EOF
# The validation OOD set: training images far from the ones the tiny config trains on.
python3 - "$FM/train-images-idx3-ubyte.gz" "$OUT/val.idx" <<'EOF'
import gzip, sys
raw = gzip.open(sys.argv[1]).read()
head, pixels = raw[:16], raw[16 + 50000 * 784:16 + 51000 * 784]
open(sys.argv[2], "wb").write(head[:4] + (1000).to_bytes(4, "big") + head[8:16] + bytes(255 - p for p in pixels))
EOF

COMMON=(--config Tests/MultiRank/tiny-train.yaml --set output_dir="$OUT" --stall-timeout 60
        --set train.epochs=3 --set train.ood_validation_every=3 --set train.ood_validation_samples=300
        --set train.ood_validation_scores=[energy]
        --set estimate.keep_ratios=[0.99] --set estimate.masks=2 --set umap.keep_ratio=0.9 --set um.force=true
        --set evaluate.ood_manifest= --set evaluate.scores=[msp,energy] --set evaluate.bootstrap=0 --set evaluate.batch_size=1000
        --set "evaluate.validation_ood_sets=[{name: val, images: $OUT/val.idx, synthetic: false}]")
SWEEP=(--set um.xi=[] --set um.xi_positions=[0.1,0.3]
       --set "finetune.schedules=[{name: a, epochs: 1, lr: 0.02}, {name: b, epochs: 2, lr: 0.01}]")
oodset() { echo "evaluate.ood_sets=[{name: t10k, images: $1, synthetic: false}]"; }
run() {  # run NAME LOG [args...]
  local name=$1 log=$2; shift 2
  timeout -k 5 900 bash launch/mpirun.sh -np 2 umtrain pipeline "${COMMON[@]}" --name "$name" "$@" >"$log" 2>&1
}
sha() { sha256sum "$1" 2>/dev/null | cut -c1-16 || echo missing; }
CELLS="ce-a um-a-p0.1 umap-a-p0.1 um-a-p0.3 umap-a-p0.3 ce-b um-b-p0.1 umap-b-p0.1 um-b-p0.3 umap-b-p0.3"

# 1. The sweep.
set +e; run sweep "$LOG_DIR/sweep.log" "${SWEEP[@]}" --set "$(oodset "$OUT/ood-a.idx")"; rc=$?; set -e
missing=""
for c in $CELLS; do
  [ -f "$OUT/sweep/$c/model.safetensors" ] && [ -f "$OUT/sweep/evaluate/$c/reports/ood.json" ] \
    && [ -f "$OUT/sweep/evaluate/$c/validation.json" ] || missing+=" $c"
done
if [ "$rc" = 0 ] && [ -z "$missing" ] && [ -f "$OUT/sweep/selection.json" ] && grep -q "Selected cells" "$OUT/sweep/summary.md"; then
  ok "sweep of 10 cells (2 schedules x 2 xi positions, UM/UMAP/CE): every model, evaluation, validation.json and selection.json written"
else
  bad "sweep: exit $rc, missing:$missing; see $LOG_DIR/sweep.log"
  echo "sweep: $passed passed, $failed failed"; exit 1
fi

# 2. One cell alone, from the sweep's trained weights, equals the same cell inside the sweep.
set +e
run alone "$LOG_DIR/sweep-alone.log" --checkpoint "$OUT/sweep/train/model.safetensors" --set um.xi=[] --set um.xi_positions=[0.3] \
  --set "finetune.schedules=[{name: b, epochs: 2, lr: 0.01}]" --set "$(oodset "$OUT/ood-a.idx")"
rc=$?
set -e
diffs=""
for c in um-b-p0.3 umap-b-p0.3 ce-b; do
  [ "$(sha "$OUT/sweep/$c/model.safetensors")" = "$(sha "$OUT/alone/$c/model.safetensors")" ] || diffs+=" $c"
done
xi_sweep=$(grep -ao '"xi" : [0-9.e-]*' "$OUT/sweep/evaluate/um-b-p0.3/validation.json" || true)
xi_alone=$(grep -ao '"xi" : [0-9.e-]*' "$OUT/alone/evaluate/um-b-p0.3/validation.json" || true)
if [ "$rc" = 0 ] && [ -z "$diffs" ] && [ -n "$xi_sweep" ] && [ "$xi_sweep" = "$xi_alone" ]; then
  ok "a cell inside the sweep = the cell alone, bitwise (um-b-p0.3 $(sha "$OUT/alone/um-b-p0.3/model.safetensors"), umap-b-p0.3, ce-b; $xi_sweep)"
else
  bad "cell alone vs in the sweep: exit $rc, differing:$diffs, xi '$xi_sweep' vs '$xi_alone'; see $LOG_DIR/sweep-alone.log"
fi

# 3. Different OOD test images: same selection, same validation numbers, different test reports.
set +e
run swapped "$LOG_DIR/sweep-swapped.log" --checkpoint "$OUT/sweep/train/model.safetensors" "${SWEEP[@]}" \
  --set "$(oodset "$OUT/ood-b.idx")"
rc=$?
set -e
same=1; detail=""
cmp -s "$OUT/sweep/selection.json" "$OUT/swapped/selection.json" || { same=0; detail+=" selection.json differs;"; }
for c in $CELLS; do
  cmp -s "$OUT/sweep/evaluate/$c/validation.json" "$OUT/swapped/evaluate/$c/validation.json" || { same=0; detail+=" $c/validation.json differs;"; }
done
test_changed=0  # the metrics (ood.csv; ood.json also holds wall times) must differ, or the swap did nothing
cmp -s "$OUT/sweep/evaluate/um-a-p0.1/reports/ood.csv" "$OUT/swapped/evaluate/um-a-p0.1/reports/ood.csv" || test_changed=1
# The picks recomputed here from the validation records alone (best energy AUROC, first in plan order).
expected=$(python3 - "$OUT/swapped" $CELLS <<'EOF'
import json, sys
root, cells = sys.argv[1], sys.argv[2:]
picks = []
for method in ("um", "umap"):
    best = None
    for c in cells:
        if not c.startswith(method + "-"):
            continue
        v = json.load(open(f"{root}/evaluate/{c}/validation.json"))["auroc"]["energy"]
        if best is None or v > best[1]:
            best = (c, v)
    picks.append(f"{method}:{best[0]}")
print(" ".join(picks))
EOF
)
got=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(" ".join(p["method"]+":"+p["label"] for p in s["picks"] if p["rule"]=="validation"))' "$OUT/swapped/selection.json")
picks=$(grep -ao '"label" : "[a-z0-9.-]*"' "$OUT/swapped/selection.json" | head -4 | tr '\n' ' ')
if [ "$rc" = 0 ] && [ "$same" = 1 ] && [ "$test_changed" = 1 ] && [ "$got" = "$expected" ]; then
  ok "selection never reads the test sets: other OOD test images change the test metrics (ood.csv) but not selection.json or any validation.json; the picks equal those recomputed from validation.json alone ($got)"
else
  bad "selection vs test sets: exit $rc,$detail test reports changed: $test_changed, picks '$got' vs recomputed '$expected'; see $LOG_DIR/sweep-swapped.log"
fi

# 4. --resume of the finished sweep reuses every stage.
set +e; run sweep "$LOG_DIR/sweep-resume.log" "${SWEEP[@]}" --set "$(oodset "$OUT/ood-a.idx")" --resume; rc=$?; set -e
reused=$(grep -ac "finished in an earlier run" "$LOG_DIR/sweep-resume.log" || true)
if [ "$rc" = 0 ] && [ "$reused" -ge 24 ] && ! grep -aqE "^=== (UM fine-tuning|UMAP |CE control|evaluate |train ===|estimate-loss)" "$LOG_DIR/sweep-resume.log"; then
  ok "--resume of a finished sweep reuses train, estimate, 10 cells and 12 evaluations ($reused stages)"
else
  bad "resume: exit $rc, $reused stages reused (expected 24); see $LOG_DIR/sweep-resume.log"
fi

# 5. Without um.force, cells whose flood level is outside (training loss, held-out loss) are
#    skipped and listed, the CE controls still run, and the default pick says it was skipped
#    (this tiny model's held-out loss is below its training loss, so every UM/UMAP cell is).
set +e
run noforce "$LOG_DIR/sweep-noforce.log" --checkpoint "$OUT/sweep/train/model.safetensors" "${SWEEP[@]}" --set um.force=false \
  --set "$(oodset "$OUT/ood-a.idx")"
rc=$?
set -e
listed=$(grep -c "^skipping u" "$LOG_DIR/sweep-noforce.log" || true)
if [ "$rc" = 0 ] && [ "$listed" = 8 ] && grep -q "8 sweep cell(s) whose flood level" "$OUT/noforce/summary.md" \
   && [ -f "$OUT/noforce/evaluate/ce-a/reports/ood.csv" ] && [ -f "$OUT/noforce/evaluate/ce-b/reports/ood.csv" ] \
   && [ ! -e "$OUT/noforce/um-a-p0.1" ] && grep -q '"skipped" : true' "$OUT/noforce/selection.json"; then
  ok "without um.force, the 8 uncalibrated UM/UMAP cells are skipped and listed in summary.md; both CE controls run; selection.json marks the default as skipped"
else
  bad "uncalibrated cells: exit $rc, $listed skip lines (expected 8); see $LOG_DIR/sweep-noforce.log and $OUT/noforce/summary.md"
fi

echo "sweep: $passed passed, $failed failed"
[ "$failed" = 0 ]
