"""`RewardRuntime`: every cache, worker and model root the reward and motion core uses, in one object.

A ComfyUI server holds one (nodes/runtime.py) and "Free Reward Models" calls its `clear()`, which frees all of it:
loaded networks (LPIPS, I3D, CLIP, BLIP with its CUDA-graph decoders, facenet, text models, RAFT), the reference
videos' I3D features, the per-clip analysis caches (flow, masks, edges, features) and the background flow
thread. Scripts, trainers and tests make their own or share `default_runtime()`; nothing else in the core keeps
state between calls, and nothing here changes the process environment.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ..common.cache import Cache
from ..modelfiles import ModelRoots
from ..motion.optical_flow import RaftModels


class SharedCache(dict):
    """Products that depend only on a clip's frames and analysis settings (flow, masks, edges, features): shared by
    every Clip made for the same frames (`Clip.with_inputs`, or nodes fed the same IMAGE)."""


def content_key(tensor: torch.Tensor, chunk: int = 16) -> tuple:
    """Identifies a tensor by its values, cheaply and where it lives: shape, dtype and a fixed random projection
    of each frame (row of the first axis), in float64. An edit in place changes it (unless it is orthogonal to a
    random vector); it works on inference tensors, which have no version counter to watch."""
    flat = tensor.detach().reshape(tensor.shape[0], -1)
    gen = torch.Generator().manual_seed(0x5EED)
    weights = torch.rand(flat.shape[1], generator=gen, dtype=torch.float64).to(flat.device)
    parts = [flat[s:s + chunk].to(torch.float64) @ weights for s in range(0, flat.shape[0], chunk)]
    return (tuple(tensor.shape), str(tensor.dtype), str(tensor.device), tuple(torch.cat(parts).tolist()))


class RewardRuntime:
    """The reward/motion core's state. `roots`: model folders (a ModelRoots, a list of folders, a function
    returning one, or None for REWARDLOOP_MODELS_DIR)."""

    ANALYSIS_CACHES = 2  # per-clip analysis caches kept (the flow of a long 1080p clip is hundreds of MB)
    REFERENCE_FEATURES = 4  # reference videos whose I3D features are kept

    def __init__(self, roots: ModelRoots | list | Callable | None = None):
        self.roots = roots if isinstance(roots, ModelRoots) else ModelRoots(roots)
        self.models = Cache()  # networks by (kind, file, device, dtype ...), loaded once
        self.raft = RaftModels(self.roots)
        self.reference_features = Cache(self.REFERENCE_FEATURES)
        self.blip_decoders: dict[tuple, Any] = {}  # (id(model), batch, image tokens, max tokens) -> decoder
        self._analysis = Cache(self.ANALYSIS_CACHES)
        self._background: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def analysis_cache(self, frames: torch.Tensor, device: torch.device) -> SharedCache:
        """One analysis cache per frames tensor object and device: ComfyUI hands the same IMAGE tensor to every
        node reading it, so reward nodes on one clip compute its flow once. The weak reference proves the tensor
        is still the same object (an id can be reused once a tensor is freed)."""
        key = (id(frames), frames.data_ptr(), tuple(frames.shape), str(device))
        hit = self._analysis.get(key)
        if hit is not None and hit[0]() is frames:
            return hit[1]
        cache = SharedCache()
        self._analysis.put(key, (weakref.ref(frames), cache))
        return cache

    def background(self) -> ThreadPoolExecutor:
        """One worker thread for background flow (a second clip's prefetch queues behind the first)."""
        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardloop-flow")
            return self._background

    def held(self) -> dict:
        """What the runtime holds right now (counts), for status displays and tests."""
        return {"models": len(self.models), "raft_models": len(self.raft), "blip_decoders": len(self.blip_decoders),
                "reference_features": len(self.reference_features), "analysis_caches": len(self._analysis),
                "background_worker": self._background is not None}

    def clear(self) -> int:
        """Free everything this runtime holds; returns how many networks were dropped (RAFT included)."""
        with self._lock:
            worker, self._background = self._background, None
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
        self.blip_decoders.clear()  # before the models: each decoder holds its model and CUDA graph
        dropped = self.models.clear() + self.raft.clear()
        self.reference_features.clear()
        self._analysis.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return dropped


_DEFAULT: RewardRuntime | None = None
_DEFAULT_LOCK = threading.Lock()


def default_runtime() -> RewardRuntime:
    """The runtime of library and command-line use (models from REWARDLOOP_MODELS_DIR), made on first use. A
    ComfyUI server uses its own (nodes/runtime.py)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = RewardRuntime()
        return _DEFAULT
