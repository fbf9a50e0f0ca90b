#!/usr/bin/env bash
# Many ranks on one machine (issue 19; docs/performance.md "Many ranks"): for each world size,
# the selftest (every multi-rank check, including 20 training steps equal to 1 rank within 1e-4),
# start-up (mpirun to the end of MPI_Init and the first collective), collectives per training
# step (from a train.trace timeline of the tiny test config), the small-allreduce latency and the
# per-sample-loss gather of 50,000 samples. Ranks beyond the cores are oversubscribed, so times
# grow with the oversubscription as much as with the algorithm.
#   bash launch/many-ranks.sh [NP...]     (default: 1 2 4 8 16)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
UMTRAIN="${UMTRAIN:-.build/release/umtrain}"
OUT=$(mktemp -d /tmp/umtrain-many-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1 2 4 8 16)
echo "| ranks | selftest | selftest wall s | start-up s | collectives per step | 8 B allreduce µs | gather of 50,000 losses ms |"
echo "|---|---|---|---|---|---|---|"
for np in "${sizes[@]}"; do
  run() { timeout -k 5 900 mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS=1 "$UMTRAIN" "$@"; }
  t0=$(date +%s.%N); st=$(run selftest 2>&1 | grep -aE "^[0-9]+ passed" | tail -1); t1=$(date +%s.%N)
  s0=$(date +%s.%N); run bench comm --sizes 0.000004 --repeats 1 >/dev/null 2>&1; s1=$(date +%s.%N)
  run train --config Tests/MultiRank/tiny-train.yaml --name many --set output_dir="$OUT/np$np" --set train.max_steps=6 \
    --set train.trace="$OUT/trace-$np.json" --set train.trace_steps=5 --set train.checkpoint_every=0 >/dev/null 2>&1 || true
  per=$(python3 - "$OUT/trace-$np.json" <<'PY'
import json, sys
try:
    ev = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("pid") == 0 and e.get("ph") == "X"]
except Exception:
    print("n/a"); sys.exit()
steps = sum(e["cat"] == "step" for e in ev)
comm = sum(e["cat"] == "comm" for e in ev)
print(f"{comm / max(steps, 1):.0f}")
PY
)
  lat=$(run bench comm --latency 2>/dev/null | awk '$1 == 8 {print $3}')
  gat=$(run bench gather 2>/dev/null | sed -nE 's/.*median ([0-9.]+) ms.*/\1/p')
  printf '| %s | %s | %.1f | %.1f | %s | %s | %s |\n' "$np" "${st:-failed}" "$(echo "$t1 - $t0" | bc)" "$(echo "$s1 - $s0" | bc)" \
    "${per:-n/a}" "${lat:-n/a}" "${gat:-n/a}"
done
