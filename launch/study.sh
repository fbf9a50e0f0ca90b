#!/usr/bin/env bash
# The regime-map study of issue 17 (docs/reproducing.md, "Where UM works"), resumable: re-run the
# same command after an interruption and every finished stage, cell and evaluation is reused.
#   nohup bash launch/study.sh quick > study-quick.log 2>&1 &     # 5 seeds, 26 cells each
#   nohup bash launch/study.sh full > study-full.log 2>&1 &       # 3 seeds, the chosen cells
# Environment: OUT (run folders, default runs), SEEDS (default 0,1,2,3,4 / 0,1,2), NP (2).
set -euo pipefail
cd "$(dirname "$0")/.."
regime="${1:-quick}"
case "$regime" in
  quick) config=configs/study/quick-map.yaml; seeds="${SEEDS:-0,1,2,3,4}" ;;
  full) config=configs/study/full-map.yaml; seeds="${SEEDS:-0,1,2}" ;;
  *) echo "usage: launch/study.sh quick|full" >&2; exit 2 ;;
esac
if [ ! -f "$config" ]; then
  echo "[study] $config does not exist yet: it is written from the quick map's two best cells (docs/reproducing.md)." >&2
  exit 1
fi
bash launch/prepare-data.sh
t0=$(date +%s)
bash launch/mpirun.sh -np "${NP:-2}" umtrain pipeline --config "$config" --seeds "$seeds" --resume --set output_dir="${OUT:-runs}"
echo "[study] $regime: $(( $(date +%s) - t0 )) s of pipeline; seeds summary under ${OUT:-runs}/$(awk '/^name:/ {print $2; exit}' "$config")/"
