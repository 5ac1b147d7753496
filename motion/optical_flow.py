"""Optical flow: the one flow API of the pack (inbetweening, reward scorers and nodes all call it).

Convention: flow[n, y, x] = (dx, dy) float32 pixels; the pixel (x, y) of src[n] is seen at (x+dx, y+dy)
in dst[n]. So `warp.backward_warp(dst, flow)` rebuilds src: sampling the next frame at x + flow(prev->next)
reproduces the previous frame.

Methods, fastest first (speed and end-point error of each: benchmarks/RESULTS.md, bench_motion.py):
    dis_ultrafast  OpenCV DIS preset ULTRAFAST
    dis_fast       OpenCV DIS preset FAST
    dis_medium     OpenCV DIS preset MEDIUM (default): the accuracy/speed balance the reward scorers use
    dis_fine       MEDIUM searched down to full resolution (finest scale 0 instead of 1): clearly lower error on
                   textured motion at a few times the cost; the inbetweener's default, since its flows are
                   computed once per keyframe pair
    farneback      OpenCV Farneback with TecoGAN's parameters
    raft           torchvision RAFT (large, else small) with weights from <models>/rewardloop/raft/, held by a
                   `RaftModels` (a runtime object frees them); meant for GPUs (seconds per pair on a CPU).
                   Never downloaded.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..common.cache import Cache
from ..common.frames import check_frames
from ..common.image import luma
from ..modelfiles import ModelRoots, WeightNotFound
from .occlusion import fb_occlusion_mask

METHODS = ("dis_ultrafast", "dis_fast", "dis_medium", "dis_fine", "farneback", "raft")
DEFAULT_METHOD = "dis_medium"

RAFT_KIND = "raft"
# torchvision's own checkpoint files, in preference order, with the architecture each one fits.
RAFT_WEIGHTS = (
    ("raft_large_C_T_SKHT_V2-ff5fadd5.pth", "raft_large"),
    ("raft_large_C_T_V2-1bb1363a.pth", "raft_large"),
    ("raft_small_C_T_V2-01064c6d.pth", "raft_small"),
)
RAFT_HOW_TO_GET = ("Download one of torchvision's RAFT checkpoints, e.g. "
                   "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth (BSD-3-Clause), "
                   "or raft_large_C_T_V2-1bb1363a.pth / raft_small_C_T_V2-01064c6d.pth from the same place, "
                   "into ComfyUI/models/rewardloop/raft/. Or pick a 'dis_*' flow method, which needs no weights.")
MAX_PIXELS = 4096 * 4096


@dataclass(eq=False)
class FlowPair:
    """Forward (t -> t+1) and backward (t+1 -> t) flows of a clip, computed once and shared; the
    forward-backward occlusion masks are derived lazily on first use."""

    forward: torch.Tensor  # [T-1,H,W,2]
    backward: torch.Tensor  # [T-1,H,W,2]
    method: str
    _valid: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def occlusion(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(valid_forward, valid_backward), each [T-1,H,W] float, 1 = valid. valid_forward marks pixels of
        frame t visible in frame t+1; valid_backward marks pixels of frame t+1 visible in frame t."""
        if self._valid is None:
            self._valid = (fb_occlusion_mask(self.forward, self.backward),
                           fb_occlusion_mask(self.backward, self.forward))
        return self._valid

    @property
    def valid_forward(self) -> torch.Tensor:
        return self.occlusion()[0]

    @property
    def valid_backward(self) -> torch.Tensor:
        return self.occlusion()[1]


