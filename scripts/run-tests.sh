#!/usr/bin/env bash
# Runs the whole tap suite and prints a final plain line "N passed, N failed".
# Exit status is non-zero on any failure (including a test file that crashed).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"
export CILIUM_DOCKER_LOG_LEVEL="${CILIUM_DOCKER_LOG_LEVEL:-error}"
out=$(mktemp /tmp/cilium-docker-tap.XXXXXX)
node node_modules/tap/dist/esm/run.mjs "$@" 2>&1 | tee "$out"
tap_status=${PIPESTATUS[0]}
node scripts/tap-summary.mjs "$out"
summary_status=$?
rm -f "$out"
if [ "$tap_status" -ne 0 ] || [ "$summary_status" -ne 0 ]; then exit 1; fi
exit 0
