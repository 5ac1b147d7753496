#!/usr/bin/env bash
# README command (1): set up (same environment as the tests), start ComfyUI with the pack, run the main
# example workflow through /prompt and write its outputs to a folder it prints. --serve keeps it running.
set -euo pipefail
PACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
eval "$(bash "$PACK_DIR/tests/harness/setup_env.sh")"
exec "$REWARDLOOP_PYTHON" "$PACK_DIR/tests/harness/run_demo.py" "$@"
