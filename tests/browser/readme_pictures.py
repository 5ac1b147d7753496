"""Copy the README's canvas pictures from the browser tests' screenshots into docs/images/, scaled down and
palette-quantised so they stay small in the repository.

    bash tests/harness/run_tests.sh tests/browser      # writes test-artifacts/screenshots/
    $REWARDLOOP_PYTHON tests/browser/readme_pictures.py   # after eval "$(bash tests/harness/setup_env.sh)"
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
OUT = ROOT / "docs" / "images"
# README picture <- screenshot, the box kept (x0, y0, x1, y1 in screenshot pixels; None = all), output width.
PICTURES = {
    "canvas-main-demo.png": ("1.58.1-vue-Main demo - inbetween and score-ran.png", (480, 110, 1120, 880), None),
    "chart-composite.png": ("1.58.1-vue-Main demo - inbetween and score-node3-chart.png", None, None),
    "chart-retry-loop.png": ("1.32.9-classic-Retry loop - gate on anchors-node5-chart.png", None, None),
    "canvas-retry-loop-nodes2.png": ("1.58.1-vue-Retry loop - gate on anchors-ran.png", (195, 360, 1405, 800), 1000),
    "chart-segments.png": ("1.58.1-vue-Retry loop - per segment-node22-chart.png", None, None),
    "sidebar-training-job.png": ("1.58.1-vue-sidebar-running.png", (0, 0, 1100, 1000), 770),
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    missing = [src for src, _, _ in PICTURES.values() if not (SHOTS / src).is_file()]
    if missing:
        print(f"missing screenshots (run the browser tests first): {missing}", file=sys.stderr)
        return 1
    for name, (src, box, width) in PICTURES.items():
        img = Image.open(SHOTS / src).convert("RGB")
        if box:
            img = img.crop(box)
        if width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT / name, optimize=True)
        print(OUT / name, (OUT / name).stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
