"""Greedy BLIP captioning with fixed tensor shapes, replayed as a CUDA graph on GPUs.

Why by hand: on a GPU, transformers' `generate()` is bound by Python and kernel launches per token (the vision
encoder is a small part of its time), and BLIP's text decoder has no static-cache / compile path in
transformers. Here every step runs the decoder over the whole token buffer (1 + max_new_tokens positions, no KV
cache): with a causal mask, position s sees only tokens <= s, so padding after it changes nothing and the greedy
tokens are generate()'s. Fixed shapes let one step be captured once per (model, batch) and replayed, several
times faster (profile_rewards_gpu.py, RESULTS.md). Recomputing the positions is free on a GPU; on CPUs it is
not, so `greedy_caption_ids` uses generate() there. The decoders live in a runtime's `blip_decoders`, which
`RewardRuntime.clear()` empties with the models.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


class StaticGreedyDecoder:
    """Greedy decoding of `model.text_decoder` (BlipForConditionalGeneration) for `batch` images.

    `use_graph`: capture the step as a CUDA graph (CUDA only); without it the same fixed-shape step runs
    eagerly (tests on CPU, and the fallback if capture fails)."""

    def __init__(self, model, batch: int, num_image_tokens: int, max_new_tokens: int, device: torch.device,
                 use_graph: bool):
        tc = model.config.text_config
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.bos, self.eos, self.pad = tc.bos_token_id, tc.sep_token_id, tc.pad_token_id
        width = model.config.vision_config.hidden_size
        self.ids = torch.full((batch, 1 + max_new_tokens), self.pad, dtype=torch.long, device=device)
        self.image_embeds = torch.zeros(batch, num_image_tokens, width, dtype=model.dtype, device=device)
        # Masks are given ready-made: transformers' mask builders copy host tensors and test mask values on the
        # host (both forbidden inside a graph capture). Causal, additive (as BLIP's eager attention adds it);
        # no image mask, i.e. every image token is visible, as generate() passes an all-ones one.
        length = 1 + max_new_tokens
        future = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
        self.causal_mask = torch.zeros(batch, 1, length, length, dtype=model.dtype, device=device)
        self.causal_mask.masked_fill_(future, torch.finfo(model.dtype).min)
        self.graph = None
        self.logits = None
        if use_graph:
            try:
                self._capture()
            except Exception as err:  # e.g. a transformers version whose mask code syncs with the host
                log.warning("BLIP decoding: CUDA graph capture failed (%s); decoding without a graph", err)
                self.graph = None
                torch.cuda.synchronize(device)

    def _step(self) -> torch.Tensor:
        return self.model.text_decoder(input_ids=self.ids, attention_mask=self.causal_mask,
                                       encoder_hidden_states=self.image_embeds, use_cache=False,
                                       return_dict=True).logits

    @torch.no_grad()
    def _capture(self) -> None:
        side = torch.cuda.Stream(self.ids.device)
        side.wait_stream(torch.cuda.current_stream(self.ids.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (lazy inits, cuBLAS handles)
            for _ in range(2):
                warm = self._step()
        torch.cuda.current_stream(self.ids.device).wait_stream(side)
        # The output buffer exists before the capture and the step's own tensors die inside it: a captured
        # allocation still referenced afterwards makes the cudaMallocAsync allocator (ComfyUI's default on
        # NVIDIA) warn when it is finally freed.
        self.logits = torch.empty_like(warm)
        del warm
        graph = torch.cuda.CUDAGraph()
        # thread_local: a background thread (the composite's flow) may touch CUDA while this one captures.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.logits.copy_(self._step())
        self.graph = graph

    @torch.no_grad()
    def decode(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[batch, 1 + n] token ids (bos first, pad after eos), n <= max_new_tokens, as generate() returns."""
        self.image_embeds.copy_(image_embeds)
        self.ids.fill_(self.pad)
        self.ids[:, 0] = self.bos
        finished = torch.zeros(self.ids.shape[0], dtype=torch.bool, device=self.ids.device)
        steps = 0
        for s in range(self.max_new_tokens):
            if self.graph is not None:
                self.graph.replay()
                logits = self.logits
            else:
                logits = self._step()
            token = logits[:, s].argmax(-1)
            token = torch.where(finished, torch.full_like(token, self.pad), token)
            self.ids[:, s + 1] = token
            finished |= token == self.eos
            steps = s + 1
            if bool(finished.all()):  # one host sync per token; real captions end well before the limit
                break
        return self.ids[:, :1 + steps].clone()


@torch.no_grad()
def greedy_caption_ids(model, pixel_values: torch.Tensor, max_new_tokens: int,
                       decoders: dict | None = None) -> torch.Tensor:
    """Greedy caption token ids for a batch of preprocessed images (BlipForConditionalGeneration). `decoders`:
    where captured decoders are kept for reuse, keyed by model and shapes (a runtime's `blip_decoders`; the
    model is in that runtime's cache as long as they are); None captures one for this call only."""
    if pixel_values.device.type != "cuda":
        return model.generate(pixel_values=pixel_values, max_new_tokens=max_new_tokens, num_beams=1,
                              do_sample=False)
    image_embeds = model.vision_model(pixel_values=pixel_values)[0]
    decoders = {} if decoders is None else decoders
    key = (id(model), image_embeds.shape[0], image_embeds.shape[1], max_new_tokens)
    if key not in decoders:
        decoders[key] = StaticGreedyDecoder(model, image_embeds.shape[0], image_embeds.shape[1], max_new_tokens,
                                            pixel_values.device, use_graph=True)
    return decoders[key].decode(image_embeds)
