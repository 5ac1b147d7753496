"""Where model weights live, with no ComfyUI import.

Every weight the pack uses sits under a `rewardloop/` models folder, one sub-folder per kind (`lpips/`, `i3d/`,
`clip/`, ...). A `ModelRoots` lists those folders: inside ComfyUI it reads the folders registered with
`folder_paths` (which honour extra_model_paths.yaml) each time it is asked; standalone tools (trainers, the
weight installer, tests) give folders explicitly (`--models-dir`) or set REWARDLOOP_MODELS_DIR. Nothing is
downloaded here: a missing file raises WeightNotFound, which says which file, where it was looked for and how to
get it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..trust import child_name

FOLDER_KEY = "rewardloop"
ENV_VAR = "REWARDLOOP_MODELS_DIR"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


class WeightNotFound(FileNotFoundError):
    """A model file the user must put in place; the message is meant to be shown to them as is."""

    def __init__(self, filename: str, searched: list[Path], how_to_get: str):
        # not `filename`: OSError owns that attribute and would replace our message with errno text
        self.weight_name = filename
        self.searched = searched
        self.how_to_get = how_to_get
        where = ", ".join(str(p) for p in searched) or "(no model folder registered)"
        super().__init__(f"Model file '{filename}' not found. Looked in: {where}. {how_to_get}")


# ComfyUI shows an error's type as `<module>.<class>`, and it imports the pack under its folder path: without this
# users would read ".../custom_nodes/ComfyUI-RewardLoop.modelfiles.WeightNotFound".
WeightNotFound.__module__ = "RewardLoop"


class ModelRoots:
    """The folders that hold the pack's model sub-folders, in priority order.

    `roots`: a list of folders, or a function returning one (ComfyUI's folder list, which can change while the
    server runs). When it gives none, REWARDLOOP_MODELS_DIR (os.pathsep-separated) is used."""

    def __init__(self, roots: Sequence[str | os.PathLike] | Callable[[], Sequence[str | os.PathLike]] | None = None):
        self._roots = roots

    def set(self, roots: Sequence[str | os.PathLike] | Callable[[], Sequence[str | os.PathLike]] | None) -> None:
        self._roots = roots

    def paths(self) -> list[Path]:
        roots = self._roots() if callable(self._roots) else self._roots
        if roots:
            return [Path(r) for r in roots]
        env = os.environ.get(ENV_VAR)
        return [Path(p) for p in env.split(os.pathsep) if p] if env else []

    def install_root(self) -> Path:
        """Where installers write: the first root."""
        roots = self.paths()
        if not roots:
            raise WeightNotFound("(install target)", [], f"Set {ENV_VAR} or pass --models-dir pointing at "
                                 "ComfyUI/models/rewardloop.")
        return roots[0]

    def find_weight(self, kind: str, filename: str, how_to_get: str) -> Path:
        """Path of `<root>/<kind>/<filename>` in the first root that has it. Names can come from a workflow (a
        scorer option): only a file directly inside the kind's folder is looked up."""
        filename = child_name(filename, f"model file for '{kind}'")
        searched = [root / kind for root in self.paths()]
        for folder in searched:
            if (folder / filename).is_file():
                return folder / filename
        raise WeightNotFound(filename, searched, how_to_get)

    def find_folder(self, kind: str, name: str, how_to_get: str) -> Path:
        """A model *folder* (Hugging Face save_pretrained layout, with config.json) in the first root that has it."""
        name = child_name(name, f"model folder for '{kind}'")
        searched = [root / kind for root in self.paths()]
        for folder in searched:
            if (folder / name / "config.json").is_file():
                return folder / name
        raise WeightNotFound(f"{name}/ (a folder with config.json)", searched, how_to_get)

    def list_weights(self, kind: str, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> list[str]:
        names: set[str] = set()
        for root in self.paths():
            folder = root / kind
            if folder.is_dir():
                names.update(p.name for p in folder.iterdir() if p.is_file() and p.suffix in suffixes)
        return sorted(names)

    def list_folders(self, kind: str) -> list[str]:
        names: set[str] = set()
        for root in self.paths():
            folder = root / kind
            if folder.is_dir():
                names.update(p.name for p in folder.iterdir() if (p / "config.json").is_file())
        return sorted(names)
