"""Compact specs of the shareable workflows in workflows/. `make_workflows.py` turns them into UI-format
files with a running server's /object_info (so widget order always matches the nodes), laid out in groups with a
note (the spec's docstring: what the workflow shows and what to change) and model download links. Edit a spec
here, then regenerate; the browser test proves every file loads with no missing nodes.

The frontend's template browser shows a custom pack's workflow by its file name and `<file name>.jpg` beside it
as the thumbnail, so each file is named by its readable title (TITLES; the key stays the name code uses).
"""
from __future__ import annotations

from workflows import Node

# Readable titles = file names in workflows/: the template browser's card titles, which show about 30
# characters; sorted, the main demo comes first.
TITLES = {
    "main_demo": "Main demo - inbetween and score",
    "keyframes_then_inbetween": "Wan 2.1 - keyframes, inbetween",
    "loop_architectural_pan": "Retry loop - gate on anchors",
    "loop_keyframes_then_inbetween_per_segment": "Retry loop - per segment",
    "loop_master_frames_then_inbetween": "Retry loop - master frames",
    "train_dpo": "Training - Flow-DPO",
    "train_grpo": "Training - Flow-GRPO",
    "train_curriculum": "Training - length curriculum",
    "compare_lora": "Training - compare the LoRA",
    "api_first_last_gated": "Paid API - first-last, gated",
    "api_master_frames_per_segment": "Paid API - master frames",
}