def compute_flow(src: torch.Tensor, dst: torch.Tensor, method: str = DEFAULT_METHOD,
                 device: torch.device | str | None = None, init: torch.Tensor | None = None,
                 raft: "RaftModels | None" = None) -> torch.Tensor:
    """Flow from each src[n] to dst[n]: [N,H,W,C] x2 (0..1) -> [N,H,W,2] float32 on src's device.

    `init` [N,H,W,2]: a first guess each estimate starts from (DIS starts its coarsest scale from it,
    Farneback its coarsest level) instead of its own search; a pair whose guess is all zero is computed as
    without one (DIS given a zero field is not the same: it skips part of its coarsest-scale search). Not
    for "raft" (torchvision's RAFT takes no initial flow). `raft`: where "raft" finds and keeps its network
    (a runtime's RaftModels); None loads it from REWARDLOOP_MODELS_DIR for this call only."""
    _check_frames(src, "src")
    _check_frames(dst, "dst")
    if src.shape != dst.shape:
        raise ValueError(f"src {tuple(src.shape)} and dst {tuple(dst.shape)} must have the same shape.")
    if init is not None and tuple(init.shape) != (*src.shape[:3], 2):
        raise ValueError(f"Initial flow must be [N,H,W,2] = {(*src.shape[:3], 2)}, got {tuple(init.shape)}.")
    if method.startswith("dis_") or method == "farneback":
        if method not in METHODS:
            raise ValueError(_unknown(method))
        gray = _luma_u8(torch.cat([src, dst]))
        n = src.shape[0]
        return _opencv_flow(gray, list(range(n)), list(range(n, 2 * n)), method, init).to(src.device)
    if method == "raft":
        if init is not None:
            raise ValueError("The 'raft' flow method takes no initial flow; pass init=None or use a 'dis_*' method.")
        return _raft_flow(src, dst, device, raft).to(src.device)
    raise ValueError(_unknown(method))


def bidirectional_flow(frames: torch.Tensor, method: str = DEFAULT_METHOD,
                       device: torch.device | str | None = None, init: FlowPair | None = None,
                       workers: int | None = None, raft: "RaftModels | None" = None, progress=None) -> FlowPair:
    """Forward and backward flow between consecutive frames of a clip [T,H,W,C], T >= 2, in one batch
    (`init`: first guesses for both directions, see `compute_flow`; `workers`: threads for the OpenCV
    methods, default every usable core; `raft`: see `compute_flow`; `progress(done, total)`: called in the
    caller's thread as the 2(T-1) flows finish, per flow for the OpenCV methods, once at the end for RAFT)."""
    _check_frames(frames, "frames")
    if frames.shape[0] < 2:
        raise ValueError("Flow needs at least 2 frames.")
    n = frames.shape[0] - 1
    guess = None if init is None else torch.cat([init.forward, init.backward])
    if guess is not None and tuple(guess.shape) != (2 * n, *frames.shape[1:3], 2):
        raise ValueError(f"Initial flows must be [T-1,H,W,2] = {(n, *frames.shape[1:3], 2)} in both directions.")
    if method in METHODS and (method.startswith("dis_") or method == "farneback"):
        # Each frame converted once and the pairs indexed (not two concatenated copies of the clip).
        idx = list(range(n + 1))
        both = _opencv_flow(_luma_u8(frames), idx[:-1] + idx[1:], idx[1:] + idx[:-1], method, guess, workers,
                            progress)
        both = both.to(frames.device)
    else:
        both = compute_flow(torch.cat([frames[:-1], frames[1:]]), torch.cat([frames[1:], frames[:-1]]), method,
                            device, guess, raft)
        if progress is not None:
            progress(2 * n, 2 * n)
    return FlowPair(both[:n], both[n:], method)


