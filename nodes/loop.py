"""Reward-gated retry loop nodes (graph expansion): generate, evaluate, re-roll until the reward clears the
threshold, around any sub-graph placed between RewardLoopRetryOpen and RewardLoopRetryClose.

Mechanism (ComfyUI's own flow-control test pack does the same): when an attempt does not stop the loop, the close
node re-creates the body (every node downstream of the open node and upstream of the close node) with GraphBuilder,
plus a copy of the open node carrying the next attempt index and seed, plus a copy of itself, and returns links to
that copy's outputs. Nodes outside the body keep their cached results and run once.

Memory: a node that expands stays pending until its expansion answers, and ComfyUI keeps a pending node's input
values alive. So in the expanded attempts the candidate frames and reward go into a small collector node
(RewardLoopRetryCollect) that logs the attempt, keeps the frames only if they are the best so far, and finishes at
once; the close node's copy only receives the collector's small control object. The loop therefore holds the first
attempt's frames (input of the user's close node), the best so far and the current one: flat over attempts.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time

from comfy_api.latest import io

from .. import gating
from ..gating.body import find_body, is_link, remap_inputs
from ..gating import perturb
from ..gating.carry import LoopCarry, LoopControl, LoopRun
from ..motion import scene
from . import parse_keyframe_positions

log = logging.getLogger("rewardloop.loop")

CATEGORY = "RewardLoop/Loop"
EVENT = "rewardloop.loop"
LoopType = io.Custom("REWARDLOOP_LOOP")
CarryType = io.Custom("REWARDLOOP_LOOP_CARRY")
ScoresType = io.Custom("REWARDLOOP_SCORES")
CLOSE_COPY_ID = "rl_close"  # GraphBuilder suffix of the close node's copy: keeps ids linear in the attempt count
COLLECT_NODE_ID = "RewardLoopRetryCollect"
# Hides a node from the node library while old workflows and graph expansion still run it. Newer ComfyUI has a
# dev-only flag for that; 0.3.75 only has "deprecated", which both frontends hide the same way.
INTERNAL_NODE = {"is_dev_only": True} if "is_dev_only" in io.Schema.__dataclass_fields__ else {"is_deprecated": True}


def _server():
    try:
        from server import PromptServer

        return PromptServer.instance
    except (ImportError, AttributeError):  # no server (in-process tests, scripts)
        return None


def _notify(display_id: str, text: str, data: dict | None = None) -> None:
    """Progress text on the node and a `rewardloop.loop` event, to the client that queued the prompt."""
    srv = _server()
    if srv is None:
        return
    try:
        srv.send_progress_text(text, display_id, srv.client_id)
        if data is not None:
            srv.send_sync(EVENT, data, srv.client_id)
    except Exception:  # a closed websocket must never fail the loop
        log.exception("RewardLoop: could not send loop progress")


def _display_id(dynprompt, unique_id: str) -> str:
    return dynprompt.get_display_node_id(unique_id) if dynprompt is not None else unique_id


def _check_interrupt() -> None:
    try:
        import comfy.model_management
    except ImportError:
        return
    comfy.model_management.throw_exception_if_processing_interrupted()


def _validate_settings(threshold=None, reward_range=None, max_retries=None, mode=None, seed_policy=None):
    try:
        if reward_range is not None and reward_range not in gating.REWARD_RANGES:
            raise ValueError(f"unknown reward_range {reward_range!r}; choose one of {', '.join(gating.REWARD_RANGES)}")
        if threshold is not None:
            gating.check_threshold(threshold, reward_range if reward_range is not None else "0..1")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 (0 runs the body once), got {max_retries}")
        if mode is not None and mode not in gating.MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(gating.MODES)}")
        if seed_policy is not None and seed_policy not in gating.SEED_POLICIES:
            raise ValueError(f"unknown seed_policy {seed_policy!r}; choose one of {', '.join(gating.SEED_POLICIES)}")
    except ValueError as e:
        return str(e)
    return True


def _record(loop, frames, reward, breakdown=None, scores=None) -> LoopControl:
    """Log one attempt into its loop run (created on attempt 0) and keep its frames if they are the best so far."""
    if not isinstance(loop, LoopControl):
        raise ValueError("'loop' must come from a RewardLoopRetryOpen node's 'loop' output")
    if loop.recorded:
        raise ValueError("this attempt was already recorded: connect the close node's 'loop' to the open node")
    run = loop.run if loop.run is not None else LoopRun(gating.RetryState(loop.settings))
    state = run.state
    if state.attempts_run != loop.attempt:
        raise ValueError(f"attempt {loop.attempt} arrived but {state.attempts_run} were logged; each open node must "
                         f"feed exactly one close node")
    best_before = state.best
    record = state.record(reward, seed=loop.seed, breakdown=scores if scores is not None else breakdown,
                          seconds=time.perf_counter() - loop.opened_at)
    run.keep(frames, first=record.attempt == 0, improved=state.best != best_before)
    return dataclasses.replace(loop, run=run, recorded=True)


class RewardLoopRetryOpen(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopRetryOpen",
            display_name="Reward Retry Loop (open)",
            category=CATEGORY,
            description=(
                "Start of a reward-gated retry loop. Put your generator and a reward node between this node and "
                "Reward Retry Loop (close) and wire 'attempt seed' into the generator's seed: attempts whose reward "
                "is below the threshold are re-run with a new seed."),
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX, control_after_generate=True,
                             tooltip="Base seed: attempt 0 uses it as is; later attempts derive theirs (seed_policy)."),
                io.Float.Input("threshold", default=0.85, min=-1e6, max=1e6, step=0.01,
                               tooltip="An attempt passes when its reward is at least this (0.85 suits keyframe "
                                       "SSIM; 0.98 shows where a model breaks)."),
                io.Int.Input("max_retries", default=5, min=0, max=10000,
                             tooltip=f"Retries after the first attempt (0 = run once). Capped at "
                                     f"{gating.MAX_RETRIES}."),
                io.Combo.Input("mode", options=list(gating.MODES), default="first_pass",
                               tooltip="first_pass: stop at the first attempt that passes. best_of: run every "
                                       "attempt and keep the highest reward."),
                io.Combo.Input("seed_policy", options=list(gating.SEED_POLICIES), default="hash",
                               tooltip="hash: reproducible seeds far from neighbouring base seeds; increment: "
                                       "seed + attempt; random: fresh each attempt (logged)."),
                io.Combo.Input("reward_range", options=list(gating.REWARD_RANGES), default="0..1",
                               tooltip="0..1 for bounded rewards (SSIM, composites): the threshold must lie in "
                                       "[0, 1]. unbounded for rewards without that range."),
                CarryType.Input("carry", optional=True,
                                tooltip="Set by the loop itself on retries; leave unconnected."),
            ],
            outputs=[
                LoopType.Output("loop", display_name="loop", tooltip="Connect to the close node's 'loop' input."),
                io.Int.Output("attempt", display_name="attempt",
                              tooltip="Index of this attempt, counted from 0 (the first attempt is 0)."),
                io.Int.Output("attempt_seed", display_name="attempt seed",
                              tooltip="Seed of this attempt: wire it into the generator."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
        )

    @classmethod
    def validate_inputs(cls, threshold=None, reward_range=None, max_retries=None, mode=None, seed_policy=None):
        # Linked inputs arrive as None here and are checked when the node runs. ComfyUI 0.3.75 does not check
        # V3 combo values itself, so mode / seed_policy / reward_range are checked here (400 on /prompt).
        return _validate_settings(threshold, reward_range, max_retries, mode, seed_policy)

    @classmethod
    def execute(cls, seed, threshold, max_retries, mode, seed_policy, reward_range, carry=None) -> io.NodeOutput:
        settings = gating.make_settings(threshold, max_retries, mode, seed_policy, seed, reward_range)
        unique_id = cls.hidden.unique_id
        display = _display_id(cls.hidden.dynprompt, unique_id)
        if carry is None:
            attempt, attempt_seed, run = 0, settings.seed(0), None
            if settings.capped:
                log.warning("RewardLoop loop at node %s: max_retries %d capped to %d", display, max_retries,
                            settings.max_retries)
        elif isinstance(carry, LoopCarry):
            attempt, attempt_seed, run = carry.attempt, carry.seed, carry.run
        else:
            raise ValueError("the 'carry' input of RewardLoopRetryOpen is set by the loop itself; disconnect it")
        _notify(display, f"attempt {attempt + 1}/{settings.attempts} running (seed {attempt_seed})")
        control = LoopControl(settings=settings, attempt=attempt, seed=attempt_seed, open_id=unique_id,
                              opened_at=time.perf_counter(), run=run)
        return io.NodeOutput(control, attempt, attempt_seed)


class RewardLoopRetryClose(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopRetryClose",
            display_name="Reward Retry Loop (close)",
            category=CATEGORY,
            description=(
                "End of a reward-gated retry loop: returns the attempt that passed, or the best attempt when none "
                "did (with passed = false, never an error), its reward and a log of every attempt."),
            inputs=[
                LoopType.Input("loop", tooltip="From the open node's 'loop' output."),
                io.Image.Input("frames", tooltip="This attempt's candidate frames."),
                io.Float.Input("reward", force_input=True, tooltip="This attempt's reward (NaN = failed attempt)."),
                io.String.Input("breakdown", optional=True, force_input=True,
                                tooltip="Optional per-component breakdown (JSON object), stored in the log."),
                ScoresType.Input("scores", optional=True,
                                 tooltip="Optional reward bundle from a RewardLoop reward node; its breakdown is "
                                         "stored in the log."),
            ],
            outputs=[
                io.Image.Output("chosen_frames", display_name="chosen frames",
                                tooltip="Frames of the passing attempt, or of the best one when none passed."),
                io.Float.Output("chosen_reward", display_name="chosen reward",
                                tooltip="Reward of the chosen frames (NaN only when every attempt's reward was NaN)."),
                io.Int.Output("chosen_attempt", display_name="chosen attempt",
                              tooltip="Index of the chosen attempt, counted from 0."),
                io.Boolean.Output("passed", display_name="passed",
                                  tooltip="Whether the chosen attempt reached the threshold."),
                io.String.Output("attempt_log", display_name="attempt log",
                                 tooltip="JSON: settings, one entry per attempt (seed, reward, breakdown, seconds), "
                                         "decision."),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.dynprompt],
            enable_expand=True,
        )

    @classmethod
    def execute(cls, loop, frames=None, reward=None, breakdown=None, scores=None) -> io.NodeOutput:
        # frames/reward are absent only in the close node's own copies, which get an already recorded control
        # from the collector node (see the module docstring).
        _check_interrupt()
        if not isinstance(loop, LoopControl):
            raise ValueError("RewardLoopRetryClose: 'loop' must come from a RewardLoopRetryOpen node's 'loop' output")
        unique_id, dynprompt = cls.hidden.unique_id, cls.hidden.dynprompt
        display = _display_id(dynprompt, unique_id)
        body = None
        if not loop.recorded:
            if frames is None or reward is None:
                raise ValueError("RewardLoopRetryClose: connect 'frames' and 'reward'")
            if dynprompt is not None and loop.attempt == 0:
                body = cls._body(dynprompt, loop.open_id, unique_id)  # checks the wiring before the first retry
            try:
                loop = _record(loop, frames, reward, breakdown, scores)
            except ValueError as e:
                raise ValueError(f"RewardLoopRetryClose: {e}") from None
        run, settings = loop.run, loop.settings
        state = run.state
        record = state.records[-1]
        event = {"node_id": display, "node": unique_id, "attempt": record.attempt, "attempts": settings.attempts,
                 "seed": record.seed, "reward": record.reward, "passed": record.passed,
                 "seconds": round(record.seconds, 6), "best_reward": state.best_reward,
                 "best_attempt": state.best, "threshold": settings.threshold, "done": state.done,
                 "failed_reason": record.failed_reason, "breakdown": record.breakdown}
        log.info("RewardLoop loop %s: attempt %d/%d seed %d reward %s (%s) in %.2f s", display, record.attempt + 1,
                 settings.attempts, record.seed, "NaN" if record.reward is None else f"{record.reward:.4f}",
                 "passed" if record.passed else (record.failed_reason or "below threshold"), record.seconds)
        if state.done:
            return cls._finish(run, display, event)
        next_seed = state.next_seed()
        event.update(next_attempt=record.attempt + 1, next_seed=next_seed)
        _notify(display, f"{state.progress_text()}; running attempt {record.attempt + 2} (seed {next_seed})",
                gating.json_safe(event))
        # If the body fails from here on, ComfyUI reports the error on this node (the copies' real node); this
        # line and the event above say which attempt it was, and the log of the earlier attempts.
        log.info("RewardLoop loop %s: starting attempt %d/%d (seed %d); attempts so far: %s", display,
                 record.attempt + 2, settings.attempts, next_seed, state.to_json())
        if body is None:
            body = find_body(dynprompt.get_node, loop.open_id, unique_id)
        carry = LoopCarry(attempt=record.attempt + 1, seed=next_seed, run=run)
        return cls._expand(dynprompt, loop.open_id, unique_id, body, carry)

    @staticmethod
    def _body(dynprompt, open_id: str, close_id: str) -> list[str]:
        body = find_body(dynprompt.get_node, open_id, close_id)
        inputs = dynprompt.get_node(close_id)["inputs"]
        for name in ("frames", "reward"):
            src = inputs.get(name)
            if not is_link(src) or src[0] not in body:
                raise ValueError(
                    f"RewardLoopRetryClose: '{name}' does not depend on the loop's open node, so every retry would "
                    f"return the same {name}. Wire the open node's 'attempt_seed' into the generator that makes the "
                    f"frames, and score those frames for 'reward'.")
        return body

    @classmethod
    def _expand(cls, dynprompt, open_id: str, close_id: str, body: list[str], carry: LoopCarry) -> io.NodeOutput:
        from comfy_execution.graph_utils import GraphBuilder

        graph = GraphBuilder()
        close_display = dynprompt.get_display_node_id(close_id)
        # Name copies after the user's original node ids (display ids) so ids grow linearly with attempts.
        names = {}
        for node_id in (open_id, *body):
            display = dynprompt.get_display_node_id(node_id)
            is_collector = dynprompt.get_node(node_id)["class_type"] == COLLECT_NODE_ID
            names[node_id] = f"{display}_collect" if is_collector else display
        names[close_id] = CLOSE_COPY_ID
        copies = {}
        for node_id, name in names.items():
            copy = graph.node(dynprompt.get_node(node_id)["class_type"], name)
            copy.set_override_display_id(dynprompt.get_display_node_id(node_id))
            copies[node_id] = copy
        id_map = {node_id: copy.id for node_id, copy in copies.items()}
        for node_id, copy in copies.items():
            for key, value in remap_inputs(dynprompt.get_node(node_id)["inputs"], id_map).items():
                copy.set_input(key, value)
        copies[open_id].set_input("carry", carry)
        close_copy = copies[close_id]
        close_inputs = dynprompt.get_node(close_id)["inputs"]
        if "frames" in close_inputs:
            # The user's close node: route this attempt's candidate through a collector (already a body node in
            # every later expansion, where it is copied like the rest).
            collector = graph.node(COLLECT_NODE_ID, f"{close_display}_collect")
            collector.set_override_display_id(close_display)
            for key in ("frames", "reward", "breakdown", "scores"):
                if key in close_inputs:
                    collector.set_input(key, remap_inputs({key: close_inputs[key]}, id_map)[key])
                    close_copy.set_input(key, None)
            collector.set_input("loop", copies[open_id].out(0))
            close_copy.set_input("loop", collector.out(0))
        return io.NodeOutput(*(close_copy.out(i) for i in range(5)), expand=graph.finalize())

    @staticmethod
    def _finish(run: LoopRun, display: str, event: dict) -> io.NodeOutput:
        state = run.state
        log_json = state.to_json()
        chosen = state.chosen
        reward = state.best_reward if state.best_reward is not None else math.nan
        text = state.progress_text()
        _notify(display, text, gating.json_safe(dict(event, chosen_attempt=chosen, stop_reason=state.stop_reason)))
        log.info("RewardLoop loop %s: %s", display, text)
        rewards = [r.reward for r in state.records]
        chart = {"title": "reward per attempt", "x_label": "attempt",
                 "series": [{"name": "reward", "values": rewards}], "threshold": state.settings.threshold}
        ui = {"rewardloop_chart": [chart], "rewardloop_log": [state.as_dict()]}
        # The expanded graph (kept by ComfyUI until the next prompt) references the run through its carry
        # constants: drop the candidate so the loop holds nothing once it has answered.
        frames, run.best = run.best, None
        return io.NodeOutput(frames, reward, chosen, state.passed, log_json, ui=gating.json_safe(ui))


class RewardLoopRetryCollect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=COLLECT_NODE_ID,
            display_name="Reward Retry Loop (internal: attempt collector)",
            category=CATEGORY,
            description=(
                "Internal: Reward Retry Loop (close) creates it on retries to record each attempt and keep only the "
                "best frames. You never place it yourself; it is hidden from the node library."),
            inputs=[
                LoopType.Input("loop", tooltip="This attempt's loop control (wired by the close node)."),
                io.Image.Input("frames", tooltip="This attempt's candidate frames."),
                io.Float.Input("reward", force_input=True, tooltip="This attempt's reward."),
                io.String.Input("breakdown", optional=True, force_input=True,
                                tooltip="Optional per-component breakdown (JSON object)."),
                ScoresType.Input("scores", optional=True, tooltip="Optional reward bundle from a reward node."),
            ],
            outputs=[LoopType.Output("recorded", display_name="recorded", tooltip="To a close node's 'loop' input.")],
            **INTERNAL_NODE,
        )

    @classmethod
    def execute(cls, loop, frames, reward, breakdown=None, scores=None) -> io.NodeOutput:
        return io.NodeOutput(_record(loop, frames, reward, breakdown, scores))


class RewardLoopPerturbedScene(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RewardLoopPerturbedScene",
            display_name="Perturbed Scene (known pass rate)",
            category=CATEGORY,
            description=(
                "A stand-in generator for trying retry loops without a video model: the procedural scene with each "
                "segment warped a little (passes) or a lot (fails), a little with probability pass_probability. Wire "
                "a retry loop's 'attempt seed' into 'seed'."),
            inputs=[
                io.Int.Input("width", default=128, min=16, max=4096, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=128, min=16, max=4096, step=8, tooltip="Frame height in pixels."),
                io.Int.Input("length", default=33, min=2, max=4096,
                             tooltip="Length of the whole clip (the segment structure is defined on it)."),
                io.Int.Input("scene_seed", default=0, min=0, max=2**31 - 1, tooltip="Which world is rendered."),
                io.Combo.Input("motion", options=list(scene.MOTIONS), default="pan",
                               tooltip="pan: sideways camera travel (parallax); dolly: forward; pan_dolly: both."),
                io.Int.Input("keyframe_every", default=8, min=0, max=4096,
                             tooltip="Segment length in frames (segments share keyframes); 0 = one segment."),
                io.Int.Input("first_frame", default=0, min=0, max=4095, tooltip="First clip frame to render."),
                io.Int.Input("last_frame", default=-1, min=-1, max=4095,
                             tooltip="Last clip frame to render (inclusive); -1 = the clip's last frame."),
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX,
                             tooltip="Perturbation seed: wire the loop's attempt_seed here."),
                io.Float.Input("pass_probability", default=0.8, min=0.0, max=1.0, step=0.01,
                               tooltip="Probability that a segment gets the small warp."),
            ],
            outputs=[
                io.Image.Output("frames", display_name="frames", tooltip="The rendered (warped) frames."),
                io.Boolean.Output("expected_pass", display_name="expected pass",
                                  tooltip="True when every rendered segment drew the small warp."),
                io.String.Output("draws", display_name="draws",
                                 tooltip="JSON object: expected_pass and, per segment, its frames, good/bad draw and "
                                         "warp amplitude (usable as the loop's breakdown)."),
            ],
        )

    @classmethod
    def execute(cls, width, height, length, scene_seed, motion, keyframe_every, first_frame, last_frame, seed,
                pass_probability) -> io.NodeOutput:
        frames, draws = perturb.perturbed_scene(length, width, height, scene_seed, motion, seed,
                                                pass_probability, keyframe_every, first_frame, last_frame)
        expected = all(d["good"] for d in draws)
        return io.NodeOutput(frames, expected, json.dumps({"expected_pass": expected, "segments": draws}))


def _decode(vae, samples):
    images = vae.decode(samples)
    if images.ndim == 5:  # video VAEs: [B, T, H, W, C] -> frames, as core VAEDecode does
        images = images.reshape(-1, *images.shape[-3:])
    return images


class RewardLoopBestOfN(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import comfy.samplers

        from .. import rewards

        return io.Schema(
            node_id="RewardLoopBestOfN",
            display_name="Best-of-N Sampler (reward-gated)",
            category=CATEGORY,
            description=(
                "A KSampler that samples up to N candidates, scores each decoded candidate with a RewardLoop reward "
                "and stops at the first one that reaches the threshold (or keeps the best). Every candidate's seed "
                "is logged, so a plain KSampler can reproduce it."),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model, as for KSampler."),
                io.Conditioning.Input("positive", tooltip="Encoded prompt: what the candidates should show."),
                io.Conditioning.Input("negative", tooltip="Encoded negative prompt: what to avoid."),
                io.Latent.Input("latent_image", tooltip="The empty (or starting) latent, as for KSampler."),
                io.Vae.Input("vae", tooltip="Decodes each candidate so it can be scored."),
                io.Int.Input("seed", default=0, min=0, max=gating.SEED_MAX, control_after_generate=True,
                             tooltip="Seed of the first candidate; the others derive theirs (seed_policy)."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps, as in KSampler."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Guidance scale: how strongly the prompt is followed, as in KSampler."),
                io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES,
                               tooltip="Sampling algorithm, as in KSampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES,
                               tooltip="Noise schedule, as in KSampler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the latent is replaced by noise (1.0 = from scratch), as in "
                                       "KSampler."),
                io.Int.Input("candidates", default=4, min=1, max=10000,
                             tooltip=f"At most this many candidates (capped at {gating.MAX_RETRIES + 1})."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Candidates sampled together in one batch (faster where memory allows; "
                                     "a passing candidate still ends the loop after its batch)."),
                io.Combo.Input("reward", options=[*rewards.SCORERS, "composite"], default="keyframe_ssim",
                               tooltip="Which RewardLoop reward scores each decoded candidate."),
                io.Float.Input("threshold", default=0.85, min=-1e6, max=1e6, step=0.01,
                               tooltip="A candidate passes when its reward is at least this."),
                io.Combo.Input("mode", options=list(gating.MODES), default="first_pass",
                               tooltip="first_pass: stop at the first candidate that passes. best_of: sample every "
                                       "candidate and keep the highest reward."),
                io.Combo.Input("seed_policy", options=list(gating.SEED_POLICIES), default="hash",
                               tooltip="hash: reproducible seeds far from neighbouring base seeds; increment: "
                                       "seed + candidate; random: fresh each candidate (logged)."),
                io.Combo.Input("reward_range", options=list(gating.REWARD_RANGES), default="0..1",
                               tooltip="0..1 for bounded rewards (SSIM, composites): the threshold must lie in "
                                       "[0, 1]. unbounded for rewards without that range."),
                io.Image.Input("keyframes", optional=True, tooltip="Anchor frames for keyframe rewards."),
                io.String.Input("keyframe_positions", optional=True, default="",
                                tooltip="JSON list of the keyframes' frame indices; empty = first/last (2 "
                                        "keyframes) or evenly spaced."),
                io.String.Input("prompt", optional=True, default="", multiline=True,
                                tooltip="Prompt text for prompt-aware rewards (CLIPScore, captions, loop-break)."),
            ],
            outputs=[
                io.Image.Output("chosen_frames", display_name="chosen frames",
                                tooltip="Decoded frames of the chosen candidate."),
                io.Latent.Output("chosen_latent", display_name="chosen latent",
                                 tooltip="Latent of the chosen candidate (for further sampling)."),
                io.Float.Output("chosen_reward", display_name="chosen reward",
                                tooltip="Reward of the chosen candidate."),
                io.Int.Output("chosen_candidate", display_name="chosen candidate",
                              tooltip="Index of the chosen candidate, counted from 0."),
                io.Boolean.Output("passed", display_name="passed",
                                  tooltip="Whether the chosen candidate reached the threshold."),
                io.String.Output("attempt_log", display_name="attempt log",
                                 tooltip="JSON: settings, one entry per candidate, decision."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, threshold=None, reward_range=None, mode=None, seed_policy=None, candidates=None):
        if candidates is not None and candidates < 1:
            return f"candidates must be >= 1, got {candidates}"
        return _validate_settings(threshold, reward_range, None, mode, seed_policy)

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name, scheduler, denoise,
                candidates, batch_size, reward, threshold, mode, seed_policy, reward_range, keyframes=None,
                keyframe_positions="", prompt="") -> io.NodeOutput:
        import comfy.model_management
        import comfy.sample
        import comfy.utils
        import latent_preview
        import torch

        from .. import rewards

        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        settings = gating.make_settings(threshold, candidates - 1, mode, seed_policy, seed, reward_range)
        positions = parse_keyframe_positions(keyframe_positions)
        display = cls.hidden.unique_id
        base = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        batch_inds = latent_image.get("batch_index")
        noise_mask = latent_image.get("noise_mask")
        per = base.shape[0]

        def score(frames):
            clip = rewards.Clip(frames, keyframes=keyframes, keyframe_positions=positions, prompt=prompt)
            if reward == "composite":
                result, _ = rewards.composite(clip)
            else:
                result = rewards.run(reward, clip)
            breakdown = {reward: result.value, "per_item": result.per_item.tolist()}
            if result.note:
                breakdown["note"] = result.note
            return result.value, breakdown

        def sample(todo):
            k = len(todo)
            # Noise per candidate from its own seed (not one draw for the whole batch), so every logged seed
            # reproduces its candidate in a plain KSampler.
            noise = torch.cat([comfy.sample.prepare_noise(base, s, batch_inds) for _, s in todo])
            batch = base.repeat((k,) + (1,) * (base.ndim - 1))
            mask = noise_mask
            if mask is not None and mask.shape[0] == per and k > 1:
                mask = mask.repeat((k,) + (1,) * (mask.ndim - 1))
            callback = latent_preview.prepare_callback(model, steps)
            try:
                return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                           batch, denoise=denoise, noise_mask=mask, callback=callback,
                                           disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=todo[0][1])
            except comfy.model_management.OOM_EXCEPTION:
                if k == 1:
                    raise
            # "Batched where memory allows": out of memory at this batch size, so halve it (same candidates).
            del noise, batch, mask
            comfy.model_management.soft_empty_cache()
            log.warning("RewardLoopBestOfN: out of memory sampling %d candidates at once; retrying %d + %d", k,
                        k // 2, k - k // 2)
            return torch.cat([sample(todo[:k // 2]), sample(todo[k // 2:])])

        def generate(todo):
            k = len(todo)
            samples = sample(todo)
            out = []
            for i in range(k):  # decode and score one candidate at a time: a decoded video batch is the peak
                chunk = samples[i * per:(i + 1) * per]
                frames = _decode(vae, chunk)
                value, breakdown = score(frames)
                latent = dict(latent_image, samples=chunk)
                out.append(((frames, latent), value, breakdown))
            return out

        def on_record(state, record):
            _notify(display, state.progress_text(),
                    gating.json_safe({"node_id": display, "attempt": record.attempt, "attempts": settings.attempts,
                                      "seed": record.seed, "reward": record.reward, "passed": record.passed,
                                      "seconds": record.seconds, "best_reward": state.best_reward,
                                      "best_attempt": state.best, "threshold": settings.threshold,
                                      "done": state.done, "failed_reason": record.failed_reason}))

        (frames, latent), state = gating.run_retry_loop(
            settings, generate, batch_size=batch_size, should_stop=comfy.model_management.throw_exception_if_processing_interrupted,
            on_record=on_record)
        reward_value = state.best_reward if state.best_reward is not None else math.nan
        chart = {"title": "reward per candidate", "x_label": "candidate",
                 "series": [{"name": reward, "values": [r.reward for r in state.records]}],
                 "threshold": settings.threshold}
        ui = gating.json_safe({"rewardloop_chart": [chart], "rewardloop_log": [state.as_dict()]})
        return io.NodeOutput(frames, latent, reward_value, state.chosen, state.passed, state.to_json(), ui=ui)


MAX_SEGMENTS = 8


class RewardLoopJoinSegments(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        segments = [io.Image.Input(f"segment_{i}", optional=i > 1, tooltip="Frames of segment %d." % i)
                    for i in range(1, MAX_SEGMENTS + 1)]
        logs = [io.String.Input(f"log_{i}", optional=True, force_input=True,
                                tooltip=f"Attempt log of segment {i}'s retry loop (for the summary).")
                for i in range(1, MAX_SEGMENTS + 1)]
        return io.Schema(
            node_id="RewardLoopJoinSegments",
            display_name="Join Gated Segments",
            category=CATEGORY,
            description=(
                "Joins segments that were each gated by their own retry loop into one clip, keeping shared keyframes "
                "once. Connect the loops' attempt logs to see whether every segment passed."),
            inputs=[io.Int.Input("overlap", default=1, min=0, max=64,
                                 tooltip="Frames each segment repeats from the previous one (1 = shared keyframe)."),
                    *segments, *logs],
            outputs=[io.Image.Output("frames", display_name="frames", tooltip="The joined clip."),
                     io.Boolean.Output("all_passed", display_name="all passed",
                                       tooltip="Whether every segment with a connected log reached its threshold."),
                     io.String.Output("summary", display_name="summary",
                                      tooltip="JSON: per segment passed / attempts / reward / seconds.")],
        )

    @classmethod
    def execute(cls, overlap, **kw) -> io.NodeOutput:
        present = [i for i in range(1, MAX_SEGMENTS + 1) if kw.get(f"segment_{i}") is not None]
        if present != list(range(1, len(present) + 1)):
            raise ValueError(f"connect segments in order without gaps (segment_1, segment_2, ...); connected: "
                             f"{', '.join(f'segment_{i}' for i in present)}")
        logs = []
        for i in present:
            text = kw.get(f"log_{i}")
            try:
                logs.append(json.loads(text) if text else None)
            except json.JSONDecodeError:
                raise ValueError(f"log_{i} is not an attempt log (JSON) from a retry loop's close node") from None
        frames = gating.join_segments([kw[f"segment_{i}"] for i in present], overlap)
        summary = gating.json_safe(gating.summarize_logs(logs))
        ui = None
        if any(log is not None for log in logs):
            segs = summary["segments"]
            ui = {"rewardloop_summary": [summary], "rewardloop_chart": [
                {"title": "attempts per segment", "x_label": "segment",
                 "series": [{"name": "attempts", "values": [s.get("attempts_run") for s in segs]}]},
                {"title": "best reward per segment", "x_label": "segment",
                 "series": [{"name": "best reward", "values": [s.get("best_reward") for s in segs]}],
                 "threshold": next((log["settings"]["threshold"] for log in logs if log), None)}]}
        return io.NodeOutput(frames, summary["all_passed"], json.dumps(summary), ui=ui)


NODES = [RewardLoopRetryOpen, RewardLoopRetryClose, RewardLoopRetryCollect, RewardLoopBestOfN,
         RewardLoopJoinSegments, RewardLoopPerturbedScene]
