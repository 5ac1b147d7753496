"""Procedural parallax scene with exact ground-truth motion.

A "static landscape, camera motion only" shot: sky with sun, clouds, distant mountains, hills, glass
skyscrapers with window grids, trees and a grassy foreground, each a textured fronto-parallel plane at
its own depth. The camera translates sideways ("pan", strictly a truck so layers show parallax) and/or
moves forward ("dolly"). Because every layer is a plane facing the camera, the screen position of a
layer point is an affine function of time-dependent camera parameters, so any frame at any continuous
time t in [0, 1] and the exact per-pixel displacement between two times (with occlusion) are known.

Geometry (normalised screen coordinates, y down, origin at the image centre, unit = image height):
    u_n = (u + 0.5 - W/2) / H,   v_n = (v + 0.5 - H/2) / H
A layer at depth Z is seen with scale k(t) = (Z - cz(t)) / Z and offset o(t) = cx(t) / Z:
    layer_x = u_n * k(t) + o(t),  layer_y = v_n * k(t)
so a pixel of that layer moves from time t0 to t1 by
    du_n = u_n * (k0/k1 - 1) + (o0 - o1)/k1,   dv_n = v_n * (k0/k1 - 1).

Layer content is defined in layer coordinates from the seed alone (hash-table noise, object
placement over a fixed world range), so the same seed shows the same world at any resolution or aspect.
Each layer is pre-rendered once into an RGBA texture (cached, see `clear_cache`) at a density that never
magnifies, and frames are bilinear resamples of those textures: a continuous function of layer
coordinates, which is what makes the ground-truth flow exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F

MOTIONS = ("pan", "dolly", "pan_dolly")
MAX_PIXELS = 4096 * 4096

# Depth of the nearest layer is 1; camera travel is in those units.
_PAN = {"pan": 0.6, "dolly": 0.0, "pan_dolly": 0.45}
_DOLLY = {"pan": 0.0, "dolly": 0.3, "pan_dolly": 0.25}
_TEXTURE_OVERSAMPLE = 1.25
_TABLE = 256


@dataclass
class Layer:
    name: str
    depth: float
    texture: torch.Tensor  # [Ht, Wt, 4] RGB + alpha (straight, not premultiplied)
    x0: float  # layer coordinate of texel (0, 0)'s outer corner
    y0: float
    ppu: float  # texels per layer unit
    y_band: tuple[float, float]  # layer-y range where the layer can be non-transparent


class GroundTruthFlow(NamedTuple):
    flow: torch.Tensor  # [N,H,W,2] float32 pixel displacement (dx, dy) of each t0 pixel at t1
    valid: torch.Tensor  # [N,H,W] bool: the t0 pixel is a clean (non-edge) surface point still visible at t1
    layer: torch.Tensor  # [N,H,W] int64 index of the front layer at t0 (0 = sky ... last = foreground)


def camera(times: torch.Tensor, motion: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(cx, cz) camera position at each time. A gentle ease keeps the speed non-constant, so tests of
    linear-motion inbetweening are not trivially exact."""
    _check_motion(motion)
    s = times - 0.03 * torch.sin(2 * math.pi * times)
    return _PAN[motion] * s, _DOLLY[motion] * s


def render_scene(times, width: int, height: int, seed: int = 0, motion: str = "pan",
                 device: torch.device | str | None = None, chunk: int = 2) -> torch.Tensor:
    """Frames at the given times in [0, 1]: float32 [T,H,W,3] in 0..1."""
    times = _check_times(times)
    _check_size(width, height)
    scene = _scene(int(seed), int(width), int(height), motion)
    device = torch.device(device) if device is not None else torch.device("cpu")
    layers = [_to_device(layer, device) for layer in scene]
    T = times.shape[0]
    out = torch.empty(T, height, width, 3, dtype=torch.float32, device=device)
    un, vn = _screen_coords(width, height, device)
    for start in range(0, T, chunk):
        t = times[start:start + chunk].to(device)
        frame = out[start:start + chunk]
        frame[:] = torch.tensor(_HORIZON, device=device)
        for layer in layers:
            rows, sample = _sample_layer(layer, t, motion, un, vn, height, channels=slice(0, 4))
            if sample is None:
                continue
            frame[:, rows].lerp_(sample[..., :3], sample[..., 3:])
    return out.clamp_(0.0, 1.0)


