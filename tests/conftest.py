"""Imports the pack as the package `rewardloop` by path, as ComfyUI does (never by putting the pack on
sys.path: its `nodes/` would shadow ComfyUI's own `nodes` module)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rewardloop"


def _import_pack():
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    spec = importlib.util.spec_from_file_location(PACKAGE, PACK_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(PACK_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


_import_pack()


# ---- real ComfyUI server (session-scoped; only started when a test asks for `comfy`) ------------------
import pytest  # noqa: E402

HARNESS = PACK_ROOT / "tests" / "harness"
if str(HARNESS) not in sys.path:
    sys.path.insert(0, str(HARNESS))  # the harness helpers only (never the pack root)

from comfy_server import add_test_models, env_from_setup, start_server  # noqa: E402
from pack_info import declared_node_ids  # noqa: E402

TEST_PACK = PACK_ROOT / "tests" / "server" / "testpack"
ARTIFACTS = PACK_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """A real ComfyUI 0.3.75 with this pack (and tests/server/testpack, when present) in custom_nodes.
    Fails the session loudly if the pack did not import: an import error in the log, or any node id
    declared in nodes/*.py missing from /object_info."""
    extra = (TEST_PACK,) if (TEST_PACK / "__init__.py").exists() else ()
    base = tmp_path_factory.mktemp("comfy-base")
    env = env_from_setup()
    add_test_models(base, env["REWARDLOOP_PYTHON"])  # tiny Wan files, real LPIPS/I3D weights
    server = start_server(base, extra)
    try:
        failures = server.import_failures()
        if failures:
            pytest.fail("node pack import failed:\n" + "\n".join(failures) + "\n" + server.log_tail(80),
                        pytrace=False)
        info = server.object_info()
        missing = [n for n in declared_node_ids() if n not in info]
        if missing:
            pytest.fail(f"pack nodes missing from /object_info: {missing}\n{server.log_tail(80)}", pytrace=False)
        yield server
    finally:
        server.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "server.log").write_text(server.log_text())


@pytest.fixture(scope="session")
def comfy_inprocess():
    """ComfyUI's own modules (comfy_api, comfy.*, folder_paths, ComfyUI's top-level `nodes`) importable in
    this process, for schema and adapter tests. The pack stays `rewardloop`, so `rewardloop.nodes` and
    ComfyUI's `nodes` never collide."""
    comfy_dir = env_from_setup()["REWARDLOOP_COMFYUI"]
    # The pack root must never be importable as top-level modules here: its nodes/ would shadow ComfyUI's
    # nodes.py (`python -m pytest` from the root prepends it; run_tests.sh uses -P to avoid that).
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != PACK_ROOT]
    if comfy_dir not in sys.path:
        sys.path.append(comfy_dir)
    saved_argv = sys.argv
    sys.argv = ["main.py", "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import utils.extra_config  # noqa: F401  (ComfyUI imports it before nodes)
        import comfy_api.latest  # noqa: F401
        import folder_paths
    finally:
        sys.argv = saved_argv
    return folder_paths
