"""Test-only node pack, installed only into the test server (like ComfyUI's own tests/execution/testing_nodes).

Wan's text encoder is a full UMT5-XXL (ComfyUI's detect_te_model: 24 blocks, width 4096), far too big for CI,
so this node supplies conditioning of the shape that encoder produces. Everything downstream (sampler, model,
VAE) is ComfyUI's real code on the tiny models of tests/harness/tiny_models.py.
"""
import torch
from comfy_api.latest import ComfyExtension, io

TEXT_DIM = 4096


class RLTestTextConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RLTestTextConditioning",
            display_name="RL Test: text conditioning (random, UMT5-shaped)",
            category="testing/rewardloop",
            description="Deterministic stand-in for a Wan text encoder output: tokens x 4096 from the text's hash.",
            inputs=[io.String.Input("text", default="a glass skyscraper"), io.Int.Input("tokens", default=8, min=1, max=512)],
            outputs=[io.Conditioning.Output("conditioning")],
        )

    @classmethod
    def execute(cls, text, tokens):
        seed = sum(ord(c) * (i + 1) for i, c in enumerate(text)) % (2**31)
        gen = torch.Generator().manual_seed(seed)
        return io.NodeOutput([[torch.randn(1, tokens, TEXT_DIM, generator=gen), {}]])


class TestPack(ComfyExtension):
    async def get_node_list(self):
        return [RLTestTextConditioning]


async def comfy_entrypoint():
    return TestPack()
