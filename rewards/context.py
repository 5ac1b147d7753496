"""`Clip`: one video plus everything scorers share, computed lazily and at most once per clip.

Frames stay where the caller put them (often a huge CPU tensor); full-resolution reads happen
`chunk_size` frames at a time, so peak extra memory is a few chunks plus the cached products below,
which live at the *analysis* resolution (long side <= `analysis_size`, default 256) and grow with T:
  - the analysis frames themselves (float32, float16 once larger than a quarter of `cache_budget_bytes`,
    not kept beyond half of it: then rebuilt per use),
  - the forward/backward optical flow between consecutive frames (float16 once it would exceed the budget),
  - forward-backward occlusion masks, Canny edges, and any model features a scorer memoises via `memo`.
`with_inputs()` makes a Clip with other keyframes/prompt/windows that shares all of this; `share_analysis=True`
shares it with every Clip of the same frames tensor in the runtime (reward nodes fed one IMAGE). Models and these
caches belong to the clip's `runtime` (a RewardRuntime; default `default_runtime()`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

import torch
import torch.nn.functional as F

from ..common.frames import check_frames
from ..common.image import luma
from ..common.keyframes import KeyframePositions, evenly_spaced
from ..motion import optical_flow
from ..motion.optical_flow import FlowPair
from .models import PRECISIONS, default_precision
from .runtime import RewardRuntime, SharedCache, default_runtime

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total); may raise to cancel

# 256: temporal artefacts (flicker, warping, broken structure) are visible at this scale, and flow, LPIPS and
# edge work cost a quarter of 512's (the reward suite's speed goals are met only here, benchmarks/RESULTS.md).
# Raise it for fine detail (hair, text); 0 = native size.
DEFAULT_ANALYSIS_SIZE = 256
DEFAULT_CHUNK = 16
DEFAULT_BUDGET = 1 << 30  # bytes of cached per-clip products before they drop to float16 / are not kept
MIN_SIZE = 16  # pixels a side: SSIM's 11-pixel window and LPIPS's pooling need at least this

# Pixel-pairs of flow computed on the background thread: a few seconds of DIS on a 2-core CPU (RESULTS.md); longer
# flows run in the foreground, where progress and cancel work.
PREFETCH_MAX_PIXELS = 1 << 25
# Cores the background flow leaves to the thread that launches the GPU scorers (launching is CPU-bound); chosen by
# bench_rewards.py --spare-cores (RESULTS.md). Applied on machines with more than twice this many cores.
BACKGROUND_FLOW_SPARE_CORES = 2


class Clip:
    def __init__(self, frames: torch.Tensor, *, keyframes: torch.Tensor | None = None,
                 keyframe_positions: KeyframePositions | Sequence[int] | str | None = None, prompt: str = "",
                 windows: Any = None, reference: torch.Tensor | None = None,
                 flow_method: str | None = None, analysis_size: int = DEFAULT_ANALYSIS_SIZE,
                 device: str | torch.device | None = None, chunk_size: int = DEFAULT_CHUNK,
                 cache_budget_bytes: int = DEFAULT_BUDGET, progress: ProgressFn | None = None,
                 precision: str | None = None, runtime: RewardRuntime | None = None, share_analysis: bool = False,
                 _shared: SharedCache | None = None, _validated: bool = False):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        if int(analysis_size) < 0:
            raise ValueError(f"analysis_size must be >= 0 (0 = native resolution), got {analysis_size}.")
        if flow_method is not None and flow_method not in optical_flow.METHODS:
            raise ValueError(f"flow_method must be one of {', '.join(optical_flow.METHODS)}, got {flow_method!r}.")
        self.chunk_size = int(chunk_size)
        self.frames = frames if _validated else check_frames(frames, "frames", min_size=MIN_SIZE)
        self.keyframes = None if keyframes is None else check_frames(keyframes, "keyframes", min_size=MIN_SIZE)
        self.keyframe_positions = KeyframePositions.parse(keyframe_positions)
        self.prompt = prompt or ""
        self.windows = windows
        self.reference = None if reference is None else check_frames(reference, "reference", min_size=MIN_SIZE)
        self.flow_method = flow_method
        self.analysis_size = int(analysis_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cache_budget_bytes = int(cache_budget_bytes)
        self.progress = progress
        # Numeric precision of the large feature networks (models.reduced_dtype): "auto" or "fp32".
        self.precision = default_precision() if precision is None else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        self.runtime = runtime if runtime is not None else default_runtime()
        if _shared is None:
            # keyed on the caller's tensor (ComfyUI's IMAGE object), not on the RGB view made above
            _shared = self.runtime.analysis_cache(frames, self.device) if share_analysis else SharedCache()
        self._shared = _shared

    # ------------------------------------------------------------------------------------ basics
    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_pairs(self) -> int:
        return self.num_frames - 1

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the input frames."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def analysis_hw(self) -> tuple[int, int]:
        H, W = self.size
        if self.analysis_size == 0 or max(H, W) <= self.analysis_size:
            return H, W
        scale = self.analysis_size / max(H, W)
        return max(16, round(H * scale)), max(16, round(W * scale))

    @property
    def analysis_chunk(self) -> int:
        """Frames per step for analysis-resolution work: `chunk_size`, or more for small frames (~4 Mpixel
        per step), so a long low-resolution clip is not walked in thousands of tiny steps."""
        h, w = self.analysis_hw
        return max(self.chunk_size, min(256, (1 << 22) // (h * w)))

    def with_inputs(self, **changes) -> "Clip":
        """Same frames and shared cache, other keyframes / prompt / windows / reference / progress."""
        kw = dict(keyframes=self.keyframes, keyframe_positions=self.keyframe_positions, prompt=self.prompt,
                  windows=self.windows, reference=self.reference, progress=self.progress)
        kw.update(changes)
        return Clip(self.frames, flow_method=self.flow_method, analysis_size=self.analysis_size, device=self.device,
                    chunk_size=self.chunk_size, cache_budget_bytes=self.cache_budget_bytes, precision=self.precision,
                    runtime=self.runtime, _shared=self._shared, _validated=True, **kw)

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, int(done), int(total))

    def chunks(self, total: int, stage: str | None = None, size: int | None = None):
        """(start, end) ranges over `total` items, reporting progress after each."""
        size = size or self.chunk_size
        for start in range(0, total, size):
            end = min(start + size, total)
            yield start, end
            if stage:
                self.report(stage, end, total)

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Cache any frames-derived product (model features ...) with the clip's shared cache."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def has(self, key: tuple) -> bool:
        """Whether `memo(key, ...)` would find its product already computed (a batch computes only the missing)."""
        return key in self._shared

    def sample_indices(self, count: int) -> list[int]:
        return evenly_spaced(count, self.num_frames)

    def anchor_positions(self) -> list[int]:
        """Frame index of each keyframe: `keyframe_positions` when given (checked against the clip), else one
        keyframe on frame 0, two on the first and last frame (the same frame in a one-frame clip, e.g. one
        segment's frame scored against both of its anchors), more spread evenly (KeyframePositions.spread)."""
        count = self.keyframes.shape[0]
        if self.keyframe_positions is not None:
            return self.keyframe_positions.check(self.num_frames, count).to_list()
        if count == 2:
            return [0, self.num_frames - 1]
        return KeyframePositions.spread(count, self.num_frames).to_list()

    # --------------------------------------------------------------------------------- frames
    def frames_at(self, indices: Sequence[int] | slice, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Full-resolution (or resized to `size` = (h, w)) float32 frames on the clip's device (values within
        float round-off of 0..1 are clamped into it)."""
        frames = self.frames_source()
        out = frames[indices] if isinstance(indices, slice) else frames[list(indices)]
        out = out.to(self.device, torch.float32).clamp(0, 1)
        if size is not None and tuple(out.shape[1:3]) != tuple(size):
            out = resize(out, size)
        return out

    def frames_source(self) -> torch.Tensor:
        """Where full-resolution reads come from: one float32 copy of the clip on the clip's device when that
        is not where the frames are (a GPU scoring CPU frames, as ComfyUI passes IMAGEs) and the copy fits
        half the cache budget; else the input. Several scorers read the full frames, and copying them from the
        host once instead of per scorer was most of a GPU's warm suite time (RESULTS.md, code at 507be97)."""
        if self.frames.device == self.device:
            return self.frames
        key = ("frames_on_device",)
        if key not in self._shared:
            fits = self.frames.numel() * 4 <= self.cache_budget_bytes // 2
            self._shared[key] = self.frames.to(self.device, torch.float32) if fits else None
        on_device = self._shared[key]
        return self.frames if on_device is None else on_device

    def analysis_frames(self, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Frames [start, end) at the analysis resolution, [n,h,w,3] float32 on the device."""
        end = self.num_frames if end is None else end
        whole = self._analysis_cache()
        if whole is not None:
            return whole[start:end].float()
        h, w = self.analysis_hw
        out = torch.empty(end - start, h, w, 3, device=self.device)
        for s in range(start, end, self.chunk_size):  # full-resolution reads stay chunk_size frames
            e = min(s + self.chunk_size, end)
            out[s - start:e - start] = self.frames_at(slice(s, e), (h, w))
        return out

    def analysis_frames_at(self, indices: Sequence[int]) -> torch.Tensor:
        """Selected frames at the analysis resolution (from the cache when it exists)."""
        whole = self._analysis_cache()
        if whole is not None:
            return whole[list(indices)].float()
        return self.frames_at(indices, self.analysis_hw)

    def _analysis_cache(self) -> torch.Tensor | None:
        """All frames at the analysis resolution, downscaled once: float32 while that fits a quarter of the
        budget, float16 (precision ~5e-4 on 0..1) while that fits half of it, else None (re-read per use)."""
        h, w = self.analysis_hw
        key = ("analysis_frames", h, w)
        if key not in self._shared:
            fp32 = self.num_frames * h * w * 3 * 4
            dtype = torch.float32 if fp32 <= self.cache_budget_bytes // 4 else \
                torch.float16 if fp32 // 2 <= self.cache_budget_bytes // 2 else None
            whole = None
            if dtype is not None:
                whole = torch.empty(self.num_frames, h, w, 3, dtype=dtype, device=self.device)
                for s, e in self.chunks(self.num_frames, "downscale"):
                    whole[s:e] = self.frames_at(slice(s, e), (h, w))
            self._shared[key] = whole
        return self._shared[key]

    # ----------------------------------------------------------------------------------- flow
    def _flow_key(self):
        return ("flow", self.flow_method, *self.analysis_hw)

    def flow(self) -> FlowPair:
        """Forward and backward flow between consecutive frames at the analysis resolution (computed once; may be
        float16 when large, see the module docstring)."""
        key = self._flow_key()
        if key in self._shared:
            return self._shared[key]
        if self.num_frames < 2:
            raise ValueError("optical flow needs at least 2 frames; this clip has 1.")
        pending = self._shared.pop(("pending",) + key, None)
        try:
            computed = pending.result() if pending is not None else None
        except CancelledError:  # the runtime was cleared before the background flow started: compute it here
            computed = None
        self._shared[key] = computed if computed is not None else self._compute_flow("optical flow")
        return self._shared[key]

    def prefetch_flow(self) -> bool:
        """Start the flow on a background thread when it runs on the CPU (OpenCV's DIS/Farneback release the
        GIL), so scorers that need no flow run on the GPU meanwhile; `flow()` then waits for it and re-raises
        its errors. No progress or cancel checks happen on that thread (ComfyUI's interrupt check clears the
        flag it reads, so a second thread must not call it), hence only clips whose flow ends in seconds are
        prefetched (<= PREFETCH_MAX_PIXELS pixel-pairs); longer ones compute in the foreground, cancellable.
        Returns whether a computation was started."""
        key = self._flow_key()
        method = self.flow_method or optical_flow.DEFAULT_METHOD
        h, w = self.analysis_hw
        if (key in self._shared or ("pending",) + key in self._shared or self.num_frames < 2 or method == "raft"
                or self.num_pairs * h * w > PREFETCH_MAX_PIXELS):
            return False
        self._analysis_cache()  # downscale once, here, not concurrently from two threads
        self.expect_flow(self.runtime.background().submit(self._compute_flow, None, background_flow_workers()))
        return True

    def needs_flow(self) -> bool:
        """Whether this clip's flow is neither computed nor on its way (a batch computes only those)."""
        key = self._flow_key()
        return self.num_frames >= 2 and key not in self._shared and ("pending",) + key not in self._shared

    def expect_flow(self, pending: Future) -> None:
        """The flow arrives from `pending` (a Future of a FlowPair stored as `flow_dtype` on the clip's device),
        computed elsewhere: on the background thread, or with a batch of clips (rewards.batch); `flow()` waits
        for it, and computes it itself if `pending` is cancelled."""
        self._shared[("pending",) + self._flow_key()] = pending

    @property
    def flow_dtype(self) -> torch.dtype:
        """How the flow is kept: float32, or float16 once it would exceed the cache budget."""
        h, w = self.analysis_hw
        return torch.float32 if 2 * self.num_pairs * h * w * 2 * 4 <= self.cache_budget_bytes else torch.float16

    def _compute_flow(self, stage: str | None, workers: int | None = None) -> FlowPair:
        h, w = self.analysis_hw
        n = self.num_pairs
        dtype = self.flow_dtype
        fwd = torch.empty(n, h, w, 2, dtype=dtype, device=self.device)
        bwd = torch.empty(n, h, w, 2, dtype=dtype, device=self.device)
        for s, e in self.chunks(n, stage, self.analysis_chunk):
            pair = optical_flow.bidirectional_flow(self.analysis_frames(s, e + 1), self.method, self.device,
                                                   workers=workers, raft=self.runtime.raft)  # 1-frame overlap
            fwd[s:e] = pair.forward.to(self.device, dtype)
            bwd[s:e] = pair.backward.to(self.device, dtype)
        return FlowPair(fwd, bwd, self.method)

    @property
    def method(self) -> str:
        """The optical flow method in use."""
        return self.flow_method or optical_flow.DEFAULT_METHOD

    def flow_chunk(self, start: int, end: int) -> FlowPair:
        pair = self.flow()
        return FlowPair(pair.forward[start:end].float(), pair.backward[start:end].float(), pair.method)

    def valid_mask(self, start: int = 0, end: int | None = None) -> torch.Tensor:
        """[n,h,w] float 1/0: pixel of frame t is visible in t+1 and the flows agree (fb check + inside)."""
        end = self.num_pairs if end is None else end
        key = ("valid", self.flow_method, *self.analysis_hw)
        if key not in self._shared:
            from ..motion.occlusion import fb_occlusion_mask

            h, w = self.analysis_hw
            mask = torch.empty(self.num_pairs, h, w, dtype=torch.bool, device=self.device)
            for s, e in self.chunks(self.num_pairs, "occlusion masks", self.analysis_chunk):
                pair = self.flow_chunk(s, e)
                mask[s:e] = fb_occlusion_mask(pair.forward, pair.backward) > 0.5
            self._shared[key] = mask
        return self._shared[key][start:end].float()

    def warped_next(self, start: int, end: int) -> torch.Tensor:
        """Frame t+1 sampled at x + flow(t->t+1): frame t's reconstruction, for pairs [start, end)."""
        from ..motion.warp import backward_warp

        return backward_warp(self.analysis_frames(start + 1, end + 1), self.flow_chunk(start, end).forward)

    # ---------------------------------------------------------------------------------- edges
    def edges(self, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Canny edges of the analysis frames [n,h,w] float 0/1 (see `canny`), cached."""
        end = self.num_frames if end is None else end
        key = ("edges", *self.analysis_hw)
        if key not in self._shared:
            h, w = self.analysis_hw
            out = torch.empty(self.num_frames, h, w, dtype=torch.bool, device=self.device)
            for s, e in self.chunks(self.num_frames, "edges", self.analysis_chunk):
                out[s:e] = canny(self.analysis_frames(s, e)) > 0.5
            self._shared[key] = out
        return self._shared[key][start:end].float()

    def edges_at(self, indices: Sequence[int]) -> torch.Tensor:
        """Canny edges of selected frames (from the cache when it exists, else only these are computed)."""
        cached = self._shared.get(("edges", *self.analysis_hw))
        if cached is not None:
            return cached[list(indices)].float()
        return canny(self.analysis_frames_at(indices))


# -------------------------------------------------------------------------------------- helpers
def background_flow_workers() -> int:
    """Threads for a flow computed in the background: every usable core but BACKGROUND_FLOW_SPARE_CORES on machines
    with more than twice that many."""
    cores = optical_flow.usable_cores()
    return cores - BACKGROUND_FLOW_SPARE_CORES if cores > 2 * BACKGROUND_FLOW_SPARE_CORES else cores


def resize(frames: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """[n,H,W,C] -> [n,h,w,C], antialiased when shrinking (antialiased bilinear rather than area averaging: much
    faster on CPU at the same quality)."""
    x = frames.permute(0, 3, 1, 2)
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    out = F.interpolate(x, size=tuple(size), mode=mode, align_corners=False,
                        antialias=shrink and mode in ("bilinear", "bicubic"))
    return out.permute(0, 2, 3, 1)


def to_nchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).contiguous()


def gray(frames: torch.Tensor) -> torch.Tensor:
    """[n,H,W,3] -> [n,1,H,W] luma (common.image.luma), for kornia's filters."""
    return luma(frames)[:, None]


CANNY_LOW, CANNY_HIGH = 60, 120


def canny(frames: torch.Tensor, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> torch.Tensor:
    """[n,H,W,3] -> [n,H,W] float edges in {0,1}: OpenCV Canny (L2 gradient) on 8-bit luma after a
    Gaussian pre-blur (sigma 1), on every device alike so a score never depends on where it ran.
    OpenCV rather than kornia: kornia's batched hysteresis iterates to convergence, hundreds of times slower on
    CPU for long-edged scenes; frames run in a thread pool (OpenCV releases the GIL), the transfer is one uint8
    batch."""
    import cv2
    import numpy as np

    luma = (gray(frames)[:, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def one(img: np.ndarray) -> np.ndarray:
        return cv2.Canny(cv2.GaussianBlur(img, (5, 5), 1.0), low, high, L2gradient=True)

    edges = thread_map(one, list(luma))
    return torch.from_numpy(np.stack(edges) > 0).to(frames.device, torch.float32)


def spans(counts: Sequence[int], step: int):
    """Steps of at most `step` items over several clips' items laid end to end (clips' pairs, sampled frames,
    crops): each step a list of (clip index, start, end) ranges, so one network call can serve several clips."""
    part, room = [], step
    for i, n in enumerate(counts):
        start = 0
        while start < n:
            end = min(n, start + room)
            part.append((i, start, end))
            room -= end - start
            start = end
            if room == 0:
                yield part
                part, room = [], step
    if part:
        yield part


def thread_map(fn: Callable[[Any], Any], items: list) -> list:
    """[fn(x) for x in items] on a thread pool of up to one thread per core: for per-frame OpenCV calls, which
    release the GIL (OpenCV's image functions take one image at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(len(items), optical_flow.usable_cores()))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def sobel_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives (d/dx, d/dy) of [n,c,h,w] per pixel unit (kornia's normalised Sobel, replicate
    border). Written with slicing: kornia's grouped 3x3 convolution was several times slower on CPU for flow
    fields; this is the same separable kernel (central difference x [1,2,1]/4 smoothing)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = (p[..., :, 2:] - p[..., :, :-2]) / 2  # [n,c,h+2,w]
    dy = (p[..., 2:, :] - p[..., :-2, :]) / 2  # [n,c,h,w+2]
    dx = (dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]) / 4
    dy = (dy[..., :, :-2] + 2 * dy[..., :, 1:-1] + dy[..., :, 2:]) / 4
    return dx, dy


def nan_mean(values: torch.Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan
