"""trainers/speed.py: every speed setting leaves the computed function (loss, gradients, reference outputs)
unchanged on a tiny WanTransformer3DModel, and the config accepts / refuses its values."""
from __future__ import annotations

import pytest
import torch

from rewardloop.trainers import speed
from rewardloop.trainers.config import LoraSettings, config_from_dict
from rewardloop.trainers.model import apply_lora, cast_base
from trainer_toys import TINY_WAN, dpo_config, write_dpo_toy


def _model(dtype=torch.float32):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    base = WanTransformer3DModel(**TINY_WAN).float()
    cast_base(base, dtype)
    peft_model = apply_lora(base, LoraSettings(rank=4))
    with torch.no_grad():  # a non-zero LoRA so policy and reference differ
        g = torch.Generator().manual_seed(1)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return base, peft_model


def _inputs():
    g = torch.Generator().manual_seed(2)
    return (torch.randn(2, 16, 3, 8, 8, generator=g), torch.tensor([700.0, 250.0]),
            torch.randn(2, 8, 32, generator=g))


def _loss_grads_ref(model, autocast: bool):
    x, t, ctx = _inputs()
    ac = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with ac:
        out = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
    loss = out.float().pow(2).mean()
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    with torch.no_grad(), model.disable_adapter(), ac:
        ref = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
    return loss.detach(), grads, ref.float()


def test_lora_input_casts_off_is_bit_identical_under_bf16_autocast():
    _, m = _model(torch.bfloat16)
    before = _loss_grads_ref(m, autocast=True)
    m.zero_grad(set_to_none=True)
    assert speed.set_lora_input_casts(m, False) == 2 * 10  # 2 blocks x (4 self + 4 cross + 2 ffn) layers
    after = _loss_grads_ref(m, autocast=True)
    for a, b in zip(before, after):
        assert torch.equal(a, b)


@pytest.mark.parametrize("fraction,keep", [(1.0, False), (1.0, True), (0.5, True), (0.0, False)])
def test_checkpointing_variants_give_the_same_loss_and_gradients(fraction, keep):
    base, m = _model()
    plain = _loss_grads_ref(m, autocast=False)
    base2, m2 = _model()
    chosen = speed.set_checkpointing(base2, fraction, keep_attention=keep)
    assert chosen == speed.checkpointed_blocks(2, fraction)
    assert base2.gradient_checkpointing == bool(chosen)
    checked = _loss_grads_ref(m2, autocast=False)
    for a, b in zip(plain, checked):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


def test_checkpointed_blocks_are_spread_evenly():
    assert speed.checkpointed_blocks(30, 1.0) == list(range(30))
    assert speed.checkpointed_blocks(30, 0.5) == list(range(0, 30, 2))
    assert len(speed.checkpointed_blocks(30, 0.3)) == 9
    assert speed.checkpointed_blocks(30, 0.0) == []


def test_keep_attention_policy_saves_only_attention_forward_ops():
    ops = torch.ops.aten
    assert speed._is_attention_op(ops._scaled_dot_product_flash_attention.default)
    assert speed._is_attention_op(ops._scaled_dot_product_cudnn_attention.default)
    assert not speed._is_attention_op(ops._scaled_dot_product_flash_attention_backward.default)
    assert not speed._is_attention_op(ops.mm.default)


def test_loaded_transformer_keeps_rope_tables_in_fp32(tmp_path):
    # diffusers builds the rotary tables in float64; left so, every q/k rotation under bf16 autocast would
    # run (forward and backward) in float64. load_transformer's fp32 cast covers the buffers too.
    from rewardloop.trainers.model import load_transformer

    write_dpo_toy(tmp_path / "data")
    model = load_transformer(config_from_dict(dpo_config(tmp_path / "data", tmp_path / "run"), method="dpo"))
    assert model.rope.freqs_cos.dtype == torch.float32 and model.rope.freqs_sin.dtype == torch.float32


def test_attention_backend_order():
    from torch.nn.attention import SDPBackend

    assert speed.attention_backends(torch.device("cpu"), "auto") is None  # torch's own order off NVIDIA
    order = speed.attention_backends(torch.device("cpu"), "flash")
    assert order[0] == SDPBackend.FLASH_ATTENTION and len(order) == 4


def test_config_speed_settings(tmp_path):
    write_dpo_toy(tmp_path / "data")
    cfg = dpo_config(tmp_path / "data", tmp_path / "run")
    cfg["model"]["gradient_checkpointing"] = 0.5
    cfg["run"]["compile"] = "max-autotune-no-cudagraphs"
    cfg["run"]["attention"] = "cudnn"
    c = config_from_dict(cfg, method="dpo")
    assert c.model.gradient_checkpointing == 0.5 and c.run.compile == "max-autotune-no-cudagraphs"
    for key, section, bad in (("gradient_checkpointing", "model", 1.5), ("compile", "run", "reduce-overhead"),
                              ("attention", "run", "xformers")):
        broken = {**cfg, section: {**cfg[section], key: bad}}
        with pytest.raises(ValueError, match=key):
            config_from_dict(broken, method="dpo")
