"""Who wrote a config decides what it may do.

- `Policy.owner()`: a config file on disk run through the CLI (or a test). Free paths, Python reward callables:
  it is the machine owner's own config.
- `Policy.workflow(roots, ...)`: settings that arrive from the canvas. Every path must lie inside the folders
  given for its kind (`roots`: kind -> ComfyUI folders), checked after resolving symlinks; nothing may name code
  to import or call, unless the machine's owner set REWARDLOOP_ALLOW_CODE_REWARDS=1 in the environment of the
  ComfyUI server (a workflow cannot set environment variables).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .paths import PathRefused, resolve_inside

CODE_OPT_IN = "REWARDLOOP_ALLOW_CODE_REWARDS"

# Kinds of paths a trainer config holds, and which ComfyUI folders the canvas hands over for each.
DATASETS = "datasets"                # DPO pair lists / VideoDPO folders: input/, models/rewardloop/datasets
PROMPTS = "prompts"                  # prompt lists: the dataset folders + the pack's stored prompt texts
TEXT_EMBEDDINGS = "text_embeddings"  # caches: output/rewardloop/text_embeddings + the dataset folders
MODELS = "models"                    # weights read: ComfyUI's model folders
LORAS = "loras"                      # where a trained LoRA is written: ComfyUI's loras folders
RUNS = "runs"                        # job folders: ComfyUI's output and user folders
KINDS = {
    DATASETS: "ComfyUI's input folder or models/rewardloop/datasets",
    PROMPTS: "ComfyUI's input folder or models/rewardloop/datasets",
    TEXT_EMBEDDINGS: "output/rewardloop/text_embeddings, ComfyUI's input folder or models/rewardloop/datasets",
    MODELS: "ComfyUI's model folders",
    LORAS: "ComfyUI's loras folders",
    RUNS: "ComfyUI's output or user folder",
}


class CodeRefused(ValueError):
    """A setting from a workflow names code to import or call."""
    __module__ = "rewardloop.trust"  # how ComfyUI names the error type on the node (not the folder path)


def _flag(environ: Mapping[str, str]) -> bool:
    return environ.get(CODE_OPT_IN, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Policy:
    untrusted: bool = False
    allow_code: bool = True
    roots: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    picked: frozenset[str] = frozenset()   # files the user picked from ComfyUI's own lists (already vetted)

    @classmethod
    def owner(cls) -> "Policy":
        return cls()

    @classmethod
    def workflow(cls, roots: Mapping[str, Iterable[str | os.PathLike]], picked: Iterable[str | os.PathLike] = (),
                 environ: Mapping[str, str] | None = None) -> "Policy":
        return cls(untrusted=True, allow_code=_flag(os.environ if environ is None else environ),
                   roots={k: tuple(Path(p) for p in v) for k, v in roots.items()},
                   picked=frozenset(os.path.realpath(p) for p in picked))

    def path(self, value: str, where: str, kind: str, *, must_exist: bool = False) -> str:
        """`value` unchanged for the owner; from a workflow, the real path inside the folders of `kind`."""
        if not self.untrusted or value == "":
            return value
        if isinstance(value, str) and os.path.isabs(value) and os.path.realpath(value) in self.picked:
            return os.path.realpath(value)
        if kind not in self.roots:
            raise PathRefused(f"{where}: a workflow cannot set this path (it is chosen by the pack).")
        return str(resolve_inside(value, where, self.roots[kind], what=KINDS.get(kind, kind), must_exist=must_exist))

    def code(self, where: str, what: str) -> None:
        """Refuse `what` (e.g. "reward 'python'") at `where` unless the owner allowed code from workflows."""
        if self.untrusted and not self.allow_code:
            raise CodeRefused(f"{where}: {what} imports and runs Python code by name, which a workflow may not do "
                              "(a shared workflow must be as safe to queue as an image is to open). Use it from a "
                              "config file with the command line, or let workflows on this machine do it by starting "
                              f"ComfyUI with the environment variable {CODE_OPT_IN}=1 (only the machine's owner can).")
