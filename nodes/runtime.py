"""The extension's runtime state, in one object the nodes reach through `get()`.

`PackRuntime` holds the reward/motion core's `RewardRuntime` (models, caches, the background flow worker, RAFT),
whose model roots are ComfyUI's `rewardloop` model folders, read each time they are needed (extra_model_paths.yaml
and folders added while the server runs count), and the training jobs with their watcher thread (`jobs`, made by
nodes/training.py on first use). `comfy_entrypoint()` creates it; nodes used without the entrypoint
(in-process tests, scripts) get it made on first use.
"""
from __future__ import annotations

import threading

from .. import modelfiles
from ..rewards.runtime import RewardRuntime


def comfy_model_folders() -> list[str]:
    """ComfyUI's folders for our models (none until `register_model_folders` has run)."""
    import folder_paths

    if modelfiles.FOLDER_KEY not in folder_paths.folder_names_and_paths:
        return []
    return folder_paths.get_folder_paths(modelfiles.FOLDER_KEY)


class PackRuntime:
    def __init__(self):
        self.rewards = RewardRuntime(modelfiles.ModelRoots(comfy_model_folders))
        self.jobs = None  # the training jobs and their watcher thread (nodes/training.py), made on first use
        self._lock = threading.Lock()

    def part(self, name: str, make):
        """The runtime's `name` part, made by `make()` on first use: state whose code lives in a node module (the
        training jobs) still has this one owner."""
        with self._lock:
            if getattr(self, name) is None:
                setattr(self, name, make())
            return getattr(self, name)

    def clear(self) -> int:
        """Free every model and cache the pack holds; returns how many networks were dropped."""
        return self.rewards.clear()


_RUNTIME: PackRuntime | None = None
_LOCK = threading.Lock()


def get() -> PackRuntime:
    """The extension's runtime, what every node uses (made on first use)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None:
            _RUNTIME = PackRuntime()
        return _RUNTIME