def ground_truth_flow(t0, t1, width: int, height: int, seed: int = 0, motion: str = "pan",
                      device: torch.device | str | None = None) -> GroundTruthFlow:
    """Exact displacement of every pixel of the frame at t0 to its position in the frame at t1.

    Flow convention (the pack's, see motion.optical_flow): flow[n, y, x] = (dx, dy) such that the surface point
    seen at pixel (x, y) at time t0[n] is seen at (x + dx, y + dy) at time t1[n]; sampling frame(t1) at
    x + flow reproduces frame(t0) where `valid`. `valid` is False for pixels on soft layer edges, pixels
    that leave the image, and pixels hidden at t1 by a nearer layer (occlusion)."""
    t0, t1 = _check_times(t0), _check_times(t1)
    if t0.shape != t1.shape:
        raise ValueError(f"t0 and t1 must have the same length, got {t0.shape[0]} and {t1.shape[0]}.")
    _check_size(width, height)
    device = torch.device(device) if device is not None else torch.device("cpu")
    layers = [_to_device(layer, device) for layer in _scene(int(seed), int(width), int(height), motion)]
    un, vn = _screen_coords(width, height, device)
    t0, t1 = t0.to(device), t1.to(device)
    id0, pure0 = _front_layer(layers, t0, motion, un, vn, width, height)
    id1, pure1 = _front_layer(layers, t1, motion, un, vn, width, height)

    depth = torch.tensor([layer.depth for layer in layers], device=device)
    cx0, cz0 = camera(t0, motion)
    cx1, cz1 = camera(t1, motion)
    k0, o0 = (depth - cz0[:, None]) / depth, cx0[:, None] / depth  # [N, L]
    k1, o1 = (depth - cz1[:, None]) / depth, cx1[:, None] / depth
    N = t0.shape[0]
    flat = id0.view(N, -1)
    scale = (k0 / k1 - 1).gather(1, flat).view_as(id0)
    shift = ((o0 - o1) / k1).gather(1, flat).view_as(id0)
    flow = torch.stack([(un * scale + shift) * height, vn * scale * height], dim=-1)

    xs = torch.arange(width, device=device, dtype=torch.float32)
    ys = torch.arange(height, device=device, dtype=torch.float32)[:, None]
    x1 = torch.round(xs + flow[..., 0])
    y1 = torch.round(ys + flow[..., 1])
    inside = (x1 >= 0) & (x1 <= width - 1) & (y1 >= 0) & (y1 <= height - 1)
    idx = (y1.clamp(0, height - 1) * width + x1.clamp(0, width - 1)).long().view(N, -1)
    same = id1.view(N, -1).gather(1, idx).view_as(id0) == id0
    clean1 = pure1.view(N, -1).gather(1, idx).view_as(id0)
    return GroundTruthFlow(flow, pure0 & inside & same & clean1, id0)


def layer_names(seed: int = 0) -> list[str]:
    return [layer.name for layer in _scene(int(seed), 64, 64, "pan")]


def clear_cache() -> None:
    """Free the pre-rendered layer textures."""
    _scene.cache_clear()


# --------------------------------------------------------------------------------------------------
# Validation

def _check_motion(motion: str) -> None:
    if motion not in MOTIONS:
        raise ValueError(f"Unknown camera motion '{motion}'. Choose one of: {', '.join(MOTIONS)}.")


def _check_size(width: int, height: int) -> None:
    if int(width) < 8 or int(height) < 8:
        raise ValueError(f"Scene size {width}x{height} is too small: width and height must be >= 8.")
    if int(width) * int(height) > MAX_PIXELS:
        raise ValueError(f"Scene size {width}x{height} is too large: at most {MAX_PIXELS} pixels per frame.")


def _check_times(times) -> torch.Tensor:
    t = torch.as_tensor(times, dtype=torch.float32).reshape(-1).cpu()
    if t.numel() == 0:
        raise ValueError("No times given: pass at least one time in [0, 1].")
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError("Scene times must be finite values in [0, 1] (0 = first frame, 1 = last frame).")
    return t


# --------------------------------------------------------------------------------------------------
# Sampling

_HORIZON = (0.78, 0.84, 0.9)


def _to_device(layer: Layer, device: torch.device) -> Layer:
    if layer.texture.device == device:
        return layer
    return Layer(layer.name, layer.depth, layer.texture.to(device), layer.x0, layer.y0, layer.ppu, layer.y_band)


