#!/usr/bin/env bash
# Installs what umtrain needs on a fresh Debian machine and builds it (release).
# Idempotent: packages already present are not reinstalled; the build is incremental.
# Usage: launch/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev pkg-config dataset-fashion-mnist)

say() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "[setup] error: missing packages ${missing[*]} and not root (no sudo). Hint: ask an admin to apt-get install them." >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  say "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present: ${PACKAGES[*]}"
fi

if ! command -v swift >/dev/null; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$d/swift" ] && export PATH="$d:$PATH"; done
fi
command -v swift >/dev/null || { echo "[setup] error: 'swift' not found. Hint: install Swift 6.x and put it on PATH." >&2; exit 1; }
command -v mpirun >/dev/null || { echo "[setup] error: mpirun not found after installing openmpi-bin." >&2; exit 1; }

if [ "${1:-}" != "--no-build" ]; then
  say "building umtrain (release) ..."
  start=$(date +%s)
  swift build -c release --product umtrain 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | grep -v "^\[" || true
  [ -x .build/release/umtrain ] || { echo "[setup] error: build failed; run 'swift build -c release' to see why." >&2; exit 1; }
  say "built .build/release/umtrain in $(( $(date +%s) - start )) s"
fi
