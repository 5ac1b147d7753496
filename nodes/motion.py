"""Motion nodes: inbetweening, flow visualisation, long-clip windows, anchor keyframes."""
from __future__ import annotations

import json

import comfy.utils
import torch
from comfy_api.latest import io

from ..common.keyframes import KeyframePositions
from ..motion import inbetween, optical_flow, windows as windowing
from . import runtime

CATEGORY = "RewardLoop/Motion"
WindowsType = io.Custom("REWARDLOOP_WINDOWS")


def _progress(total: int):
    bar = comfy.utils.ProgressBar(total)  # its hook also raises on a user's cancel
    return lambda done, _total: bar.update_absolute(done, _total)


class RewardLoopInbetween(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopInbetween",
            display_name="Inbetween (flow)",
            category=CATEGORY,
            description="Fills in the frames between keyframes by following the motion between them, so a few "
                        "keyframes become a full clip. The keyframes are copied unchanged to their positions.",
            inputs=[
                io.Image.Input("keyframes", tooltip="Keyframes in order (first = start frame, last = end frame)."),
                io.Int.Input("frames_per_gap", default=7, min=1, max=1024,
                             tooltip="New frames between two keyframes (7 = a keyframe every 8 frames)."),
                io.Combo.Input("method", options=list(inbetween.METHODS), default="flow",
                               tooltip="flow (recommended): moves both neighbouring keyframes along the optical "
                                       "flow and handles what appears or disappears; naive_flow: the same without "
                                       "that handling; crossfade: a plain blend."),
                io.Combo.Input("flow_method", options=list(optical_flow.METHODS), default=inbetween.DEFAULT_FLOW_METHOD,
                               tooltip="dis_*: OpenCV DIS on CPU (dis_fine most accurate); raft needs torchvision "
                                       "RAFT weights in models/rewardloop/raft/."),
                io.Combo.Input("scene_cuts", options=list(inbetween.SCENE_CUT_MODES), default="extrapolate",
                               optional=True,
                               tooltip="'flow' method only: what to do between two keyframes that share almost no "
                                       "consistent motion (a scene cut, or unrelated keyframes). extrapolate: a hard "
                                       "cut at mid-gap, each side continuing its keyframe's own motion (best "
                                       "measured); hold: the same cut with still frames; crossfade: a dissolve "
                                       "between them; interpolate: warp anyway."),
                io.String.Input("keyframe_positions", optional=True, force_input=True,
                                tooltip="JSON list of the keyframes' frame indices (e.g. from Procedural Scene); "
                                        "when connected it replaces frames_per_gap and allows uneven gaps."),
                io.Combo.Input("motion", options=list(inbetween.MOTION_MODELS), default="quadratic", optional=True,
                               tooltip="'flow' method only. quadratic: each pixel's path bends with the acceleration "
                                       "its keyframe's flows to both neighbouring keyframes show (better on speeding "
                                       "up, slowing down, curved motion); linear: constant speed between keyframes."),
                io.Combo.Input("flow_init", options=list(inbetween.FLOW_INITS), default="temporal", optional=True,
                               tooltip="How keyframe flows start. temporal: from the neighbouring keyframe pairs' "
                                       "motion (finds fast motion a fresh estimate loses; a little slower); none: "
                                       "every pair estimated from scratch."),
                io.Float.Input("temporal_mix", default=inbetween.DEFAULT_TEMPORAL_MIX, min=0.0, max=1.0, step=0.05,
                               optional=True,
                               tooltip="'flow' method only. Weight of a second estimate built from the neighbouring "
                                       "gaps' motion, a hedge where motion changes inside a gap. 0 = off (half the "
                                       "synthesis time); 0.2 (default) measured best on fast real footage."),
            ],
            outputs=[io.Image.Output("frames", display_name="frames",
                                     tooltip="The full clip: keyframes at their positions, new frames between.")],
        )

    @classmethod
    def execute(cls, keyframes, frames_per_gap, method, flow_method, keyframe_positions=None,
                scene_cuts="extrapolate", motion="quadratic", flow_init="temporal",
                temporal_mix=inbetween.DEFAULT_TEMPORAL_MIX) -> io.NodeOutput:
        pos = KeyframePositions.parse(keyframe_positions)
        n = keyframes.shape[0]
        total = (pos.clip_length - len(pos)) if pos else (n - 1) * frames_per_gap
        out = inbetween.inbetween(keyframes, None if pos else frames_per_gap, method, flow_method, positions=pos,
                                  progress=_progress(max(total, 1)), scene_cuts=scene_cuts,
                                  motion=motion, flow_init=flow_init, temporal_mix=float(temporal_mix),
                                  raft=runtime.get().rewards.raft)
        return io.NodeOutput(out)


