"""Where model weights live, with no ComfyUI import.

Every weight the pack uses sits under a `rewardloop/` models folder, one sub-folder per kind
(`lpips/`, `i3d/`, `clip/`, ...). Inside ComfyUI the node layer hands the folders registered with
`folder_paths` (which honour extra_model_paths.yaml) to `set_model_roots`; standalone tools (trainers,
the weight installer, tests) pass `--models-dir` or set REWARDLOOP_MODELS_DIR. Nothing is downloaded here:
a missing file raises WeightNotFound, which says which file, where it was looked for and how to get it.
"""
from __future__ import annotations

import os
from pathlib import Path

FOLDER_KEY = "rewardloop"

_roots: list[Path] = []


class WeightNotFound(FileNotFoundError):
    """A model file the user must put in place; the message is meant to be shown to them as is."""

    def __init__(self, filename: str, searched: list[Path], how_to_get: str):
        # not `filename`: OSError owns that attribute and would replace our message with errno text
        self.weight_name = filename
        self.searched = searched
        self.how_to_get = how_to_get
        where = ", ".join(str(p) for p in searched) or "(no model folder registered)"
        super().__init__(f"Model file '{filename}' not found. Looked in: {where}. {how_to_get}")


def set_model_roots(roots: list[str | os.PathLike]) -> None:
    """Folders that hold our model sub-folders (e.g. ComfyUI/models/rewardloop), in priority order."""
    _roots[:] = [Path(r) for r in roots]


def model_roots() -> list[Path]:
    if _roots:
        return list(_roots)
    env = os.environ.get("REWARDLOOP_MODELS_DIR")
    return [Path(p) for p in env.split(os.pathsep) if p] if env else []


def default_install_root() -> Path:
    """Where installers write: the first registered root."""
    roots = model_roots()
    if not roots:
        raise WeightNotFound("(install target)", [], "Set REWARDLOOP_MODELS_DIR or pass --models-dir "
                             "pointing at ComfyUI/models/rewardloop.")
    return roots[0]


def find_weight(kind: str, filename: str, how_to_get: str) -> Path:
    """Path of `<root>/<kind>/<filename>` in the first root that has it."""
    searched = [root / kind for root in model_roots()]
    for folder in searched:
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    raise WeightNotFound(filename, searched, how_to_get)


def list_weights(kind: str, suffixes: tuple[str, ...] = (".safetensors", ".pt", ".pth", ".bin")) -> list[str]:
    names: set[str] = set()
    for root in model_roots():
        folder = root / kind
        if folder.is_dir():
            names.update(p.name for p in folder.iterdir() if p.is_file() and p.suffix in suffixes)
    return sorted(names)
