"""Identity lock: does the (largest) face keep its identity across the clip?

Definition: MTCNN (facenet-pytorch; thresholds 0.6/0.7/0.7, the wheel's real weights; run on the frames
scaled to a long side of at most 320 px with min face 20 px there, i.e. faces from ~6% of the long side)
finds the largest face in each probe frame (every `stride`-th frame plus the last, and the keyframe
positions), crops it from the full-resolution frame to 160x160, and InceptionResnetV1 (VGGFace2 weights from our `facenet/` folder)
embeds it (512-d, L2-normalised). The identity reference is the mean embedding of the faces in the anchor
keyframes when keyframes are given, else the face of the first probe frame that has one.
per_item: cosine(reference, face_i) per probe frame (NaN where no face was found).
Value: mean cosine over probe frames with a face, range [-1, 1], higher = better (same person ~0.6-1 with
the real weights). Not applicable (not a zero) when no face is found in the reference or fewer than two
faces exist in total. details: fraction of probe frames with a face.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import models
from . import face_detect
from .context import Clip, resize
from .result import RewardResult
from .runtime import content_key
from .scorer import scorer

NAME = "identity_lock"
RANGE = (-1.0, 1.0)
STRIDE = 8
MIN_FACE = 20  # MTCNN min_face_size, px at the detection size
# Long side MTCNN sees: faces under MIN_FACE / DETECT_SIZE (~6%) of the frame's long side are not looked for
# (80 px in 1280x720); identity drift matters for faces the viewer can see. 0 = full resolution.
DETECT_SIZE = 320


def detection_scale(height: int, width: int, detect_size: int = DETECT_SIZE) -> float:
    return min(1.0, detect_size / max(height, width)) if detect_size > 0 else 1.0


def _as_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


DETECT_BATCH = 64  # images per MTCNN call (its pyramid of a 320 px batch of 64 is ~100 MB)


def largest_faces_of(groups: list[torch.Tensor], weights: str = models.FACENET_FILE, device="cpu", *,
                     detect_size: int = DETECT_SIZE, runtime=None,
                     progress=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each [n,H,W,3] tensor of frames (any sizes): ([n,4] box (x0, y0, x1, y1) of the largest face in
    full-resolution pixels, NaN where none; [n] its detection probability, 0 where none). MTCNN looks at the
    frames scaled to a long side of at most `detect_size` (its image pyramid is most of this scorer's time, and
    shrinks with the size: profile_rewards_gpu.py, RESULTS.md); frames of every tensor that share a detection
    size go through one batched detection (rewards.face_detect)."""
    mtcnn, _ = models.facenet_models(weights, device, runtime=runtime)
    out = [(torch.full((g.shape[0], 4), math.nan), torch.zeros(g.shape[0])) for g in groups]
    by_size: dict[tuple[int, int], list[tuple[int, torch.Tensor, float]]] = {}
    for gi, frames in enumerate(groups):
        H, W = frames.shape[1:3]
        scale = detection_scale(H, W, detect_size)
        dh, dw = max(1, round(H * scale)), max(1, round(W * scale))
        if min(dh, dw) < MIN_FACE:
            continue  # no face can be this small (and MTCNN's image pyramid would be empty)
        small = frames if scale == 1.0 else resize(frames.float(), (dh, dw))
        by_size.setdefault((dh, dw), []).append((gi, _as_uint8(small), scale))
    for items in by_size.values():
        images = torch.cat([small for _, small, _ in items])
        owner = [(gi, row, scale) for gi, small, scale in items for row in range(small.shape[0])]
        for s in range(0, images.shape[0], DETECT_BATCH):
            boxes, probs = face_detect.detect(mtcnn, images[s:s + DETECT_BATCH])
            for i, (box, prob) in enumerate(zip(boxes, probs)):
                if box is not None:  # largest first (select_largest)
                    gi, row, scale = owner[s + i]
                    out[gi][0][row] = torch.from_numpy(np.asarray(box[0], dtype=np.float32) / scale)
                    out[gi][1][row] = float(prob[0])
            if progress is not None:
                progress("faces", min(s + DETECT_BATCH, images.shape[0]), images.shape[0])
    return out


