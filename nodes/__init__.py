"""Thin ComfyUI V3 node classes. Each family module exposes NODES (a list of io.ComfyNode classes); every
node id starts with "RewardLoop" and every category with "RewardLoop/". Node ids and input names are a
public API: never rename one without a migration."""
from __future__ import annotations

import importlib
import os

from comfy_api.latest import ComfyExtension, io

from .. import modelfiles

NODE_ID_PREFIX = "RewardLoop"
CATEGORY_ROOT = "RewardLoop"

# One module per family; a family that fails to import fails the whole pack (loudly), never silently.
FAMILIES = (
    "scene",
    "generate",
    "retry",
    "best_of_n",
    "motion",
    "training",
    "rewards",
)


STATUS_EVENT = "rewardloop.status"


def send_status(node_id: str | None, text: str, final: bool = False, server=None) -> None:
    """A status line for a node's RewardLoop chart widget (web extension), to the client running the prompt.
    Not ComfyUI's progress text: the frontend shows that as a widget it adds to the node mid-run, which grows the
    node under its neighbours. `final` texts stay after the run (a loop's verdict); others go when it ends."""
    if node_id is None:
        return
    try:
        if server is None:
            from server import PromptServer

            server = PromptServer.instance
        srv = server
        srv.send_sync(STATUS_EVENT, {"node_id": str(node_id), "text": text, "final": final}, srv.client_id)
    except Exception:  # no server (scripts, in-process tests) or a closed socket: the status line is optional
        pass


def all_node_classes() -> list[type[io.ComfyNode]]:
    classes: list[type[io.ComfyNode]] = []
    for family in FAMILIES:
        module = importlib.import_module(f".{family}", __name__)
        classes.extend(module.NODES)
    return classes


def register_model_folders() -> None:
    """models/rewardloop (plus any extra_model_paths.yaml entry named `rewardloop`) holds our weights; the pack's
    runtime reads ComfyUI's folder list whenever it looks for a file (nodes/runtime.py)."""
    import folder_paths

    folder_paths.add_model_folder_path(modelfiles.FOLDER_KEY, os.path.join(folder_paths.models_dir, modelfiles.FOLDER_KEY))


class RewardLoopExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_node_classes()
