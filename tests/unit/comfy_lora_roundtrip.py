"""Run by test_trainers_lora_export.py in a subprocess (ComfyUI's modules are imported in-process here, which
must not leak into the pytest process): argv = <ComfyUI dir> <pack dir> <work dir>.

1. builds a tiny Wan 2.1 t2v model with ComfyUI's own WanModel and saves it as a diffusion_models file;
2. loads that file with our trainer loader (diffusers WanTransformer3DModel) and with ComfyUI's loader and
   compares their outputs (proves the weight conversion);
3. puts a random LoRA on our model, exports it in ComfyUI's Wan key format, loads it with ComfyUI's
   LoRA machinery (model_lora_keys_unet + load_lora + ModelPatcher) and compares the patched ComfyUI
   model's output with ours (proves the key mapping and alpha/rank scaling).
Prints one JSON line of results.
"""
import json
import logging
import os
import runpy
import sys
from pathlib import Path

comfy_dir, pack_dir, work = (Path(a) for a in sys.argv[1:4])
sys.path.insert(0, str(comfy_dir))
os.chdir(comfy_dir)
sys.argv = ["main.py", "--cpu"]
import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()
import torch  # noqa: E402

import comfy.lora  # noqa: E402
import comfy.lora_convert  # noqa: E402
import comfy.ops  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
from comfy.ldm.wan.model import WanModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

runpy.run_path(str(pack_dir / "pack_import.py"))["import_pack"]()
from peft import get_peft_model_state_dict  # noqa: E402

from rewardloop.trainers.config import LoraSettings, ModelSettings, TrainerConfig  # noqa: E402
from rewardloop.trainers.lora_export import save_comfy_lora  # noqa: E402
from rewardloop.trainers.model import apply_lora, load_transformer  # noqa: E402

torch.manual_seed(0)
wan = WanModel(model_type="t2v", dim=128, ffn_dim=256, num_heads=1, num_layers=2, text_dim=4096, in_dim=16,
               out_dim=16, operations=comfy.ops.manual_cast)
with torch.no_grad():
    for p in wan.parameters():
        p.normal_(0, 0.05)
weights = work / "wan_tiny.safetensors"
save_file({k: v.contiguous() for k, v in wan.state_dict().items()}, str(weights))

cfg = TrainerConfig(method="dpo", model=ModelSettings(weights=str(weights)))
ours = load_transformer(cfg).eval()
patcher = comfy.sd.load_diffusion_model(str(weights))
comfy_model = patcher.model.diffusion_model

g = torch.Generator().manual_seed(1)
x = torch.randn(1, 16, 3, 8, 8, generator=g)
t = torch.tensor([700.0])
ctx = torch.randn(1, 12, 4096, generator=g)
with torch.no_grad():
    base_ours = ours(x, t, ctx, return_dict=False)[0]
    base_comfy = comfy_model(x, t, ctx)

peft_model = apply_lora(ours, LoraSettings(rank=4, alpha=8.0))
with torch.no_grad():
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.normal_(0, 0.05, generator=g)
    lora_ours = peft_model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
lora_file = save_comfy_lora(get_peft_model_state_dict(peft_model), work / "lora.safetensors", rank=4, alpha=8.0,
                            dtype=torch.float32)

lora_sd = comfy.utils.load_torch_file(str(lora_file))
key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
warnings = []


class Catch(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())


logging.getLogger().addHandler(Catch(level=logging.WARNING))
patches = comfy.lora.load_lora(comfy.lora_convert.convert_lora(lora_sd), key_map)
patched, _ = comfy.sd.load_lora_for_models(patcher, None, lora_sd, 1.0, 0.0)
patched.patch_model()
with torch.no_grad():
    lora_comfy = patched.model.diffusion_model(x, t, ctx)

print(json.dumps({
    "base_max_diff": float((base_ours - base_comfy).abs().max()),
    "base_scale": float(base_comfy.abs().mean()),
    "lora_max_diff": float((lora_ours - lora_comfy).abs().max()),
    "lora_effect": float((lora_comfy - base_comfy).abs().mean()),
    "lora_tensors": len(lora_sd),
    "patched_modules": len(patches),
    "expected_modules": 2 * (4 + 4 + 2),
    "unmatched_warnings": [w for w in warnings if "not loaded" in w.lower()],
    "sample_keys": sorted(lora_sd)[:3],
}))
