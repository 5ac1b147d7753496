"""Regenerate workflows/*.json from workflow_specs.py against a real server's /object_info.

    eval "$(bash tests/harness/setup_env.sh)"; $REWARDLOOP_PYTHON tests/harness/make_workflows.py [name ...]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from comfy_server import start_server  # noqa: E402
from pack_info import PACK_ROOT  # noqa: E402
from workflow_specs import SPECS  # noqa: E402
from workflows import build_ui  # noqa: E402


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(tmp)
        try:
            info = server.object_info()
        finally:
            server.stop()
    for name in names or sorted(SPECS):
        ui = build_ui(SPECS[name](), info)
        path = PACK_ROOT / "workflows" / f"{name}.json"
        path.write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
