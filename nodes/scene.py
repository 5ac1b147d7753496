"""Procedural ground-truth scene: frames and keyframes of a parallax landscape with camera motion."""
from __future__ import annotations

from comfy_api.latest import io

from ..common.keyframes import KeyframePositions
from ..motion import scene


class RewardLoopProceduralScene(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopProceduralScene",
            display_name="Procedural Scene (ground truth)",
            category="RewardLoop/Motion",
            description="Renders a made-up landscape seen by a moving camera, plus keyframes taken from it. Its "
                        "motion is known exactly, so you can try inbetweening, rewards and retry loops without a "
                        "video model.",
            inputs=[
                io.Int.Input("width", default=512, min=16, max=4096, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=512, min=16, max=4096, step=8, tooltip="Frame height in pixels."),
                io.Int.Input("length", default=65, min=1, max=4096,
                             tooltip="Number of frames spanning the whole camera move (Wan-style 4k+1 counts "
                                     "such as 33/65/97 suit video models)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1,
                             tooltip="Which landscape is drawn: the same seed gives the same world at any size."),
                io.Combo.Input("motion", options=list(scene.MOTIONS), default="pan",
                               tooltip="pan: sideways camera travel (parallax); dolly: forward; pan_dolly: both."),
                io.Int.Input("keyframe_every", default=8, min=0, max=4096,
                             tooltip="Keyframes at every k-th frame; first and last are always keyframes. "
                                     "0 = first and last only."),
            ],
            outputs=[
                io.Image.Output("frames", display_name="frames", tooltip="Every frame of the camera move."),
                io.Image.Output("keyframes", display_name="keyframes",
                                tooltip="The frames at the keyframe positions (first and last always)."),
                io.String.Output("keyframe_positions", display_name="keyframe positions",
                                 tooltip="JSON list of the keyframes' frame indices."),
            ],
        )

    @classmethod
    def execute(cls, width, height, length, seed, motion, keyframe_every) -> io.NodeOutput:
        video = scene.render_scene(scene.frame_times(length), width, height, seed, motion)
        positions = KeyframePositions.every(length, keyframe_every)
        return io.NodeOutput(video, video[positions.to_list()].clone(), positions.to_json())


NODES = [RewardLoopProceduralScene]
