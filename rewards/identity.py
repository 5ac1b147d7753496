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
from .context import Clip, resize
from .result import RewardResult
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


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def largest_faces(clip: Clip, frames: torch.Tensor, weights: str = models.FACENET_FILE,
                  detect_size: int = DETECT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """([n,4] box (x0, y0, x1, y1) of the largest face in full-resolution pixels, NaN where none; [n] its
    detection probability, 0 where none) for [n,H,W,3] frames. MTCNN looks at the frames scaled to a long side
    of at most `detect_size` (its image pyramid is most of this scorer's time, and shrinks with the size:
    profile_rewards_gpu.py, RESULTS.md)."""
    mtcnn, _ = models.facenet_models(weights, clip.device, runtime=clip.runtime)
    n, H, W = frames.shape[:3]
    boxes_out = torch.full((n, 4), math.nan)
    prob = torch.zeros(n)
    scale = detection_scale(H, W, detect_size)
    dh, dw = max(1, round(H * scale)), max(1, round(W * scale))
    if min(dh, dw) < MIN_FACE:
        return boxes_out, prob  # no face can be this small (and MTCNN's image pyramid would be empty)
    for s, e in clip.chunks(n, "faces"):
        small = frames[s:e] if scale == 1.0 else resize(frames[s:e].float(), (dh, dw))
        with torch.no_grad():
            boxes, probs = mtcnn.detect(_as_uint8(small))
        # Our own selection instead of MTCNN.forward: its select_boxes builds a numpy array from a mix of None
        # and box arrays, which numpy >= 2 refuses when only some frames contain a face. detect() returns
        # object arrays, largest face first (select_largest=True); cast explicitly.
        for i in range(e - s):
            if boxes[i] is not None:
                boxes_out[s + i] = torch.from_numpy(np.asarray(boxes[i], dtype=np.float32)[0] / scale)
                prob[s + i] = float(np.asarray(probs[i], dtype=np.float32)[0])
    return boxes_out, prob


def face_embeddings(clip: Clip, frames: torch.Tensor, weights: str = models.FACENET_FILE,
                    detect_size: int = DETECT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """([n,512] embeddings (NaN rows where no face), [n] detection probability) for [n,H,W,3] frames: the
    largest face, found by `largest_faces`, cut from the full-resolution frame and embedded."""
    from facenet_pytorch import extract_face, fixed_image_standardization

    _, resnet = models.facenet_models(weights, clip.device, runtime=clip.runtime)
    boxes, prob = largest_faces(clip, frames, weights, detect_size)
    emb = torch.full((frames.shape[0], 512), math.nan)
    found = [i for i in range(frames.shape[0]) if not math.isnan(float(boxes[i, 0]))]
    for s in range(0, len(found), clip.chunk_size):
        rows = found[s:s + clip.chunk_size]
        full = _as_uint8(frames[rows])
        crops = [fixed_image_standardization(extract_face(full[j], boxes[i].numpy(), 160, 0)) for j, i in enumerate(rows)]
        with torch.no_grad():  # fp32: crops are few and cheap; MTCNN dominates this scorer's time
            emb[rows] = resnet(torch.stack(crops).to(clip.device)).float().cpu()
    return emb, prob


def probe_indices(num_frames: int, stride: int, extra: list[int]) -> list[int]:
    return sorted(set(range(0, num_frames, max(1, stride))) | {num_frames - 1} | set(extra))


@scorer(NAME, RANGE, uses=("keyframes",), model_folders=("facenet",),
        summary="cosine of face embeddings to the keyframes' (or first) face")
def score(clip: Clip, stride: int = STRIDE, weights: str = models.FACENET_FILE) -> RewardResult:
    anchor_positions: list[int] = []
    if clip.keyframes is not None:
        anchor_positions = clip.anchor_positions()
    probes = probe_indices(clip.num_frames, stride, anchor_positions)
    kf = None if clip.keyframes is None else clip.keyframes.to(clip.device, torch.float32)
    if kf is not None and kf.shape[1:3] == clip.frames.shape[1:3]:
        # One MTCNN pass over probe frames and keyframes together (each call has a fixed pyramid cost). A
        # keyframe that is the very frame at its position (inbetweening keeps its anchors) is not run twice.
        probe_frames = clip.frames_at(probes)
        row = {p: i for i, p in enumerate(probes)}
        own = [j for j, p in enumerate(anchor_positions) if not torch.equal(kf[j], probe_frames[row[p]])]
        both, both_prob = face_embeddings(clip, torch.cat([probe_frames, kf[own]]), weights)
        emb, prob = both[:len(probes)], both_prob[:len(probes)]
        anchor_rows = [len(probes) + own.index(j) if j in own else row[p] for j, p in enumerate(anchor_positions)]
        anchor_emb = both[anchor_rows]
    else:
        emb, prob = clip.memo(("faces", weights, tuple(probes)),
                              lambda: face_embeddings(clip, clip.frames_at(probes), weights))
        anchor_emb = None if kf is None else face_embeddings(clip, kf, weights)[0]
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