class RewardLoopFlowVisualize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopFlowVisualize",
            display_name="Flow Visualize",
            category=CATEGORY,
            description="Shows the motion between consecutive frames as colours (hue = direction, saturation = "
                        "speed, white = still) and a mask of where the motion estimate is unreliable.",
            inputs=[
                io.Image.Input("frames", tooltip="A clip of at least 2 frames."),
                io.Combo.Input("flow_method", options=list(optical_flow.METHODS), default=optical_flow.DEFAULT_METHOD,
                               tooltip="How motion is estimated. dis_*: OpenCV DIS on the CPU (dis_fine most "
                                       "accurate, dis_ultrafast fastest); farneback: OpenCV's classic; raft needs "
                                       "torchvision RAFT weights in models/rewardloop/raft/."),
                io.Float.Input("max_magnitude", default=0.0, min=0.0, max=4096.0, step=0.5,
                               tooltip="Pixels of motion shown at full saturation; 0 = the clip's largest motion."),
            ],
            outputs=[
                io.Image.Output("flow_image", display_name="flow colours",
                                tooltip="T-1 images: flow from each frame to the next."),
                io.Mask.Output("occluded", display_name="occluded",
                               tooltip="T-1 masks: 1 where forward-backward flow disagree (occlusion)."),
            ],
        )

    @classmethod
    def execute(cls, frames, flow_method, max_magnitude) -> io.NodeOutput:
        pair = optical_flow.bidirectional_flow(frames, flow_method, raft=runtime.get().rewards.raft)
        color = optical_flow.flow_to_color(pair.forward, max_magnitude if max_magnitude > 0 else None)
        return io.NodeOutput(color, 1.0 - pair.valid_forward)


class RewardLoopWindowSplit(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopWindowSplit",
            display_name="Window Split",
            category=CATEGORY,
            description="Splits a long clip into overlapping windows. Nodes after 'window frames' run once per "
                        "window; Window Merge puts the results back together with crossfaded seams.",
            inputs=[
                io.Image.Input("frames", tooltip="The long clip to split."),
                io.Int.Input("window", default=64, min=2, max=4096, tooltip="Frames per window."),
                io.Int.Input("overlap", default=16, min=0, max=4095,
                             tooltip="Frames shared by neighbouring windows (crossfaded when merging)."),
            ],
            outputs=[
                WindowsType.Output("windows", display_name="windows",
                                   tooltip="Window index ranges (and the original windows) for merging "
                                           "and for seam rewards."),
                io.Image.Output("window_frames", display_name="window frames", is_output_list=True,
                                tooltip="The windows as a list: nodes after this run once per window."),
                io.String.Output("window_ranges", display_name="window ranges",
                                 tooltip="JSON [[start, end), ...] frame ranges, end exclusive."),
            ],
        )

    @classmethod
    def validate_inputs(cls, window=None, overlap=None):  # no **kwargs: ComfyUI would flag every input
        if window is None or overlap is None:  # linked inputs are checked when the node runs
            return True
        if overlap >= window:
            return f"overlap ({overlap}) must be smaller than window ({window})."
        return True

    @classmethod
    def execute(cls, frames, window, overlap) -> io.NodeOutput:
        w = windowing.split_windows(frames, window, overlap)
        return io.NodeOutput(w, list(w.clips), json.dumps([list(r) for r in w.ranges]))