def _screen_coords(width: int, height: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    un = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2) / height
    vn = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2) / height
    return un, vn[:, None]


def _sample_layer(layer: Layer, t: torch.Tensor, motion: str, un: torch.Tensor, vn: torch.Tensor,
                  height: int, channels: slice):
    """Bilinear resample of one layer for frames at times t, restricted to the screen rows its y band
    can reach. Separable (row gather, then column gather) because the layer->screen map is axis-aligned:
    cheaper than grid_sample on CPU. Returns (row slice, [T, h, W, C]) or (slice, None)."""
    cx, cz = camera(t, motion)
    k = (layer.depth - cz) / layer.depth  # [T]
    o = cx / layer.depth
    ya, yb = layer.y_band
    kmin, kmax = float(k.min()), float(k.max())
    v_lo = min(ya / kmin, ya / kmax)
    v_hi = max(yb / kmin, yb / kmax)
    r_lo = max(0, math.floor(v_lo * height + height / 2 - 0.5) - 1)
    r_hi = min(height, math.ceil(v_hi * height + height / 2 - 0.5) + 2)
    if r_hi <= r_lo:
        return slice(0, 0), None
    rows = slice(r_lo, r_hi)
    tex = layer.texture[..., channels]
    Ht, Wt = tex.shape[:2]
    ry = (vn[rows, 0][None, :] * k[:, None] - layer.y0) * layer.ppu - 0.5  # [T, h]
    cxf = ((un[None, :] * k[:, None] + o[:, None]) - layer.x0) * layer.ppu - 0.5  # [T, W]
    r0 = ry.floor().clamp_(0, Ht - 2)
    wr = (ry - r0).clamp_(0, 1)
    c0 = cxf.floor().clamp_(0, Wt - 2)
    wc = (cxf - c0).clamp_(0, 1)
    r_min, r_max = int(r0.min()), int(r0.max()) + 2
    band = tex[r_min:r_max]
    T, W = c0.shape
    # Columns first for all frames at once (index_select copies whole texels), then rows by advanced
    # indexing, which copies whole output rows: both far cheaper on CPU than gather with a full index.
    ci = c0.long().reshape(-1)
    cols = band.index_select(1, ci).lerp_(band.index_select(1, ci + 1), wc.reshape(1, -1, 1))
    cols = cols.view(r_max - r_min, T, W, -1)
    ri = r0.long() - r_min  # [T, h]
    ti = torch.arange(T, device=tex.device)[:, None]
    out = cols[ri, ti].lerp_(cols[ri + 1, ti], wr[..., None, None])  # [T, h, W, C]
    return rows, out


def _front_layer(layers: list[Layer], t: torch.Tensor, motion: str, un, vn, width: int, height: int):
    """Index of the front-most layer (alpha > 0.5) per pixel, and whether the pixel is 'clean': that
    layer nearly opaque there and every nearer layer nearly transparent (no mixed edge pixel)."""
    T = t.shape[0]
    ids = torch.zeros(T, height, width, dtype=torch.long, device=t.device)
    pure = torch.ones(T, height, width, dtype=torch.bool, device=t.device)
    for i, layer in enumerate(layers):
        rows, a = _sample_layer(layer, t, motion, un, vn, height, channels=slice(3, 4))
        if a is None:
            continue
        a = a[..., 0]
        front = a > 0.5
        ids[:, rows] = torch.where(front, i, ids[:, rows])
        pure[:, rows] = torch.where(front, a > 0.98, pure[:, rows] & (a < 0.02))
    return ids, pure


# --------------------------------------------------------------------------------------------------
# Layer textures