def face_embeddings_of(groups: list[torch.Tensor], weights: str = models.FACENET_FILE, device="cpu", *,
                       detect_size: int = DETECT_SIZE, runtime=None,
                       progress=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each [n,H,W,3] tensor of frames: ([n,512] embeddings (NaN rows where no face), [n] detection
    probability): the largest face, found by `largest_faces_of`, cut from the full-resolution frame (facenet-pytorch's
    extract_face) and embedded, every tensor's faces in one batch."""
    from facenet_pytorch import extract_face, fixed_image_standardization

    _, resnet = models.facenet_models(weights, device, runtime=runtime)
    found = largest_faces_of(groups, weights, device, detect_size=detect_size, runtime=runtime, progress=progress)
    crops, where = [], []
    for gi, (frames, (boxes, _)) in enumerate(zip(groups, found)):
        rows = [i for i in range(frames.shape[0]) if not math.isnan(float(boxes[i, 0]))]
        if rows:
            full = _as_uint8(frames[rows]).cpu().numpy()
            crops += [fixed_image_standardization(extract_face(full[j], boxes[i].numpy(), 160, 0))
                      for j, i in enumerate(rows)]
            where += [(gi, i) for i in rows]
    out = [(torch.full((g.shape[0], 512), math.nan), prob) for g, (_, prob) in zip(groups, found)]
    for s in range(0, len(crops), DETECT_BATCH):
        with torch.no_grad():  # fp32: crops are few and cheap; MTCNN dominates this scorer's time
            emb = resnet(torch.stack(crops[s:s + DETECT_BATCH]).to(device)).float().cpu()
        for k, (gi, i) in enumerate(where[s:s + DETECT_BATCH]):
            out[gi][0][i] = emb[k]
    return out


def largest_faces(clip: Clip, frames: torch.Tensor, weights: str = models.FACENET_FILE,
                  detect_size: int = DETECT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """`largest_faces_of` for one tensor of frames, with the clip's models and device."""
    return largest_faces_of([frames], weights, clip.device, detect_size=detect_size, runtime=clip.runtime,
                            progress=clip.progress)[0]


def face_embeddings(clip: Clip, frames: torch.Tensor, weights: str = models.FACENET_FILE,
                    detect_size: int = DETECT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """`face_embeddings_of` for one tensor of frames, with the clip's models and device."""
    return face_embeddings_of([frames], weights, clip.device, detect_size=detect_size, runtime=clip.runtime,
                              progress=clip.progress)[0]


def probe_indices(num_frames: int, stride: int, extra: list[int]) -> list[int]:
    return sorted(set(range(0, num_frames, max(1, stride))) | {num_frames - 1} | set(extra))


def _faces_key(clip: Clip, stride: int, weights: str) -> tuple:
    """The memo key of a clip's faces: its probe frames and, since Clips sharing an analysis cache may carry other
    keyframes, the keyframes' content."""
    anchors = clip.anchor_positions() if clip.keyframes is not None else []
    kf = None if clip.keyframes is None else content_key(clip.keyframes)
    return ("faces", weights, tuple(probe_indices(clip.num_frames, stride, anchors)), tuple(anchors), kf)


def _face_inputs(clip: Clip, stride: int) -> tuple[list[torch.Tensor], dict]:
    """The frames whose faces a clip needs (probe frames, then keyframes unlike the frame at their position) and how
    to read the results. Probe frames and keyframes of one size go to MTCNN together (each call has a fixed pyramid
    cost); a keyframe that is the very frame at its position (inbetweening keeps its anchors) is not run twice."""
    anchors = clip.anchor_positions() if clip.keyframes is not None else []
    probes = probe_indices(clip.num_frames, stride, anchors)
    probe_frames = clip.frames_at(probes)
    plan = {"probes": probes, "anchors": anchors, "anchor_rows": []}
    if clip.keyframes is None:
        return [probe_frames], plan
    kf = clip.keyframes.to(clip.device, torch.float32)
    if kf.shape[1:3] != probe_frames.shape[1:3]:
        plan["anchor_rows"] = [(1, j) for j in range(kf.shape[0])]
        return [probe_frames, kf], plan
    row = {p: i for i, p in enumerate(probes)}
    own = [j for j, p in enumerate(anchors) if not torch.equal(kf[j], probe_frames[row[p]])]
    plan["anchor_rows"] = [(0, len(probes) + own.index(j)) if j in own else (0, row[p]) for j, p in enumerate(anchors)]
    return [torch.cat([probe_frames, kf[own]])], plan


def _clip_faces(clips: list[Clip], stride: int, weights: str) -> list[dict]:
    """Every clip's faces (embeddings, probabilities of probes and anchors) from one batched detection and one
    batched embedding pass."""
    inputs = [_face_inputs(clip, stride) for clip in clips]
    groups = [g for tensors, _ in inputs for g in tensors]
    first = clips[0]
    found = face_embeddings_of(groups, weights, first.device, runtime=first.runtime, progress=first.progress)
    out, at = [], 0
    for tensors, plan in inputs:
        mine = found[at:at + len(tensors)]
        at += len(tensors)
        n = len(plan["probes"])
        anchor_emb = torch.stack([mine[t][0][r] for t, r in plan["anchor_rows"]]) if plan["anchor_rows"] else None
        out.append({"probes": plan["probes"], "emb": mine[0][0][:n], "prob": mine[0][1][:n], "anchor_emb": anchor_emb})
    return out


def prefetch(clips: list[Clip], stride: int = STRIDE, weights: str = models.FACENET_FILE) -> None:
    """The batched feature path: every clip's faces detected and embedded together (clips on one device and
    runtime), each put in its clip's memo under the key `score` reads."""
    todo = [c for c in clips if not c.has(_faces_key(c, stride, weights))]
    for clip, faces in zip(todo, _clip_faces(todo, stride, weights) if todo else []):
        clip.memo(_faces_key(clip, stride, weights), lambda faces=faces: faces)


@scorer(NAME, RANGE, uses=("keyframes",), model_folders=("facenet",),
        summary="cosine of face embeddings to the keyframes' (or first) face")
def score(clip: Clip, stride: int = STRIDE, weights: str = models.FACENET_FILE) -> RewardResult:
    faces = clip.memo(_faces_key(clip, stride, weights), lambda: _clip_faces([clip], stride, weights)[0])
    probes, emb, prob, anchor_emb = faces["probes"], faces["emb"], faces["prob"], faces["anchor_emb"]
    kf = clip.keyframes
    has_face = ~torch.isnan(emb[:, 0])
    if kf is not None:
        anchors = anchor_emb[~torch.isnan(anchor_emb[:, 0])]
        if anchors.shape[0] == 0:
            return RewardResult.not_applicable(NAME, "no face found in the keyframes", RANGE, "sample",
                                               {"probe_frames": probes})
        reference = torch.nn.functional.normalize(anchors.mean(0), dim=0)
        source = "keyframes"
    else:
        if int(has_face.sum()) < 2:
            return RewardResult.not_applicable(NAME, f"faces found in {int(has_face.sum())} of {len(probes)} probe "
                                               "frames; need at least 2", RANGE, "sample", {"probe_frames": probes})
        first = int(has_face.nonzero()[0])
        reference = emb[first]
        source = f"frame {probes[first]}"
    if int(has_face.sum()) == 0:
        return RewardResult.not_applicable(NAME, "no face found in the clip's probe frames", RANGE, "sample",
                                           {"probe_frames": probes})
    cos = emb @ reference  # NaN rows stay NaN
    value = float(cos[has_face].mean())
    details = {"probe_frames": probes, "face_fraction": float(has_face.float().mean()), "reference": source,
               "min": float(cos[has_face].min()), "detection_prob": prob.tolist()}
    note = "" if bool(has_face.all()) else f"no face in {int((~has_face).sum())} probe frame(s)"
    return RewardResult(NAME, value, cos, torch.tensor(probes, dtype=torch.float32), "sample", RANGE, details, True, note)