def main_demo() -> list[Node]:
    """**What it shows:** a camera pan past glass skyscrapers rebuilt from keyframes. The Procedural Scene draws
    the shot and hands over a keyframe every 8 frames (the first and last are your anchors); Inbetween (flow)
    fills the 7 frames in each gap by following the motion; Reward: Composite scores the clip and Reward Report
    saves the scores and charts them per frame; the clip is saved as an mp4. No model download is needed.

    **What to change:**
    - Procedural Scene: `seed` for another world, `motion` (pan, dolly, pan_dolly), `keyframe_every`.
    - Inbetween: `method` (flow, naive_flow, crossfade) to compare, `flow_method` for speed or accuracy.
    - Reward: Composite: the `w_...` weights; scorers without their model files are left out and listed.
    - Replace the scene with your own keyframes (Anchor Frames) or a Keyframe Generator."""
    return [
        Node("scene", "RewardLoopProceduralScene",
             {"width": 256, "height": 256, "length": 33, "seed": 7, "motion": "pan", "keyframe_every": 8},
             title="Architectural pan: anchor keyframes (procedural ground truth)"),
        Node("inbetween", "RewardLoopInbetween", {"frames_per_gap": 7, "method": "flow", "flow_method": "dis_medium"},
             {"keyframes": ("scene", 1), "keyframe_positions": ("scene", 2)}),
        Node("reward", "RewardLoopRewardComposite",
             {"prompt": "Cinematic pan of a glass skyscraper, sunset, static landscape, camera motion only",
              "flow_method": "dis_medium", "analysis_size": 256},
             {"frames": ("inbetween", 0), "keyframes": ("scene", 1), "keyframe_positions": ("scene", 2)}),
        Node("report", "RewardLoopRewardReport", {"filename_prefix": "rewardloop/main_demo_rewards"},
             {"scores": ("reward", 1)}),
        Node("video", "CreateVideo", {"fps": 12.0}, {"images": ("inbetween", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/main_demo", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]


# ---- real user file names of Wan 2.1 T2V 1.3B as ComfyUI's model folders hold them --------------------------
WAN_DIT = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_TE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
_WAN_REPO = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
# Where the frontend's missing-model dialog sends users for each file (it accepts huggingface.co .safetensors).
KNOWN_MODELS = {
    WAN_DIT: {"url": f"{_WAN_REPO}/diffusion_models/{WAN_DIT}", "directory": "diffusion_models"},
    WAN_VAE: {"url": f"{_WAN_REPO}/vae/{WAN_VAE}", "directory": "vae"},
    WAN_TE: {"url": f"{_WAN_REPO}/text_encoders/{WAN_TE}", "directory": "text_encoders"},
}
TRAIN_PROMPTS = ("a red fox trotting through fresh snow, tracking shot\n"
                 "a glass skyscraper at dusk, slow camera pan\n"
                 "waves rolling onto a pebble beach, static camera")
COMPARE_PROMPT = "a red fox trotting through fresh snow, tracking shot"
WAN_NEGATIVE = "blurry, static, low quality, distorted, jpeg artifacts, flicker"


def _text_encoder() -> Node:
    return Node("te", "CLIPLoader", {"clip_name": WAN_TE, "type": "wan", "device": "default"},
                title="Text encoder (umt5, type wan)")


def _training_prompts(cache_name: str) -> list[Node]:
    """The training prompts, the text encoder and the embedding cache that encodes them once (GRPO, curriculum)."""
    return [
        Node("prompts", "PrimitiveStringMultiline", {"value": TRAIN_PROMPTS}, title="Training prompts (one a line)"),
        _text_encoder(),
        Node("emb", "RewardLoopTextEmbeddingCache", {"negative_prompt": "", "cache_name": cache_name},
             {"prompts": ("prompts", 0), "clip": ("te", 0)}),
    ]


def _job(launch_key: str) -> Node:
    return Node("job", "RewardLoopTrainingJob", {"action": "status"}, {"job_id": (launch_key, 0)},
                title="Training Job (queue again: status; set action to cancel / resume)")


def _common_train(lora: str, steps: int, lr: float, checkpoint_every: int) -> dict:
    return {"model_file": WAN_DIT, "vae_file": WAN_VAE, "lora_name": lora, "steps": steps, "learning_rate": lr,
            "lora_rank": 32, "seed": 0, "checkpoint_every": checkpoint_every, "gradient_checkpointing": True,
            "gpus": 1, "free_vram": True, "extra_settings": ""}


def train_dpo() -> list[Node]:
    """**What it shows:** offline Flow-DPO training of a Wan 2.1 1.3B LoRA on preference pairs. The dataset path
    feeds the Text Embedding Cache (every prompt of the pairs is encoded once) and the Launch node; queueing
    starts a background job and the Training Job node follows it.

    **What to change:**
    - The dataset: your pairs JSONL (`{"prompt", "chosen", "rejected"}` per line) or an official VideoDPO folder.
    - Launch DPO Training: `lora_name`, `steps`, `frames` / `height` / `width` (frames 4k+1), `beta` (0 = default).
    - Queue again to refresh the status; set the Training Job's `action` to cancel or resume.

    Needs Wan 2.1 T2V 1.3B, its VAE and the umt5 text encoder (the frontend offers the downloads)."""
    return [
        Node("data", "PrimitiveString", {"value": "pairs.jsonl"},
             title="Dataset in ComfyUI/input: pairs JSONL {prompt, chosen, rejected} or VideoDPO folder"),
        _text_encoder(),
        Node("emb", "RewardLoopTextEmbeddingCache", {"negative_prompt": "", "cache_name": "dpo_prompts"},
             {"prompts": ("data", 0), "clip": ("te", 0)}),
        Node("launch", "RewardLoopLaunchDPO",
             {"frames": 33, "height": 480, "width": 832, "beta": 0.0, "on_bad_sample": "skip",
              **_common_train("wan13b_dpo", 2000, 1e-5, 100)},
             {"dataset": ("data", 0), "text_embeddings": ("emb", 0)}),
        _job("launch"),
    ]


def _grpo_widgets() -> dict:
    return {"reward": "composite", "reward_settings": "temporal_lpips: 1.0\nflow_smoothness: 0.5\nframing: 0.25",
            "gold_reward": "structure_constancy", "group_size": 4, "sampling_steps": 20, "train_window": 4,
            "kl_beta": 0.01, "height": 240, "width": 416}


def train_grpo() -> list[Node]:
    """**What it shows:** online Flow-GRPO training of a Wan 2.1 1.3B LoRA with the pack's reward suite: samples
    are generated, scored by the composite reward and compared in groups. A held-out gold reward is logged but
    never optimised: if the reward rises while the gold reward falls, the model is fooling the reward.

    **What to change:**
    - Training prompts (one a line) and `reward_settings` (the composite's weights, YAML).
    - Launch GRPO Training: `gold_reward`, `group_size`, `kl_beta`, `steps`, `lora_name`.
    - Queue again to refresh the status; set the Training Job's `action` to cancel or resume.

    Needs Wan 2.1 T2V 1.3B, its VAE and the umt5 text encoder (the frontend offers the downloads)."""
    return [
        *_training_prompts("grpo_prompts"),
        Node("launch", "RewardLoopLaunchGRPO", {**_grpo_widgets(), "frames": 33,
                                                 **_common_train("wan13b_grpo", 500, 1e-4, 25)},
             {"prompts": ("prompts", 0), "text_embeddings": ("emb", 0)}),
        _job("launch"),
    ]


def train_curriculum() -> list[Node]:
    """**What it shows:** GRPO training on longer and longer clips, 33 -> 49 -> 65 -> 97 frames. A stage starts
    from the previous stage's LoRA and the next one starts only when the gates pass on the validation prompts;
    otherwise the job stops with a report.

    **What to change:**
    - `stages` (each 4k+1 frames), `steps_per_stage`, and the `gates` (one `metric >= value` per line). The
      gates here are the scorers' clean anchors (README, Calibration): a stage passes when its validation clips
      are as temporally consistent and smooth as nine real AI clips in ten.
    - `validation_prompts` (empty = the training prompts) and the reward settings, as in the GRPO workflow.

    Needs Wan 2.1 T2V 1.3B, its VAE and the umt5 text encoder (the frontend offers the downloads)."""
    return [
        *_training_prompts("curriculum_prompts"),
        Node("launch", "RewardLoopLaunchCurriculum",
             {"stages": "33, 49, 65, 97", "steps_per_stage": 200,
              "gates": "temporal_lpips >= 0.83\nflow_smoothness >= 0.23", "validation_prompts": "",
              **_grpo_widgets(), **{k: v for k, v in _common_train("wan13b_curriculum", 0, 1e-4, 25).items()
                                    if k != "steps"}},
             {"prompts": ("prompts", 0), "text_embeddings": ("emb", 0)}),
        _job("launch"),
    ]


def compare_lora() -> list[Node]:
    """**What it shows:** the same prompt and seed sampled without and with your trained LoRA, side by side in one
    video (left: without, right: with), each clip scored by the composite reward with a report.

    **What to change:**
    - Pick your LoRA in the LoRA loader (press R to refresh the file list after training).
    - The prompt, the samplers' shared `seed`, and the reward weights.

    Needs Wan 2.1 T2V 1.3B, its VAE, the umt5 text encoder and a LoRA trained by a training workflow."""
    nodes = [
        Node("prompt", "PrimitiveStringMultiline", {"value": COMPARE_PROMPT}, title="Prompt"),
        Node("unet", "UNETLoader", {"unet_name": WAN_DIT, "weight_dtype": "default"}),
        Node("shift", "ModelSamplingSD3", {"shift": 8.0}, {"model": ("unet", 0)}),
        Node("lora", "LoraLoaderModelOnly", {"lora_name": "wan13b_grpo.safetensors", "strength_model": 1.0},
             {"model": ("shift", 0)}, title="Trained LoRA (from models/loras)"),
        _text_encoder(),
        Node("pos", "CLIPTextEncode", {"text": COMPARE_PROMPT}, {"text": ("prompt", 0), "clip": ("te", 0)}),
        Node("neg", "CLIPTextEncode", {"text": WAN_NEGATIVE}, {"clip": ("te", 0)}),
        Node("vae", "VAELoader", {"vae_name": WAN_VAE}),
        Node("latent", "EmptyHunyuanLatentVideo", {"width": 832, "height": 480, "length": 33, "batch_size": 1}),
    ]
    for branch, model, title in (("base", "shift", "Without LoRA"), ("tuned", "lora", "With trained LoRA")):
        nodes += [
            Node(f"k_{branch}", "KSampler", {"seed": 42, "steps": 30, "cfg": 6.0, "sampler_name": "uni_pc",
                                             "scheduler": "simple", "denoise": 1.0},
                 {"model": (model, 0), "positive": ("pos", 0), "negative": ("neg", 0), "latent_image": ("latent", 0)},
                 title=f"Sampler: {title.lower()} (same seed)"),
            Node(f"d_{branch}", "VAEDecode", {}, {"samples": (f"k_{branch}", 0), "vae": ("vae", 0)}),
            Node(f"r_{branch}", "RewardLoopRewardComposite",
                 {"w_keyframe_ssim": 0.0, "w_temporal_lpips": 1.0, "w_flow_smoothness": 0.5,
                  "w_structure_constancy": 0.5, "w_seam_consistency": 0.0, "w_loop_break": 0.0,
                  "w_identity_lock": 0.0, "w_clip_score": 0.0, "w_caption_consistency": 0.0, "w_framing": 0.25,
                  "w_aesthetic": 0.0, "w_fvd_lite": 0.0, "w_novelty_after_k": 0.0, "options_json": ""},
                 {"frames": (f"d_{branch}", 0), "prompt": ("prompt", 0)}, title=f"Reward: {title.lower()}"),
            Node(f"rep_{branch}", "RewardLoopRewardReport", {"filename_prefix": f"rewardloop/compare_{branch}"},
                 {"scores": (f"r_{branch}", 1)}, title=f"Report: {title.lower()}"),
        ]
    nodes += [
        Node("stitch", "ImageStitch", {"direction": "right", "match_image_size": True, "spacing_width": 8,
                                       "spacing_color": "white"},
             {"image1": ("d_base", 0), "image2": ("d_tuned", 0)}, title="Left: without LoRA | right: with LoRA"),
        Node("video", "CreateVideo", {"fps": 16.0}, {"images": ("stitch", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/compare_lora", "format": "mp4", "codec": "h264"},
             {"video": ("video", 0)}),
    ]
    return nodes


def keyframes_then_inbetween() -> list[Node]:
    """**What it shows:** keyframes first, then the frames between them, with Wan 2.1 T2V 1.3B. The Keyframe
    Generator samples a keyframe every 8 frames of a 65-frame clip at CFG 7; Inbetween (flow) fills the gaps;
    Flow-guided Refine cleans them up at CFG 3 with the keyframes held fixed; the clip is saved as an mp4.

    **What to change:**
    - The prompt and the Keyframe Generator's `seed`, `keyframe_every` and `consistency`.
    - Connect your own start / end images to the Keyframe Generator to keep them as the first and last frames.
    - Flow-guided Refine: `strength` (how much the model may change the in-betweens).

    Needs Wan 2.1 T2V 1.3B, its VAE and the umt5 text encoder (the frontend offers the downloads)."""
    prompt = "a glass skyscraper at dusk, slow camera pan, static landscape, camera motion only"
    sampler = {"steps": 30, "sampler_name": "uni_pc", "scheduler": "simple"}
    models = {"model": ("shift", 0), "positive": ("pos", 0), "negative": ("neg", 0), "vae": ("vae", 0)}
    return [
        Node("unet", "UNETLoader", {"unet_name": WAN_DIT, "weight_dtype": "default"}),
        Node("shift", "ModelSamplingSD3", {"shift": 8.0}, {"model": ("unet", 0)}),
        _text_encoder(),
        Node("pos", "CLIPTextEncode", {"text": prompt}, {"clip": ("te", 0)}, title="Prompt"),
        Node("neg", "CLIPTextEncode", {"text": WAN_NEGATIVE}, {"clip": ("te", 0)}, title="Negative prompt"),
        Node("vae", "VAELoader", {"vae_name": WAN_VAE}),
        Node("keys", "RewardLoopKeyframeGenerator",
             {"width": 832, "height": 480, "length": 65, "keyframe_every": 8, "consistency": "img2img_chain",
              "seed": 42, "cfg": 7.0, "chain_denoise": 0.6, **sampler}, models,
             title="Keyframes: every 8 frames of 65, high CFG"),
        Node("inbetween", "RewardLoopInbetween",
             {"frames_per_gap": 7, "method": "flow", "flow_method": "dis_fine", "scene_cuts": "crossfade"},
             {"keyframes": ("keys", 0), "keyframe_positions": ("keys", 1)}, title="Inbetween (flow)"),
        Node("refine", "RewardLoopFlowRefine", {"seed": 43, "cfg": 3.0, "strength": 0.35, **sampler},
             {**models, "frames": ("inbetween", 0), "keyframe_positions": ("keys", 1)},
             title="Flow-guided refine: low CFG, keyframes fixed"),
        Node("video", "CreateVideo", {"fps": 16.0}, {"images": ("refine", 0)}),
        Node("save", "SaveVideo", {"filename_prefix": "rewardloop/keyframes_then_inbetween", "format": "mp4",
                                   "codec": "h264"}, {"video": ("video", 0)}),
    ]


SPECS = {
    "main_demo": main_demo,
    "train_dpo": train_dpo,
    "train_grpo": train_grpo,
    "train_curriculum": train_curriculum,
    "compare_lora": compare_lora,
    "keyframes_then_inbetween": keyframes_then_inbetween,
}


def all_specs() -> dict:
    """Every workflow spec: these, the retry-loop specs (tests/server/loop_workflows.py) and the API-node specs
    (api_workflows.py)."""
    import sys
    from pathlib import Path

    server_tests = str(Path(__file__).resolve().parents[1] / "server")
    if server_tests not in sys.path:
        sys.path.append(server_tests)
    import api_workflows
    import loop_workflows

    return {**SPECS, **loop_workflows.SPECS, **api_workflows.API_SPECS}


def template_path(key: str):
    """workflows/<readable title>.json of a spec key."""
    from pack_info import PACK_ROOT

    return PACK_ROOT / "workflows" / f"{TITLES.get(key, key)}.json"


def build_template(key: str, object_info: dict) -> dict:
    """The UI workflow of a spec: its nodes laid out, its docstring as the note, model download links."""
    from workflow_layout import note_text
    from workflows import build_ui

    spec = all_specs()[key]
    return build_ui(spec(), object_info, note=note_text(spec.__doc__), known_models=KNOWN_MODELS)


def check_files_match_specs(keys, object_info: dict) -> None:
    """Each spec's workflows/<title>.json equals what the spec builds against this server's node definitions; with
    REWARDLOOP_WRITE_WORKFLOWS=1 in the environment the files are (re)written first."""
    import json
    import os

    from workflows import load

    for key in keys:
        ui = build_template(key, object_info)
        path = template_path(key)
        if os.environ.get("REWARDLOOP_WRITE_WORKFLOWS"):
            path.write_text(json.dumps(ui, indent=1) + "\n")
        assert path.exists(), f"{path} missing: regenerate with REWARDLOOP_WRITE_WORKFLOWS=1"
        assert load(path) == ui, f"{path.name} differs from its spec: regenerate with REWARDLOOP_WRITE_WORKFLOWS=1"
