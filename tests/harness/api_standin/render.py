"""The stand-in's "generator": an mp4 clip between an uploaded first and last frame, with a seeded, known defect.

A good clip morphs from the first frame to the last one (a cross-fade under a slow zoom that is exactly 1 at both
ends), so both ends equal the uploaded frames up to video compression: keyframe SSIM stays far above 0.85. Each
defect breaks the end of the clip the way artists see generators fail, strongly enough that the keyframe SSIM of
the clip (mean over its first and last frame) falls well below 0.85:

- geometry_drift: the scene rotates and scales away over the clip (8 degrees, +15% at the end);
- hallucinated_object: an opaque textured blob grows from the middle of the clip and covers half the end frame;
- lighting_jump: the exposure drops to a blue-tinted night look half-way through and stays there;
- wrong_end_frame: the clip lands on a mirrored, shifted copy of the first frame instead of the last one.

numpy + Pillow + PyAV only (all installed with ComfyUI), no torch: the stand-in is a small service.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

DEFECTS = ("geometry_drift", "hallucinated_object", "lighting_jump", "wrong_end_frame")


def unit(*parts) -> float:
    """Uniform [0, 1) from a hash of the parts (reproducible, independent of any global RNG)."""
    digest = hashlib.blake2b(":".join(str(p) for p in ("rewardloop-standin", *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2**64


def draw_defect(pass_rate: float, *key) -> str | None:
    """None (a good clip) with probability pass_rate, else one of DEFECTS, chosen uniformly; from the key alone."""
    if unit(*key, "pass") < pass_rate:
        return None
    return DEFECTS[min(int(unit(*key, "defect") * len(DEFECTS)), len(DEFECTS) - 1)]


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> float32 [H, W, 3] in 0..1."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[:2] == (height, width):
        return img
    pil = Image.fromarray((img * 255).round().astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(pil, dtype=np.float32) / 255.0


def _affine(img: np.ndarray, angle_deg: float, scale: float, shift=(0.0, 0.0)) -> np.ndarray:
    """Rotate/scale about the centre and shift (fractions of the size), edges clamped."""
    h, w = img.shape[:2]
    if angle_deg == 0 and scale == 1 and shift == (0.0, 0.0):
        return img
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(a) / scale, np.sin(a) / scale
    cx, cy = w / 2, h / 2
    dx, dy = shift[0] * w, shift[1] * h
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f)
    coeffs = (cos, sin, cx - cos * (cx + dx) - sin * (cy + dy), -sin, cos, cy + sin * (cx + dx) - cos * (cy + dy))
    pil = Image.fromarray((img * 255).round().astype(np.uint8))
    out = pil.transform((w, h), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=None)
    return np.asarray(out, dtype=np.float32) / 255.0


def _blob(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mask [H,W] in 0..1 with a soft edge, texture [H,W,3]) of a hallucinated object covering ~half the frame."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * (0.35 + 0.3 * rng.random()), h * (0.35 + 0.3 * rng.random())
    rx, ry = w * 0.42, h * 0.42
    r = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    mask = np.clip((1.0 - r) * 6.0, 0.0, 1.0)
    base = rng.random(3).astype(np.float32) * 0.6 + 0.2
    stripes = 0.5 + 0.5 * np.sin(xs / max(w, 1) * 40 * (1 + rng.random()) + ys / max(h, 1) * 23)
    texture = base[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    return mask, texture.astype(np.float32)


def render_clip(first: np.ndarray, last: np.ndarray, defect: str | None, seed_key: str, frames: int = 13,
                max_side: int = 512) -> np.ndarray:
    """uint8 frames [T, H, W, 3]: the clip from `first` to `last` (resized to `first`'s size, scaled so the long
    side is at most max_side, even dimensions for yuv420 video), with `defect` (None = a good clip)."""
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; one of {DEFECTS}")
    h0, w0 = first.shape[:2]
    scale = min(1.0, max_side / max(h0, w0))
    width, height = max(16, int(w0 * scale) // 2 * 2), max(16, int(h0 * scale) // 2 * 2)
    a, b = _fit(first, width, height), _fit(last, width, height)
    rng = np.random.default_rng(int(unit(seed_key, "texture") * 2**32))
    if defect == "hallucinated_object":
        mask, texture = _blob(height, width, rng)
    if defect == "wrong_end_frame":
        b = _affine(a[:, ::-1].copy(), 0.0, 1.0, shift=(0.18, 0.0))
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        s = t / (frames - 1)
        zoom = 1.0 + 0.04 * np.sin(np.pi * s)  # exactly 1 at both ends
        frame = (1 - s) * _affine(a, 0.0, zoom) + s * _affine(b, 0.0, zoom)
        if defect == "geometry_drift":
            frame = _affine(frame, 8.0 * s ** 1.5, 1.0 + 0.15 * s ** 1.5)
        elif defect == "hallucinated_object" and s > 0.3:
            k = ((s - 0.3) / 0.7) * mask[..., None]
            frame = (1 - k) * frame + k * texture
        elif defect == "lighting_jump" and s >= 0.5:
            frame = frame * np.array([0.22, 0.27, 0.45], dtype=np.float32) + np.array([0.0, 0.01, 0.05], np.float32)
        out[t] = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
    return out


def encode_mp4(frames: np.ndarray, fps: float = 24.0, crf: int = 16, preset: str = "veryfast") -> bytes:
    """H.264 mp4 (yuv420p) bytes of uint8 frames [T, H, W, 3] (even sides), decodable by ComfyUI's
    VideoFromFile."""
    import av
    from fractions import Fraction

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode_mp4(data: bytes) -> np.ndarray:
    """uint8 frames [T, H, W, 3] of an mp4 (for checks)."""
    import av

    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