@lru_cache(maxsize=4)
def _scene(seed: int, width: int, height: int, motion: str) -> tuple[Layer, ...]:
    _check_motion(motion)
    gen = torch.Generator().manual_seed(seed)
    tables = torch.rand(8, _TABLE, _TABLE, generator=gen)
    p = _Params(gen)
    aspect = width / height
    t = torch.linspace(0, 1, 65)
    cx, cz = camera(t, motion)
    builders = [
        ("sky", 1000.0, (-0.5, 0.16), _sky),
        ("clouds", 40.0, (-0.5, 0.02), _clouds),
        ("mountains", 15.0, (-0.2, 0.25), _mountains),
        ("hills", 6.0, (-0.05, 0.5), _hills),
        ("buildings", 3.0, (-0.46, 0.5), _buildings),
        ("trees", 1.6, (0.0, 0.5), _trees),
        ("ground", 1.0, (0.2, 0.5), _ground),
    ]
    layers = []
    for i, (name, depth, band, build) in enumerate(builders):
        k = (depth - cz) / depth
        o = cx / depth
        x_lo = float((-aspect / 2 * k + o).min())
        x_hi = float((aspect / 2 * k + o).max())
        ppu = height * _TEXTURE_OVERSAMPLE / float(k.min())
        margin = 3 / ppu
        x0, x1 = x_lo - margin, x_hi + margin
        y0, y1 = band[0] - margin, band[1] + margin
        Wt, Ht = math.ceil((x1 - x0) * ppu), math.ceil((y1 - y0) * ppu)
        xs = x0 + (torch.arange(Wt, dtype=torch.float32) + 0.5) / ppu
        ys = y0 + (torch.arange(Ht, dtype=torch.float32) + 0.5) / ppu
        field = _Field(xs, ys[:, None], tables, i, ppu)
        rgb, alpha = build(field, p)
        tex = torch.cat([rgb.clamp(0, 1), alpha.clamp(0, 1)[..., None].expand(Ht, Wt, 1)], dim=-1)
        layers.append(Layer(name, depth, tex.contiguous(), x0, y0, ppu, band))
    return tuple(layers)


class _Params:
    """Per-seed scene choices (palette, sun, object placement), drawn in a fixed order from the seed."""

    def __init__(self, gen: torch.Generator):
        def u(lo, hi):
            return lo + (hi - lo) * float(torch.rand((), generator=gen))

        self.uniform = u
        self.sun = (u(-0.6, 0.6), u(-0.38, -0.22))
        self.zenith = (u(0.12, 0.25), u(0.3, 0.45), u(0.62, 0.8))
        self.glass = [(u(0.3, 0.5), u(0.5, 0.7), u(0.6, 0.8)), (u(0.2, 0.35), u(0.45, 0.6), u(0.5, 0.6)),
                      (u(0.55, 0.7), u(0.5, 0.6), u(0.4, 0.5))]
        self.grass = (u(0.25, 0.35), u(0.45, 0.55), u(0.12, 0.2))
        # Objects over a fixed world range so content does not depend on resolution or motion.
        self.buildings = []
        x = -2.0 + u(0.0, 0.2)
        while x < 2.5:
            w = u(0.1, 0.24)
            self.buildings.append((x, w, u(-0.42, -0.12), int(u(5, 11)), len(self.buildings) % 3))
            x += w + u(0.04, 0.3)
        self.trees = []
        x = -2.5 + u(0.0, 0.2)
        while x < 3.0:
            self.trees.append((x, u(0.1, 0.19), u(0.035, 0.07)))
            x += u(0.12, 0.4)


class _Field:
    """Texel-centre coordinates of one layer texture plus seeded noise evaluated on them."""

    def __init__(self, xs, ys, tables, layer_index, ppu):
        self.x, self.y, self.tables, self.li, self.ppu = xs, ys, tables, layer_index, ppu
        self.aa = 1.0 / ppu  # one texel: width of antialiased edges

    def noise(self, freq: float, octave: int = 0, ax: float = 1.0, ay: float = 1.0) -> torch.Tensor:
        """Bicubic value noise in [0, 1] anchored to absolute layer coordinates (lattice values come
        from a seeded table indexed by integer lattice position, so any sub-rectangle is consistent)."""
        fx, fy = freq * ax, freq * ay
        gx, gy = self.x * fx, self.y[:, 0] * fy
        ix0, iy0 = math.floor(float(gx.min())) - 2, math.floor(float(gy.min())) - 2
        nx, ny = math.ceil(float(gx.max())) - ix0 + 3, math.ceil(float(gy.max())) - iy0 + 3
        table = self.tables[(self.li + octave) % self.tables.shape[0]]
        jj = (torch.arange(ny) + iy0 + 31 * octave) % _TABLE
        ii = (torch.arange(nx) + ix0 + 57 * octave) % _TABLE
        lattice = table[jj[:, None], ii[None, :]][None, None]
        grid = torch.stack(torch.broadcast_tensors((gx - ix0)[None, :] / (nx - 1) * 2 - 1,
                                                   (gy - iy0)[:, None] / (ny - 1) * 2 - 1), dim=-1)
        out = F.grid_sample(lattice, grid[None], mode="bicubic", align_corners=True)[0, 0]
        return out.clamp(0, 1)

    def fbm(self, freq: float, octaves: int = 4, ax: float = 1.0, ay: float = 1.0) -> torch.Tensor:
        total, amp, norm = 0.0, 1.0, 0.0
        for o in range(octaves):
            total = total + amp * self.noise(freq * 2 ** o, o, ax, ay)
            norm += amp
            amp *= 0.5
        return total / norm

    def ridge(self, freq: float, octaves: int = 4) -> torch.Tensor:
        """1-D fbm along x in [0, 1]: [1, Wt]."""
        saved = self.y
        self.y = torch.zeros(1, 1)
        try:
            return self.fbm(freq, octaves, 1.0, 1.0)[0:1]
        finally:
            self.y = saved

    def step(self, edge, value) -> torch.Tensor:
        """Antialiased step: 0 below edge, 1 above, one texel wide."""
        return ((value - edge) / self.aa + 0.5).clamp(0, 1)


