#!/usr/bin/env bash
# Fuzz smoke for launch/test.sh: every reader's libFuzzer harness for a few seconds (default
# 15 s each, FUZZ_SMOKE_SECONDS), with its seed corpus and regression inputs replayed first.
# Builds the harnesses if needed (.build-fuzz). Lines "[fuzz] ok|FAIL ..." per target; the last
# line is "fuzz: N passed, N failed". See docs/fuzzing.md.
set -euo pipefail
exec bash "$(dirname "$0")/fuzz.sh" smoke "${FUZZ_SMOKE_SECONDS:-15}"
