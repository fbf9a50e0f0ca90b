#!/usr/bin/env bash
# Sets everything up and runs ALL tests:
#   0. PyTorch checkpoint import without PyTorch (zip reader unit tests; the UM reference
#      DenseNet-BC-100 converted for the logits-parity test in 1);
#   1. rank-local unit tests (swift test, XCTest);
#   2. multi-rank tests: `umtrain selftest` under mpirun with 2 and 3 ranks (release build);
#   3. failure drills under mpirun: a failing rank and a stalled collective must end the
#      job non-zero within seconds, naming the rank / the collective;
#   4. training on real data under mpirun (resume, kill, pre-emption, lazy loading);
#   5. pre-emption of the pipeline and of finetune, and --resume to identical weights; sweeps
#      (a cell in a sweep = the cell alone, bitwise; selection never reads a test set);
#   6. broken state refused loudly (divergence, NaN weights, Ctrl-C, ...);
#   7. the multi-node suite on network-namespace hosts;
#   8. fuzz smoke: every reader's libFuzzer harness for 10 s (seeds and regression inputs first).
# Prints ONE aggregate line last: "N passed, N failed[, N skipped]". Exit 0 iff nothing failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"

passed=0; failed=0; skipped=0
say() { printf '[test] %s\n' "$*"; }
record() {  # record NAME STATUS(pass|fail|skip) [detail]
  case "$2" in
    pass) passed=$((passed + 1)); say "ok    $1" ;;
    fail) failed=$((failed + 1)); say "FAIL  $1${3:+: $3}" ;;
    skip) skipped=$((skipped + 1)); say "skip  $1${3:+: $3}" ;;
  esac
}

