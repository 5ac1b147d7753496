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
            description="Renders a static landscape (sky, clouds, mountains, hills, glass skyscrapers, trees, "
                        "grass) seen by a moving camera. The same seed always gives the same world; motion is "
                        "known exactly, so it serves as ground truth for flow and inbetweening.",
            inputs=[
                io.Int.Input("width", default=512, min=16, max=4096, step=8),
                io.Int.Input("height", default=512, min=16, max=4096, step=8),
                io.Int.Input("length", default=65, min=1, max=4096,
                             tooltip="Number of frames spanning the whole camera move (Wan-style 4k+1 counts "
                                     "such as 33/65/97 suit video models)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Combo.Input("motion", options=list(scene.MOTIONS), default="pan",
                               tooltip="pan: sideways camera travel (parallax); dolly: forward; pan_dolly: both."),
                io.Int.Input("keyframe_every", default=8, min=0, max=4096,
                             tooltip="Keyframes at every k-th frame; first and last are always keyframes. "
                                     "0 = first and last only."),
            ],
            outputs=[
                io.Image.Output("frames"),
                io.Image.Output("keyframes"),
                io.String.Output("keyframe_positions", tooltip="JSON list of the keyframes' frame indices."),
            ],
        )

    @classmethod
    def execute(cls, width, height, length, seed, motion, keyframe_every) -> io.NodeOutput:
        video = scene.render_scene(scene.frame_times(length), width, height, seed, motion)
        positions = KeyframePositions.every(length, keyframe_every)
        return io.NodeOutput(video, video[positions.to_list()].clone(), positions.to_json())


NODES = [RewardLoopProceduralScene]
