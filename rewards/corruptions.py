"""Corrupted copies of a clip, to check that a reward (or your composite weights) prefers the clean clip.

Every function takes frames [T,H,W,3] float in 0..1 and returns a new float32 clip of the same shape;
random choices come from `seed` (the same seed gives the same corruption). Sizes are fractions of the frame's
long side, so a corruption means the same at 128 and 512 px. `apply(name, frames, ...)` runs one by name.

    shuffle         frames in a random order (first and last frame moved)
    jitter          camera shake: every frame shifted by a different whole-pixel offset (1.2% of the long side)
    stutter         timing breaks: random frames held and later ones skipped to catch up
    texture_warp    boiling texture: a new fine random displacement field (0.8%, 12 cells) in every frame
    structure_warp  wobbling shapes: a new coarse random displacement field (2.5%, 3 cells) in every frame
    flicker         a random brightness gain per frame (sd 12%)
    lighting_jump   from frame `at` on, exposure and white balance jump (x1.25 red, x1.15 green, x0.95 blue)
    loop            the first `period` frames repeated (frame t shows frame t mod period)
    pingpong        the first `period` frames played forward and back, repeatedly
    seam            frames at..at+skip-1 replay the `skip` frames before them (a join that jumps back, then forward)
    blur            Gaussian blur (sigma 0.6% of the long side)
    tilt            a random roll of the camera per frame (sd 3 degrees)
    identity_swap   from frame `at` on, the face box of each frame shows another face (boxes given by the caller)
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..motion.warp import backward_warp


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _long_side(frames: torch.Tensor) -> int:
    return max(int(frames.shape[1]), int(frames.shape[2]))


def _nchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).float()


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).clamp(0, 1).contiguous()


def shuffle(frames: torch.Tensor, seed: int = 0) -> torch.Tensor:
    T = frames.shape[0]
    g = _gen(seed)
    order = torch.randperm(T, generator=g)
    while T > 2 and (order[0] == 0 or order[-1] == T - 1):  # the keyframe positions must change
        order = torch.randperm(T, generator=g)
    return frames[order].float().clone()


def jitter(frames: torch.Tensor, seed: int = 0, amount: float = 0.012) -> torch.Tensor:
    T, H, W = frames.shape[:3]
    r = max(1, round(amount * _long_side(frames)))
    g = _gen(seed)
    padded = F.pad(_nchw(frames), (r, r, r, r), mode="replicate")
    out = torch.empty(T, 3, H, W)
    for t in range(T):
        dx = dy = 0
        while dx == 0 and dy == 0:  # every frame moves
            dx, dy = (int(v) for v in torch.randint(-r, r + 1, (2,), generator=g))
        out[t] = padded[t, :, r + dy:r + dy + H, r + dx:r + dx + W]
    return _nhwc(out)


def stutter(frames: torch.Tensor, seed: int = 0, rate: float = 0.2) -> torch.Tensor:
    """About `rate` of the frames (never the first or last, never two in a row) show the previous frame again
    instead of their own: a hold, then a skip. The clip stays in sync with the original and ends on its frame."""
    T = frames.shape[0]
    g = _gen(seed)
    idx = list(range(T))
    for t in range(1, T - 1):
        if idx[t - 1] == t - 1 and float(torch.rand(1, generator=g)) < rate:
            idx[t] = t - 1
    if idx == list(range(T)) and T > 2:  # at least one hold
        idx[T // 2] = T // 2 - 1
    return frames[idx].float().clone()


def _random_field(T: int, H: int, W: int, cells: int, amplitude: float, g: torch.Generator) -> torch.Tensor:
    """[T,H,W,2] smooth random displacement (px): Gaussian values on a coarse grid, bicubic-upsampled."""
    gh, gw = (cells, max(1, round(cells * W / H))) if H >= W else (max(1, round(cells * H / W)), cells)
    noise = torch.randn(T, 2, gh + 1, gw + 1, generator=g) * amplitude
    return F.interpolate(noise, size=(H, W), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)


def texture_warp(frames: torch.Tensor, seed: int = 0, amount: float = 0.008, cells: int = 12) -> torch.Tensor:
    T, H, W = frames.shape[:3]
    flow = _random_field(T, H, W, cells, amount * _long_side(frames), _gen(seed))
    return backward_warp(frames.float(), flow).clamp(0, 1)


def structure_warp(frames: torch.Tensor, seed: int = 0, amount: float = 0.025, cells: int = 3) -> torch.Tensor:
    return texture_warp(frames, seed, amount, cells)


def flicker(frames: torch.Tensor, seed: int = 0, amount: float = 0.12) -> torch.Tensor:
    gain = 1 + amount * torch.randn(frames.shape[0], generator=_gen(seed))
    return (frames.float() * gain.clamp(0.5, 1.5)[:, None, None, None]).clamp(0, 1)


LIGHTING_GAIN = (1.25, 1.15, 0.95)


def lighting_jump(frames: torch.Tensor, at: int | None = None, gain: tuple[float, float, float] = LIGHTING_GAIN) -> torch.Tensor:
    at = frames.shape[0] // 2 if at is None else at
    out = frames.float().clone()
    out[at:] = (out[at:] * torch.tensor(gain)).clamp(0, 1)
    return out


def loop(frames: torch.Tensor, period: int = 8) -> torch.Tensor:
    return frames[torch.arange(frames.shape[0]) % period].float().clone()


def pingpong(frames: torch.Tensor, period: int = 8) -> torch.Tensor:
    """Forward over frames 0..period-1, back to 0, forward again ... (a boomerang loop)."""
    cycle = 2 * (period - 1)
    t = torch.arange(frames.shape[0]) % cycle
    return frames[torch.where(t < period, t, cycle - t)].float().clone()


def seam(frames: torch.Tensor, at: int | None = None, skip: int = 4) -> torch.Tensor:
    """Frames at..at+skip-1 show frames at-skip..at-1 again: a join whose second window runs `skip` frames behind,
    jumping back at `at` and forward to the original's frame at+skip. Every other frame stays in place (like
    `stutter`), so the copy is its original plus one bad join: a copy that restarts and stays behind would move the
    original's later frames and drop its last ones, which can hold worse breaks than the join."""
    T = frames.shape[0]
    at = T // 2 if at is None else at
    if not 0 < skip <= at <= T - skip:
        raise ValueError(f"seam needs 0 < skip <= at <= {T} - skip, got at={at}, skip={skip}")
    out = frames.float().clone()
    out[at:at + skip] = frames[at - skip:at]
    return out


