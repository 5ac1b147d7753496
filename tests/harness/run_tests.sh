#!/usr/bin/env bash
# README command (2): build/refresh the test environment from package registries, then run every test layer
# (unit, real ComfyUI server, real headless Chromium). Extra arguments go to pytest (e.g. -k, tests/unit).
# Exit status: pytest's, except that "no tests collected" (5) is a failure too.
set -uo pipefail
PACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
t0=$(date +%s)
exports=$(bash "$PACK_DIR/tests/harness/setup_env.sh") || { echo "test environment setup failed" >&2; exit 1; }
eval "$exports"
echo "[run_tests] environment ready after $(( $(date +%s) - t0 )) s" >&2
cd "$PACK_DIR"
# -P: do not prepend the pack root to sys.path (its nodes/ would shadow ComfyUI's nodes module)
"$REWARDLOOP_PYTHON" -P -m pytest "${@:-tests}"
rc=$?
echo "[run_tests] pytest exit $rc after $(( $(date +%s) - t0 )) s in all; artifacts in $PACK_DIR/test-artifacts" >&2
if [ "$rc" = 5 ]; then echo "[run_tests] no tests were collected: failing" >&2; exit 1; fi
exit "$rc"