def bidirectional_flows(clips: list[torch.Tensor], method: str = DEFAULT_METHOD,
                        device: torch.device | str | None = None, workers: int | None = None,
                        raft: "RaftModels | None" = None) -> list[FlowPair]:
    """`bidirectional_flow` of several clips of one frame size in one pass: every consecutive pair of every clip
    (never a pair across two clips) in one thread-pool map (OpenCV) or one batched run (RAFT), so a batch of short
    clips keeps every core busy. Each result equals that clip's own `bidirectional_flow`."""
    for i, frames in enumerate(clips):
        _check_frames(frames, f"clips[{i}]")
        if frames.shape[0] < 2:
            raise ValueError(f"clips[{i}] has {frames.shape[0]} frame: flow needs at least 2.")
        if frames.shape[1:] != clips[0].shape[1:]:
            raise ValueError(f"clips[{i}] frames are {tuple(frames.shape[1:])}, clips[0]'s {tuple(clips[0].shape[1:])}: "
                             "one call takes clips of one frame size.")
    starts = np.cumsum([0] + [c.shape[0] for c in clips])
    src = [int(s) + t for s, c in zip(starts, clips) for t in range(c.shape[0] - 1)]
    dst = [s + 1 for s in src]
    if method in METHODS and (method.startswith("dis_") or method == "farneback"):
        both = _opencv_flow(_luma_u8(torch.cat(clips)), src + dst, dst + src, method, None, workers)
    else:
        frames = torch.cat(clips)
        both = compute_flow(frames[src + dst], frames[dst + src], method, device, None, raft)
    n, out, at = len(src), [], 0
    for c in clips:
        k = c.shape[0] - 1
        out.append(FlowPair(both[at:at + k].to(c.device), both[n + at:n + at + k].to(c.device), method))
        at += k
    return out


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Flow [N,H,W,2] -> [N,H,W,3] float 0..1 in the Middlebury colour wheel (torchvision's flow_to_image):
    hue = direction, saturation = magnitude. The scale is shared by the whole batch (the largest
    magnitude in it, or `max_magnitude` pixels for a fixed scale across clips)."""
    from torchvision.utils import flow_to_image

    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"Expected flow [N,H,W,2], got shape {tuple(flow.shape)}.")
    f = flow.float().permute(0, 3, 1, 2)
    if max_magnitude is not None:
        if max_magnitude <= 0:
            raise ValueError("max_magnitude must be > 0 pixels.")
        norm = f.pow(2).sum(1, keepdim=True).sqrt()
        f = f * (max_magnitude / norm.clamp(min=max_magnitude))  # clip longer vectors to the scale
        # flow_to_image divides by the batch maximum: one extra frame holding exactly max_magnitude pins it.
        pin = torch.zeros_like(f[:1])
        pin[0, 0, 0, 0] = max_magnitude
        f = torch.cat([f, pin])
        return (flow_to_image(f)[:-1].permute(0, 2, 3, 1).float() / 255.0).to(flow.device)
    return (flow_to_image(f).permute(0, 2, 3, 1).float() / 255.0).to(flow.device)


# --------------------------------------------------------------------------------------------------

def _unknown(method: str) -> str:
    return f"Unknown flow method '{method}'. Choose one of: {', '.join(METHODS)}."


def _check_frames(x: torch.Tensor, name: str) -> None:
    check_frames(x, name, min_size=8, max_pixels=MAX_PIXELS, rgb=False)


def _luma_u8(x: torch.Tensor) -> np.ndarray:
    # Converted where the frames are (a GPU does it in no time) and moved as uint8: a quarter of the bytes.
    return (luma(x.detach().float()).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


_DIS_PRESETS = {"dis_ultrafast": 0, "dis_fast": 1, "dis_medium": 2, "dis_fine": 2}  # cv2.DISOPTICAL_FLOW_PRESET_*
_local = threading.local()


def _opencv_pair(method: str, a: np.ndarray, b: np.ndarray, out: np.ndarray, guided: bool = False) -> None:
    """Flow a -> b into `out` [H,W,2] float32 (holding the first guess when `guided`)."""
    import cv2

    if method == "farneback":
        # TecoGAN's tOF parameters: pyr_scale .5, 3 levels, window 15, 3 iterations, poly_n 5, sigma 1.2.
        if guided:
            cv2.calcOpticalFlowFarneback(a, b, out, 0.5, 3, 15, 3, 5, 1.2, cv2.OPTFLOW_USE_INITIAL_FLOW)
        else:
            out[...] = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        return
    # DIS objects keep state between calls and are not thread-safe: one per worker thread and preset.
    # DIS starts from the flow passed in when it is H x W float32x2 and writes the result into it. A
    # guided call leaves state behind that changes later unguided results of the same object (by tens of pixels);
    # guided results do not depend on what ran before. So guided and unguided calls keep separate objects.
    # An object also keeps settings from the first frame size it saw (results at another size then differ from a
    # fresh object's by up to a pixel), so each frame size gets its own.
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (method, guided, a.shape)
    dis = cache.get(key)
    if dis is None:
        dis = cache[key] = _new_dis(method)
    if guided:
        dis.calc(a, b, out)
    else:
        out[...] = dis.calc(a, b, None)


def _new_dis(method: str):
    import cv2

    dis = cv2.DISOpticalFlow.create(_DIS_PRESETS[method])
    if method == "dis_fine":
        dis.setFinestScale(0)
    return dis


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _opencv_flow(gray: np.ndarray, src: list[int], dst: list[int], method: str,
                 init: torch.Tensor | None = None, workers: int | None = None, progress=None) -> torch.Tensor:
    """Flows gray[src[i]] -> gray[dst[i]] ([N,H,W] uint8) -> [n,H,W,2] float32 on the CPU; `progress(done, n)`
    after each pair, in the caller's thread (a progress hook may raise to cancel)."""
    n = len(src)
    H, W = gray.shape[1:3]
    # Every pair writes into its slice of one array (no per-pair result arrays stacked afterwards); a
    # guided pair's slice holds its first guess, which DIS and Farneback refine in place.
    out = np.empty((n, H, W, 2), dtype=np.float32)
    guided = [False] * n
    if init is not None:
        g = init.detach().float()
        given = (g.flatten(1).abs().amax(1) > 0).cpu().tolist()
        if any(given):
            out[...] = g.cpu().numpy()
            guided = given
    workers = max(1, min(n, workers or usable_cores()))
    # OpenCV releases the GIL inside calc(): a thread pool uses every core for the per-pair calls
    # (OpenCV's flow API takes one pair at a time, so the pairs cannot be batched into one call).
    if workers == 1:
        for i in range(n):
            _opencv_pair(method, gray[src[i]], gray[dst[i]], out[i], guided[i])
            if progress is not None:
                progress(i + 1, n)
    else:
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(lambda i: _opencv_pair(method, gray[src[i]], gray[dst[i]], out[i], guided[i]), range(n))
            try:
                for i, _ in enumerate(done, 1):
                    if progress is not None:
                        progress(i, n)
            except BaseException:  # a cancel from the progress hook: drop the pairs not started yet
                pool.shutdown(cancel_futures=True)
                raise
    return torch.from_numpy(out)


class RaftModels:
    """RAFT networks loaded from the model folders once per (checkpoint, device), until `clear()`. A
    RewardRuntime holds one, so "Free Reward Models" frees them with the other networks."""

    def __init__(self, roots: ModelRoots | None = None):
        self.roots = roots if roots is not None else ModelRoots()
        self._models = Cache()

    def __len__(self) -> int:
        return len(self._models)

    def clear(self) -> int:
        """Drop every loaded network; returns how many."""
        return self._models.clear()

    def get(self, device: torch.device) -> torch.nn.Module:
        path, arch = self._checkpoint()
        return self._models.get_or_load((str(path), str(device)), lambda: _load_raft(path, arch).to(device))

    def _checkpoint(self):
        missing = None
        for name, arch in RAFT_WEIGHTS:
            try:
                return self.roots.find_weight(RAFT_KIND, name, RAFT_HOW_TO_GET), arch
            except WeightNotFound as e:
                missing = e
        names = ", ".join(n for n, _ in RAFT_WEIGHTS)
        raise WeightNotFound(f"one of {names}", missing.searched, RAFT_HOW_TO_GET)


def _load_raft(path, arch: str) -> torch.nn.Module:
    from torchvision.models.optical_flow import raft_large, raft_small

    model = (raft_large if arch == "raft_large" else raft_small)(weights=None, progress=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a torchvision {arch} checkpoint: {str(e)[:300]}") from e
    return model.eval().requires_grad_(False)


def _pick_device(device) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def _raft_flow(src: torch.Tensor, dst: torch.Tensor, device, raft: RaftModels | None, batch: int = 4) -> torch.Tensor:
    dev = _pick_device(device)
    model = (raft if raft is not None else RaftModels()).get(dev)
    N, H, W, _ = src.shape
    # RAFT needs sizes divisible by 8 and a 1/8-scale map big enough for its 4-level correlation pyramid.
    Hp, Wp = max(128, -(-H // 8) * 8), max(128, -(-W // 8) * 8)
    out = torch.empty(N, H, W, 2)
    for i in range(0, N, batch):
        a = _raft_input(src[i:i + batch], Hp, Wp, dev)
        b = _raft_input(dst[i:i + batch], Hp, Wp, dev)
        flow = model(a, b)[-1]  # last refinement, [n,2,Hp,Wp], (dx, dy) from a to b
        out[i:i + batch] = flow[:, :, :H, :W].permute(0, 2, 3, 1).float().cpu()
    return out


def _raft_input(x: torch.Tensor, Hp: int, Wp: int, dev: torch.device) -> torch.Tensor:
    x = x[..., :3] if x.shape[-1] >= 3 else x[..., :1].expand(*x.shape[:3], 3)
    x = x.permute(0, 3, 1, 2).float().to(dev) * 2.0 - 1.0
    H, W = x.shape[-2:]
    return F.pad(x, (0, Wp - W, 0, Hp - H), mode="replicate")
