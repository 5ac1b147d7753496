"""Preference pairs for DPO: where they are listed and how a clip becomes a latent.

Listing formats (dpo.format, `auto` picks by path):
  * JSONL file: one object a line, {"prompt": str, "chosen": path, "rejected": path}; paths relative to the
    JSONL's folder. Extra fields (scores ...) are ignored.
  * VideoDPO folder (the official release layout): `metadata.json` = [{"basic": {"clip_path": ...,
    "clip_duration": ...}, "misc": {"frame_caption": ...}}, ...] and `pair.json` = [{"video1": i (winner),
    "video2": j, "frame_caption": ..., "score": ...}, ...] with i, j indices into metadata; clip paths are
    relative to the folder.

Clip -> latent [16, T', H/8, W/8], first match wins:
  1. the path itself is a `.safetensors` file holding a tensor "latent" (precomputed latents),
  2. a sidecar `<clip without suffix>.latent.safetensors` beside the clip,
  3. the clip (video file or frame folder) decoded, cut to dpo.frames, resized/cropped to dpo.height x
     dpo.width and encoded with model.vae; the result is cached under <run>/latent_cache/.
Latents longer than dpo.frames are cut in latent time (the Wan VAE is causal: the first k latent frames
depend only on the first 4(k-1)+1 frames); shorter ones are bad samples.

Bad rows and clips (unparseable line, missing file, undecodable video, too short, wrong size, for jobs from
the canvas a clip outside the dataset folders) raise a ValueError naming the row, or with
dpo.on_bad_sample=skip are skipped and counted (`skipped_pairs`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..trust.paths import is_inside
from .config import TrainerConfig, latent_frames, resolve_path


class BadSample(ValueError):
    pass


@dataclass
class PairRow:
    prompt: str
    chosen: Path
    rejected: Path
    where: str  # "file:line" for messages


def _row_error(where: str, msg: str) -> BadSample:
    return BadSample(f"{where}: {msg}")


def load_pair_rows(cfg: TrainerConfig) -> tuple[list[PairRow], list[str]]:
    """All rows, plus the messages of rows that were unusable (kept only with on_bad_sample=skip)."""
    d = cfg.dpo
    path = resolve_path(cfg, d.data)
    rows, bad = list_rows(path, d.format)
    roots = cfg.run.data_roots
    kept = []
    for row in rows:
        if isinstance(row, BadSample):
            bad.append(str(row))
            continue
        outside = [p for p in (row.chosen, row.rejected) if roots and not is_inside(p, roots)]
        if outside:  # a dataset used by a job from the canvas only reaches clips in its folders
            bad.append(str(_row_error(row.where, f"clip {outside[0]} lies outside the dataset folders "
                                                 f"({', '.join(roots)}); keep clips beside the dataset")))
            continue
        missing = [p for p in (row.chosen, row.rejected) if not p.exists()]
        if missing:
            bad.append(str(_row_error(row.where, f"clip {missing[0]} does not exist")))
            continue
        kept.append(row)
    if bad and d.on_bad_sample == "error":
        raise ValueError(f"{len(bad)} bad preference row(s); first: {bad[0]}. Fix the data or set "
                         "dpo.on_bad_sample: skip to skip and count them.")
    if not kept:
        raise ValueError(f"No usable preference pairs in {path}" + (f" (first problem: {bad[0]})" if bad else "."))
    return kept, bad


def list_rows(path: Path, fmt: str = "auto") -> tuple[list, list[str]]:
    """The rows of a pairs JSONL file or a VideoDPO folder (`fmt` auto picks by path): PairRows, and BadSamples
    for rows that cannot be read."""
    if fmt == "auto":
        fmt = "videodpo" if Path(path).is_dir() else "jsonl"
    return _videodpo_rows(Path(path)) if fmt == "videodpo" else _jsonl_rows(Path(path))


def dataset_prompts(path: Path) -> list[str]:
    """Every prompt of a pairs JSONL file or VideoDPO folder, in order, once each (unreadable rows skipped)."""
    rows, _ = list_rows(path)
    return list(dict.fromkeys(r.prompt for r in rows if isinstance(r, PairRow)))


def _jsonl_rows(path: Path):
    if not path.is_file():
        raise ValueError(f"dpo.data {path} does not exist (expected a JSONL file or a VideoDPO folder).")
    rows, bad = [], []
    base = path.parent
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(_row_error(where, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            rows.append(_row_error(where, "expected an object with prompt, chosen, rejected"))
            continue
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(obj.get(k), str) or not obj.get(k)]
        if missing:
            rows.append(_row_error(where, f"missing or non-string field(s) {missing}"))
            continue
        rows.append(PairRow(obj["prompt"], base / obj["chosen"], base / obj["rejected"], where))
    return rows, bad


def _videodpo_rows(root: Path):
    meta_p, pair_p = root / "metadata.json", root / "pair.json"
    for p in (meta_p, pair_p):
        if not p.is_file():
            raise ValueError(f"VideoDPO folder {root} lacks {p.name} (the official layout has metadata.json and "
                             "pair.json beside the clips).")
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
        pairs = json.loads(pair_p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"VideoDPO file in {root} is not valid JSON: {exc}") from exc
    if not isinstance(meta, list) or not isinstance(pairs, list):
        raise ValueError(f"VideoDPO metadata.json and pair.json in {root} must be JSON lists.")
    rows = []
    for n, pr in enumerate(pairs):
        where = f"pair.json[{n}]"
        try:
            i, j = int(pr["video1"]), int(pr["video2"])
            clip_w = meta[i]["basic"]["clip_path"]
            clip_l = meta[j]["basic"]["clip_path"]
            prompt = pr.get("frame_caption") or meta[i]["misc"]["frame_caption"]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            rows.append(_row_error(where, f"cannot resolve video1/video2 in metadata.json ({exc!r})"))
            continue
        if not isinstance(prompt, str) or not prompt:
            rows.append(_row_error(where, "no frame_caption"))
            continue
        rows.append(PairRow(prompt, root / clip_w, root / clip_l, where))
    return rows, []


class LatentSource:
    """Clip path -> latent tensor, with a VAE loaded on first need."""

    def __init__(self, cfg: TrainerConfig, device: torch.device, cache_dir: Path):
        self.cfg = cfg
        self.device = device
        self.cache_dir = cache_dir
        self.frames = cfg.dpo.frames
        self.t_lat = latent_frames(cfg.dpo.frames)
        self.hw = (cfg.dpo.height // 8, cfg.dpo.width // 8) if cfg.dpo.height else None
        self._vae = None

    def _vae_codec(self):
        if self._vae is None:
            if not self.cfg.model.vae:
                return None
            from .model import load_vae

            self._vae = load_vae(self.cfg, self.device)
        return self._vae

    def latent(self, clip: Path, where: str) -> torch.Tensor:
        try:
            z = self._load(clip, where)
        except BadSample:
            raise
        except ValueError as exc:
            raise _row_error(where, str(exc)) from exc
        if z.dim() != 4:
            raise _row_error(where, f"latent of {clip.name} has shape {tuple(z.shape)}; expected [C, T', H/8, W/8]")
        if z.shape[1] < self.t_lat:
            raise _row_error(where, f"{clip.name} is too short: {z.shape[1]} latent frames, dpo.frames="
                                    f"{self.frames} needs {self.t_lat}")
        if self.hw and tuple(z.shape[2:]) != self.hw:
            raise _row_error(where, f"latent of {clip.name} is {tuple(z.shape[2:])}, expected {self.hw} for "
                                    f"{self.cfg.dpo.height}x{self.cfg.dpo.width}")
        if not torch.isfinite(z).all():
            raise _row_error(where, f"latent of {clip.name} holds NaN/inf")
        return z[:, : self.t_lat].float()

    def _load(self, clip: Path, where: str) -> torch.Tensor:
        if clip.suffix == ".safetensors":
            return _read_latent_file(clip)
        sidecar = clip.with_name(clip.stem + ".latent.safetensors") if clip.is_file() else \
            clip.with_name(clip.name + ".latent.safetensors")
        if sidecar.is_file():
            return _read_latent_file(sidecar)
        codec = self._vae_codec()
        if codec is None:
            raise _row_error(where, f"no latents for {clip.name}: set model.vae to encode clips, or put "
                                    f"precomputed latents in {sidecar.name}")
        if not self.hw:
            raise _row_error(where, "dpo.height and dpo.width must be set to encode clips with the VAE")
        st = clip.stat()
        key = hashlib.sha1(f"{clip.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.frames}|{self.hw}".encode()).hexdigest()
        cached = self.cache_dir / f"{key}.safetensors"
        if cached.is_file():
            return _read_latent_file(cached)
        from safetensors.torch import save_file

        from .video_io import read_clip, resize_center_crop

        frames = read_clip(clip, self.frames)
        if frames.shape[0] < self.frames:
            raise _row_error(where, f"{clip.name} has {frames.shape[0]} frames, dpo.frames={self.frames}")
        frames = resize_center_crop(frames, self.cfg.dpo.height, self.cfg.dpo.width)
        z = codec.encode(frames)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        save_file({"latent": z.contiguous()}, str(tmp))
        tmp.replace(cached)
        return z


def _read_latent_file(path: Path) -> torch.Tensor:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"latent file {path.name} cannot be read: {exc}") from exc
    if "latent" not in sd:
        raise ValueError(f"latent file {path.name} has no tensor named 'latent' (keys: {sorted(sd)[:4]})")
    return sd["latent"]


def save_latent(path: str | Path, latent: torch.Tensor) -> Path:
    from safetensors.torch import save_file

    save_file({"latent": latent.detach().float().cpu().contiguous()}, str(path))
    return Path(path)
