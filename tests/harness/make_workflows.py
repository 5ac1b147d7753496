"""Regenerate workflows/*.json from the specs (workflow_specs.py and the retry-loop specs) against a real server's
/object_info: layout, groups, note and model links included. Files of specs that were renamed are not removed.

    eval "$(bash tests/harness/setup_env.sh)"; $REWARDLOOP_PYTHON tests/harness/make_workflows.py [key ...]
"""
from __future__ import annotations

import json
import runpy
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
runpy.run_path(str(HERE.parents[1] / "pack_import.py"))["import_pack"]()  # some specs read the pack's constants

from comfy_server import start_server  # noqa: E402
from workflow_specs import all_specs, build_template, template_path  # noqa: E402


def main(keys: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # API nodes on (their definitions are needed for the "Paid API - ..." workflows); nothing is ever sent there.
        server = start_server(tmp, api_base="http://127.0.0.1:9")
        try:
            info = server.object_info()
        finally:
            server.stop()
    for key in keys or sorted(all_specs()):
        path = template_path(key)
        path.write_text(json.dumps(build_template(key, info), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