def blur(frames: torch.Tensor, amount: float = 0.006) -> torch.Tensor:
    import kornia

    sigma = max(0.5, amount * _long_side(frames))
    k = 2 * math.ceil(3 * sigma) + 1
    return _nhwc(kornia.filters.gaussian_blur2d(_nchw(frames), (k, k), (sigma, sigma), border_type="reflect"))


def tilt(frames: torch.Tensor, seed: int = 0, degrees: float = 3.0) -> torch.Tensor:
    import kornia

    angles = torch.randn(frames.shape[0], generator=_gen(seed)) * degrees
    return _nhwc(kornia.geometry.transform.rotate(_nchw(frames), angles, padding_mode="border"))


def identity_swap(frames: torch.Tensor, boxes: torch.Tensor, donor: torch.Tensor, at: int | None = None,
                  feather: float = 0.15) -> torch.Tensor:
    """From frame `at` on, frame t's face box `boxes[t]` ([T,4] x0,y0,x1,y1 px; NaN = no face) shows `donor`
    ([h,w,3], another person's face crop) resized to the box, blended in with a feathered elliptical mask."""
    T, H, W = frames.shape[:3]
    at = T // 2 if at is None else at
    out = frames.float().clone()
    for t in range(at, T):
        b = boxes[t]
        if not bool(torch.isfinite(b).all()):
            continue
        x0, y0 = max(0, int(b[0])), max(0, int(b[1]))
        x1, y1 = min(W, int(math.ceil(b[2]))), min(H, int(math.ceil(b[3])))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        face = F.interpolate(donor.float().permute(2, 0, 1)[None], size=(y1 - y0, x1 - x0), mode="bilinear",
                             antialias=True, align_corners=False)[0].permute(1, 2, 0).clamp(0, 1)
        yy = torch.linspace(-1, 1, y1 - y0)[:, None]
        xx = torch.linspace(-1, 1, x1 - x0)[None, :]
        r = (xx ** 2 + yy ** 2).sqrt()
        mask = ((1 - r) / feather).clamp(0, 1)[..., None]
        out[t, y0:y1, x0:x1] = mask * face + (1 - mask) * out[t, y0:y1, x0:x1]
    return out


CORRUPTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "shuffle": shuffle, "jitter": jitter, "stutter": stutter, "texture_warp": texture_warp,
    "structure_warp": structure_warp, "flicker": flicker, "lighting_jump": lighting_jump, "loop": loop,
    "pingpong": pingpong, "seam": seam, "blur": blur, "tilt": tilt, "identity_swap": identity_swap,
}


def apply(name: str, frames: torch.Tensor, **kw) -> torch.Tensor:
    try:
        fn = CORRUPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown corruption {name!r}; available: {', '.join(CORRUPTIONS)}") from None
    return fn(frames, **kw)
