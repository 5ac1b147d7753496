"""Speed settings for the Wan transformer under training, none of which changes what is computed.

* LoRA input casts off: peft casts every LoRA layer's input to the adapter's dtype (fp32 here) before lora_A.
  Under bf16 autocast lora_A runs in bf16 anyway, so the cast only writes and re-reads an fp32 copy of every
  activation (bf16 -> fp32 -> bf16 is exact: the result is bit-for-bit the same).
* Gradient checkpointing, all blocks or an evenly spread fraction of them (activation memory ~ fraction),
  optionally keeping each block's attention outputs: the recompute then skips the quadratic attention,
  the expensive part at long clips, for batch x tokens x dim bf16 values a block.
* torch.compile of the repeated transformer blocks (regional compilation: one block's code is traced and
  reused by all 30), opt-in through run.compile.
* SDPA backend priority: cuDNN attention first on NVIDIA GPUs where it is available (faster than the
  flash kernel on Hopper), then flash / memory-efficient / math; ROCm and CPU keep torch's order.
"""
from __future__ import annotations

import contextlib
import functools

import torch


def set_lora_input_casts(model, enabled: bool) -> int:
    """Turn peft's per-layer input cast on or off; returns the number of LoRA layers touched."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    n = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = enabled
            n += 1
    return n


def _is_attention_op(op) -> bool:
    name = str(op)
    return "scaled_dot_product" in name and "attention" in name and "backward" not in name


def _keep_attention_policy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if _is_attention_op(op) else CheckpointPolicy.PREFER_RECOMPUTE


def checkpointed_blocks(n_blocks: int, fraction: float) -> list[int]:
    """Indices of round(fraction * n) blocks, evenly spread (the first block included)."""
    k = max(0, min(n_blocks, round(fraction * n_blocks)))
    if k == 0:
        return []
    return sorted({int(i * n_blocks / k) for i in range(k)})


def set_checkpointing(transformer, fraction: float, keep_attention: bool = False) -> list[int]:
    """Checkpoint `fraction` of the transformer blocks (0 = off, 1 = all). Returns the checkpointed indices."""
    blocks = list(transformer.blocks)
    chosen = checkpointed_blocks(len(blocks), fraction)
    if not chosen:
        transformer.disable_gradient_checkpointing()
        return []
    ids = {id(blocks[i]) for i in chosen}
    kwargs = {"use_reentrant": False}
    if keep_attention:
        from torch.utils.checkpoint import create_selective_checkpoint_contexts

        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, _keep_attention_policy)

    def checkpoint(module, *args):
        if id(module) in ids:
            return torch.utils.checkpoint.checkpoint(module, *args, **kwargs)
        return module(*args)

    transformer.enable_gradient_checkpointing(gradient_checkpointing_func=checkpoint)
    return chosen


def compile_blocks(transformer, mode: str = "default") -> None:
    """torch.compile every transformer block with static shapes. One compiled graph serves all blocks; the
    variants (grad on/off, adapter on/off for the reference, each clip size) each compile once, so the
    recompile limit is raised above dynamo's default of 8."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64 if "accum" not in name else 512))
    for block in transformer.blocks:
        block.compile(mode=None if mode in ("", "default") else mode, dynamic=False)


def attention_backends(device: torch.device, choice: str = "auto"):
    """SDPA backends in priority order for `choice` (auto | cudnn | flash | efficient | math), or None to
    leave torch's default order."""
    from torch.nn.attention import SDPBackend

    order = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    if choice == "auto":
        if device.type != "cuda" or getattr(torch.version, "hip", None) or not torch.backends.cudnn.is_available():
            return None
        choice = "cudnn"
    first = order[choice]
    return [first] + [b for b in order.values() if b != first]


def sdpa_context(backends):
    if backends is None:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel(backends, set_priority=True)
