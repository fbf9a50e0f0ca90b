#!/usr/bin/env bash
# Which detector is best on which model (issue 18; docs/reproducing.md "Detectors"): every one of
# the 14 scores on the baseline, UM, UMAP and the CE control of each seed of the quick study
# (launch/study.sh quick: the default cells um-short-est, umap-short-est and ce-short), then
# `umtrain compare` over the seeds. Reuses the study's trained models; evaluates only.
#   bash launch/detectors.sh                 # seeds 0,1,2 from runs/study-quick-s<seed>
# Environment: STUDY (folder holding study-quick-s<seed>, default runs), OUT (default runs),
# SEEDS (default "0 1 2"), NP (2), UMTRAIN (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
STUDY="${STUDY:-runs}"; OUT="${OUT:-runs}"; SEEDS="${SEEDS:-0 1 2}"
UMTRAIN="${UMTRAIN:-.build/release/umtrain}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scores='[msp, maxlogit, energy, odin, mahalanobis, knn, react, gen, fdbd, ash, scale, rmds, vim, nnguide]'
mkdir -p "$OUT"
folders=()
for seed in $SEEDS; do
  run="$STUDY/study-quick-s$seed"
  for pair in baseline:train um:um-short-est umap:umap-short-est ce_finetune:ce-short; do
    label="${pair%%:*}"; cell="${pair#*:}"
    model="$run/$cell/model.safetensors"
    report="$OUT/detectors-s$seed/evaluate/$label/reports/ood.json"
    if [ -f "$report" ]; then echo "[detectors] seed $seed $label: done"; continue; fi
    if [ ! -f "$model" ]; then echo "[detectors] seed $seed $label: $model not there yet (run launch/study.sh quick); skipped"; continue; fi
    echo "[detectors] seed $seed $label ($cell)"
    mpirun --oversubscribe -np "${NP:-2}" "$UMTRAIN" evaluate --config "$run/config.yaml" --name "detectors-s$seed" \
      --set output_dir="$OUT" --stage "evaluate/$label" --checkpoint "$model" \
      --set "evaluate.scores=$scores" --set evaluate.bootstrap=0 >"$OUT/detectors-s$seed-$label.log" 2>&1
  done
  [ -d "$OUT/detectors-s$seed/evaluate" ] && folders+=("$OUT/detectors-s$seed")
done
"$UMTRAIN" compare "${folders[@]}" --output "$OUT/detectors.md" > /dev/null
echo "[detectors] $OUT/detectors.md (${#folders[@]} seed(s))"
