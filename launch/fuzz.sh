#!/usr/bin/env bash
# libFuzzer harnesses for every reader of outside input (docs/fuzzing.md).
#
#   launch/fuzz.sh list                 the targets, their harness and seed count
#   launch/fuzz.sh build                build every harness (no run)
#   launch/fuzz.sh TARGET SECONDS       fuzz one target for SECONDS
#   launch/fuzz.sh all SECONDS          every target in turn, SECONDS each
#   launch/fuzz.sh smoke [SECONDS]      every target briefly (default 15 s each): for the test suite
#   launch/fuzz.sh repro TARGET FILE... run the harness once on each FILE (a crash reproduces)
#
# The harnesses (Fuzz/, a package of its own that depends on this one) are built with
# -sanitize=fuzzer,address into .build-fuzz/ (FUZZ_CONFIG=debug, the default, or release).
# Each run copies the committed seeds (Fuzz/Corpus/TARGET) into a working corpus outside the
# repository ($FUZZ_WORK/TARGET/corpus, FUZZ_WORK defaults to ${TMPDIR:-/tmp}/umtrain-fuzz),
# replays the regression inputs (Fuzz/Regressions/TARGET), and writes crashing inputs to
# $FUZZ_WORK/TARGET/artifacts. A crash, ASan report, leak, out-of-memory or timeout makes the
# exit status non-zero. The last line of `all` and `smoke` is "fuzz: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CONFIG="${FUZZ_CONFIG:-debug}"
WORK="${FUZZ_WORK:-${TMPDIR:-/tmp}/umtrain-fuzz}"
SCRATCH="$ROOT/.build-fuzz"
# Sanitizer settings: leak checks on (with the suppressions in Fuzz/lsan.supp), and the Swift
# runtime's own crash backtracer off (it reads the stack in a way ASan reports as an error of
# its own, hiding the real failure message).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/Fuzz/lsan.supp:print_suppressions=0}"
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"

# target  harness  max_len (bytes)  what
TARGETS="
idx          FuzzIDX          4096  IDX (MNIST) images and labels, raw
idx-gzip     FuzzIDXGzip      4096  IDX through FileBytes' gzip inflation, checked against zlib's gzread
cifar        FuzzCIFAR        8192  CIFAR-10/100 binary records and class-name files
csv-images   FuzzCSVImages    2048  images as CSV lines (mnist_5k.csv, digits.csv)
jpeg         FuzzJPEG         8192  JPEG decoding (libjpeg-turbo shim) and channel conversion
png          FuzzPNG          8192  PNG decoding (libpng, chunk filter, 16-bit path) and conversion
safetensors  FuzzSafeTensors  4096  safetensors decode, conversion and re-encode round trip
scores       FuzzScoreFile    2048  score files (umtrain metrics), file and text
config       FuzzConfig       8192  YAML run config: load, --set, validate, save/reload round trip
checkpoint   FuzzCheckpoint   2048  checkpoint COMPLETE marker and state.json (TrainingState)
estimate     FuzzEstimate     4096  estimate.json (EstimateReport) and atypical.csv (AtypicalTable)
"

say() { printf '[fuzz] %s\n' "$*"; }
die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 2; }
names() { awk 'NF {print $1}' <<<"$TARGETS"; }
field() { awk -v t="$1" -v f="$2" 'NF && $1 == t {print $f}' <<<"$TARGETS"; }
describe() { awk -v t="$1" 'NF && $1 == t {$1 = $2 = $3 = ""; sub(/^ +/, ""); print}' <<<"$TARGETS"; }

