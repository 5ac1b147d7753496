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
    "loop",
    "best_of_n",
    "motion",
    "training",
    "rewards",
)


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