class RewardLoopWindowMerge(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopWindowMerge",
            display_name="Window Merge",
            category=CATEGORY,
            description="Joins windows back into one clip, crossfading linearly where windows overlap. Without "
                        "'processed' it merges the split's own windows (a round trip).",
            is_input_list=True,
            inputs=[
                WindowsType.Input("windows", tooltip="From Window Split's 'windows' output."),
                io.Image.Input("processed", optional=True,
                               tooltip="The processed windows, one per window in order (same lengths)."),
            ],
            outputs=[io.Image.Output("frames", display_name="frames", tooltip="The merged clip.")],
        )

    @classmethod
    def execute(cls, windows, processed=None) -> io.NodeOutput:
        w = windows[0]
        clips = list(processed) if processed else w.clips
        if len(clips) != len(w.ranges):
            raise ValueError(f"Window Merge got {len(clips)} processed windows for {len(w.ranges)} windows: keep one "
                             "output per window, in order.")
        return io.NodeOutput(windowing.merge_windows(clips, w.ranges, w.length))


class RewardLoopAnchorFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopAnchorFrames",
            display_name="Anchor Frames",
            category=CATEGORY,
            description="The artist's start and end frames (and optional middle keyframes) as one keyframe batch "
                        "for inbetweening. Pixels are never altered; all images must have the same size.",
            inputs=[
                io.Image.Input("start_frame", tooltip="Your first frame (one image), kept exactly."),
                io.Image.Input("end_frame", tooltip="Your last frame (one image), kept exactly."),
                io.Image.Input("middle_keyframes", optional=True,
                               tooltip="Keyframes between start and end, in order."),
                io.Int.Input("length", default=65, min=2, max=4096,
                             tooltip="Frames in the final clip; keyframes are spread evenly over it."),
            ],
            outputs=[
                io.Image.Output("keyframes", display_name="keyframes",
                                tooltip="Start, middle and end frames as one batch, in order."),
                io.String.Output("keyframe_positions", display_name="keyframe positions",
                                 tooltip="JSON list of the keyframes' frame indices in a "
                                         "clip of 'length' frames (for Inbetween)."),
            ],
        )

    @classmethod
    def execute(cls, start_frame, end_frame, length, middle_keyframes=None) -> io.NodeOutput:
        keys = anchor_keyframes(start_frame, end_frame, middle_keyframes)
        return io.NodeOutput(keys, KeyframePositions.spread(keys.shape[0], length).to_json())


def anchor_keyframes(start: torch.Tensor, end: torch.Tensor, middle: torch.Tensor | None = None) -> torch.Tensor:
    parts = [("start_frame", start)] + ([("middle_keyframes", middle)] if middle is not None else []) + [("end_frame", end)]
    for name, img in parts:
        if img.ndim != 4:
            raise ValueError(f"{name} must be an IMAGE batch [B,H,W,C], got shape {tuple(img.shape)}.")
    for name, img in (parts[0], parts[-1]):
        if img.shape[0] != 1:
            raise ValueError(f"{name} holds {img.shape[0]} images; connect exactly one (pick it with an image-"
                             "batch selector first).")
    sizes = {name: tuple(img.shape[1:]) for name, img in parts}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {s[1]}x{s[0]} ({s[2]} channels)" for n, s in sizes.items())
        raise ValueError(f"Anchor frames differ in size: {listed}. Resize them to one size first.")
    return torch.cat([img for _, img in parts])


NODES = [RewardLoopInbetween, RewardLoopFlowVisualize, RewardLoopWindowSplit, RewardLoopWindowMerge,
         RewardLoopAnchorFrames]
