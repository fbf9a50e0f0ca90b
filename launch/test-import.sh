#!/usr/bin/env bash
# PyTorch checkpoint import WITHOUT PyTorch (docs/import.md); a sub-suite of launch/test.sh:
#   1. a Python with numpy: the venv .build/venv-import (made on first use, numpy from PyPI), or
#      python3 itself when that venv cannot be made and python3 has numpy;
#   2. unit tests of the torch-free zip reader and of the converter using it
#      (Tests/Import/test_torchzip.py; fixtures written by PyTorch in Tests/Fixtures/torch-zip, plus
#      archives assembled by hand);
#   3. converts the UM reference checkpoint (um-densenet-bc100-cifar10.state, looked for in
#      $UMTRAIN_REFERENCE_DIR when set, else in ../shared/reference beside this checkout, as CI lays
#      it out, then /work/shared/reference)
#      with --reader zip into $UMTRAIN_DENSENET_SAFETENSORS, for DenseNetParityTests, which
#      launch/test.sh runs next (swift test). Skipped, saying why, when the reference is absent.
# Usage: UMTRAIN_DENSENET_SAFETENSORS=OUT.safetensors bash launch/test-import.sh
# Idempotent. Last line: "import: N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/.build/test-logs}"
mkdir -p "$LOG_DIR"
OUT="${UMTRAIN_DENSENET_SAFETENSORS:?set UMTRAIN_DENSENET_SAFETENSORS to the safetensors file to write}"

passed=0; failed=0; skipped=0
say() { printf '[import] %s\n' "$*"; }
record() {  # record NAME STATUS(pass|fail|skip) [detail]
  case "$2" in
    pass) passed=$((passed + 1)); say "ok    $1" ;;
    fail) failed=$((failed + 1)); say "FAIL  $1${3:+: $3}" ;;
    skip) skipped=$((skipped + 1)); say "skip  $1${3:+: $3}" ;;
  esac
}
finish() {
  if [ "$skipped" -gt 0 ]; then echo "import: $passed passed, $failed failed, $skipped skipped"
  else echo "import: $passed passed, $failed failed"; fi
  exit $(( failed > 0 ))
}

# 1. A Python with numpy (PyTorch is never installed).
VENV="$ROOT/.build/venv-import"
PY=""; how="venv present"
has_numpy() { "$1" -c 'import numpy' >/dev/null 2>&1; }
if [ -x "$VENV/bin/python" ] && has_numpy "$VENV/bin/python"; then
  PY="$VENV/bin/python"
elif command -v python3 >/dev/null; then
  t=$(date +%s)
  if { python3 -m venv "$VENV" && "$VENV/bin/python" -m pip install -q "numpy>=1.21"; } >"$LOG_DIR/venv-import.log" 2>&1 \
      && has_numpy "$VENV/bin/python"; then
    PY="$VENV/bin/python"; how="venv made, numpy from PyPI, in $(( $(date +%s) - t )) s"
  elif has_numpy python3; then
    PY=python3; how="could not make $VENV (see $LOG_DIR/venv-import.log), python3 has numpy"
  fi
fi
if [ -z "$PY" ]; then
  record "a Python 3 with numpy" fail "no python3, or neither a venv with numpy nor python3's own numpy (see $LOG_DIR/venv-import.log); hint: apt-get install python3-venv python3-numpy"
  rm -f "$OUT"
  finish
fi
say "using $PY: numpy $("$PY" -c 'import numpy; print(numpy.__version__)'), torch importable: $("$PY" -c 'import torch' >/dev/null 2>&1 && echo yes || echo no) ($how)"

# 2. Unit tests of the reader and the converter.
log="$LOG_DIR/import-unit.log"
t=$(date +%s)
set +e
"$PY" Tests/Import/test_torchzip.py >"$log" 2>&1
set -e
ran=$(grep -aE '^Ran [0-9]+ tests?' "$log" | sed -E 's/^Ran ([0-9]+).*/\1/' || true)
if [ -z "$ran" ]; then
  record "zip reader unit tests" fail "no unittest summary; see $log"
else
  count() { grep -aoE "$1=[0-9]+" "$log" | tail -1 | cut -d= -f2 || true; }
  nf=$(count failures); ne=$(count errors); ns=$(count skipped)
  f=$(( ${nf:-0} + ${ne:-0} )); s=${ns:-0}
  passed=$((passed + ran - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
  grep -aE '^(FAIL|ERROR): ' "$log" | sed 's/^/[import] FAIL  /' || true
  [ "$f" = 0 ] && st="ok   " || st="FAIL "
  say "$st zip reader unit tests (Tests/Import/test_torchzip.py): $((ran - f - s)) passed, $f failed, $s skipped ($(( $(date +%s) - t )) s)"
fi

# 3. The UM reference checkpoint, converted without torch, for DenseNetParityTests.
rm -f "$OUT"; mkdir -p "$(dirname "$OUT")"
if [ -n "${UMTRAIN_REFERENCE_DIR:-}" ]; then candidates=("$UMTRAIN_REFERENCE_DIR")
else candidates=("$(dirname "$ROOT")/shared/reference" /work/shared/reference); fi
REF=""
for d in "${candidates[@]}"; do
  if [ -f "$d/um-densenet-bc100-cifar10.state" ]; then REF="$d/um-densenet-bc100-cifar10.state"; break; fi
done
if [ -z "$REF" ]; then
  record "convert the UM reference DenseNet-BC-100 without torch" skip \
    "um-densenet-bc100-cifar10.state not on this machine (looked in ${candidates[*]}); DenseNetParityTests will skip its logits check"
else
  log="$LOG_DIR/import-convert.log"
  s0=$(date +%s.%N)
  set +e
  "$PY" launch/convert-torch-checkpoint.py "$REF" "$OUT" --arch densenet_bc100 --reader zip >"$log" 2>&1
  rc=$?
  set -e
  secs=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  if [ "$rc" = 0 ] && [ -s "$OUT" ]; then
    record "converted $REF without torch (zip reader) in ${secs} s: $(grep -aoE '[0-9]+ tensors, [0-9]+ float32 values' "$log")" pass
  else
    record "convert $REF without torch (zip reader)" fail "exit $rc; see $log: $(tail -2 "$log" | tr '\n' ' ')"
    rm -f "$OUT"
  fi
fi
finish
