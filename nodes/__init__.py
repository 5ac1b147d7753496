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
    "motion",
    "training",
    "rewards",
)


def parse_keyframe_positions(text: str | None) -> list[int] | None:
    """A `keyframe_positions` widget (JSON list of frame indices) -> list, or None when empty; the core checks
    the indices against the clip."""
    import json

    if text is None or not str(text).strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"keyframe_positions must be a JSON list of frame indices such as [0, 8, 16], got {text!r}")
    return value


def all_node_classes() -> list[type[io.ComfyNode]]:
    classes: list[type[io.ComfyNode]] = []
    for family in FAMILIES:
        module = importlib.import_module(f".{family}", __name__)
        classes.extend(module.NODES)
    return classes


def register_model_folders() -> None:
    """models/rewardloop (plus any extra_model_paths.yaml entry named `rewardloop`) holds our weights."""
    import folder_paths

    folder_paths.add_model_folder_path(modelfiles.FOLDER_KEY, os.path.join(folder_paths.models_dir, modelfiles.FOLDER_KEY))
    sync_model_roots()


def sync_model_roots() -> None:
    """Hand ComfyUI's current folder list to the core (the list can change at run time)."""
    import folder_paths

    modelfiles.set_model_roots(folder_paths.get_folder_paths(modelfiles.FOLDER_KEY))


class RewardLoopExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_node_classes()
