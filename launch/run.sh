#!/usr/bin/env bash
# The README's main-job command. Sets up the machine (packages + release build), then runs
# the main job on 2 MPI ranks.
#
# Current main job (foundation stage, until `umtrain pipeline` lands): the multi-rank
# selftest, then the GEMM and communication benchmarks, each on 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
NP="${NP:-2}"

t0=$(date +%s)
bash launch/setup.sh
echo "[run] setup took $(( $(date +%s) - t0 )) s"

t1=$(date +%s)
bash launch/mpirun.sh -np "$NP" umtrain selftest
bash launch/mpirun.sh -np "$NP" umtrain bench gemm
bash launch/mpirun.sh -np "$NP" umtrain bench comm
echo "[run] main job took $(( $(date +%s) - t1 )) s on $NP ranks"