def _rgb(*channels) -> torch.Tensor:
    return torch.stack(torch.broadcast_tensors(*channels), dim=-1)


def _color(c, shape) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float32).expand(*shape, 3)


def _haze(rgb: torch.Tensor, amount: float) -> torch.Tensor:
    return rgb.lerp(torch.tensor(_HORIZON), amount)


def _sky(f: _Field, p: _Params):
    shape = torch.broadcast_shapes(f.x.shape, f.y.shape)
    g = ((f.y + 0.5) / 0.62).clamp(0, 1) ** 0.8
    rgb = _color(p.zenith, shape).lerp(torch.tensor(_HORIZON), g[..., None].expand(*shape, 1))
    d = torch.sqrt((f.x - p.sun[0]) ** 2 + (f.y - p.sun[1]) ** 2)
    glow = 0.35 * torch.exp(-d / 0.1) + f.step(-0.045, -d)
    rgb = rgb + glow[..., None] * torch.tensor([1.0, 0.93, 0.75])
    rgb = rgb * (0.97 + 0.06 * f.fbm(6, 3))[..., None]  # faint grain: real skies are never flat
    return rgb, torch.ones(shape)


def _clouds(f: _Field, p: _Params):
    n = f.fbm(3.0, 5, ax=0.6, ay=1.6)
    fade = ((-0.02 - f.y) / 0.12).clamp(0, 1)
    alpha = ((n - 0.5) / 0.16).clamp(0, 1) * fade
    shade = 0.78 + 0.22 * f.fbm(9, 3) - 0.25 * ((f.y + 0.5) * 0.6).clamp(0, 0.3)
    return _rgb(shade, shade, shade * 1.02 + 0.02), alpha


def _mountains(f: _Field, p: _Params):
    ridge = -0.03 - 0.15 * f.ridge(1.6, 5)
    alpha = f.step(ridge, f.y)
    n = f.fbm(10, 4)
    light = 0.75 + 0.5 * n - 0.6 * (f.y - ridge).clamp(0, 0.3)
    rgb = _rgb(0.42 * light, 0.48 * light, 0.6 * light)
    snow = (f.step(ridge + 0.02 + 0.03 * n, -f.y + 2 * ridge + 0.02) * (n > 0.45)).float()
    rgb = rgb.lerp(torch.tensor([0.92, 0.94, 0.97]), snow[..., None] * 0.7)
    return _haze(rgb, 0.35), alpha


def _hills(f: _Field, p: _Params):
    ridge = 0.07 - 0.09 * f.ridge(3.0, 4)
    alpha = f.step(ridge, f.y)
    fields = f.fbm(6, 3, ax=0.5, ay=2.0)
    bushes = ((f.fbm(40, 2) - 0.62) / 0.06).clamp(0, 1)
    light = 0.7 + 0.6 * fields
    rgb = _rgb(0.3 * light, 0.45 * light, 0.2 * light) * (1 - 0.45 * bushes)[..., None]
    return _haze(rgb, 0.2), alpha


