"""Clips as frame tensors [T,H,W,C] float32 in 0..1 (ComfyUI IMAGE layout).

A clip is a video file (decoded with PyAV, which ComfyUI installs) or a folder of image frames (sorted by
file name). Anything unreadable raises ValueError naming the file and the reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def read_clip(path: str | Path, max_frames: int = 0) -> torch.Tensor:
    path = Path(path)
    if path.is_dir():
        return _read_frame_folder(path, max_frames)
    if not path.is_file():
        raise ValueError(f"Clip {path} does not exist.")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"Clip {path}: unsupported file type {path.suffix!r} (videos: {sorted(VIDEO_SUFFIXES)}, "
                         "or a folder of image frames).")
    import av

    arrays = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"Clip {path} has no video stream.")
            # PyAV hands out one decoded frame at a time; there is no batched decode to use instead.
            for frame in container.decode(video=0):
                arrays.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(arrays) >= max_frames:
                    break
    except av.error.FFmpegError as exc:  # also a ValueError subclass: catch it first to name the clip
        raise ValueError(f"Clip {path} could not be decoded: {exc}") from exc
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"Clip {path} could not be decoded: {exc}") from exc
    if not arrays:
        raise ValueError(f"Clip {path} has no decodable frames.")
    return torch.from_numpy(np.stack(arrays)).float().div_(255.0)


def _read_frame_folder(path: Path, max_frames: int) -> torch.Tensor:
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if max_frames:
        files = files[:max_frames]
    if not files:
        raise ValueError(f"Frame folder {path} holds no images ({sorted(IMAGE_SUFFIXES)}).")
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except Exception as exc:
            raise ValueError(f"Frame {f} could not be read: {exc}") from exc
    if len({a.shape for a in arrays}) > 1:
        raise ValueError(f"Frame folder {path}: frames have different sizes.")
    return torch.from_numpy(np.stack(arrays)).float().div_(255.0)


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale to cover height x width (antialiased), then centre-crop: aspect ratio is kept."""
    t, h, w, _ = frames.shape
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    x = frames.permute(0, 3, 1, 2)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return x[:, :, top: top + height, left: left + width].permute(0, 2, 3, 1).clamp(0, 1).contiguous()


def write_clip(path: str | Path, frames: torch.Tensor, fps: int = 16) -> Path:
    """[T,H,W,C] 0..1 -> H.264 mp4 (yuv420p, so H and W must be even)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for arr in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
