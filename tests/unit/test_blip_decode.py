"""The fixed-shape greedy BLIP decoder (the GPU captioning path) gives exactly generate()'s greedy tokens.
Runs the same step eagerly on CPU; the CUDA-graph replay of that step is checked on the GPU by
benchmarks/profile_rewards_gpu.py."""
from __future__ import annotations

import pytest
import torch

from rewardloop.rewards.blip_decode import StaticGreedyDecoder

EOS = 3


@pytest.fixture(scope="module")
def sharp_blip():
    """A tiny BLIP whose captions depend strongly on the image (large init), so rows differ and end at
    different steps."""
    from transformers import BlipConfig, BlipForConditionalGeneration

    torch.manual_seed(0)
    config = BlipConfig(
        text_config=dict(vocab_size=18, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=37, bos_token_id=5, pad_token_id=0, sep_token_id=EOS, eos_token_id=EOS,
                         max_position_embeddings=64, encoder_hidden_size=32, initializer_range=0.5),
        vision_config=dict(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=37, initializer_range=0.5))
    return BlipForConditionalGeneration(config).eval()


def _both(model, eos_bias: float, max_new_tokens: int = 12):
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[EOS] = eos_bias
    torch.manual_seed(1)
    pixels = torch.randn(6, 3, 32, 32) * 2
    reference = model.generate(pixel_values=pixels, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
    image_embeds = model.vision_model(pixel_values=pixels)[0]
    decoder = StaticGreedyDecoder(model, 6, image_embeds.shape[1], max_new_tokens, torch.device("cpu"),
                                  use_graph=False)
    return reference, decoder.decode(image_embeds)


def test_static_decoder_equals_generate_with_rows_ending_at_different_steps(sharp_blip):
    reference, ours = _both(sharp_blip, eos_bias=3.0)
    ended = (reference == EOS).any(1)
    assert 0 < int(ended.sum()) < 6, "the fixture must mix finished and unfinished rows"
    assert reference.shape == (6, 13)
    assert torch.equal(ours, reference)


def test_static_decoder_stops_when_every_row_has_ended(sharp_blip):
    reference, ours = _both(sharp_blip, eos_bias=50.0)
    assert reference.shape[1] == 2  # bos + eos: generate() stopped after one token
    assert torch.equal(ours, reference)


def test_decoder_step_is_capturable_no_host_tensors_or_host_decisions(sharp_blip):
    """What a CUDA graph capture forbids, checked without a GPU: on the 'meta' device a step that reads tensor
    values on the host (mask builders' `.all()`) raises, and a host tensor (a CPU->GPU copy) shows up in an op."""
    import copy

    from torch.utils._python_dispatch import TorchDispatchMode

    host_ops = []

    class HostTensorSpy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            if any(t.device.type == "cpu" for t in tensors):
                host_ops.append(str(func))
            return func(*args, **kwargs)

    meta_model = copy.deepcopy(sharp_blip).to("meta")
    decoder = StaticGreedyDecoder(meta_model, 2, 17, 6, torch.device("meta"), use_graph=False)
    with torch.no_grad(), HostTensorSpy():
        logits = decoder._step()
    assert logits.shape == (2, 7, 18) and logits.device.type == "meta"
    assert host_ops == []