def _buildings(f: _Field, p: _Params):
    shape = torch.broadcast_shapes(f.x.shape, f.y.shape)
    rgb = torch.zeros(*shape, 3)
    alpha = torch.zeros(shape)
    grain = f.fbm(25, 2)
    table = f.tables[(f.li + 5) % f.tables.shape[0]]
    for bi, (bx, bw, top, cols, tint) in enumerate(p.buildings):
        if bx + bw < float(f.x.min()) or bx > float(f.x.max()):
            continue
        inside = f.step(bx, f.x) * f.step(-bx - bw, -f.x) * f.step(top, f.y)
        cw = bw / cols
        ch = cw * 1.35
        lx, ly = (f.x - bx) / cw, (f.y - top) / ch
        ix, iy = lx.floor(), ly.floor()
        fx, fy = lx - ix, ly - iy
        # Mullion width as a fraction of a cell, smoothed over one texel so frames do not alias.
        mx = ((fx - 0.1) * cw / f.aa).clamp(0, 1) * ((0.94 - fx) * cw / f.aa).clamp(0, 1)
        my = ((fy - 0.12) * ch / f.aa).clamp(0, 1) * ((0.92 - fy) * ch / f.aa).clamp(0, 1)
        pane = mx * my
        rnd = table[(iy.long() + 13 * bi) % _TABLE, (ix.long() + 29 * bi) % _TABLE]
        reflect = (0.55 + 0.45 * ((f.y - top) / 0.9).clamp(0, 1))  # sky reflection darkens downward
        glass = torch.tensor(p.glass[tint]) * (reflect * (0.75 + 0.4 * rnd) * (0.9 + 0.2 * grain))[..., None]
        lit = (rnd > 0.9).float()[..., None]
        glass = glass.lerp(torch.tensor([1.0, 0.85, 0.55]), lit * 0.8)
        frame = torch.tensor([0.16, 0.17, 0.2]) * (0.8 + 0.4 * grain)[..., None]
        col = frame.lerp(glass, pane[..., None])
        roof = f.step(top + 0.012, f.y)
        col = torch.tensor([0.3, 0.31, 0.33]).lerp(col, roof[..., None].expand(*shape, 1))
        rgb = rgb.lerp(col, inside[..., None])
        alpha = torch.maximum(alpha, inside)
    return _haze(rgb, 0.1), alpha


def _trees(f: _Field, p: _Params):
    shape = torch.broadcast_shapes(f.x.shape, f.y.shape)
    alpha = torch.zeros(shape)
    shade = torch.zeros(shape)
    leaves = f.fbm(60, 3)
    edge_noise = f.fbm(25, 2)
    for tx, ty, r in p.trees:
        if tx + r < float(f.x.min()) or tx - r > float(f.x.max()):
            continue
        d = torch.sqrt((f.x - tx) ** 2 + ((f.y - ty) * 0.85) ** 2)
        canopy = f.step(d, r * (0.85 + 0.3 * edge_noise))
        trunk = f.step(tx - r * 0.12, f.x) * f.step(f.x, tx + r * 0.12) * f.step(ty, f.y)
        lightness = 0.55 + 0.45 * ((tx - f.x - (f.y - ty)) / (2 * r) + 0.5).clamp(0, 1)
        cover = torch.maximum(canopy, trunk)
        shade = torch.where(canopy > 0.0, lightness, torch.where(trunk > 0, -1.0, shade))
        alpha = torch.maximum(alpha, cover)
    leaf = torch.tensor([0.13, 0.32, 0.1]) * ((0.5 + 0.9 * leaves) * shade.clamp(min=0))[..., None]
    bark = torch.tensor([0.3, 0.2, 0.12]) * (0.7 + 0.5 * leaves)[..., None]
    rgb = torch.where((shade < 0)[..., None], bark, leaf)
    return _haze(rgb, 0.05), alpha


def _ground(f: _Field, p: _Params):
    ridge = 0.28 + 0.04 * (f.ridge(4.0, 4) - 0.5)
    alpha = f.step(ridge, f.y)
    blades = f.fbm(120, 2, ax=0.35, ay=2.5)
    patches = f.fbm(8, 3)
    light = 0.55 + 0.35 * patches + 0.35 * blades
    rgb = torch.tensor(p.grass) * light[..., None]
    flowers = ((f.fbm(90, 1) - 0.86) / 0.04).clamp(0, 1) * ((f.y - ridge) > 0.03)
    rgb = rgb.lerp(torch.tensor([0.95, 0.85, 0.3]), flowers[..., None])
    return rgb, alpha


def frame_times(frames: int) -> torch.Tensor:
    """Times of a clip of `frames` evenly spaced frames spanning the whole camera move."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}.")
    return torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1)