t0=$(date +%s)
bash launch/setup.sh
say "setup done in $(( $(date +%s) - t0 )) s"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# suite NAME SCRIPT PREFIX: run a sub-suite whose last line is "PREFIX: N passed, N failed[,
# N skipped]", show its report lines, and add its counts.
suite() {
  local name=$1 script=$2 prefix=$3 log="$LOG_DIR/$1.log" line p f s
  set +e
  TEST_LOG_DIR="$LOG_DIR" bash "$script" 2>&1 | tee "$log" | grep -aE '^\[(test|preempt|sweep|bad-input|multinode|import|fuzz|slurm)\] (ok|FAIL|skip|exit times|using)'
  set -e
  line=$(grep -aE "^$prefix: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1 || true)
  if [ -z "$line" ]; then record "$name" fail "no summary line; see $log"; return; fi
  p=$(sed -E "s/^$prefix: ([0-9]+) passed.*/\1/" <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  s=0; grep -qE '[0-9]+ skipped' <<<"$line" && s=$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  say "$line"
}

# 0. PyTorch import without PyTorch (launch/test-import.sh): unit tests of the torch-free zip reader,
#    and the UM reference DenseNet-BC-100 checkpoint converted into a temporary file that
#    DenseNetParityTests (step 1) loads to compare its logits with PyTorch's.
IMPORT_TMP=$(mktemp -d)
trap 'rm -rf "$IMPORT_TMP"' EXIT
export UMTRAIN_DENSENET_SAFETENSORS="$IMPORT_TMP/um-densenet.safetensors"
suite test-import launch/test-import.sh import

# 1. Rank-local unit tests.
t1=$(date +%s)
set +e
swift test 2>&1 | tee "$LOG_DIR/swift-test.log" | grep -E "error:|failed|Executed .* tests" | grep -v "^Test Case .* passed" | tail -40
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -E "Executed [0-9]+ tests?" "$LOG_DIR/swift-test.log" | tail -1 || true)
if [ -n "$summary" ]; then
  n=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
  f=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
  s=0; grep -qE "[0-9]+ tests? skipped" <<<"$summary" && s=$(sed -E 's/.* ([0-9]+) tests? skipped.*/\1/' <<<"$summary")
  passed=$((passed + n - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
  say "swift test: $((n - f - s)) passed, $f failed, $s skipped ($(( $(date +%s) - t1 )) s)"
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then record "swift test exit status" fail "exit $rc with no failed test; see $LOG_DIR/swift-test.log"; fi
else
  record "swift test (build or run)" fail "no XCTest summary; see $LOG_DIR/swift-test.log"
fi

# The DenseNet-BC-100 logits parity against PyTorch (DenseNetParityTests): its result or why it skipped.
grep -aE "^DenseNet-BC-100 parity:|testLogitsMatchPyTorchReference.*(skipped|error)" "$LOG_DIR/swift-test.log" \
  | sed 's/^/[test] /' || say "DenseNet-BC-100 parity: no result in $LOG_DIR/swift-test.log"

UMTRAIN="$ROOT/.build/release/umtrain"

# 2. Multi-rank selftest.
for np in 2 3; do
  log="$LOG_DIR/selftest-np$np.log"
  set +e
  timeout -k 5 300 bash launch/mpirun.sh -np "$np" umtrain selftest --stall-timeout 60 >"$log" 2>&1
  rc=$?
  set -e
  line=$(grep -aE "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -1 || true)
  grep -aE "^  (ok|FAIL)|^        rank" "$log" | sed "s/^/[np=$np] /" || true
  if [ -n "$line" ]; then
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    passed=$((passed + p)); failed=$((failed + f))
    say "selftest np=$np: $line (exit $rc)"
    [ "$rc" = 0 ] || [ "$f" != 0 ] || record "selftest np=$np exit status" fail "exit $rc; see $log"
  else
    record "selftest np=$np" fail "no summary line (exit $rc); see $log"
  fi
done

# 3. Failure drills.
drill() {  # drill NAME MAX_SECONDS EXPECTED_STDERR_REGEX -- mpirun args...
  local name=$1 max=$2 pattern=$3; shift 4
  local out="$LOG_DIR/drill-${name// /_}.log"
  local s e rc
  s=$(date +%s.%N)
  set +e
  timeout -k 5 $((max + 30)) bash launch/mpirun.sh "$@" >"$out" 2>&1
  rc=$?
  set -e
  e=$(date +%s.%N)
  local secs; secs=$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.1f", b - a}')
  if [ "$rc" = 0 ]; then record "$name" fail "job exited 0; expected non-zero"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then record "$name" fail "hung: killed by timeout after ${secs} s"
  elif ! grep -aqE "$pattern" "$out"; then record "$name" fail "stderr lacks /$pattern/; see $out"
  elif awk -v t="$secs" -v m="$max" 'BEGIN {exit !(t > m)}'; then record "$name" fail "took ${secs} s (limit ${max} s)"
  else record "$name (exit $rc after ${secs} s)" pass
  fi
}
drill "failing rank 1 of 3 aborts the job with '[rank 1] error:'" 20 '^\[rank 1\] error: injected failure' -- \
  -np 3 umtrain debug fail --rank 1 --after 3
drill "stalled collective (rank 1 sleeps 60 s, deadline 3 s) reported by the waiting ranks" 15 \
  'stalled during debug stall step 2' -- -np 3 umtrain debug stall --rank 1 --sleep 60 --at 2 --stall-timeout 3

# The BLAS kernel auto-selection path: pretend OpenBLAS reported Prescott (with no
# user OPENBLAS_CORETYPE); umtrain must re-execute itself under mpirun with a stronger
# kernel, say so in its header, and pass the sgemm-vs-naive check with it.
if grep -qw avx2 /proc/cpuinfo; then
  log="$LOG_DIR/blas-reexec.log"
  set +e
  env -u OPENBLAS_CORETYPE UMTRAIN_BLAS_SIMULATE_CORE=Prescott timeout -k 5 120 \
    bash launch/mpirun.sh -np 2 umtrain selftest --filter sgemm >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" = 0 ] && grep -aq "auto-selected: Prescott->" "$log" && grep -aq "^1 passed, 0 failed" "$log"; then
    record "BLAS kernel auto-selection re-executes under mpirun ($(grep -ao 'Prescott->[A-Za-z]*' "$log" | head -1))" pass
  else
    record "BLAS kernel auto-selection re-executes under mpirun" fail "exit $rc; see $log"
  fi
else
  record "BLAS kernel auto-selection" skip "CPU has no AVX2, nothing stronger to select"
fi

# 4. Training on real data under mpirun: resume, kill, pre-emption.
suite test-training launch/test-training.sh training

# 5. Pre-emption and resume of the pipeline and of finetune (SIGTERM to a rank, SIGUSR1 to mpirun).
suite test-preemption launch/test-preemption.sh preemption

# 5b. Sweeps: a cell inside a sweep equals the cell alone (bitwise); selection by validation
#     never reads a test set; --resume reuses a finished sweep.
suite test-sweep launch/test-sweep.sh sweep

# 6. Broken state refused loudly: divergence, NaN weights in every loading command, Ctrl-C,
#    metrics.jsonl after a resume, mpirun.sh with a binary path.
suite test-bad-input launch/test-bad-input.sh bad-input

# 7. Multi-node suite on namespace hosts (skips itself where namespaces are not allowed).
suite multinode launch/test-multinode.sh multinode

# 8. Fuzz smoke (launch/test-fuzz.sh, docs/fuzzing.md): every reader's libFuzzer harness for a few
# seconds after replaying its seeds and every regression input found so far.
FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-10}" suite test-fuzz launch/test-fuzz.sh fuzz

# 9. Slurm (launch/test-slurm.sh): a private single-node cluster (slurm-wlm and munge installed if
# missing); the selftest through srun and mpirun, a pre-empted training and a pipeline pre-empted
# in its UM stage that requeue themselves and end with the uninterrupted weights, a failing job not
# requeued; then a 3-node cluster on namespace hosts (selftest via both launchers over TCP, a
# training equal to 3 ranks on one host). Skips itself where it cannot run. About 6 minutes.
suite test-slurm launch/test-slurm.sh slurm

say "total time $(( $(date +%s) - t0 )) s; logs in $LOG_DIR"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