# build [TARGET...]: build the harnesses (all by default); incremental, so cheap when up to date.
build() {
  command -v swift >/dev/null || die "'swift' not found on PATH"
  local start; start=$(date +%s)
  local flags=(-c "$CONFIG" --package-path "$ROOT/Fuzz" --scratch-path "$SCRATCH"
               --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address)
  # -enable-testing: the checkpoint harness decodes the internal TrainingState (@testable).
  [ "$CONFIG" = release ] && flags+=(-Xswiftc -enable-testing)
  local log="$SCRATCH/build.log"
  mkdir -p "$SCRATCH"
  : >"$log"
  local which=("$@"); [ ${#which[@]} -gt 0 ] || which=($(names))
  for t in "${which[@]}"; do
    # One product at a time: a plain `swift build` of the fuzz package would also link the
    # main package's executables with libFuzzer's main.
    if ! swift build "${flags[@]}" --product "$(field "$t" 2)" >>"$log" 2>&1; then
      grep -E "error:" "$log" | head -20 >&2
      die "building $(field "$t" 2) failed; see $log"
    fi
  done
  say "built ${which[*]} ($CONFIG) in $(( $(date +%s) - start )) s"
}

binary() { echo "$SCRATCH/$CONFIG/$(field "$1" 2)"; }

# run TARGET SECONDS: fuzz one target; prints one summary line; returns non-zero on a finding.
run() {
  local t=$1 secs=$2
  local bin; bin=$(binary "$t")
  local dir="$WORK/$t" seeds="$ROOT/Fuzz/Corpus/$t" regressions="$ROOT/Fuzz/Regressions/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  rm -f "$dir/artifacts"/*
  [ -d "$seeds" ] && cp -n "$seeds"/* "$dir/corpus/" 2>/dev/null || true
  local inputs=("$dir/corpus")
  [ -d "$regressions" ] && inputs+=("$regressions")
  local log="$dir/fuzz.log" rc=0 started; started=$(date +%s)
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: also the per-allocation limit.
  set +e
  (cd "$dir" && "$bin" -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -max_len="$(field "$t" 3)" -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/" "${inputs[@]}" >"$log" 2>&1)
  rc=$?
  set -e
  local elapsed=$(( $(date +%s) - started ))
  local execs corpus bytes findings
  execs=$(grep -aE '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -1)
  [ -n "$execs" ] || execs=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  corpus=$(find "$dir/corpus" -type f | wc -l)
  bytes=$(du -sk "$dir/corpus" | awk '{print $1}')
  findings=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  local summary="$t: ${elapsed} s, ${execs:-0} executions, corpus $corpus inputs (${bytes} KB), $findings crash(es)"
  if [ "$rc" != 0 ] || [ "$findings" != 0 ]; then
    say "FAIL  $summary; exit $rc; log $log"
    grep -aE '^(==[0-9]+==ERROR|SUMMARY|Fatal error|.*Fatal error:|Swift runtime failure|.*precondition|ERROR: libFuzzer)' "$log" | head -5 | sed 's/^/[fuzz]       /' || true
    find "$dir/artifacts" -type f | sed 's/^/[fuzz]       input: /'
    return 1
  fi
  say "ok    $summary"
}

# many SECONDS: every target in turn; the aggregate line last.
many() {
  local secs=$1 passed=0 failed=0 start; start=$(date +%s)
  build
  for t in $(names); do
    if run "$t" "$secs"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done
  say "total $(( $(date +%s) - start )) s; work folder $WORK"
  echo "fuzz: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

case "${1:-}" in
  list)
    printf '%-12s %-16s %-7s %-6s %s\n' target harness max_len seeds what
    for t in $(names); do
      n=0; [ -d "Fuzz/Corpus/$t" ] && n=$(find "Fuzz/Corpus/$t" -type f | wc -l)
      printf '%-12s %-16s %-7s %-6s %s\n' "$t" "$(field "$t" 2)" "$(field "$t" 3)" "$n" "$(describe "$t")"
    done ;;
  build) build ;;
  all) [ -n "${2:-}" ] || die "usage: launch/fuzz.sh all SECONDS"; many "$2" ;;
  smoke) many "${2:-15}" ;;
  repro)
    [ -n "${2:-}" ] && [ -n "$(field "$2" 2)" ] && [ -n "${3:-}" ] || die "usage: launch/fuzz.sh repro TARGET FILE..."
    t=$2; shift 2
    build "$t" >/dev/null; bin=$(binary "$t")
    "$bin" -timeout=10 -rss_limit_mb=2048 "$@" ;;
 ""|-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    [ -n "$(field "$1" 2)" ] || die "unknown target '$1' (launch/fuzz.sh list shows them)"
    [ -n "${2:-}" ] || die "usage: launch/fuzz.sh $1 SECONDS"
    build "$1"
    run "$1" "$2" ;;
esac
