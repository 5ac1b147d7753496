"""`Clip`: one video plus everything scorers share, computed lazily and at most once per clip.

Frames stay where the caller put them (often a huge CPU tensor); full-resolution reads happen
`chunk_size` frames at a time, so peak extra memory is a few chunks plus the cached products below,
which live at the *analysis* resolution (long side <= `analysis_size`, default 256) and grow with T:
  - the analysis frames themselves (float32, float16 once larger than a quarter of `cache_budget_bytes`,
    not kept beyond half of it: then rebuilt per use),
  - the forward/backward optical flow between consecutive frames (float16 once it would exceed the budget),
  - forward-backward occlusion masks, Canny edges, and any model features a scorer memoises via `memo`.
`with_inputs()` makes a Clip with other keyframes/prompt/windows that shares all of this.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .models import PRECISIONS, default_precision

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total); may raise to cancel

# 256: temporal artefacts (flicker, warping, broken structure) are visible at this scale, and flow, LPIPS and
# edge work cost a quarter of 512's (the reward suite's speed goals are met only here, benchmarks/RESULTS.md).
# Raise it for fine detail (hair, text); 0 = native size.
DEFAULT_ANALYSIS_SIZE = 256
DEFAULT_CHUNK = 16
DEFAULT_BUDGET = 1 << 30  # bytes of cached per-clip products before they drop to float16 / are not kept
RANGE_TOLERANCE = 1e-3


class FlowPair(NamedTuple):
    forward: torch.Tensor   # [T-1,h,w,2] flow t -> t+1 (pack convention: pixel of t lands at x + flow in t+1)
    backward: torch.Tensor  # [T-1,h,w,2] flow t+1 -> t


# Pixel-pairs of background flow: 512 pairs at 256x256, ~10 s of dis_medium on 2 cores (63 pairs took 1.2 s).
PREFETCH_MAX_PIXELS = 1 << 25
# Cores the background flow leaves to the thread that launches the GPU scorers (launching is CPU-bound).
# bench_rewards.py on an H100 host with 16 cores, warm suite, two rounds: 0 spare 0.52 / 0.46 s, 2 spare
# 0.46 / 0.44 s, 4 spare 0.50 / 0.51 s. Applied on machines with more than twice this many cores.
BACKGROUND_FLOW_SPARE_CORES = 2
_BACKGROUND = None


def _background():
    """One worker thread for background flow (a second clip's prefetch queues behind the first)."""
    global _BACKGROUND
    if _BACKGROUND is None:
        from concurrent.futures import ThreadPoolExecutor

        _BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardloop-flow")
    return _BACKGROUND


class SharedCache(dict):
    """Products that depend only on the frames (and the analysis settings), shared by with_inputs()."""


def check_frames(frames, name: str = "frames", chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Validate an IMAGE batch [T,H,W,C] (C = 1, 3 or 4, float, finite, 0..1) and return a [T,H,W,3] view
    (grayscale is broadcast, alpha dropped). Checks run chunk by chunk: no full-size temporary."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor [T,H,W,C] (a ComfyUI IMAGE), got {type(frames).__name__}.")
    if frames.ndim == 3:
        raise ValueError(f"{name} has shape {tuple(frames.shape)}: expected a batch [T,H,W,C]. For a single image "
                         "add a batch dimension (frames[None]).")
    if frames.ndim != 4:
        raise ValueError(f"{name} must be [T,H,W,C], got shape {tuple(frames.shape)}.")
    T, H, W, C = frames.shape
    if T == 0:
        raise ValueError(f"{name} is empty (0 frames): connect a non-empty IMAGE batch.")
    if C not in (1, 3, 4):
        raise ValueError(f"{name} has {C} channels: expected 1 (grayscale), 3 (RGB) or 4 (RGBA), channels last "
                         "[T,H,W,C]. A [T,C,H,W] tensor must be permuted first.")
    if H < 16 or W < 16:
        raise ValueError(f"{name} are {W}x{H}: reward scorers need frames of at least 16x16 pixels.")
    if not frames.is_floating_point():
        raise ValueError(f"{name} have dtype {frames.dtype}: expected float32 in 0..1 (divide uint8 frames by 255).")
    step = max(chunk, 64)  # one aminmax pass per chunk: no full-size temporaries, one read of the data
    for start in range(0, T, step):
        part = frames[start:start + step]
        lo, hi = (float(v) for v in torch.aminmax(part))  # NaN propagates, inf shows as an extreme
        if not (math.isfinite(lo) and math.isfinite(hi)):
            per_frame = torch.stack([torch.isfinite(f.sum()) for f in part])
            bad = start + int((~per_frame).nonzero()[0]) if bool((~per_frame).any()) else start
            raise ValueError(f"{name} contain NaN or infinite values (first at frame {bad}); fix the upstream node "
                             "or clamp/nan_to_num the frames.")
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            hint = " They look like 0..255 values: divide by 255." if hi > 2 else ""
            raise ValueError(f"{name} must be in 0..1, found values in [{lo:.4g}, {hi:.4g}] "
                             f"(frames {start}..{min(start + step, T) - 1}).{hint}")
    if C == 1:
        frames = frames.expand(T, H, W, 3)
    elif C == 4:
        frames = frames[..., :3]
    return frames


def evenly_spaced(count: int, total: int) -> list[int]:
    """`count` indices spread over 0..total-1, first and last included, unique and sorted."""
    if total <= 0:
        return []
    count = max(1, min(int(count), total))
    if count == 1:
        return [0] if total == 1 else [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


class Clip:
    def __init__(self, frames: torch.Tensor, *, keyframes: torch.Tensor | None = None,
                 keyframe_positions: Sequence[int] | None = None, prompt: str = "",
                 windows: Any = None, reference: torch.Tensor | None = None,
                 flow_method: str | None = None, analysis_size: int = DEFAULT_ANALYSIS_SIZE,
                 device: str | torch.device | None = None, chunk_size: int = DEFAULT_CHUNK,
                 cache_budget_bytes: int = DEFAULT_BUDGET, progress: ProgressFn | None = None,
                 precision: str | None = None, _shared: SharedCache | None = None, _validated: bool = False):
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        if int(analysis_size) < 0:
            raise ValueError(f"analysis_size must be >= 0 (0 = native resolution), got {analysis_size}.")
        self.chunk_size = int(chunk_size)
        self.frames = frames if _validated else check_frames(frames, "frames", self.chunk_size)
        self.keyframes = None if keyframes is None else check_frames(keyframes, "keyframes", self.chunk_size)
        self.keyframe_positions = None if keyframe_positions is None else [int(p) for p in keyframe_positions]
        self.prompt = prompt or ""
        self.windows = windows
        self.reference = None if reference is None else check_frames(reference, "reference", self.chunk_size)
        self.flow_method = flow_method
        self.analysis_size = int(analysis_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cache_budget_bytes = int(cache_budget_bytes)
        self.progress = progress
        # Numeric precision of the large feature networks (models.reduced_dtype): "auto" or "fp32".
        self.precision = default_precision() if precision is None else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        self._shared = _shared if _shared is not None else SharedCache()

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
                    _shared=self._shared, _validated=True, **kw)

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

    def sample_indices(self, count: int) -> list[int]:
        return evenly_spaced(count, self.num_frames)

    # --------------------------------------------------------------------------------- frames
    def frames_at(self, indices: Sequence[int] | slice, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Full-resolution (or resized to `size` = (h, w)) float32 frames on the clip's device."""
        frames = self.frames_source()
        out = frames[indices] if isinstance(indices, slice) else frames[list(indices)]
        out = out.to(self.device, torch.float32).clamp(0, 1)
        if size is not None and tuple(out.shape[1:3]) != tuple(size):
            out = resize(out, size)
        return out

    def frames_source(self) -> torch.Tensor:
        """Where full-resolution reads come from: one float32 copy of the clip on the clip's device when that
        is not where the frames are (a GPU scoring CPU frames, as ComfyUI passes IMAGEs) and the copy fits
        half the cache budget; else the input. Several scorers read the full frames: in an H200 profile,
        fvd_lite alone spent 26 ms copying a 64-frame 512x512 clip from the host, and the warm suite went from
        0.44-0.54 s to 0.31-0.36 s with one copy."""
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
        """Forward and backward flow between consecutive frames at the analysis resolution (computed once)."""
        key = self._flow_key()
        if key in self._shared:
            return self._shared[key]
        if self.num_frames < 2:
            raise ValueError("optical flow needs at least 2 frames; this clip has 1.")
        pending = self._shared.pop(("pending",) + key, None)
        self._shared[key] = pending.result() if pending is not None else self._compute_flow("optical flow")
        return self._shared[key]

    def prefetch_flow(self) -> bool:
        """Start the flow on a background thread when it runs on the CPU (OpenCV's DIS/Farneback release the
        GIL), so scorers that need no flow run on the GPU meanwhile; `flow()` then waits for it and re-raises
        its errors. No progress or cancel checks happen on that thread (ComfyUI's interrupt check clears the
        flag it reads, so a second thread must not call it), hence only clips whose flow ends in seconds are
        prefetched (<= PREFETCH_MAX_PIXELS pixel-pairs); longer ones compute in the foreground, cancellable.
        Returns whether a computation was started."""
        from ..motion.flow import DEFAULT_METHOD

        key = self._flow_key()
        method = self.flow_method or DEFAULT_METHOD
        h, w = self.analysis_hw
        if (key in self._shared or ("pending",) + key in self._shared or self.num_frames < 2 or method == "raft"
                or self.num_pairs * h * w > PREFETCH_MAX_PIXELS):
            return False
        self._analysis_cache()  # downscale once, here, not concurrently from two threads
        from ..motion.flow import usable_cores

        cores = usable_cores()
        workers = cores - BACKGROUND_FLOW_SPARE_CORES if cores > 2 * BACKGROUND_FLOW_SPARE_CORES else cores
        self._shared[("pending",) + key] = _background().submit(self._compute_flow, None, workers)
        return True

    def _compute_flow(self, stage: str | None, workers: int | None = None) -> FlowPair:
        from ..motion.flow import bidirectional_flow

        h, w = self.analysis_hw
        n = self.num_pairs
        dtype = torch.float32 if 2 * n * h * w * 2 * 4 <= self.cache_budget_bytes else torch.float16
        fwd = torch.empty(n, h, w, 2, dtype=dtype, device=self.device)
        bwd = torch.empty(n, h, w, 2, dtype=dtype, device=self.device)
        for s, e in self.chunks(n, stage, self.analysis_chunk):
            pair = bidirectional_flow(self.analysis_frames(s, e + 1), workers=workers,
                                      **self._method_kw())  # 1-frame overlap
            fwd[s:e] = pair.forward.to(self.device, dtype)
            bwd[s:e] = pair.backward.to(self.device, dtype)
        return FlowPair(fwd, bwd)

    def _method_kw(self) -> dict:
        kw = {"device": self.device}
        if self.flow_method is not None:
            kw["method"] = self.flow_method
        return kw

    def flow_chunk(self, start: int, end: int) -> FlowPair:
        pair = self.flow()
        return FlowPair(pair.forward[start:end].float(), pair.backward[start:end].float())

    def valid_mask(self, start: int = 0, end: int | None = None) -> torch.Tensor:
        """[n,h,w] float 1/0: pixel of frame t is visible in t+1 and the flows agree (fb check + inside)."""
        end = self.num_pairs if end is None else end
        key = ("valid", self.flow_method, *self.analysis_hw)
        if key not in self._shared:
            from ..motion.occlusion import fb_occlusion_mask

            h, w = self.analysis_hw
            mask = torch.empty(self.num_pairs, h, w, dtype=torch.bool, device=self.device)
            for s, e in self.chunks(self.num_pairs, "occlusion masks", self.analysis_chunk):
                fwd, bwd = self.flow_chunk(s, e)
                mask[s:e] = fb_occlusion_mask(fwd, bwd) > 0.5
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
def resize(frames: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """[n,H,W,C] -> [n,h,w,C], antialiased when shrinking (measured on 1080p input: antialiased bilinear is
    ~5x faster than area averaging on CPU)."""
    x = frames.permute(0, 3, 1, 2)
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    out = F.interpolate(x, size=tuple(size), mode=mode, align_corners=False,
                        antialias=shrink and mode in ("bilinear", "bicubic"))
    return out.permute(0, 2, 3, 1)


def to_nchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).contiguous()


def gray(frames: torch.Tensor) -> torch.Tensor:
    """[n,H,W,3] -> [n,1,H,W] luma (Rec. 601, as kornia's rgb_to_grayscale)."""
    import kornia

    return kornia.color.rgb_to_grayscale(to_nchw(frames))


CANNY_LOW, CANNY_HIGH = 60, 120


def canny(frames: torch.Tensor, low: int = CANNY_LOW, high: int = CANNY_HIGH) -> torch.Tensor:
    """[n,H,W,3] -> [n,H,W] float edges in {0,1}: OpenCV Canny (L2 gradient) on 8-bit luma after a
    Gaussian pre-blur (sigma 1), on every device alike so a score never depends on where it ran.
    OpenCV rather than kornia: kornia's batched hysteresis iterates to convergence and took ~0.6 s per
    128x96 frame of long-edged scenes on CPU, OpenCV ~1 ms; frames run in a thread pool (OpenCV releases
    the GIL), the transfer is one uint8 batch."""
    import cv2
    import numpy as np

    luma = (gray(frames)[:, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

    def one(img: np.ndarray) -> np.ndarray:
        return cv2.Canny(cv2.GaussianBlur(img, (5, 5), 1.0), low, high, L2gradient=True)

    edges = thread_map(one, list(luma))
    return torch.from_numpy(np.stack(edges) > 0).to(frames.device, torch.float32)


def thread_map(fn: Callable[[Any], Any], items: list) -> list:
    """[fn(x) for x in items] on a thread pool of up to one thread per core: for per-frame OpenCV calls, which
    release the GIL (OpenCV's image functions take one image at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..motion.flow import usable_cores

    workers = max(1, min(len(items), usable_cores()))
    if workers == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def sobel_xy(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives (d/dx, d/dy) of [n,c,h,w] per pixel unit (kornia's normalised Sobel, replicate
    border). Written with slicing: kornia's grouped 3x3 convolution was ~10x slower on CPU for 512x512 flow
    fields; this is the same separable kernel (central difference x [1,2,1]/4 smoothing)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = (p[..., :, 2:] - p[..., :, :-2]) / 2  # [n,c,h+2,w]
    dy = (p[..., 2:, :] - p[..., :-2, :]) / 2  # [n,c,h,w+2]
    dx = (dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :]) / 4
    dy = (dy[..., :, :-2] + 2 * dy[..., :, 1:-1] + dy[..., :, 2:]) / 4
    return dx, dy


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of [n,c,h,w] maps (Gaussian window 11, sigma 1.5, K 0.01/0.03, reflect border) with a
    separable blur: kornia.metrics.ssim convolves with a full 11x11 kernel, ~5x slower on CPU."""
    import kornia

    def blur(x):
        return kornia.filters.gaussian_blur2d(x, (11, 11), (1.5, 1.5), border_type="reflect", separable=True)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def nan_mean(values: torch.Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan
