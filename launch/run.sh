#!/usr/bin/env bash
# The README's main-job command: set up the machine (packages + release build), build the
# offline benchmark data, then run the whole method on 2 MPI ranks with
# configs/fmnist-quick.yaml and print runs/fmnist-quick/summary.md.
#   NP=4 bash launch/run.sh            # more ranks
#   CONFIG=configs/x.yaml bash launch/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NP="${NP:-2}"
CONFIG="${CONFIG:-configs/fmnist-quick.yaml}"

t0=$(date +%s)
bash launch/setup.sh
t1=$(date +%s)
echo "[run] setup took $((t1 - t0)) s"
bash launch/prepare-data.sh
t2=$(date +%s)
echo "[run] data preparation took $((t2 - t1)) s"

bash launch/mpirun.sh -np "$NP" umtrain pipeline --config "$CONFIG" "$@"
t3=$(date +%s)
name=$(awk '/^name:/ {print $2; exit}' "$CONFIG")
out=$(awk '/^output_dir:/ {print $2; exit}' "$CONFIG"); out=${out:-runs}
echo
echo "[run] setup $((t1 - t0)) s, data $((t2 - t1)) s, pipeline $((t3 - t2)) s on $NP ranks"
echo "[run] summary: $out/$name/summary.md"
